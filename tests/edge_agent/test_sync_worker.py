"""The sync worker against a real HQ under uvicorn: exactly once, offline and back, backoff,
revoked tokens, dead letters, and pull pages applied with their cursor or not at all."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import feed, outbox
from edge_agent.hq_client import HQClient
from edge_agent.store import LocalStore
from edge_agent.sync_worker import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    REDISCOVER_AFTER,
    SyncStatus,
    SyncWorker,
    backoff_delay,
)
from sync_server.db.schema import feed_state
from sync_server.services import feed as hq_feed
from sync_server.services.tills import enroll_till, revoke_till
from tests.support.server import free_port, wait_for
from tests.support.till import (
    STORE,
    TILL,
    LostAck,
    RestartableHq,
    hq_orders,
    hq_running,
    open_store,
    outbox_statuses,
    sale_made,
    sell,
)


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RestartableHq]:
    with hq_running(tmp_path) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    local = open_store(tmp_path)
    yield local
    local.close()


@pytest.fixture
def client(hq: RestartableHq) -> Iterator[HQClient]:
    with hq.client(hq.enroll(), timeout=5.0) as hq_client:
        yield hq_client


def put_products(hq: RestartableHq, count: int) -> None:
    with hq.db.write() as conn:
        hq_feed.record_changes(
            conn,
            [
                {
                    "entity": "product",
                    "key": f"SKU-{i}",
                    "data": f'{{"name": "Item {i}", "price_minor": {100 + i}, "gtins": []}}',
                }
                for i in range(count)
            ],
        )


def local_skus(store: LocalStore) -> list[str]:
    return [r[0] for r in store.query("SELECT sku FROM products ORDER BY sku")]


def sale_ids(sales: list[Any]) -> set[str]:
    return {str(s.sale_id) for s in sales}


# -- push -------------------------------------------------------------------------------------


def test_one_cycle_pushes_every_pending_sale_in_batches_then_pulls(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    sales = sell(store, 5)
    put_products(hq, 3)
    seen: list[SyncStatus] = []
    worker = SyncWorker(store, client, batch_size=2, on_status=seen.append)

    status = worker.run_once()

    assert set(hq_orders(hq.db)) == sale_ids(sales)
    assert outbox_statuses(store) == {"done": 5}
    assert local_skus(store) == ["SKU-0", "SKU-1", "SKU-2"]
    assert status.online and status.pending_ops == 0 and status.dead_letters == 0
    assert status.last_error is None
    assert status.last_push_at is not None and status.last_pull_at is not None
    assert status.server_url == hq.base_url
    assert seen == [status]


def test_a_lost_answer_is_retried_and_the_sale_lands_once(
    hq: RestartableHq, store: LocalStore
) -> None:
    [sale] = sell(store)
    lossy = LostAck(times=1)
    with hq.client(hq.enroll(), transport=lossy) as client:
        worker = SyncWorker(store, client)

        first = worker.run_once()
        assert lossy.lost == ["POST /api/v1/sync/push -> 200"]
        assert not first.online and first.pending_ops == 1
        assert first.last_error is not None and "did not answer in time" in first.last_error
        assert hq_orders(hq.db) == [str(sale.sale_id)]  # stored at HQ, the till cannot know

        second = worker.run_once()

    assert second.online and second.pending_ops == 0 and second.last_error is None
    assert hq_orders(hq.db) == [str(sale.sale_id)]
    attempts = store.query_one("SELECT attempts, status FROM outbox")
    assert attempts is not None and tuple(attempts) == (2, "done")


def test_offline_the_till_keeps_its_sales_and_backs_off_then_sends_them(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    before = sell(store, 2)
    hq.stop()
    worker = SyncWorker(store, client, rng=random.Random(42))
    expected = random.Random(42)

    for failures in range(1, 7):
        status = worker.run_once()
        assert not status.online
        assert status.last_error is not None and "Cannot reach HQ" in status.last_error
        assert worker.consecutive_failures == failures
        assert worker.retry_delay == backoff_delay(failures, expected)
        assert 0 <= worker.retry_delay <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
    during = sell(store, 3)  # the till keeps selling
    assert worker.status.pending_ops == 5

    hq.start()
    back = worker.run_once()

    assert back.online and back.pending_ops == 0 and back.last_error is None
    assert worker.consecutive_failures == 0 and worker.retry_delay == 0
    assert sorted(hq_orders(hq.db)) == sorted(sale_ids(before + during))


def test_the_thread_waits_out_each_backoff_and_sends_when_hq_is_back(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    sales = sell(store, 2)
    hq.stop()
    now = [1000.0]
    waits: list[float] = []
    statuses: list[SyncStatus] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds
        if len(waits) == 6:
            hq.start()
        elif len(waits) == 7:
            worker.stop()

    worker = SyncWorker(
        store,
        client,
        push_interval_s=5.0,
        pull_interval_s=15.0,
        rng=random.Random(7),
        clock=lambda: now[0],
        sleep=sleep,
        on_status=statuses.append,
    )
    worker.start()
    wait_for(lambda: len(waits) >= 7, timeout=30, what="seven waits")
    worker.stop()

    expected = random.Random(7)
    assert waits[:6] == pytest.approx([backoff_delay(n, expected) for n in range(1, 7)])
    assert waits[6] == pytest.approx(5.0)  # back online: the next push is an interval away
    assert [s.online for s in statuses] == [False] * 6 + [True]
    assert all(s.pending_ops == 2 for s in statuses[:6])
    assert statuses[-1].pending_ops == 0
    assert sorted(hq_orders(hq.db)) == sorted(sale_ids(sales))


@given(failures=st.integers(min_value=1, max_value=200), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_below_a_doubling_ceiling_and_the_cap(
    failures: int, seed: int
) -> None:
    delay = backoff_delay(failures, random.Random(seed))
    assert 0 <= delay <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
    assert delay == backoff_delay(failures, random.Random(seed))  # seeded: reproducible


def test_backoff_grows_on_average_until_the_cap() -> None:
    rng = random.Random(1)
    means = [sum(backoff_delay(n, rng) for _ in range(400)) / 400 for n in range(1, 12)]
    assert means[0] < means[3] < means[6] < means[8]
    ceilings = [min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (n - 1)) for n in range(1, 12)]
    for mean, ceiling in zip(means, ceilings, strict=True):
        assert mean == pytest.approx(ceiling / 2, rel=0.15)  # uniform in [0, ceiling]
    assert backoff_delay(0, rng) == 0


def test_kick_pushes_at_once_and_stop_ends_the_thread(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    statuses: list[SyncStatus] = []
    worker = SyncWorker(
        store, client, push_interval_s=60, pull_interval_s=60, on_status=statuses.append
    )
    worker.start()
    wait_for(lambda: statuses, what="the first cycle")  # one at start
    [sale] = sell(store)
    worker.kick()

    wait_for(lambda: hq_orders(hq.db), timeout=5, what="the kicked push")
    started = time.monotonic()
    worker.stop()

    assert time.monotonic() - started < 2
    assert hq_orders(hq.db) == [str(sale.sale_id)]
    assert statuses[-1].pending_ops == 0 and statuses[-1].online
    assert not any(t.name == "omnitill-sync" for t in threading.enumerate())


def test_a_revoked_token_keeps_the_sales_pending_until_staff_fix_it(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    sales = sell(store, 2)
    revoke_till(hq.db, TILL)
    worker = SyncWorker(store, client)

    status = worker.run_once()

    assert status.pending_ops == 2 and status.dead_letters == 0
    assert status.online  # HQ answered; it refused the token
    assert status.last_error is not None and "revoked" in status.last_error
    assert hq_orders(hq.db) == []

    new_token = enroll_till(hq.db, store_id=STORE, till_id=TILL, rotate=True)
    with hq.client(new_token) as fixed:
        assert SyncWorker(store, fixed).run_once().pending_ops == 0
    assert sorted(hq_orders(hq.db)) == sorted(sale_ids(sales))


def test_an_op_hq_rejects_goes_to_the_dead_letters_alone(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    good = sell(store)
    bad = sale_made(total_minor=1)  # totals that do not add up: HQ rejects this op only
    with store.transaction() as db:
        outbox.enqueue(db, "sale", bad.model_dump(mode="json"))
    good += sell(store)

    status = SyncWorker(store, client).run_once()

    assert sorted(hq_orders(hq.db)) == sorted(sale_ids(good))
    assert status.dead_letters == 1 and status.pending_ops == 0
    assert status.last_error is not None and "HQ rejected 1 ops" in status.last_error
    dead = store.query_one("SELECT seq, type, error FROM dead_letters")
    assert dead is not None and (dead["seq"], dead["type"]) == (2, "sale")
    assert "total" in dead["error"]


def test_a_push_hq_cannot_read_stays_pending_and_is_reported(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    # Dead-lettering ops HQ never numbered would leave a seq gap that blocks every later sale.
    with store.transaction() as db:
        outbox.enqueue(db, "teleport", {"to": "mars"})

    status = SyncWorker(store, client).run_once()

    assert status.dead_letters == 0 and status.pending_ops == 1
    assert status.last_error is not None and "type" in status.last_error
    row = store.query_one("SELECT status, last_error FROM outbox")
    assert row is not None and row["status"] == "pending" and "type" in row["last_error"]
    assert hq_orders(hq.db) == []


def test_a_seq_gap_keeps_ops_pending_and_says_what_hq_expects(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    sell(store, 3)
    put_products(hq, 1)
    # As if op 1 had been settled locally without ever reaching HQ.
    with store.transaction() as db:
        db.execute("UPDATE outbox SET status = 'done' WHERE seq = 1")

    status = SyncWorker(store, client).run_once()

    assert status.pending_ops == 2 and status.dead_letters == 0 and status.online
    assert status.last_error is not None and "HQ expects 1" in status.last_error
    assert hq_orders(hq.db) == []
    assert local_skus(store) == ["SKU-0"]  # the feed still flows: prices must not freeze


# -- pull -------------------------------------------------------------------------------------


def test_a_pull_page_and_its_cursor_are_applied_together_or_not_at_all(
    hq: RestartableHq, store: LocalStore, client: HQClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_products(hq, 5)
    first_cursor = client.pull(None, limit=2).cursor
    upsert = feed._UPSERTS["product"]
    calls = []

    def failing_upsert(db: sqlite_utils.Database, key: str, data: dict[str, Any]) -> None:
        calls.append(key)
        if key == "SKU-3":  # the 2nd row of the 2nd page, after the 1st row was written
            raise sqlite3.OperationalError("disk I/O error")
        upsert(db, key, data)

    monkeypatch.setitem(feed._UPSERTS, "product", failing_upsert)
    worker = SyncWorker(store, client, pull_limit=2)

    broken = worker.run_once()

    assert calls == ["SKU-0", "SKU-1", "SKU-2", "SKU-3"]
    assert broken.last_error is not None and "disk I/O error" in broken.last_error
    assert feed.current_cursor(store) == first_cursor
    assert local_skus(store) == ["SKU-0", "SKU-1"]  # SKU-2 was rolled back with its page

    monkeypatch.setitem(feed._UPSERTS, "product", upsert)
    fixed = worker.run_once()

    assert fixed.last_error is None and fixed.last_pull_at is not None
    assert local_skus(store) == [f"SKU-{i}" for i in range(5)]
    assert feed.current_cursor(store) == client.pull(None, limit=5).cursor


def test_an_expired_cursor_refetches_the_cache_and_keeps_the_outbox(
    hq: RestartableHq, store: LocalStore, client: HQClient
) -> None:
    put_products(hq, 2)
    sell(store, 2)
    worker = SyncWorker(store, client)
    worker.run_once()
    old_cursor = feed.current_cursor(store)
    with store.transaction() as db:  # a product HQ deleted while its tombstone was purged
        db.execute(
            "INSERT INTO products(sku, name, price_minor, currency, data) "
            "VALUES ('SKU-GONE', 'Gone', 1, 'EUR', '{}')"
        )
    with hq.db.write() as conn:
        conn.execute(feed_state.insert(), [{"name": "horizon_id", "value": 10**9}])
    put_products(hq, 3)  # newer rows, past the horizon

    status = worker.run_once()

    assert status.last_error is None
    assert local_skus(store) == ["SKU-0", "SKU-1", "SKU-2"]
    assert feed.current_cursor(store) not in (None, old_cursor)
    assert outbox_statuses(store) == {"done": 2}


# -- no server --------------------------------------------------------------------------------


def test_without_a_server_the_till_is_offline_and_keeps_everything(store: LocalStore) -> None:
    sell(store, 2)
    status = SyncWorker(store, None).run_once()
    assert not status.online and status.pending_ops == 2 and status.server_url is None
    assert status.last_error is not None and "No HQ server" in status.last_error


def test_a_client_factory_is_asked_until_it_finds_hq(hq: RestartableHq, store: LocalStore) -> None:
    token = hq.enroll()
    answers: list[HQClient | None] = [None, hq.client(token)]
    asked: list[int] = []

    def factory() -> HQClient | None:
        asked.append(1)
        return answers.pop(0)

    sales = sell(store)
    worker = SyncWorker(store, factory)
    assert not worker.run_once().online
    status = worker.run_once()
    worker.stop()  # closes the client the factory made

    assert status.online and status.server_url == hq.base_url and len(asked) == 2
    assert hq_orders(hq.db) == [str(sales[0].sale_id)]


def test_a_discovered_hq_that_stops_answering_is_looked_for_again(
    hq: RestartableHq, store: LocalStore
) -> None:
    token = hq.enroll()
    dead = HQClient(f"http://127.0.0.1:{free_port()}", token, till_id=TILL)
    answers = [dead, hq.client(token)]
    sell(store)
    worker = SyncWorker(store, lambda: answers.pop(0))

    for _ in range(REDISCOVER_AFTER - 1):
        assert worker.run_once().server_url == dead.base_url  # no answer: same server again
    assert worker.run_once().server_url is None  # given up on it: look for HQ again
    status = worker.run_once()  # found somewhere else
    worker.stop()

    assert status.online and status.server_url == hq.base_url and status.pending_ops == 0
    assert answers == []
