"""Recommendations at HQ: rebuild time and write-lock hold, incremental lags.

``recs_rebuild_s``: a full rebuild (``omnitill admin rebuild-recs``, the library call) over
1,000,000 orders with about 5,000,000 lines (``--full``; 200,000 orders by default, reported
as ``recs_rebuild_200k_s``). The orders are synthetic but shaped like a supermarket's: 5,000
products in 20 categories, a Zipf-popular *anchor* per basket, its complement group (three
products) joining with probability 0.5 each, a dozen staples (milk, bread) in most baskets and
a little noise; a third of the orders belong to one of 100,000 customers, across 10 stores,
over the last 365 days. Orders, lines, products and stores are loaded with the driver's
``executemany`` after the server's migrations; only the rebuild is timed (reading every order
and line, counting, every list scored, rules applied, counts staged and swapped in, the changed
lists put on the feed).

``recs_rebuild_lock_s``: the longest the rebuild held the database's write lock in one
transaction (SQLite: the time a till's push could have had to wait for it).

``recs_rebuild_s_postgres`` (``--full`` only): the same rebuild over the same orders on a
throwaway PostgreSQL cluster from the machine's binaries (``tests.support.postgres``); skipped
with a log line where there are none.

``recs_incremental_lag_s``: then a real server runs over the SQLite database (its own process,
the default ``recs_worker_interval_s``); one till pushes a sale of a product with its partner,
and a till of another store pulls the feed until that product's also-bought list arrives
changed. The figure is the wall time from the push's answer to that pull.

``recs_lists_lag_s``: the same till then pushes a burst of 30 sales of a product that rarely
sells, and a second till of the same store pulls until the store's trending list arrives with
it (default ``recs_lists_interval_s``).
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.bench_ingest import bulk_insert, driver_value, hq_server
from shared.sale import Sale, check_totals
from sync_server.db.engine import Database
from sync_server.services import recs
from sync_server.services.tills import enroll_till

log = logging.getLogger(__name__)

PRODUCTS = 5000
CATEGORIES = 20
STORES = 10
CUSTOMERS = 100_000
GROUP = 3
STAPLES = 12


def _sku(i: int) -> str:
    return f"P{i:06d}"


def load(db: Database, orders: int, *, seed: int = 1) -> int:
    """Synthetic orders with co-purchase structure; returns the number of lines."""
    rng = np.random.default_rng(seed)
    sqlite = db.is_sqlite
    now = datetime.now(UTC)
    bulk_insert(
        db,
        "stores",
        ["store_id", "data", "updated_at"],
        [
            (f"S{i:03d}", json.dumps({"store_id": f"S{i:03d}"}), driver_value(now, sqlite))
            for i in range(1, STORES + 1)
        ],
    )
    bulk_insert(
        db,
        "products",
        ["sku", "category", "data", "updated_at"],
        [
            (
                _sku(i),
                f"Category {i % CATEGORIES}",
                json.dumps({"name": f"Product {i}"}),
                driver_value(now, sqlite),
            )
            for i in range(PRODUCTS)
        ],
    )
    popularity = 1.0 / np.arange(1, PRODUCTS + 1) ** 0.9
    popularity[:STAPLES] = 0.0  # staples join baskets on their own, below
    popularity /= popularity.sum()
    anchors = rng.choice(PRODUCTS, size=orders, p=popularity)
    joins = rng.random((orders, GROUP)) < 0.5
    staples = rng.random((orders, STAPLES)) < 0.18
    noise = rng.integers(STAPLES, PRODUCTS, size=(orders, 2))
    noisy = rng.random((orders, 2)) < 0.4
    days = rng.random(orders) * 365.0
    store = rng.integers(1, STORES + 1, size=orders)
    customer = np.where(rng.random(orders) < 1 / 3, rng.integers(0, CUSTOMERS, size=orders), -1)
    customers = [uuid.UUID(int=random.Random(seed + c).getrandbits(128)) for c in range(CUSTOMERS)]
    order_rows: list[tuple[Any, ...]] = []
    line_rows: list[tuple[Any, ...]] = []
    lines = 0
    for o in range(orders):
        anchor = int(anchors[o])
        group_start = anchor - anchor % GROUP
        basket = {anchor}
        basket.update(group_start + k for k in range(GROUP) if joins[o, k])
        basket.update(int(s) for s in np.flatnonzero(staples[o]))
        basket.update(int(n) for n, on in zip(noise[o], noisy[o], strict=True) if on)
        order_id = uuid.UUID(int=(seed << 96) + o)
        at = now - timedelta(days=float(days[o]))
        order_rows.append(
            (
                driver_value(order_id, sqlite),
                "store",
                f"S{int(store[o]):03d}",
                driver_value(customers[int(customer[o])], sqlite) if customer[o] >= 0 else None,
                driver_value(at, sqlite),
                "EUR",
                100 * len(basket),
                0,
                driver_value(now, sqlite),
            )
        )
        for n, item in enumerate(sorted(basket)):
            line_rows.append((driver_value(order_id, sqlite), n + 1, _sku(item), 1, 100))
        lines += len(basket)
        if len(line_rows) >= 500_000:
            _flush(db, order_rows, line_rows)
    _flush(db, order_rows, line_rows)
    return lines


def _flush(db: Database, order_rows: list[Any], line_rows: list[Any]) -> None:
    bulk_insert(
        db,
        "orders",
        [
            "order_id",
            "channel",
            "store_id",
            "customer_id",
            "created_at",
            "currency",
            "total_minor",
            "tax_minor",
            "ingested_at",
        ],
        order_rows,
    )
    bulk_insert(
        db, "order_lines", ["order_id", "line_no", "sku", "quantity", "amount_minor"], line_rows
    )
    order_rows.clear()
    line_rows.clear()


def _sale(store: str, till: str, skus: list[str]) -> dict[str, Any]:
    amount, tax = 119, 19
    sale = {
        "sale_id": str(uuid.uuid4()),
        "receipt_number": f"{till}-000001",
        "store_id": store,
        "till_id": till,
        "cashier_id": "C042",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "currency": "EUR",
        "tax_mode": "inclusive",
        "lines": [
            {
                "line_no": i + 1,
                "sku": sku,
                "name": sku,
                "quantity": 1,
                "unit_price_minor": amount,
                "tax_rate": "19",
                "amount_minor": amount,
                "tax_minor": tax,
            }
            for i, sku in enumerate(skus)
        ],
        "subtotal_minor": amount * len(skus),
        "tax_minor": tax * len(skus),
        "total_minor": amount * len(skus),
        "tenders": [{"kind": "card", "amount_minor": amount * len(skus), "reference": "TX1"}],
    }
    check_totals(Sale.model_validate(sale))
    return sale


def _catch_up(till: httpx.Client) -> str | None:
    cursor: str | None = None
    while True:
        page = till.get("/api/v1/sync/pull", params={"cursor": cursor, "limit": 5000}).json()
        cursor = page["cursor"]
        if not page["has_more"]:
            return cursor


def _wait_for_key(till: httpx.Client, cursor: str | None, key: str, sku: str) -> float:
    """Pull until the list ``key`` arrives holding ``sku``; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < 120:
        page = till.get("/api/v1/sync/pull", params={"cursor": cursor}).json()
        cursor = page["cursor"]
        for change in page["changes"]:
            if change["key"] == key and sku in [i["sku"] for i in change["data"]["items"]]:
                return time.monotonic() - start
        if not page["has_more"]:
            time.sleep(0.1)
    raise RuntimeError(f"{key} never arrived with {sku}")


def incremental_lag(db: Database, db_url: str, workdir: Path) -> tuple[float, float]:
    """(also-bought lag, trending lag) through a real server over ``db``."""
    token_a = enroll_till(db, store_id="S001", till_id="S001-T1")
    token_b = enroll_till(db, store_id="S002", till_id="S002-T1")
    token_c = enroll_till(db, store_id="S001", till_id="S001-T2")
    product = _sku(STAPLES + 3)  # a popular anchor...
    partner = _sku(STAPLES + 4)  # ...and a complement from its group
    rare = _sku(PRODUCTS - 7)  # the Zipf tail: a handful of sales a year
    with hq_server(db_url, workdir=workdir) as server:

        def client(token: str) -> httpx.Client:
            return httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )

        till_a, till_b, till_c = client(token_a), client(token_b), client(token_c)
        cursor_b = _catch_up(till_b)  # till B catches up with the feed first
        cursor_c = _catch_up(till_c)
        op = {"op_id": str(uuid.uuid4()), "seq": 1, "type": "sale"}
        op["payload"] = _sale("S001", "S001-T1", [product, partner])
        pushed = till_a.post("/api/v1/sync/push", json={"till_id": "S001-T1", "ops": [op]})
        pushed.raise_for_status()
        lag = _wait_for_key(till_b, cursor_b, f"also_bought:{product}", partner)
        burst = [
            {
                "op_id": str(uuid.uuid4()),
                "seq": 2 + n,
                "type": "sale",
                "payload": _sale("S001", "S001-T1", [rare]),
            }
            for n in range(30)
        ]
        pushed = till_a.post("/api/v1/sync/push", json={"till_id": "S001-T1", "ops": burst})
        pushed.raise_for_status()
        lists_lag = _wait_for_key(till_c, cursor_c, "trending:S001/*", rare)
        for till in (till_a, till_b, till_c):
            till.close()
    return lag, lists_lag


def rebuild_postgres(orders: int) -> dict[str, float]:
    """The rebuild over the same synthetic orders on a throwaway PostgreSQL cluster."""
    from contextlib import ExitStack

    from tests.support.postgres import PostgresUnavailable, create_database, temporary_cluster

    with ExitStack() as stack:
        try:
            admin_url = stack.enter_context(temporary_cluster())
        except PostgresUnavailable as exc:
            log.warning("no PostgreSQL rebuild figure: %s", exc)
            return {}
        db = Database(create_database(admin_url, "recs"))
        try:
            db.migrate()
            started = time.perf_counter()
            load(db, orders)
            log.info("postgres: loaded %d orders in %.1f s", orders, time.perf_counter() - started)
            with db.engine.connect() as conn:  # fresh statistics, as autovacuum would give
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
            started = time.perf_counter()
            report = recs.rebuild(db, settle=timedelta(0))
            seconds = time.perf_counter() - started
            log.info("postgres rebuild: %s", report.summary())
        finally:
            db.dispose()
    return {"recs_rebuild_s_postgres": round(seconds, 2)}


def run(full: bool = False) -> dict[str, float]:
    orders = 1_000_000 if full else 200_000
    with tempfile.TemporaryDirectory(prefix="bench-recs-") as tmp:
        workdir = Path(tmp)
        db_url = f"sqlite:///{(workdir / 'hq.db').as_posix()}"
        db = Database(db_url)
        db.migrate()
        started = time.perf_counter()
        lines = load(db, orders)
        log.info(
            "loaded %d orders, %d lines in %.1f s", orders, lines, time.perf_counter() - started
        )
        started = time.perf_counter()
        report = recs.rebuild(db, settle=timedelta(0))
        rebuild_s = time.perf_counter() - started
        log.info("rebuild: %s", report.summary())
        lag, lists_lag = incremental_lag(db, db_url, workdir)
        db.dispose()
    figures = {
        "recs_incremental_lag_s": round(lag, 2),
        "recs_lists_lag_s": round(lists_lag, 2),
        "recs_rebuild_lock_s": round(report.longest_write_s, 2),
    }
    key = "recs_rebuild_s" if full else "recs_rebuild_200k_s"
    figures[key] = round(rebuild_s, 2)
    if full:
        figures.update(rebuild_postgres(orders))
    return figures
