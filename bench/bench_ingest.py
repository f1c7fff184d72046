"""How many sales a second HQ ingests from many tills at once, on SQLite and on PostgreSQL.

The server runs as its own process (``python -m omnitill server``), the way an operator runs
it, so the load generator here never shares its interpreter lock. Fifty simulated tills each
hold one keep-alive connection and push batches of 100 sales of three to five lines (four on
average), each batch with the till's next gap-free ``seq`` numbers. Every request body is
serialized before the clock starts, so the client's work per request is sending bytes and
counting ``"applied"`` verdicts in the answer.

Three figures per engine:

- ``ingest_tx_per_s_<engine>``: sales acknowledged per second while the 50 tills push back to
  back (a closed loop, at least 20 s, after a warm-up);
- ``ingest_p99_ms_<engine>``: the 99th percentile of a push's latency when the tills together
  offer the target rate of 5,000 sales/s (each till pushes a batch of 100 every second, on a
  schedule; latency counts from the scheduled send time, so a push that had to wait for the one
  before it is charged the wait). At saturation a closed loop's latency is only Little's law
  (50 requests in flight divided by the request rate), so it is logged but not the figure;
- ``ingest_ratio_to_raw_<engine>``: the ingest rate divided by a raw batched insert of the same
  rows (orders, order lines, ops) into a fresh database of the same engine with the same engine
  settings, ``executemany`` in transactions of 100 sales, measured in the same run.

On each engine short runs with one, two (and on SQLite three) server processes pick the
fastest, which gets the full measurement (``ingest_workers_sqlite``, ``ingest_workers_postgres``).

The helpers the other HQ benchmarks share live here too: :func:`hq_server` (the server as a
child process), :func:`profiled` (py-spy on demand), :func:`bulk_insert` (loading data).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shared.ids import new_id
from shared.sale import Sale, check_totals
from sync_server.db.engine import Database
from sync_server.db.schema import ops, order_lines, orders
from sync_server.services.tills import enroll_till

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"

TILLS = 50
TILLS_PER_STORE = 5
BATCH = 100
#: The target rate the latency figure is measured at (issue 3).
TARGET_SALES_PER_S = 5000
#: Products the sales' SKUs are drawn from (order_lines.sku is indexed: random keys).
SKUS = 20_000
WARMUP_BATCHES = 2
RAW_SALES = 20_000
#: Seconds of the closed loop before the measured window (every till has a push in flight).
RAMP_S = 2.0
#: The short runs that pick the PostgreSQL server's worker count.
COMPARE_S = 10.0
#: How long past its schedule the paced run waits for a server that cannot keep up.
PACED_GRACE_S = 5.0
#: Rows per transaction when loading benchmark data.
LOAD_CHUNK = 50_000
STARTUP_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# The HQ server as a child process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """``omnitill server`` running as a child process; its output goes to ``log_path``."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"omnitill server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"omnitill server not ready after {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # uvicorn's workers live in their own processes under a supervisor: signal the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


@contextlib.contextmanager
def hq_server(
    db_url: str, *, workdir: Path, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """``python -m omnitill server --db URL --port P [--workers N]``, ready to serve."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITILL_")}
    env["OMNITILL_ADMIN_TOKEN"] = ADMIN_TOKEN
    env["OMNITILL_CONFIG"] = os.devnull  # never read an omnitill-server.toml lying around
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra_env or {})
    command = [sys.executable, "-m", "omnitill", "--log-level", "WARNING", "server"]
    command += ["--db", db_url, "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def profiled(server: ServerProcess, name: str) -> Iterator[None]:
    """With ``BENCH_PROFILE=DIR`` set, sample the server with py-spy while the block runs.

    Writes collapsed stacks (``DIR/<name>-<pid>.txt``, one line per stack with its sample
    count) for flame graphs or ``grep``; py-spy must be installed (``pip install py-spy``).
    ``BENCH_PROFILE_ARGS`` adds py-spy options (``--gil`` counts only samples holding the GIL).
    """
    out_dir = os.environ.get("BENCH_PROFILE")
    if not out_dir:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"{name}-{server.process.pid}.txt"
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy_bin, "record", "--pid", str(server.process.pid), "--subprocesses"]
    command += ["--nonblocking", "--format", "raw", "--output", str(out)]
    command += os.environ.get("BENCH_PROFILE_ARGS", "").split()  # e.g. --gil, --idle, --rate
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        spy.wait(timeout=60)
        log.info("profile of the server written to %s", out)


# ---------------------------------------------------------------------------------------------
# Sales, serialized ahead of time

_MARK = re.compile(r"@@(\w+)@@")


def _sale_template(lines: int) -> list[str]:
    """A valid sale's JSON, split at the values that differ from sale to sale.

    Even items are literal JSON, odd items the names of the holes (sale_id, receipt, store,
    till, created_at, sku1...).
    """
    line_amounts = [1299, 499, 2450, 899, 1599][:lines]
    sale: dict[str, Any] = {
        "sale_id": "@@sale_id@@",
        "receipt_number": "@@receipt@@",
        "store_id": "@@store@@",
        "till_id": "@@till@@",
        "cashier_id": "C042",
        "created_at": "@@created_at@@",
        "currency": "EUR",
        "tax_mode": "inclusive",
        "lines": [
            {
                "line_no": n + 1,
                "sku": f"@@sku{n + 1}@@",
                "name": f"Benchmark article {n + 1}",
                "barcode": "4006381333931",
                "quantity": 1,
                "unit_price_minor": amount,
                "tax_rate": "19",
                "amount_minor": amount,
                "tax_minor": round(amount * 19 / 119),
            }
            for n, amount in enumerate(line_amounts)
        ],
        "subtotal_minor": sum(line_amounts),
        "tax_minor": sum(round(a * 19 / 119) for a in line_amounts),
        "total_minor": sum(line_amounts),
        "tenders": [{"kind": "card", "amount_minor": sum(line_amounts), "reference": "TX1"}],
    }
    parts = _MARK.split(json.dumps(sale, separators=(",", ":")))
    # Check once, through the real model, that what we will send is a valid sale.
    sample = _fill(parts, {"sale_id": str(uuid.uuid4()), "receipt": "S1-T1-1", "store": "S1"})
    check_totals(Sale.model_validate_json(sample))
    return parts


def _fill(parts: list[str], values: dict[str, str]) -> str:
    defaults = {"till": "S1-T1", "created_at": "2026-11-23T09:30:00Z"}
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        else:
            out.append(values.get(part) or defaults.get(part) or "SKU-00001")
    return "".join(out)


@dataclass
class GeneratedSale:
    """What the raw-insert baseline needs to know about a sale without parsing it again."""

    sale_id: uuid.UUID
    op_id: uuid.UUID
    seq: int
    receipt: str
    skus: list[str]
    amounts: list[int]
    json: str


class SaleFactory:
    """Sales of 3 to 5 lines (4 on average) with random SKUs, as JSON text."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.templates = {n: _sale_template(n) for n in (3, 4, 5)}
        self.amounts = {n: [1299, 499, 2450, 899, 1599][:n] for n in (3, 4, 5)}
        self.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def sale(self, store: str, till: str, seq: int) -> GeneratedSale:
        n = self.rng.choice((3, 4, 5))
        skus = [f"SKU-{self.rng.randrange(SKUS):05d}" for _ in range(n)]
        sale_id = new_id()  # as a till makes them: time-ordered UUIDv7 (shared/ids.py)
        receipt = f"{till}-{seq:08d}"
        values = {
            "sale_id": str(sale_id),
            "receipt": receipt,
            "store": store,
            "till": till,
            "created_at": self.created_at,
            **{f"sku{i + 1}": sku for i, sku in enumerate(skus)},
        }
        return GeneratedSale(
            sale_id=sale_id,
            op_id=new_id(),
            seq=seq,
            receipt=receipt,
            skus=skus,
            amounts=self.amounts[n],
            json=_fill(self.templates[n], values),
        )


@dataclass
class Till:
    store_id: str
    till_id: str
    token: str
    next_seq: int = 1
    bodies: list[bytes] = field(default_factory=list)

    def make_batches(self, factory: SaleFactory, count: int) -> None:
        """Append ``count`` ready-to-send push bodies of BATCH sales each."""
        for _ in range(count):
            ops = []
            for _ in range(BATCH):
                sale = factory.sale(self.store_id, self.till_id, self.next_seq)
                ops.append(
                    f'{{"op_id":"{sale.op_id}","seq":{sale.seq},"type":"sale",'
                    f'"payload":{sale.json}}}'
                )
                self.next_seq += 1
            body = f'{{"till_id":"{self.till_id}","ops":[{",".join(ops)}]}}'
            self.bodies.append(body.encode())


def enroll_tills(db_url: str, count: int = TILLS) -> list[Till]:
    db = Database(db_url)
    try:
        db.migrate()
        tills = []
        for i in range(count):
            store = f"S{i // TILLS_PER_STORE + 1:03d}"
            till = f"{store}-T{i % TILLS_PER_STORE + 1}"
            tills.append(Till(store, till, enroll_till(db, store_id=store, till_id=till)))
        return tills
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# Load


@dataclass
class Push:
    done: float
    latency: float
    sales: int


class PushFailed(RuntimeError):
    pass


class TillConnection:
    """One till's keep-alive HTTP/1.1 connection, as lean as a load generator can make it.

    The simulated tills share the server's two cores, so what the client spends per request is
    taken from the server: ``http.client`` sends a prepared body for about a fifth of what
    ``httpx`` spends (pool, headers, hooks). The server sees the same requests either way.
    """

    def __init__(self, base_url: str, token: str, timeout: float = 120.0) -> None:
        url = httpx.URL(base_url)
        self._connection = http.client.HTTPConnection(url.host, url.port, timeout=timeout)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip",
        }

    def push(self, body: bytes) -> tuple[int, bytes]:
        self._connection.request("POST", "/api/v1/sync/push", body=body, headers=self._headers)
        response = self._connection.getresponse()
        content = response.read()
        if response.getheader("Content-Encoding") == "gzip":
            content = gzip.decompress(content)
        return response.status, content

    def close(self) -> None:
        self._connection.close()


def _push(client: TillConnection, body: bytes) -> int:
    status, content = client.push(body)
    if status != 200:
        raise PushFailed(f"push answered {status}: {content[:500]!r}")
    applied = content.count(b'"status":"applied"')
    if applied != BATCH:
        raise PushFailed(f"only {applied} of {BATCH} ops applied: {content[:500]!r}")
    return applied


TillWorker = Callable[["Till", TillConnection, list["Push"]], None]


def _run_tills(tills: Sequence[Till], base_url: str, worker: TillWorker) -> list[list[Push]]:
    """Run ``worker(till, client, log)`` for every till in its own thread; return the logs."""
    logs: list[list[Push]] = [[] for _ in tills]
    errors: list[BaseException] = []

    def target(i: int) -> None:
        client = TillConnection(base_url, tills[i].token)
        try:
            worker(tills[i], client, logs[i])
        except BaseException as exc:  # reported below: a failed push must fail the benchmark
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(tills))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return logs


def closed_loop(
    tills: Sequence[Till], base_url: str, *, duration: float | None, ramp: float = 0.0
) -> tuple[list[Push], float, float]:
    """Every till pushes its prepared bodies back to back (for ``ramp + duration`` if given).

    Returns the pushes and the window in which every till had a push in flight: from ``ramp``
    seconds after the start (the pipeline is full) to the deadline or the moment the first till
    ran out of bodies. Counting completions inside that window measures the steady rate; pushes
    still in flight at its end are not half-counted.
    """
    start = time.perf_counter()
    deadline = math.inf if duration is None else start + ramp + duration
    ran_out: list[float] = []

    def worker(till: Till, client: TillConnection, out: list[Push]) -> None:
        while time.perf_counter() < deadline:
            if not till.bodies:
                ran_out.append(time.perf_counter())
                return
            body = till.bodies.pop(0)
            sent = time.perf_counter()
            sales = _push(client, body)
            done = time.perf_counter()
            out.append(Push(done, done - sent, sales))

    logs = _run_tills(tills, base_url, worker)
    end = min([deadline, *ran_out]) if ran_out or duration is not None else time.perf_counter()
    return list(itertools.chain.from_iterable(logs)), start + ramp, end


def paced(tills: Sequence[Till], base_url: str, *, period: float, rounds: int) -> list[Push]:
    """Each till pushes one body every ``period`` seconds, staggered; latency from schedule.

    A server slower than the offered rate falls ever further behind; after the schedule's end
    plus PACED_GRACE_S no more pushes start, and each push left unsent counts with the time it
    had waited by then (a lower bound of its latency).
    """
    start = time.perf_counter() + 0.5
    cutoff = start + rounds * period + PACED_GRACE_S

    def worker(till: Till, client: TillConnection, out: list[Push]) -> None:
        offset = period * tills.index(till) / len(tills)
        for n in range(rounds):
            scheduled = start + offset + n * period
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if time.perf_counter() > cutoff:
                out.append(Push(cutoff, cutoff - scheduled, 0))
                continue
            sales = _push(client, till.bodies.pop(0))
            done = time.perf_counter()
            out.append(Push(done, done - scheduled, sales))

    return list(itertools.chain.from_iterable(_run_tills(tills, base_url, worker)))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------------------------
# The raw baseline


RawBatch = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _raw_batches(sales: int) -> list[RawBatch]:
    """The rows the server writes for ``sales`` sales (orders, order lines, ops), 100 a batch."""
    factory = SaleFactory(seed=11)
    now = datetime.now(UTC)
    created = now.replace(microsecond=0)
    batches: list[RawBatch] = []
    for b in range(sales // BATCH):
        order_rows: list[dict[str, Any]] = []
        line_rows: list[dict[str, Any]] = []
        op_rows: list[dict[str, Any]] = []
        for i in range(BATCH):
            s = factory.sale("S001", "S001-T1", b * BATCH + i + 1)
            order_rows.append(
                {
                    "order_id": s.sale_id,
                    "channel": "store",
                    "store_id": "S001",
                    "till_id": "S001-T1",
                    "customer_id": None,
                    "profile_id": None,
                    "receipt_number": s.receipt,
                    "created_at": created,
                    "currency": "EUR",
                    "total_minor": sum(s.amounts),
                    "tax_minor": sum(round(a * 19 / 119) for a in s.amounts),
                    "payload": s.json,
                    "ingested_at": now,
                }
            )
            line_rows.extend(
                {
                    "order_id": s.sale_id,
                    "line_no": n + 1,
                    "sku": sku,
                    "quantity": 1,
                    "amount_minor": amount,
                }
                for n, (sku, amount) in enumerate(zip(s.skus, s.amounts, strict=True))
            )
            op_rows.append(
                {
                    "op_id": s.op_id,
                    "till_id": "S001-T1",
                    "seq": s.seq,
                    "type": "sale",
                    "status": "applied",
                    "error": None,
                    "received_at": now,
                }
            )
        batches.append((order_rows, line_rows, op_rows))
    return batches


def driver_value(value: Any, sqlite: bool) -> Any:
    """A value as SQLAlchemy hands it to the driver for our column types (Uuid, UtcDateTime)."""
    if not sqlite:
        return value  # psycopg adapts UUIDs and aware datetimes itself
    if isinstance(value, uuid.UUID):
        return value.hex  # Uuid on SQLite: CHAR(32)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bulk_insert(db: Database, table: str, columns: Sequence[str], rows: Iterable[Any]) -> int:
    """Load benchmark data: rows (tuples of driver values) through the driver's executemany.

    Set-up, not measured: on SQLite the loading connection skips fsync and gets a large page
    cache (random UUID keys thrash the default 2 MB); the server's connections keep their own
    settings. Returns the number of rows written.
    """
    mark = "?" if db.is_sqlite else "%s"
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"
    )
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.is_sqlite:
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-524288")
        count = 0
        for chunk in _chunks(rows):
            if db.is_sqlite:
                cursor.execute("BEGIN")
            cursor.executemany(statement, chunk)
            raw.commit()
            count += len(chunk)
        if db.is_sqlite:
            # A server meets a database whose log was checkpointed long ago, not a fresh
            # half-gigabyte WAL that every read must consult and its first commit must copy.
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA cache_size=-2000")
        cursor.close()
        return count
    finally:
        raw.close()


def _chunks(rows: Iterable[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == LOAD_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def raw_insert_rate(db_url: str, sales: int, *, driver: bool) -> float:
    """Sales per second of a plain batched insert of a sale's rows, 100 sales a transaction.

    The database is migrated by the server's own code and written through the server's own
    engine settings (``Database``: SQLite pragmas, PostgreSQL pool). ``driver=True`` hands
    ready-made tuples straight to the DB-API driver's ``executemany`` (the raw figure);
    ``driver=False`` goes through SQLAlchemy Core's ``executemany`` with dicts, as the server's
    code does, to show what the Core layer itself costs.
    """
    batches = _raw_batches(sales)
    db = Database(db_url)
    try:
        db.migrate()
        tables = (orders, order_lines, ops)
        mark = "?" if db.is_sqlite else "%s"
        statements = [
            f"INSERT INTO {t.name} ({', '.join(c.name for c in t.columns)}) "
            f"VALUES ({', '.join(mark for _ in t.columns)})"
            for t in tables
        ]
        prepared: list[list[Any]] = []
        for batch in batches:
            if driver:
                prepared.append(
                    [
                        [
                            tuple(driver_value(row[c.name], db.is_sqlite) for c in table.columns)
                            for row in rows
                        ]
                        for table, rows in zip(tables, batch, strict=True)
                    ]
                )
            else:
                prepared.append(list(batch))
        start = time.perf_counter()
        for batch_rows in prepared:
            with db.write() as conn:
                for table, statement, rows in zip(tables, statements, batch_rows, strict=True):
                    if driver:
                        conn.exec_driver_sql(statement, rows)
                    else:
                        conn.execute(table.insert(), rows)
        elapsed = time.perf_counter() - start
        return len(batches) * BATCH / elapsed
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# One engine


@dataclass
class IngestResult:
    sales_per_s: float
    p99_ms: float
    saturated_p99_ms: float
    window_s: float


def measure_server(
    db_url: str,
    *,
    workdir: Path,
    duration: float,
    paced_rounds: int,
    workers: int = 1,
    till_count: int = TILLS,
) -> IngestResult:
    """Enrol the tills, start the server over ``db_url`` and drive it (see the docstring).

    ``paced_rounds=0`` skips the paced run (its p99 is then NaN).
    """
    tills = enroll_tills(db_url, till_count)
    factory = SaleFactory()
    for till in tills:
        till.make_batches(factory, WARMUP_BATCHES)
    with hq_server(db_url, workdir=workdir, workers=workers) as server:
        pushes, start, _ = closed_loop(tills, server.base_url, duration=None)
        end = max(p.done for p in pushes)
        warm_rate = sum(p.sales for p in pushes) / (end - start)
        log.info("warm-up: %.0f sales/s over %.1f s", warm_rate, end - start)
        # Enough bodies for the whole window at three times the warm-up rate.
        per_till = math.ceil(3 * warm_rate * (RAMP_S + duration) / BATCH / len(tills)) + 2
        for till in tills:
            till.make_batches(factory, per_till)
        with profiled(server, "ingest"):
            pushes, start, end = closed_loop(tills, server.base_url, duration=duration, ramp=RAMP_S)
        window = [p for p in pushes if start <= p.done <= end]
        rate = sum(p.sales for p in window) / (end - start)
        saturated_p99 = percentile([p.latency for p in window], 0.99) * 1000
        log.info(
            "closed loop, %d worker(s): %.0f sales/s over %.1f s, %d pushes, p50 %.0f ms, "
            "p99 %.0f ms",
            workers,
            rate,
            end - start,
            len(window),
            percentile([p.latency for p in window], 0.5) * 1000,
            saturated_p99,
        )
        if end - start < duration * 0.95:
            log.warning("a till ran out of prepared sales: the window is short")
        p99 = math.nan
        if paced_rounds:
            period = len(tills) * BATCH / TARGET_SALES_PER_S
            for till in tills:  # bodies left over come first: they hold the next seqs
                till.make_batches(factory, max(0, paced_rounds - len(till.bodies)))
            pushes = paced(tills, server.base_url, period=period, rounds=paced_rounds)
            latencies = [p.latency for p in pushes]
            p99 = percentile(latencies, 0.99) * 1000
            log.info(
                "paced at %d sales/s: %d pushes (%d never sent), p50 %.0f ms, p99 %.0f ms, "
                "max %.0f ms",
                TARGET_SALES_PER_S,
                len(pushes),
                sum(1 for p in pushes if not p.sales),
                percentile(latencies, 0.5) * 1000,
                p99,
                max(latencies) * 1000,
            )
    return IngestResult(rate, p99, saturated_p99, end - start)


def raw_rates(engine: str, fresh_url: Any) -> float:
    """The raw driver-level rate (the figure's denominator); the Core rate is only logged."""
    raw = raw_insert_rate(fresh_url("raw_driver"), RAW_SALES, driver=True)
    core = raw_insert_rate(fresh_url("raw_core"), RAW_SALES, driver=False)
    log.info(
        "%s raw insert: %.0f sales/s through the driver, %.0f through SQLAlchemy Core",
        engine,
        raw,
        core,
    )
    return raw


def _figures(engine: str, result: IngestResult, raw: float) -> dict[str, float]:
    return {
        f"ingest_tx_per_s_{engine}": round(result.sales_per_s),
        f"ingest_p99_ms_{engine}": round(result.p99_ms, 1),
        f"ingest_ratio_to_raw_{engine}": round(result.sales_per_s / raw, 3),
    }


def run_sqlite(*, duration: float, paced_rounds: int) -> dict[str, float]:
    """One to three server processes are compared on a short run; the best gets the full one.

    Three can beat two on two cores: while one process holds SQLite's write lock (or waits
    for its commit's fsync), the other two parse and answer requests.
    """
    with tempfile.TemporaryDirectory(prefix="omnitill-bench-") as tmp:
        work = Path(tmp)
        trial = {
            workers: measure_server(
                f"sqlite:///{work / f'trial_w{workers}.db'}",
                workdir=work,
                duration=COMPARE_S,
                paced_rounds=0,
                workers=workers,
            ).sales_per_s
            for workers in (1, 2, 3)
        }
        best = max(trial, key=lambda w: trial[w])
        log.info("sqlite: %s sales/s by worker count; measuring %d", trial, best)
        result = measure_server(
            f"sqlite:///{work / 'hq.db'}",
            workdir=work,
            duration=duration,
            paced_rounds=paced_rounds,
            workers=best,
        )
        raw = raw_rates("sqlite", lambda name: f"sqlite:///{work / name}.db")
    return {**_figures("sqlite", result, raw), "ingest_workers_sqlite": best}


def run_postgres(*, duration: float, paced_rounds: int) -> dict[str, float]:
    """One and two server processes are compared on a short run; the better gets the full one."""
    from tests.support.postgres import PostgresUnavailable, create_database, temporary_cluster

    with contextlib.ExitStack() as stack:
        try:
            admin_url = stack.enter_context(temporary_cluster())
        except PostgresUnavailable as exc:
            log.warning("PostgreSQL ingest not measured: %s", exc)
            return {}
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omnitill-bench-")))
        trial = {
            workers: measure_server(
                create_database(admin_url, f"trial_w{workers}"),
                workdir=work,
                duration=COMPARE_S,
                paced_rounds=0,
                workers=workers,
            ).sales_per_s
            for workers in (1, 2)
        }
        best = max(trial, key=lambda w: trial[w])
        log.info("postgres: %s sales/s by worker count; measuring %d", trial, best)
        result = measure_server(
            create_database(admin_url, "ingest"),
            workdir=work,
            duration=duration,
            paced_rounds=paced_rounds,
            workers=best,
        )
        raw = raw_rates("postgres", lambda name: create_database(admin_url, name))
    return {**_figures("postgres", result, raw), "ingest_workers_postgres": best}


def run(*, full: bool) -> dict[str, float]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    duration = 60.0 if full else 20.0
    paced_rounds = 30 if full else 15
    figures = run_sqlite(duration=duration, paced_rounds=paced_rounds)
    figures.update(run_postgres(duration=duration, paced_rounds=paced_rounds))
    return figures
