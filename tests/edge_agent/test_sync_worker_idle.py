"""The sync thread shares the till's interpreter with the scan path: between cycles it must be
asleep. Against an unreachable HQ it runs once per backoff and not otherwise, whatever the till
does meanwhile; with nothing to send it makes no request and no status update."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.hq_client import HQClient
from edge_agent.store import LocalStore
from edge_agent.sync_worker import SyncStatus, SyncWorker
from tests.support.server import free_port, wait_for
from tests.support.till import TILL, RestartableHq, hq_running, open_store, sell

BACKOFF_S = 2.0


class FixedJitter(random.Random):
    """Every backoff lasts ``BACKOFF_S`` (the worker draws its jitter from ``uniform``)."""

    def uniform(self, a: float, b: float) -> float:
        return BACKOFF_S


class ThreadClock:
    """``time.monotonic`` that counts the calls each thread makes: the worker reads the clock
    every time its loop turns, so a thread that does not call it is not running."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self) -> float:
        name = threading.current_thread().name
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        return time.monotonic()

    def of_sync_thread(self) -> int:
        with self._lock:
            return self.calls.get("omnitill-sync", 0)


def thread_cpu_s(name: str) -> float:
    thread = next(t for t in threading.enumerate() if t.name == name)
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    local = open_store(tmp_path)
    yield local
    local.close()


@pytest.fixture
def unreachable() -> Iterator[HQClient]:
    # A port nobody listens on: every request is refused at once, as when HQ is down.
    with HQClient(f"http://127.0.0.1:{free_port()}", "t" * 40, till_id=TILL, timeout=2) as client:
        yield client


def test_against_an_unreachable_hq_the_thread_sleeps_through_each_backoff(
    store: LocalStore, unreachable: HQClient
) -> None:
    sell(store, 2)
    clock = ThreadClock()
    statuses: list[SyncStatus] = []
    worker = SyncWorker(
        store,
        unreachable,
        push_interval_s=0.05,  # pushes would be due all the time: only the backoff holds them
        pull_interval_s=0.05,
        rng=FixedJitter(),
        clock=clock,
        on_status=statuses.append,
    )
    worker.start()
    try:
        wait_for(lambda: statuses, timeout=5, what="the first (failed) cycle")
        cpu_before = thread_cpu_s("omnitill-sync")
        turns_before = clock.of_sync_thread()
        for _ in range(100):  # a busy till: sales kick the worker during its backoff
            worker.kick()
            time.sleep(BACKOFF_S / 200)

        # Half a backoff later: the thread did not turn once and did not retry.
        assert clock.of_sync_thread() == turns_before
        assert len(statuses) == 1
        assert not statuses[0].online and statuses[0].pending_ops == 2
        assert statuses[0].last_error is not None and "Cannot reach HQ" in statuses[0].last_error

        # When the backoff ends it retries (once), then sleeps again.
        wait_for(lambda: len(statuses) >= 2, timeout=BACKOFF_S + 5, what="the retry")
        time.sleep(BACKOFF_S / 2)
        assert len(statuses) == 2
        assert worker.consecutive_failures == 2
        # A refused connection and a status update: milliseconds of work, not a busy thread.
        assert thread_cpu_s("omnitill-sync") - cpu_before < 0.25
    finally:
        started = time.monotonic()
        worker.stop()
    assert time.monotonic() - started < 2, "stop must not wait for the backoff to end"
    assert not any(t.name == "omnitill-sync" for t in threading.enumerate())


def test_stop_during_a_long_backoff_ends_the_thread_at_once(
    store: LocalStore, unreachable: HQClient
) -> None:
    class LongJitter(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return 600.0

    statuses: list[SyncStatus] = []
    worker = SyncWorker(store, unreachable, rng=LongJitter(), on_status=statuses.append)
    worker.start()
    wait_for(lambda: statuses, timeout=5, what="the first (failed) cycle")
    assert worker.retry_delay == 600.0
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 2
    assert not any(t.name == "omnitill-sync" for t in threading.enumerate())


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RestartableHq]:
    with hq_running(tmp_path) as server:
        yield server


def test_push_intervals_with_nothing_to_send_make_no_request_and_no_update(
    hq: RestartableHq, store: LocalStore
) -> None:
    requests: list[str] = []
    statuses: list[SyncStatus] = []
    with hq.client(hq.enroll(), timeout=5.0) as client:
        client._client.event_hooks["request"].append(
            lambda request: requests.append(f"{request.method} {request.url.path}")
        )
        worker = SyncWorker(
            store, client, push_interval_s=0.05, pull_interval_s=600, on_status=statuses.append
        )
        worker.start()
        try:
            wait_for(lambda: statuses, timeout=10, what="the first cycle (a pull)")
            assert statuses[0].online
            seen = list(requests)
            time.sleep(1.0)  # twenty push intervals with an empty outbox
            assert requests == seen
            assert len(statuses) == 1

            [sale] = sell(store)
            worker.kick()
            wait_for(lambda: len(statuses) >= 2, timeout=10, what="the kicked push")
        finally:
            worker.stop()
    assert requests[len(seen) :] == ["POST /api/v1/sync/push"]
    assert statuses[-1].pending_ops == 0 and statuses[-1].online
    assert sale.sale_id is not None
