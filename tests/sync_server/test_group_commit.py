"""Group commit: pushes applied together in one transaction, each one alone in what it gets."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from shared.errors import (
    Conflict,
    DiskFull,
    InvalidInput,
    PermissionDenied,
    SequenceGap,
    ServerUnavailable,
)
from shared.protocol import OpResult, PushResponse
from sync_server.db.engine import Database
from sync_server.db.schema import ops, orders, tills
from sync_server.group_commit import GroupCommitter
from sync_server.services.ingest import PushOutcome, RawPush, apply_pushes
from sync_server.services.tills import Till, authenticate_till, enroll_till
from tests.shared.factories import make_sale
from tests.support.server import new_op

# --- the committer itself, over a recording apply function


class Recorder:
    """An apply function that records its groups; the first group waits for ``release``."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        self.entered.set()
        self.release.wait(10)
        if 666 in items:
            raise RuntimeError("the transaction failed")
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def _submit_all(committer: GroupCommitter[int, int], items: Sequence[int]) -> list[Any]:
    return await asyncio.gather(*(committer.submit(i) for i in items), return_exceptions=True)


def test_items_queued_while_a_group_runs_go_together_into_the_next() -> None:
    recorder = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(recorder, name="test", max_items=4)
    committer.start()

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(committer.submit(1))
        await asyncio.to_thread(recorder.entered.wait, 10)  # group 1 is running, holding [1]
        rest = asyncio.ensure_future(_submit_all(committer, [2, -3, 4, 5, 6]))
        await asyncio.sleep(0.05)  # all five are queued behind it
        recorder.release.set()
        return [await first, *(await rest)]

    try:
        results = asyncio.run(scenario())
    finally:
        committer.stop()
    assert recorder.groups == [[1], [2, -3, 4, 5], [6]]  # at most max_items a group
    assert results[:2] == [10, 20]
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad -3"  # its own error
    assert results[3:] == [40, 50, 60]
    assert (committer.groups, committer.items) == (3, 6)


def test_a_failed_group_fails_every_item_in_it_and_only_those() -> None:
    recorder = Recorder()
    recorder.release.set()
    committer: GroupCommitter[int, int] = GroupCommitter(recorder, name="test")
    committer.start()
    try:
        failed = asyncio.run(_submit_all(committer, [666]))
        after = asyncio.run(_submit_all(committer, [7]))
    finally:
        committer.stop()
    assert isinstance(failed[0], RuntimeError)
    assert after == [70]


def test_stop_answers_what_is_queued_and_then_refuses() -> None:
    recorder = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(recorder, name="test")
    committer.start()

    async def scenario() -> list[Any]:
        pending = asyncio.ensure_future(_submit_all(committer, [1, 2, 3]))
        await asyncio.to_thread(recorder.entered.wait, 10)
        stopper = asyncio.ensure_future(asyncio.to_thread(committer.stop))
        await asyncio.sleep(0.05)
        recorder.release.set()
        await stopper
        return list(await pending)

    assert asyncio.run(scenario()) == [10, 20, 30]
    with pytest.raises(ServerUnavailable):
        asyncio.run(committer.submit(4))


# --- apply_pushes against a real SQLite file


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{(tmp_path / 'hq.db').as_posix()}")
    database.migrate()
    yield database
    database.dispose()


def _till(db: Database, store_id: str, till_id: str) -> Till:
    return authenticate_till(db, enroll_till(db, store_id=store_id, till_id=till_id))


def _body(
    till: Till, seqs: Sequence[int], *, as_till: str | None = None, made_at: Till | None = None
) -> bytes:
    origin = made_at or till
    sales = [
        new_op(
            "sale",
            make_sale(2, store_id=origin.store_id, till_id=origin.till_id).model_dump(mode="json"),
            seq,
        )
        for seq in seqs
    ]
    return json.dumps({"till_id": as_till or till.till_id, "ops": sales}).encode()


def _count(db: Database, table: sa.Table, till_id: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.till_id == till_id)
            ).scalar_one()
        )


def _last_seq(db: Database, till_id: str) -> int:
    with db.read() as conn:
        query = sa.select(tills.c.last_seq).where(tills.c.till_id == till_id)
        return int(conn.execute(query).scalar_one())


def test_one_group_applies_each_push_as_if_alone(db: Database) -> None:
    one = _till(db, "S001", "S001-T1")
    two = _till(db, "S001", "S001-T2")
    first = _body(one, [1, 2, 3])
    outcomes = apply_pushes(
        db,
        [
            RawPush(one, first),
            RawPush(one, b'{"till_id": "S001-T1", "ops": [{"op_id": 5}]}'),  # malformed
            RawPush(two, _body(two, [5])),  # a gap: two has applied nothing yet
            RawPush(one, first),  # the same push again (a lost ack): sees the first's writes
            RawPush(one, _body(one, [4]), backlog=0),
            RawPush(two, _body(two, [1], made_at=one), backlog=0),  # a sale made elsewhere
            RawPush(two, _body(two, [1], as_till="S001-T1")),  # pushing as another till
        ],
    )
    applied, malformed, gap, again, fourth, foreign, impostor = outcomes
    assert isinstance(applied, PushOutcome)
    assert [r.status for r in applied.response.results] == ["applied"] * 3
    assert isinstance(malformed, ValidationError)
    assert isinstance(gap, SequenceGap)
    assert isinstance(again, PushOutcome)
    assert [r.status for r in again.response.results] == ["duplicate"] * 3
    assert isinstance(fourth, PushOutcome) and fourth.response.last_seq == 4
    assert isinstance(foreign, PushOutcome)  # the ops are rejected one by one, seq consumed
    assert [r.status for r in foreign.response.results] == ["rejected"]
    assert "pushed by S001/S001-T2" in (foreign.response.results[0].error or "")
    assert isinstance(impostor, PermissionDenied)

    assert _count(db, orders, "S001-T1") == 4
    assert _count(db, ops, "S001-T1") == 4
    assert _last_seq(db, "S001-T1") == 4
    assert _count(db, orders, "S001-T2") == 0
    assert _count(db, ops, "S001-T2") == 1  # the rejected op's verdict
    assert _last_seq(db, "S001-T2") == 1


def test_a_push_that_breaks_mid_way_leaves_nothing_of_itself(db: Database) -> None:
    one = _till(db, "S001", "S001-T1")
    two = _till(db, "S001", "S001-T2")
    [stored] = apply_pushes(db, [RawPush(one, _body(one, [1]))])
    assert isinstance(stored, PushOutcome)
    with db.read() as conn:
        sale_id = conn.execute(sa.select(orders.c.order_id)).scalar_one()
    # The second op of this push carries a sale already stored: the insert fails on the key,
    # after the first op was written. The push's savepoint is rolled back, its neighbours stay.
    clash = json.loads(_body(two, [1, 2]))
    clash["ops"][1]["payload"]["sale_id"] = str(sale_id)
    twice = json.loads(_body(two, [1, 2]))  # refused before anything is written
    twice["ops"][1]["op_id"] = twice["ops"][0]["op_id"]
    before, refused, conflict, after = apply_pushes(
        db,
        [
            RawPush(one, _body(one, [2])),
            RawPush(two, json.dumps(twice).encode()),
            RawPush(two, json.dumps(clash).encode()),
            RawPush(one, _body(one, [3])),
        ],
    )
    assert isinstance(before, PushOutcome) and isinstance(after, PushOutcome)
    assert isinstance(refused, InvalidInput)
    assert isinstance(conflict, Conflict)
    assert _count(db, orders, "S001-T2") == 0  # not even the first op of the broken push
    assert _count(db, ops, "S001-T2") == 0
    assert _last_seq(db, "S001-T2") == 0
    assert _count(db, orders, "S001-T1") == 3
    assert _last_seq(db, "S001-T1") == 3


def test_a_failed_transaction_stores_nothing_of_the_group(db: Database) -> None:
    one = _till(db, "S001", "S001-T1")
    two = _till(db, "S001", "S001-T2")
    with db.read() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    @sa.event.listens_for(db.engine, "begin")
    def disk_full(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")  # not one page more

    db.engine.dispose()  # every connection meets the full disk
    with pytest.raises(DiskFull):
        apply_pushes(db, [RawPush(one, _body(one, range(1, 40))), RawPush(two, _body(two, [1]))])
    sa.event.remove(db.engine, "begin", disk_full)
    db.engine.dispose()
    assert _count(db, orders, "S001-T1") == 0
    assert _count(db, orders, "S001-T2") == 0
    assert _last_seq(db, "S001-T1") == 0


def test_a_push_answer_is_written_as_pydantic_writes_it() -> None:
    from sync_server.services.ingest import _Applied, _outcome

    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    applied = _Applied(
        results=[
            (first, "applied", None),
            (second, "rejected", 'Sale says it was made at "S002" — not here'),
            (third, "duplicate", None),
        ],
        last_seq=42,
        verdicts={"applied": 1, "rejected": 1, "duplicate": 1},
        quarantined=0,
    )
    expected = PushResponse(
        results=(
            OpResult(op_id=first, status="applied"),
            OpResult(
                op_id=second, status="rejected", error='Sale says it was made at "S002" — not here'
            ),
            OpResult(op_id=third, status="duplicate"),
        ),
        last_seq=42,
    )
    outcome = _outcome(applied)
    assert outcome.body == expected.model_dump_json().encode()
    assert outcome.response == expected
