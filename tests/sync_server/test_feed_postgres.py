"""The change feed's cursor on PostgreSQL never skips a row that commits late.

On PostgreSQL two transactions write the feed at once: one takes a lower position and commits
after another that took a higher one. A puller that reads in between sees only the higher row;
if its cursor were simply the highest id seen, the lower row would be behind the cursor when it
commits, and that till would never receive it. These tests interleave real transactions around a
pull through the real server, and show that a naive ``id > cursor`` feed fails the same test.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sync_server.db.engine import Database
from sync_server.db.schema import changes
from sync_server.main import create_app
from sync_server.services import feed
from tests.support.server import Hq, hq_settings, running_server, wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_hq(pg_url: str) -> Iterator[Hq]:
    db = Database(pg_url)
    db.migrate()
    with running_server(create_app(hq_settings(pg_url), db=db)) as base_url:
        hq = Hq(base_url=base_url, db=db)
        try:
            yield hq
        finally:
            hq.close()
    db.dispose()


def product(conn: Any, key: str) -> None:
    feed.record_change(conn, entity="product", key=key, data={"sku": key, "name": key})


def naive_pull(db: Database, cursor: int) -> tuple[list[str], int]:
    """A feed that pages by ``id > cursor`` and moves its cursor to the highest id seen."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(changes.c.id, changes.c.key)
            .where(changes.c.id > cursor)
            .order_by(changes.c.id)
        ).all()
    return [r.key for r in rows], max([cursor, *(r.id for r in rows)])


def position(conn: Any, key: str) -> tuple[int, int]:
    row = conn.execute(sa.select(changes.c.txid, changes.c.id).where(changes.c.key == key)).one()
    return int(row.txid), int(row.id)


def test_a_row_that_commits_after_a_higher_one_still_reaches_a_puller_in_between(
    pg_hq: Hq,
) -> None:
    db = pg_hq.db
    till = pg_hq.enroll()
    with db.write() as conn:
        product(conn, "base")
    seen, cursor = till.pull_all()
    assert [c["key"] for c in seen] == ["base"]
    _, naive_cursor = naive_pull(db, 0)

    slow = db.engine.connect()
    slow_tx = slow.begin()
    try:
        product(slow, "late")  # takes the lower position, commits last
        with db.write() as fast:
            product(fast, "early")
        late_pos = position(slow, "late")
        with db.read() as conn:
            early_pos = position(conn, "early")
        assert late_pos < early_pos  # really the interleaving this test is about

        between, cursor = till.pull_all(cursor)
        naive_between, naive_cursor = naive_pull(db, naive_cursor)

        slow_tx.commit()
    finally:
        if slow_tx.is_active:
            slow_tx.rollback()
        slow.close()
    # A row is held back while any older transaction is open, so allow a moment for that.
    after = wait_for(lambda: till.pull_all(cursor)[0], what="the rows after the late commit")
    naive_after, _ = naive_pull(db, naive_cursor)

    # The real feed: both rows arrive, each once, and nothing is lost while "late" is open.
    received = [c["key"] for c in between + after]
    assert sorted(received) == ["early", "late"], (between, after)
    assert "late" not in [c["key"] for c in between]
    # The naive feed read "early" in between, moved its cursor past "late", and never sees it.
    assert naive_between == ["early"]
    assert naive_after == []


def test_concurrent_writers_and_a_polling_till_lose_nothing(pg_hq: Hq) -> None:
    db = pg_hq.db
    till = pg_hq.enroll()
    writers, per_writer = 4, 25
    errors: list[BaseException] = []

    def write(w: int) -> None:
        rng = random.Random(w)
        try:
            for i in range(per_writer):
                with db.write() as conn:
                    product(conn, f"w{w}-{i}")
                    # Hold the transaction open a little, so commits overtake each other.
                    time.sleep(rng.random() * 0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    expected = {f"w{w}-{i}" for w in range(writers) for i in range(per_writer)}
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    received: list[str] = []
    cursor: str | None = None

    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        page, cursor = till.pull_all(cursor)
        received.extend(c["key"] for c in page)
    for t in threads:
        t.join(timeout=5)

    def complete() -> bool:
        nonlocal cursor
        page, cursor = till.pull_all(cursor)
        received.extend(c["key"] for c in page)
        return set(received) >= expected

    wait_for(complete, what="every written row on the feed")

    assert not errors, errors
    assert len(received) == len(set(received)), "a row was delivered twice"
    assert set(received) == expected
