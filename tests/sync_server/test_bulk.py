"""Bulk writes: counters added in bulk, rows made before the insert, on both engines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync_server.db.bulk import bulk_add, row_codec
from sync_server.db.engine import Database
from sync_server.db.schema import item_days, item_pairs, orders
from tests.sync_server.conftest import BACKENDS, empty_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_add_inserts_new_keys_and_adds_to_existing_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with empty_database(backend, tmp_path, request) as url:
        db = Database(url)
        try:
            db.migrate()
            with db.write() as conn:
                bulk_add(conn, item_pairs, ("a", "b"), "weight", [("A", "B", 0.1), ("A", "C", 2.5)])
                bulk_add(
                    conn, item_days, ("store_id", "day", "sku"), "baskets", [("S1", 7, "A", 3)]
                )
            with db.write() as conn:
                # Small chunks: the rows go in several statements; a key may come back in one.
                rows = [
                    ("A", "B", 0.2),
                    ("B", "A", 1e-9),
                    ("A", "C", 2.5),
                    ('O\'Neil "x"', "é", 1.0),
                ]
                bulk_add(conn, item_pairs, ("a", "b"), "weight", rows, chunk=2)
                bulk_add(
                    conn, item_days, ("store_id", "day", "sku"), "baskets", [("S1", 7, "A", 2)]
                )
            with db.read() as conn:
                pairs = {(r.a, r.b): r.weight for r in conn.execute(sa.select(item_pairs))}
                days = [tuple(r) for r in conn.execute(sa.select(item_days))]
        finally:
            db.dispose()
    assert pairs == {
        ("A", "B"): 0.1 + 0.2,  # the same float sum Python makes: no precision lost on the way
        ("A", "C"): 5.0,
        ("B", "A"): 1e-9,
        ('O\'Neil "x"', "é"): 1.0,
    }
    assert days == [("S1", 7, "A", 5)]
    assert isinstance(days[0][3], int)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_made_by_the_codec_read_back_as_a_core_insert_writes_them(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    order_id = uuid.uuid4()
    created = datetime(2026, 11, 23, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    values = {
        "order_id": order_id,
        "channel": "store",
        "store_id": "S001",
        "till_id": "S001-T1",
        "customer_id": None,
        "profile_id": uuid.uuid4(),
        "receipt_number": "S001-T1-1",
        "created_at": created,
        "currency": "EUR",
        "total_minor": 1299,
        "tax_minor": 207,
        "payload": "{}",
        "ingested_at": datetime(2026, 11, 23, 9, 31, tzinfo=UTC),
    }
    with empty_database(backend, tmp_path, request) as url:
        db = Database(url)
        try:
            db.migrate()
            with db.write() as conn:
                codec = row_codec(orders, conn.dialect)
                codec.insert(conn, [codec.row(tuple(values[n] for n in codec.names))])
            with db.read() as conn:
                stored = conn.execute(sa.select(orders)).one()._asdict()
        finally:
            db.dispose()
    assert stored == {**values, "created_at": created.astimezone(UTC)}
