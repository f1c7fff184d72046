"""Background jobs: one process at a time per job, and recommendation counting yields to ingest."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from sync_server.db.engine import Database
from sync_server.group_commit import GroupCommitter
from sync_server.main import _every
from tests.sync_server.conftest import BACKENDS, empty_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_job_runs_in_one_process_at_a_time(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with empty_database(backend, tmp_path, request) as url:
        # Two Database objects on one database stand for two server processes: a SQLite
        # flock and a PostgreSQL session lock both refuse a second holder, in or out of process.
        first, second = Database(url), Database(url)
        try:
            with first.turn("recommendations") as mine:
                assert mine
                with second.turn("recommendations") as theirs:
                    assert not theirs  # counting the same orders twice would waste one of them
                with second.turn("mail") as other_job:
                    assert other_job  # another job is not held up
            with second.turn("recommendations") as theirs:
                assert theirs  # released when the first process's run ended
        finally:
            first.dispose()
            second.dispose()


def test_the_committer_reports_saturation_while_pushes_wait_behind_a_group() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def apply(items: Sequence[int]) -> list[int | BaseException]:
        entered.set()
        gate.wait(10)
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(apply, name="test", max_items=2)
    committer.start()

    async def scenario() -> None:
        first = asyncio.ensure_future(committer.submit(1))
        await asyncio.to_thread(entered.wait, 10)
        assert not committer.saturated()  # one push, taken at once: nothing waited
        rest = asyncio.ensure_future(asyncio.gather(*(committer.submit(i) for i in range(2, 7))))
        await asyncio.sleep(0.05)
        gate.set()
        await first
        await rest

    try:
        asyncio.run(scenario())
        assert committer.saturated(within=5.0)  # groups of 2 left pushes waiting
        time.sleep(0.1)
        assert not committer.saturated(within=0.05)  # and that was a while ago
    finally:
        committer.stop()


def _run_every(
    *, busy: bool, max_defer_s: float, seconds: float, database: Database
) -> list[float]:
    runs: list[float] = []

    def job(_db: Database) -> int:
        runs.append(time.monotonic())
        return 0

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            _every(
                stop,
                0.05,
                "test job",
                job,
                database,
                yield_to=lambda: busy,
                max_defer_s=max_defer_s,
            )
        )
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(scenario())
    return runs


def test_a_job_that_yields_waits_while_ingest_is_saturated_but_not_forever(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'hq.db'}")
    try:
        started = time.monotonic()
        idle = _run_every(busy=False, max_defer_s=0.6, seconds=0.5, database=db)
        assert len(idle) >= 3  # every interval when ingest is not saturated
        started = time.monotonic()
        busy = _run_every(busy=True, max_defer_s=0.6, seconds=1.5, database=db)
        # Deferred, but at most max_defer_s since the last run: about every 0.6 s.
        assert 1 <= len(busy) <= 3
        assert busy[0] - started >= 0.5
    finally:
        db.dispose()
