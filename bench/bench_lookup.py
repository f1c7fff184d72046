"""How fast a till finds a customer at HQ by email: ``lookup_p99_ms``.

HQ's customer tables are loaded directly (SQLAlchemy's engine, the driver's ``executemany``,
after the server's own migrations) with a chain of 200,000 customers: a profile each, an email
and a loyalty number, first and last name as last-writer-wins fields, an email consent, a home
store among ten, 20,000 products and 200,000 past orders of three lines spread over the
customers, so building a card reads real purchase history.

The real server runs as its own process; one till of store S001 looks up random existing
customers by email (``GET /api/v1/customers/lookup?identifier=email:...``), one request after
the other over one keep-alive connection: 200 to warm up, then 2,000 measured. Each answer must
be the right customer's card. Loaded directly, no card is on the change feed at the start, so
most lookups build the card they answer. The server's background workers run alongside: the
recommendations worker catches up on the 200,000 loaded orders (as after an import), and the
card worker rebuilds the cards of the customers whose personal lists it changes.
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

from bench.bench_ingest import bulk_insert, driver_value, hq_server, percentile, profiled
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.hlc import HLCTimestamp
from shared.identifiers import normalize_email
from sync_server.db.engine import Database
from sync_server.services.tills import enroll_till

log = logging.getLogger(__name__)

CUSTOMERS = 200_000
PRODUCTS = 20_000
ORDERS = 200_000
LINES_PER_ORDER = 3
STORES = [f"S{n:03d}" for n in range(1, 11)]
STORE = "S001"
WARMUP = 200
REQUESTS = 2_000
FIRST = ["Maria", "Jonas", "Lea", "Ben", "Emma", "Paul", "Mia", "Finn", "Anna", "Elias"]
LAST = ["Schmidt", "Mueller", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch"]


def load_customers(db: Database, seed: int = 7) -> list[tuple[uuid.UUID, str]]:
    """Load the chain; return every customer's id and email."""
    rng = random.Random(seed)
    now = datetime.now(UTC)

    def v(value: Any) -> Any:
        return driver_value(value, db.is_sqlite)

    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(CUSTOMERS)]
    keys = [v(c) for c in ids]
    created_at = [now - timedelta(days=rng.randrange(1, 1500)) for _ in range(CUSTOMERS)]
    created = [v(t) for t in created_at]
    names = [(rng.choice(FIRST), rng.choice(LAST)) for _ in range(CUSTOMERS)]
    emails = [f"{first}.{last}{n}@example.com".lower() for n, (first, last) in enumerate(names)]
    if any(normalize_email(e) != e for e in emails[:100]):
        raise RuntimeError("benchmark emails must be stored normalized")
    homes = [rng.choice(STORES) for _ in range(CUSTOMERS)]
    bulk_insert(
        db,
        "profiles",
        ["profile_id", "customer_id", "source", "home_store", "attributes", "created_at"],
        ((k, k, "import", homes[n], "{}", created[n]) for n, k in enumerate(keys)),
    )
    bulk_insert(
        db,
        "identifiers",
        ["kind", "value", "profile_id", "created_at"],
        (
            row
            for n, k in enumerate(keys)
            for row in (
                ("email", emails[n], k, created[n]),
                ("loyalty", make_loyalty_number(DEFAULT_LOYALTY_FORMAT, n), k, created[n]),
            )
        ),
    )
    stamps = [HLCTimestamp(int(t.timestamp() * 1000), 0, "HQ").encode() for t in created_at[:1000]]
    bulk_insert(
        db,
        "customer_fields",
        ["profile_id", "field", "value", "hlc", "writer"],
        (
            (k, field, value, stamps[n % len(stamps)], "HQ")
            for n, k in enumerate(keys)
            for field, value in (("first_name", names[n][0]), ("last_name", names[n][1]))
        ),
    )
    bulk_insert(
        db,
        "consent_events",
        ["profile_id", "channel", "granted", "at", "source"],
        ((k, "email", rng.random() < 0.6, created[n], "import") for n, k in enumerate(keys)),
    )
    bulk_insert(db, "customer_stores", ["customer_id", "store_id"], zip(keys, homes, strict=True))
    stamp = v(now)
    bulk_insert(
        db,
        "products",
        ["sku", "category", "data", "updated_at"],
        (
            (
                f"SKU-{n:05d}",
                "Grocery",
                json.dumps({"sku": f"SKU-{n:05d}", "name": f"Article {n}", "price_minor": 199}),
                stamp,
            )
            for n in range(PRODUCTS)
        ),
    )
    orders: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    for _ in range(ORDERS):
        order = v(uuid.UUID(int=rng.getrandbits(128), version=4))
        customer = rng.randrange(CUSTOMERS)
        amounts = [rng.randrange(99, 4999) for _ in range(LINES_PER_ORDER)]
        at = v(now - timedelta(minutes=rng.randrange(365 * 24 * 60)))
        home = homes[customer]
        key = keys[customer]
        receipt = f"R{rng.getrandbits(40)}"
        orders.append(
            (order, "store", home, f"{home}-T1", key, key, receipt, at, "EUR", sum(amounts), at)
        )
        lines.extend(
            (order, i + 1, f"SKU-{rng.randrange(PRODUCTS):05d}", 1, amount)
            for i, amount in enumerate(amounts)
        )
    bulk_insert(
        db,
        "orders",
        [
            "order_id",
            "channel",
            "store_id",
            "till_id",
            "customer_id",
            "profile_id",
            "receipt_number",
            "created_at",
            "currency",
            "total_minor",
            "ingested_at",
        ],
        orders,
    )
    bulk_insert(
        db, "order_lines", ["order_id", "line_no", "sku", "quantity", "amount_minor"], lines
    )
    return list(zip(ids, emails, strict=True))


def lookups(base_url: str, token: str, sample: list[tuple[uuid.UUID, str]]) -> list[float]:
    """Look each customer up in turn; return the latencies in seconds."""
    latencies = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for customer, email in sample:
            start = time.perf_counter()
            response = client.get(
                "/api/v1/customers/lookup", params={"identifier": f"email:{email}"}
            )
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"lookup answered {response.status_code}: {response.text}")
            found = response.json()["customer_id"]
            if found != str(customer):
                raise RuntimeError(f"lookup of {email} found {found}, not {customer}")
    return latencies


def run(*, full: bool) -> dict[str, float]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="omnitill-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'hq.db'}"
        db = Database(url)
        try:
            db.migrate()
            token = enroll_till(db, store_id=STORE, till_id=f"{STORE}-T1")
            started = time.perf_counter()
            customers = load_customers(db)
            log.info("loaded %d customers in %.1f s", len(customers), time.perf_counter() - started)
        finally:
            db.dispose()
        sample = random.Random(1).sample(customers, WARMUP + REQUESTS)
        # The 200,000 orders above were bulk-loaded, not sold. A long interval keeps the
        # recommendations worker from starting new rounds once it has caught up; catching up on
        # them, in bursts of at most recs_worker_max_share of the time, overlaps the lookups.
        quiet_recs = {"OMNITILL_RECS_WORKER_INTERVAL_S": "3600"}
        with hq_server(url, workdir=work, extra_env=quiet_recs) as server:
            lookups(server.base_url, token, sample[:WARMUP])
            with profiled(server, "lookup"):
                latencies = lookups(server.base_url, token, sample[WARMUP:])
    p99 = percentile(latencies, 0.99) * 1000
    log.info(
        "%d lookups: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
        len(latencies),
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.9) * 1000,
        p99,
        max(latencies) * 1000,
    )
    return {"lookup_p99_ms": round(p99, 2)}
