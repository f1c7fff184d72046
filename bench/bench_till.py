"""The till on a big local cache: scan latency, its overhead over raw SQLite, customer lookups,
catch-up after an outage, and the till process's memory (issue 4).

The cache holds 200k products (one EAN-13 each; 15% with a chain or store price row), 1M
customer cards (an email and a loyalty number each, so 2M identifier rows; up to five recent
purchases per card, as HQ sends them) and 2M recommendation rows (an also-bought list of 10
items for every product). It is written straight into a migrated ``LocalStore`` file with
``executemany`` (the FTS index is filled by the table's own triggers) and kept under
``bench/.work/`` keyed by its sizes, so a second run reuses it; building it is not part of any
figure (the time is logged and noted).

Figures (method notes in ``bench/NOTES.md``):

- ``till_scan_p99_ms``: ``Till.handle_scan`` of a random product's EAN-13 on a basket kept at
  20 lines (the oldest line is voided before each scan, outside the timed region): barcode
  lookup, basket update, totals and suggestions, exactly what the headless till and the screen
  run. p99 over 15,000 scans (50,000 with ``--full``) after a warm-up.
- ``till_scan_ratio_to_raw``: that p99 divided by the p99 of the same scans' SQL run raw. The
  till's store records every statement a scan sends to SQLite (SQL and parameters: a
  ``LocalStore`` subclass appends to a list, nothing else); after the till is closed they are
  replayed with plain ``sqlite3`` ``execute().fetchall()`` on a connection of its own with the
  same page cache size, scan by scan in the same order. Before the till process starts, the
  benchmark reads the cache file once, so the scans and the replay both find it in the OS page
  cache (as a till's file is after a day of selling) and both start with an empty SQLite
  cache. One extra scan under SQLite's trace callback checks that the recorder sees every
  statement. The child also logs the replay of
  the lookups a scan would need with no cache at all (barcode, the 20 basket items' lists, the
  suggestions' rows), for comparison.
- ``till_customer_lookup_p99_ms``: ``CustomerDesk.identify`` of a cached customer's email or
  loyalty number (half each, typed as a cashier would), no HQ (``lookup=None``); as many as
  scans.
- ``till_rss_mb``: peak RSS (``VmHWM``) of the child process that runs the scans and the
  customer lookups on the big cache, sampled before the raw replay opens its own connection.
  The builder never runs in that process.
- A check, logged (not a figure): after the lookups, 5,000 more scans while a ``SyncWorker`` on
  the same store retries an HQ that refuses every connection (a closed loopback port), with the
  p50/p99 of those scans, the worker's cycles and its thread's CPU time.
- ``till_catchup_5000_s``: 5,000 sales completed with ``SaleEngine.complete`` while no HQ is
  configured, then one ``SyncWorker.run_once()`` against ``python -m omnitill server`` in its own
  process: from the start of the push until every op is acknowledged (and the pull that ends
  the cycle). HQ must then hold exactly 5,000 orders.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import pickle
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
ADMIN_TOKEN = "bench-till-admin-token-0123456789abcdef"
STORE_ID = "S001"
TILL_ID = "S001-T1"

#: Sizes the issue names.
PRODUCTS = 200_000
CUSTOMERS = 1_000_000
ALSO_BOUGHT_ITEMS = 10  # 200k lists of 10 = 2M recommendation rows
#: Bump when the generated data changes, so an old cached file is not reused.
DATA_VERSION = 1

BASKET_LINES = 20
SCANS = 15_000
SCANS_FULL = 50_000
#: Long enough for the catalogue and list caches to settle (about 1,300 scans measured).
WARMUP_SCANS = 2000
#: Scans timed again with a sync worker running against an unreachable HQ (a check, logged).
SYNC_SCANS = 5_000
LOOKUPS = 15_000
LOOKUPS_FULL = 50_000
WARMUP_LOOKUPS = 200
CATCHUP_SALES = 5_000
STARTUP_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)

_BRANDS = (
    "Alpenhof", "Backstube", "Sonnhof", "Hochland", "Mosel", "Nordkind", "Kaffeerad",
    "Gartenglück", "Meerblick", "Bergquell", "Stadtmühle", "Feldweg",
)  # fmt: skip
_NOUNS = (
    "Fresh Milk 1 l", "Rye Bread 500 g", "Butter 250 g", "Strawberry Jam 450 g",
    "Coffee Beans 1 kg", "Riesling 0.75 l", "Organic T-Shirt", "Slim Jeans", "Leather Belt",
    "Sneaker Socks 3-Pack", "Muesli 750 g", "Olive Oil 0.5 l", "Pasta 500 g", "Tomato Sauce",
    "Dark Chocolate 100 g", "Green Tea 20 bags", "Shampoo 250 ml", "Wool Scarf",
)  # fmt: skip
_CATEGORIES = (
    "Dairy", "Bakery", "Pantry", "Coffee & Tea", "Wine", "Apparel", "Accessories",
    "Household", "Snacks", "Drinks", "Personal Care", "Frozen",
)  # fmt: skip
_FIRST = ("Maria", "Jonas", "Lea", "Paul", "Emma", "Ben", "Mia", "Finn", "Sofia", "Elias")
_LAST = ("Schmidt", "Müller", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# The big cache


def sku_of(n: int) -> str:
    return f"P{n:06d}"


def ean_of(n: int) -> str:
    from shared.barcodes import make_gtin

    return make_gtin(f"400{n:09d}")


def email_of(n: int) -> str:
    return f"customer{n:07d}@example.com"


def loyalty_of(n: int) -> str:
    from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number

    return make_loyalty_number(DEFAULT_LOYALTY_FORMAT, n)


def cache_path(products: int, customers: int) -> Path:
    return WORK / f"till-cache-v{DATA_VERSION}-p{products}-c{customers}-r{ALSO_BOUGHT_ITEMS}.sqlite"


def store_json() -> str:
    from shared.catalogue import Store

    shop = Store(
        store_id=STORE_ID,
        name="Omnitill Bench Berlin",
        city="Berlin",
        currency="EUR",
        tax_mode="inclusive",
        timezone="Europe/Berlin",
        tills=(TILL_ID,),
    )
    return shop.model_dump_json()


def _chunks(rows: Iterator[tuple[Any, ...]], size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert(conn: sqlite3.Connection, sql: str, rows: Iterator[tuple[Any, ...]]) -> int:
    count = 0
    for chunk in _chunks(rows):
        conn.execute("BEGIN")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
        count += len(chunk)
    return count


def _product_rows(products: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for n in range(products):
        sku = sku_of(n)
        brand = _BRANDS[n % len(_BRANDS)]
        name = f"{brand} {_NOUNS[(n // len(_BRANDS)) % len(_NOUNS)]} {n}"
        category = _CATEGORIES[rng.randrange(len(_CATEGORIES))]
        price = rng.randrange(49, 9999)
        rate = "7" if category in ("Dairy", "Bakery", "Pantry", "Coffee & Tea") else "19"
        gtin14 = ean_of(n).zfill(14)
        data = {
            "sku": sku,
            "name": name,
            "brand": brand,
            "category": category,
            "subcategory": "",
            "gtins": [gtin14],
            "price_minor": price,
            "currency": "EUR",
            "tax_rate": rate,
            "variable_measure": None,
            "item_reference": None,
            "attributes": {},
            "active": True,
        }
        yield (
            sku, name, brand, category, price, "EUR", rate, None, None, gtin14,
            json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        )  # fmt: skip


def _price_rows(products: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=30)).isoformat()
    end = (now + timedelta(days=3650)).isoformat()
    for n in range(products):
        roll = rng.random()
        if roll < 0.10:
            yield (sku_of(n), "*", rng.randrange(49, 9999), None, None)
        elif roll < 0.15:
            yield (sku_of(n), STORE_ID, rng.randrange(49, 9999), start, end)


def _recommendation_rows(products: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for n in range(products):
        partners = rng.sample(range(products), ALSO_BOUGHT_ITEMS + 1)
        score = 1.0
        items: list[dict[str, Any]] = []
        for other in partners:
            if other == n or len(items) == ALSO_BOUGHT_ITEMS:
                continue
            score = round(score * rng.uniform(0.6, 0.95), 4)
            items.append({"sku": sku_of(other), "score": score, "reason": None})
        yield ("also_bought", sku_of(n), json.dumps(items, separators=(",", ":")))


def _customer_rows(ids: list[str], products: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC).replace(microsecond=0)
    updated = now.isoformat().replace("+00:00", "Z")
    for n, customer_id in enumerate(ids):
        first, last = _FIRST[n % len(_FIRST)], _LAST[(n // len(_FIRST)) % len(_LAST)]
        purchases = []
        for _ in range(rng.choice((0, 1, 2, 3, 5))):
            p = rng.randrange(products)
            at = (now - timedelta(days=rng.randrange(1, 200))).isoformat().replace("+00:00", "Z")
            purchases.append({"sku": sku_of(p), "name": "", "at": at, "price_minor": None})
        card = {
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "identifiers": [
                {"kind": "email", "value": email_of(n)},
                {"kind": "loyalty", "value": loyalty_of(n)},
            ],
            "loyalty_points": rng.randrange(0, 5000),
            "consents": {"email": rng.random() < 0.4},
            "recent_purchases": purchases,
            "recently_viewed": [],
            "cart_items": [],
            "recommendations": [],
            "provisional": False,
            "updated_at": updated,
        }
        yield (
            customer_id,
            first,
            last,
            0,
            json.dumps(card, separators=(",", ":"), ensure_ascii=False),
            updated,
        )


def build_cache(path: Path, *, products: int, customers: int, seed: int = 4) -> float:
    """Write the big cache to ``path`` (through a temporary file); returns seconds taken."""
    from edge_agent.store import LocalStore
    from shared.catalogue import Product
    from shared.customer import CustomerCard

    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    LocalStore.open(tmp).close()  # the real schema, migrations and FTS triggers

    rng = random.Random(seed)
    conn = sqlite3.connect(tmp, isolation_level=None)
    # A throwaway file being built: no journal, no fsync, a big cache.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")
    conn.execute(
        "INSERT INTO store_config(key, data) VALUES (?, ?)", (f"store:{STORE_ID}", store_json())
    )
    count = _insert(
        conn,
        "INSERT INTO products(sku, name, brand, category, price_minor, currency, tax_rate, "
        "variable_measure, item_reference, barcodes, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        _product_rows(products, rng),
    )
    log.info("built %d products (with FTS) in %.1f s", count, time.perf_counter() - start)
    _insert(
        conn,
        "INSERT INTO barcodes(gtin, sku) VALUES (?, ?)",
        ((ean_of(n).zfill(14), sku_of(n)) for n in range(products)),
    )
    _insert(
        conn,
        "INSERT INTO prices(sku, store_id, price_minor, valid_from, valid_to) VALUES (?,?,?,?,?)",
        _price_rows(products, rng),
    )
    lists = _insert(
        conn,
        "INSERT INTO recommendations(kind, key, items) VALUES (?, ?, ?)",
        _recommendation_rows(products, rng),
    )
    log.info("built %d also-bought lists in %.1f s", lists, time.perf_counter() - start)
    # Sorted ids: the customers' primary-key index is then written in order.
    ids = sorted(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(customers))
    _insert(
        conn,
        "INSERT INTO customers(customer_id, first_name, last_name, provisional, card, updated_at)"
        " VALUES (?,?,?,?,?,?)",
        _customer_rows(ids, products, rng),
    )
    _insert(
        conn,
        "INSERT INTO customer_identifiers(kind, value, customer_id) VALUES (?, ?, ?)",
        (("email", email_of(n), ids[n]) for n in range(customers)),
    )
    _insert(
        conn,
        "INSERT INTO customer_identifiers(kind, value, customer_id) VALUES (?, ?, ?)",
        (("loyalty", loyalty_of(n), ids[n]) for n in range(customers)),
    )
    log.info("built %d customer cards in %.1f s", customers, time.perf_counter() - start)
    # What we wrote must read back through the till's own models.
    for row in conn.execute("SELECT card FROM customers LIMIT 1"):
        CustomerCard.model_validate_json(row[0])
    for row in conn.execute("SELECT data FROM products LIMIT 1"):
        Product.model_validate_json(row[0])
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    tmp.replace(path)
    elapsed = time.perf_counter() - start
    log.info(
        "till cache %s built in %.1f s (%.0f MB)", path.name, elapsed, path.stat().st_size / 1e6
    )
    return elapsed


def ensure_cache(*, products: int, customers: int) -> tuple[Path, float | None]:
    """The cached file for these sizes, built when missing; and the build time (None: reused)."""
    path = cache_path(products, customers)
    if path.exists():
        log.info("reusing the till cache %s", path)
        return path, None
    return path, build_cache(path, products=products, customers=customers)


# ---------------------------------------------------------------------------------------------
# The till process: scans, their raw SQL, customer lookups, memory


def _quiet_settings_env() -> None:
    """No ``omnitill-till.toml`` or ``OMNITILL_TILL_*`` of the machine may change the till."""
    for key in [k for k in os.environ if k.startswith("OMNITILL_")]:
        del os.environ[key]
    os.environ["OMNITILL_TILL_CONFIG"] = os.devnull


def scan_sequence(count: int, products: int, rng: random.Random) -> list[int]:
    """Random products, none repeated within ``BASKET_LINES + 1`` scans: each scan adds a line
    to a basket holding the previous 20 (never a second unit of a line already there)."""
    out: list[int] = []
    for _ in range(count):
        while True:
            n = rng.randrange(products)
            if n not in out[-BASKET_LINES:]:
                break
        out.append(n)
    return out


def _recording_store_class() -> type[Any]:
    from edge_agent.store import LocalStore

    class RecordingStore(LocalStore):
        """A LocalStore that notes every read it serves (SQL and parameters), for the replay."""

        recorded: list[tuple[str, Any]] | None = None

        def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
            if self.recorded is not None:
                self.recorded.append((sql, params))
            return super().query(sql, params)

        def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
            if self.recorded is not None:
                self.recorded.append((sql, params))
            return super().query_one(sql, params)

    return RecordingStore


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program.

    Linux's ``ru_maxrss`` also counts the peak of the process image before ``exec``: a till
    process started by a benchmark run that had grown to 700 MB reported 700 MB at its first
    line. ``VmHWM`` in ``/proc/self/status`` is the peak of the current image only.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _replay(conn: sqlite3.Connection, statements: Sequence[tuple[str, Any]]) -> float:
    start = time.perf_counter()
    for sql, params in statements:
        conn.execute(sql, params).fetchall()
    return time.perf_counter() - start


def _timed_scans(
    till: Any, store: Any, codes: Sequence[str], warmup: int, spool: IO[bytes]
) -> tuple[list[float], list[float], int]:
    """Scan every code (the basket kept at 20 lines); wall and CPU seconds of the scans after
    the warm-up, and the statements they ran. What each scan asked SQLite goes to ``spool``,
    not to memory: this process's size is the till's."""
    scan_s: list[float] = []
    cpu_s: list[float] = []
    statements = 0
    for i, code in enumerate(codes):
        engine = till.engine
        if len(engine.basket.lines) >= BASKET_LINES:
            engine.void_line(engine.basket.lines[0].line_no)
        recorded: list[tuple[str, Any]] = []
        store.recorded = recorded
        cpu0 = time.thread_time()
        t0 = time.perf_counter()
        event = till.handle_scan(code)
        t1 = time.perf_counter()
        cpu1 = time.thread_time()
        store.recorded = None
        pickle.dump((recorded, _uncached(till, code)), spool, protocol=pickle.HIGHEST_PROTOCOL)
        if event.kind != "item_added" or len(till.engine.basket.lines) != min(i + 1, BASKET_LINES):
            raise RuntimeError(f"scan {i} of {code}: {event.kind}: {event.message}")
        if i >= warmup:
            scan_s.append(t1 - t0)
            cpu_s.append(cpu1 - cpu0)
            statements += len(recorded)
    return scan_s, cpu_s, statements


def _timed_scans_with_sync(till: Any, store: Any, codes: Sequence[str]) -> dict[str, float]:
    """Scan ``codes`` while a ``SyncWorker`` on the same store retries an HQ that refuses every
    connection (a closed loopback port), as a till's does when HQ is down; the worker's thread
    competes with the scans for the interpreter lock. Seconds per scan, its thread's CPU time
    and how many cycles it ran."""
    from edge_agent.hq_client import HQClient
    from edge_agent.sync_worker import SyncStatus, SyncWorker

    statuses: list[SyncStatus] = []
    with HQClient(f"http://127.0.0.1:{free_port()}", "x" * 40, till_id=TILL_ID) as unreachable:
        worker = SyncWorker(store, unreachable, on_status=statuses.append)
        worker.start()
        thread = next(t for t in threading.enumerate() if t.name == "omnitill-sync")
        assert thread.ident is not None
        cpu_clock = time.pthread_getcpuclockid(thread.ident)
        cpu_before = time.clock_gettime(cpu_clock)
        scan_s: list[float] = []
        for i, code in enumerate(codes):
            engine = till.engine
            if len(engine.basket.lines) >= BASKET_LINES:
                engine.void_line(engine.basket.lines[0].line_no)
            t0 = time.perf_counter()
            event = till.handle_scan(code)
            scan_s.append(time.perf_counter() - t0)
            if event.kind != "item_added":
                raise RuntimeError(f"scan {i} of {code} with sync: {event.kind}: {event.message}")
        cpu_s = time.clock_gettime(cpu_clock) - cpu_before
        worker.stop()
    if not statuses or statuses[-1].online:
        raise RuntimeError(f"the sync worker should have failed to reach HQ: {statuses[-1:]}")
    return {
        "sync_scans": len(scan_s),
        "sync_scan_p50_ms": percentile(scan_s, 0.50) * 1e3,
        "sync_scan_p99_ms": percentile(scan_s, 0.99) * 1e3,
        "sync_thread_cpu_ms": cpu_s * 1e3,
        "sync_cycles": len(statuses),
    }


def _uncached(till: Any, code: str) -> list[tuple[str, Any]]:
    """The primary-key lookups a scan would need with no cache at all: the barcode (with its
    product and price rows), every basket item's also-bought list and each suggestion's product
    and prices. Not a figure: the notes compare the scan with it too."""
    from edge_agent.catalogue import _BY_GTIN, _BY_SKU, _LIST

    statements: list[tuple[str, Any]] = [(_BY_GTIN, (STORE_ID, code.zfill(14)))]
    statements += [(_LIST, ("also_bought", sku)) for sku in till.engine.basket.scan_order]
    statements += [(_BY_SKU, (STORE_ID, s.sku)) for s in till.suggestions]
    return statements


def _check_recorder(till: Any, store: Any, code: str) -> None:
    """The recorder must see everything SQLite runs: one more scan, checked with SQLite's trace."""
    traced: list[str] = []
    till.engine.void_line(till.engine.basket.lines[0].line_no)
    connections = (store.reader, store.db.conn)
    for conn in connections:
        conn.set_trace_callback(traced.append)
    recorded: list[tuple[str, Any]] = []
    store.recorded = recorded
    till.handle_scan(code)
    store.recorded = None
    for conn in connections:
        conn.set_trace_callback(None)
    if len(traced) != len(recorded):
        raise RuntimeError(f"a scan ran {len(traced)} statements, {len(recorded)} recorded")


def _timed_lookups(till: Any, count: int, customers: int, rng: random.Random) -> list[float]:
    """Identify cached customers by email (as typed, capitalised) or loyalty card, no HQ."""
    lookup_s: list[float] = []
    sources: set[str] = set()
    for i in range(WARMUP_LOOKUPS + count):
        n = rng.randrange(customers)
        text = email_of(n).capitalize() if i % 2 else loyalty_of(n)
        t0 = time.perf_counter()
        found = till.customers.identify(text)
        t1 = time.perf_counter()
        sources.add(found.source)
        if i >= WARMUP_LOOKUPS:
            lookup_s.append(t1 - t0)
    if sources != {"cache"}:
        raise RuntimeError(f"customer lookups were not all answered by the cache: {sources}")
    return lookup_s


def _raw_replay(path: Path, spool: IO[bytes], scans: int, *, uncached: bool) -> list[float]:
    """Seconds per scan to run the recorded statements (or the uncached lookups) with plain
    sqlite3, scan by scan in the same order, on a connection of its own."""
    spool.seek(0)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("PRAGMA cache_size=-65536")  # the page cache the till's connections have
        return [_replay(raw, pickle.load(spool)[uncached]) for _ in range(scans)]
    finally:
        raw.close()


def till_process(
    path: Path, *, products: int, customers: int, scans: int, lookups: int
) -> dict[str, Any]:
    """Everything measured inside the till process (see the module docstring)."""
    _quiet_settings_env()
    from edge_agent.config import TillSettings
    from edge_agent.till import Till

    rss_start_mb = _peak_rss_mb()
    rng = random.Random(7)
    warmup = BASKET_LINES + WARMUP_SCANS
    sequence = scan_sequence(warmup + scans + 1 + SYNC_SCANS, products, rng)
    codes = [ean_of(n) for n in sequence]
    sync_codes = codes[warmup + scans + 1 :]
    codes = codes[: warmup + scans + 1]
    settings = TillSettings(db_path=path, store_id=STORE_ID, till_id=TILL_ID)
    store = _recording_store_class().open(path)
    till = Till(settings=settings, store=store, client=None)
    # What Till.start() does for memory before the first scan. Its sync and print threads are
    # not started: this measures the scan path itself (see NOTES.md, "Till").
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryFile() as spool:
        scan_s, scan_cpu_s, statements = _timed_scans(till, store, codes[:-1], warmup, spool)
        suggestions = len(till.suggestions)
        rss_scans_mb = _peak_rss_mb()
        _check_recorder(till, store, codes[-1])
        lookup_s = _timed_lookups(till, lookups, customers, rng)
        # The till's peak memory, before anything else opens the file in this process.
        rss_mb = _peak_rss_mb()
        with_sync = _timed_scans_with_sync(till, store, sync_codes)
        till.close()
        store.close()
        raw_s = _raw_replay(path, spool, len(codes) - 1, uncached=False)[warmup:]
        uncached_s = _raw_replay(path, spool, len(codes) - 1, uncached=True)[warmup:]
    return {
        "scans": len(scan_s),
        "scan_p50_ms": percentile(scan_s, 0.50) * 1e3,
        "scan_p99_ms": percentile(scan_s, 0.99) * 1e3,
        "scan_cpu_p50_ms": percentile(scan_cpu_s, 0.50) * 1e3,
        "scan_cpu_p99_ms": percentile(scan_cpu_s, 0.99) * 1e3,
        "raw_p50_ms": percentile(raw_s, 0.50) * 1e3,
        "raw_p99_ms": percentile(raw_s, 0.99) * 1e3,
        "statements_per_scan": statements / len(scan_s),
        "raw_uncached_p50_ms": percentile(uncached_s, 0.50) * 1e3,
        "raw_uncached_p99_ms": percentile(uncached_s, 0.99) * 1e3,
        "suggestions": suggestions,
        "lookups": len(lookup_s),
        "lookup_p50_ms": percentile(lookup_s, 0.50) * 1e3,
        "lookup_p99_ms": percentile(lookup_s, 0.99) * 1e3,
        "rss_mb": rss_mb,
        "rss_start_mb": rss_start_mb,
        "rss_after_scans_mb": rss_scans_mb,
        **with_sync,
    }


def run_till_process(path: Path, **kwargs: int) -> dict[str, Any]:
    """:func:`till_process` in a fresh interpreter, so its memory is a till's alone."""
    args = json.dumps({"path": str(path), **kwargs})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_till", "--till-process", args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the till process failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# ---------------------------------------------------------------------------------------------
# Catch-up: 5,000 offline sales to a real HQ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def hq_server(db_url: str, workdir: Path) -> Iterator[str]:
    """``python -m omnitill server --db URL --port P`` in its own process; yields its URL."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITILL_")}
    env["OMNITILL_ADMIN_TOKEN"] = ADMIN_TOKEN
    env["OMNITILL_CONFIG"] = os.devnull  # never read an omnitill-server.toml lying around
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "omnitill", "--log-level", "WARNING", "server"]
    command += ["--db", db_url, "--port", str(port)]
    log_path = workdir / "server.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"omnitill server exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"omnitill server not ready after {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)


def offline_sales(store: Any, *, count: int, products: int, rng: random.Random) -> None:
    """``count`` sales of 1 to 6 items, paid in cash or by card, completed with no HQ."""
    from edge_agent.catalogue import Catalogue
    from edge_agent.sale_engine import SaleEngine
    from shared.catalogue import Store

    engine = SaleEngine(
        store=store,
        catalogue=Catalogue(store, store_id=STORE_ID),
        shop=Store.model_validate_json(store_json()),
        till_id=TILL_ID,
        cashier_id="C042",
    )
    for i in range(count):
        for n in rng.sample(range(products), rng.randint(1, 6)):
            engine.add_sku(sku_of(n), rng.choice((1, 1, 1, 2, 3)))
        due = engine.totals().due_minor
        if i % 3:
            engine.add_tender_cash(due + rng.randrange(0, 2000))
        else:
            engine.add_tender_card(due, f"TERM-{i:06d}")
        engine.complete()


def catchup(workdir: Path, *, sales: int) -> dict[str, float]:
    import sqlalchemy as sa

    from edge_agent import outbox
    from edge_agent.hq_client import HQClient
    from edge_agent.store import LocalStore
    from edge_agent.sync_worker import SyncWorker
    from sync_server.db.engine import Database
    from sync_server.db.schema import orders
    from sync_server.services.tills import enroll_till

    db_url = f"sqlite:///{workdir / 'hq.sqlite3'}"
    db = Database(db_url)
    try:
        db.migrate()
        token = enroll_till(db, store_id=STORE_ID, till_id=TILL_ID)
    finally:
        db.dispose()

    till_file = workdir / "till.sqlite"
    build_cache(till_file, products=1_000, customers=0)
    store = LocalStore.open(till_file)
    try:
        start = time.perf_counter()
        # Making the sales is not measured: no fsync per sale while they are written, and no
        # log line per sale.
        store.db.execute("PRAGMA synchronous=OFF")
        engine_log = logging.getLogger("edge_agent.sale_engine")
        level = engine_log.level
        engine_log.setLevel(logging.WARNING)
        try:
            offline_sales(store, count=sales, products=1_000, rng=random.Random(5))
        finally:
            engine_log.setLevel(level)
        store.db.execute("PRAGMA synchronous=FULL")
        made_s = time.perf_counter() - start
        pending = outbox.pending_count(store)
        if pending != sales:
            raise RuntimeError(f"{pending} ops pending after {sales} offline sales")
        log.info("%d offline sales made in %.1f s", sales, made_s)
        # One line per request would bury the run's own log lines.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        with (
            hq_server(db_url, workdir) as url,
            HQClient(url, token, till_id=TILL_ID, timeout=60) as client,
        ):
            worker = SyncWorker(store, client)
            start = time.perf_counter()
            status = worker.run_once()
            elapsed = time.perf_counter() - start
        if status.pending_ops or status.dead_letters or status.last_error:
            raise RuntimeError(f"catch-up incomplete: {status}")
    finally:
        store.close()
    db = Database(db_url)
    try:
        with db.read() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one()
    finally:
        db.dispose()
    if stored != sales:
        raise RuntimeError(f"HQ holds {stored} orders after the catch-up, not {sales}")
    return {"till_catchup_5000_s": round(elapsed, 3)}


# ---------------------------------------------------------------------------------------------
# Entry points


def warm_os_cache(path: Path) -> float:
    """Read the cache file once so the operating system holds it in memory; seconds taken.

    A till that has been selling all day has its file in the OS page cache. Without this, the
    scans (which run first) paid for reading a cold file from disk and the raw replay after
    them found it warm: the ratio compared disk reads with memory reads. Both now start with
    the file in the OS cache and their own SQLite page cache empty.
    """
    start = time.perf_counter()
    with path.open("rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return time.perf_counter() - start


def run(*, full: bool) -> dict[str, float]:
    path, built_s = ensure_cache(products=PRODUCTS, customers=CUSTOMERS)
    if built_s is not None:
        log.info("building the till cache took %.0f s (not part of any figure)", built_s)
    log.info("read the till cache into the OS page cache in %.1f s", warm_os_cache(path))
    child = run_till_process(
        path,
        products=PRODUCTS,
        customers=CUSTOMERS,
        scans=SCANS_FULL if full else SCANS,
        lookups=LOOKUPS_FULL if full else LOOKUPS,
    )
    log.info("till process: %s", json.dumps(child, sort_keys=True))
    log.info(
        "scan p99 %.3f ms; with a sync worker retrying an unreachable HQ %.3f ms (%d cycles, "
        "%.1f ms of its thread's CPU over %d scans)",
        child["scan_p99_ms"],
        child["sync_scan_p99_ms"],
        child["sync_cycles"],
        child["sync_thread_cpu_ms"],
        child["sync_scans"],
    )
    with tempfile.TemporaryDirectory(prefix="bench-till-") as tmp:
        figures = catchup(Path(tmp), sales=CATCHUP_SALES)
    figures.update(
        {
            "till_scan_p99_ms": round(child["scan_p99_ms"], 3),
            "till_scan_ratio_to_raw": round(child["scan_p99_ms"] / child["raw_p99_ms"], 2),
            "till_customer_lookup_p99_ms": round(child["lookup_p99_ms"], 3),
            "till_rss_mb": round(child["rss_mb"], 1),
        }
    )
    return figures


def _main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--till-process":
        args = json.loads(argv[1])
        path = Path(args.pop("path"))
        result = till_process(path, **args)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    sys.stderr.write("usage: python -m bench till (this module is the till process's entry)\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
