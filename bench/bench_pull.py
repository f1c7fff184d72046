"""How long a new till takes to pull everything HQ sends down: ``pull_initial_s``.

HQ's change feed is loaded directly (the importer and the recommender do not write it yet) with
what a mid-sized chain sends one store's new till: 200,000 products, 200,000 customer cards
scoped to that store, and 1,000,000 recommendation rows as 200,000 "also bought" lists of five
items each (change rows ``recommendation`` / ``also_bought:<sku>``, the shape the recommender
will publish). The rows go in with the driver's ``executemany`` through the server's own engine
settings, after the server's own migrations.

Then the real server runs as its own process and a stand-in for the till pulls the whole feed
the way a till does: ``GET /api/v1/sync/pull`` with ``limit=5000`` and gzip, each page applied
to a local SQLite file (WAL, ``synchronous=FULL`` as on a till) in one transaction together
with the page's cursor: upserts keyed by entity and key (customers with their identifiers
indexed for the local lookup), deletes for tombstones. The figure is the wall time from the
first request to the last page committed; at the end every row must be on the till.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.bench_ingest import bulk_insert, driver_value, hq_server, profiled
from shared.catalogue import Product
from shared.customer import CustomerCard
from sync_server.db.engine import Database
from sync_server.services.tills import enroll_till

log = logging.getLogger(__name__)

STORE = "S001"
TILL = "S001-T1"
PAGE = 5000
CATEGORIES = ["Dairy", "Bakery", "Produce", "Beverages", "Household", "Snacks", "Frozen"]
FIRST = ["Maria", "Jonas", "Lea", "Ben", "Emma", "Paul", "Mia", "Finn", "Anna", "Elias"]
LAST = ["Schmidt", "Müller", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch"]


@dataclass(frozen=True)
class Sizes:
    products: int
    customers: int
    lists: int
    items_per_list: int = 5

    @property
    def rows(self) -> int:
        return self.products + self.customers + self.lists


FULL = Sizes(products=200_000, customers=200_000, lists=200_000)


# ---------------------------------------------------------------------------------------------
# HQ's feed, loaded directly


def _gtin(n: int) -> str:
    body = f"400{n:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _product(n: int, rng: random.Random) -> dict[str, Any]:
    category = CATEGORIES[n % len(CATEGORIES)]
    return {
        "sku": f"SKU-{n:06d}",
        "name": f"{category} article {n} {rng.choice(['500 g', '1 l', '6 pack', '250 ml'])}",
        "brand": f"Brand {n % 400}",
        "category": category,
        "subcategory": f"{category} {n % 12}",
        "gtins": [_gtin(n)],
        "price_minor": rng.randrange(49, 4999),
        "currency": "EUR",
        "tax_rate": rng.choice(["7", "19"]),
        "variable_measure": None,
        "item_reference": None,
        "attributes": {},
        "active": True,
    }


def _card(n: int, rng: random.Random, skus: int, now: datetime) -> tuple[str, dict[str, Any]]:
    customer = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    bought = [
        {
            "sku": f"SKU-{rng.randrange(skus):06d}",
            "name": "Bakery article 17 500 g",
            "at": (now - timedelta(days=rng.randrange(90))).isoformat(),
        }
        for _ in range(3)
    ]
    return customer, {
        "customer_id": customer,
        "first_name": first,
        "last_name": last,
        "identifiers": [
            {"kind": "email", "value": f"{first.lower()}.{n}@example.com"},
            {"kind": "loyalty", "value": f"99{n:011d}"},
        ],
        "loyalty_points": rng.randrange(2000),
        "consents": {"email": rng.random() < 0.6},
        "recent_purchases": bought,
        "recently_viewed": [],
        "cart_items": [],
        "recommendations": [f"SKU-{rng.randrange(skus):06d}" for _ in range(5)],
        "provisional": False,
        "updated_at": now.isoformat(),
    }


def _also_bought(n: int, rng: random.Random, skus: int, items: int) -> dict[str, Any]:
    sku = f"SKU-{n % skus:06d}"
    return {
        "kind": "also_bought",
        "key": sku,
        "items": [
            {"sku": f"SKU-{rng.randrange(skus):06d}", "score": round(rng.random(), 4)}
            for _ in range(items)
        ],
    }


def feed_rows(sizes: Sizes, seed: int = 5) -> Iterator[tuple[str, str, str, str]]:
    """(entity, key, scope, data) of every change row, in the order they are written."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for n in range(sizes.products):
        product = _product(n, rng)
        yield "product", product["sku"], "*", json.dumps(product, separators=(",", ":"))
    for n in range(sizes.customers):
        customer, card = _card(n, rng, sizes.products, now)
        yield "customer", customer, STORE, json.dumps(card, separators=(",", ":"))
    for n in range(sizes.lists):
        rec = _also_bought(n, rng, sizes.products, sizes.items_per_list)
        yield "recommendation", f"also_bought:{rec['key']}", "*", json.dumps(rec)


def check_shapes(sizes: Sizes) -> None:
    """The loaded documents are what the server's own models produce and accept."""
    rng = random.Random(0)
    Product.model_validate(_product(1, rng))
    CustomerCard.model_validate(_card(1, rng, sizes.products, datetime.now(UTC))[1])


def load_feed(db: Database, sizes: Sizes) -> None:
    """Write the change rows straight into ``changes`` (txid 0: committed long ago)."""
    check_shapes(sizes)
    stamp = driver_value(datetime.now(UTC), db.is_sqlite)
    bulk_insert(
        db,
        "changes",
        ["txid", "entity", "key", "scope", "action", "data", "created_at"],
        (
            (0, entity, key, scope, "upsert", data, stamp)
            for entity, key, scope, data in feed_rows(sizes)
        ),
    )


# ---------------------------------------------------------------------------------------------
# The till's side

TILL_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (customer_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customer_identifiers (
    kind TEXT NOT NULL, value TEXT NOT NULL, customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS ix_customer_identifiers_customer ON customer_identifiers (customer_id);
CREATE TABLE IF NOT EXISTS recommendations (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS downstream (
    entity TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (entity, key)
);
CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_TABLES = {"product": ("products", "sku"), "recommendation": ("recommendations", "key")}


class TillStore:
    """A minimal stand-in for the till's local store: what a page of the feed must change."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(TILL_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def apply_page(self, changes: list[dict[str, Any]], cursor: str) -> None:
        """Apply one page and store its cursor, in one transaction."""
        upserts: dict[str, list[tuple[str, str]]] = {}
        identifiers: list[tuple[str, str, str]] = []
        deletes: dict[str, list[str]] = {}
        for change in changes:
            entity, key = change["entity"], change["key"]
            if change["action"] == "delete":
                deletes.setdefault(entity, []).append(key)
                continue
            data = change["data"]
            upserts.setdefault(entity, []).append((key, json.dumps(data, separators=(",", ":"))))
            if entity == "customer":
                identifiers.extend((i["kind"], i["value"], key) for i in data["identifiers"])
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for entity, rows in upserts.items():
                if entity == "customer":
                    self._upsert_customers(rows, identifiers)
                elif entity in _TABLES:
                    table, column = _TABLES[entity]
                    conn.executemany(
                        f"INSERT INTO {table} ({column}, data) VALUES (?, ?) "
                        f"ON CONFLICT ({column}) DO UPDATE SET data = excluded.data",
                        rows,
                    )
                else:
                    conn.executemany(
                        "INSERT INTO downstream (entity, key, data) VALUES (?, ?, ?) "
                        "ON CONFLICT (entity, key) DO UPDATE SET data = excluded.data",
                        [(entity, key, data) for key, data in rows],
                    )
            for entity, keys in deletes.items():
                params = [(k,) for k in keys]
                if entity == "customer":
                    conn.executemany(
                        "DELETE FROM customer_identifiers WHERE customer_id = ?", params
                    )
                    conn.executemany("DELETE FROM customers WHERE customer_id = ?", params)
                elif entity in _TABLES:
                    table, column = _TABLES[entity]
                    conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", params)
                else:
                    conn.executemany(
                        "DELETE FROM downstream WHERE entity = ? AND key = ?",
                        [(entity, k) for k in keys],
                    )
            conn.execute(
                "INSERT INTO sync_state (name, value) VALUES ('cursor', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (cursor,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _upsert_customers(
        self, rows: list[tuple[str, str]], identifiers: list[tuple[str, str, str]]
    ) -> None:
        """Cards, and each card's identifiers replaced in the index the till looks up by."""
        conn = self.conn
        conn.executemany(
            "INSERT INTO customers (customer_id, data) VALUES (?, ?) "
            "ON CONFLICT (customer_id) DO UPDATE SET data = excluded.data",
            rows,
        )
        conn.executemany(
            "DELETE FROM customer_identifiers WHERE customer_id = ?", [(k,) for k, _ in rows]
        )
        conn.executemany(
            "INSERT INTO customer_identifiers (kind, value, customer_id) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, value) DO UPDATE SET customer_id = excluded.customer_id",
            identifiers,
        )

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@dataclass
class PullResult:
    seconds: float
    pages: int
    rows: int
    wire_bytes: int


def pull_everything(base_url: str, token: str, store: TillStore) -> PullResult:
    """Pull the feed from the start until ``has_more`` is false, applying every page."""
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    cursor: str | None = None
    pages = rows = wire = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=120.0) as client:
        start = time.perf_counter()
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            response = client.get("/api/v1/sync/pull", params=params)
            if response.status_code != 200:
                raise RuntimeError(f"pull answered {response.status_code}: {response.text[:500]}")
            if response.headers.get("content-encoding") != "gzip":
                raise RuntimeError("the pull was not gzip-compressed")
            wire += response.num_bytes_downloaded
            page = response.json()
            store.apply_page(page["changes"], page["cursor"])
            cursor = page["cursor"]
            pages += 1
            rows += len(page["changes"])
            if not page["has_more"]:
                break
        elapsed = time.perf_counter() - start
    return PullResult(elapsed, pages, rows, wire)


def measure(sizes: Sizes) -> PullResult:
    with tempfile.TemporaryDirectory(prefix="omnitill-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'hq.db'}"
        db = Database(url)
        try:
            db.migrate()
            token = enroll_till(db, store_id=STORE, till_id=TILL)
            started = time.perf_counter()
            load_feed(db, sizes)
            log.info("loaded %d change rows in %.1f s", sizes.rows, time.perf_counter() - started)
        finally:
            db.dispose()
        store = TillStore(work / "till.db")
        try:
            with hq_server(url, workdir=work) as server, profiled(server, "pull"):
                result = pull_everything(server.base_url, token, store)
            counts = {t: store.count(t) for t in ("products", "customers", "recommendations")}
        finally:
            store.close()
    expected = {"products": sizes.products, "customers": sizes.customers}
    expected["recommendations"] = sizes.lists
    if counts != expected or result.rows != sizes.rows:
        raise RuntimeError(f"the till holds {counts} after {result.rows} rows; expected {expected}")
    log.info(
        "pulled %d rows in %d pages, %.1f MB on the wire, in %.1f s (%.0f rows/s)",
        result.rows,
        result.pages,
        result.wire_bytes / 1e6,
        result.seconds,
        result.rows / result.seconds,
    )
    return result


def run(*, full: bool) -> dict[str, float]:
    """Always the full sizes: loading and pulling them takes about a minute."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return {"pull_initial_s": round(measure(FULL).seconds, 2)}
