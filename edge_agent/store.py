"""The till's local store: one SQLite file per till, over sqlite-utils.

- **One writer.** Every write goes through :meth:`LocalStore.transaction`, which holds a
  process-wide lock and an ``IMMEDIATE`` transaction on the writer connection. Readers (the scan
  path, the UI) use their own connection per thread and never wait for a writer (WAL).
- **Sales are money.** ``journal_mode=WAL`` and ``synchronous=FULL``: a sale confirmed to the
  cashier is on disk, even after a power cut. A sale, its outbox op and its print job are written
  in one transaction.
- **Migrations** are small functions, each safe to re-run, applied in order and recorded in
  ``_migrations``.
- A full disk (or any other SQLite failure) becomes :class:`shared.errors.DiskFull` /
  :class:`shared.errors.StorageError`; the transaction is rolled back, so nothing is half-written.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from shared.errors import DiskFull, StorageError
from shared.wire import utc_now

log = logging.getLogger(__name__)


def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the scan path lives in cache
    return conn


def storage_error(exc: sqlite3.Error) -> StorageError:
    text = str(exc).lower()
    if "full" in text or "no space" in text:
        return DiskFull("The till's disk is full: nothing was saved. Free space, then retry.")
    return StorageError(f"The till's database failed: {exc}")


class LocalStore:
    """The till's database. Create with :meth:`open`, which migrates."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(self.path)
        self.db = sqlite_utils.Database(self._writer)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._depth = 0
        self._owner: int | None = None

    @classmethod
    def open(cls, path: Path | str) -> LocalStore:
        store = cls(path)
        store.migrate()
        return store

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction (re-entrant: an inner block joins the outer one)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                try:
                    self._writer.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise storage_error(exc) from exc
            self._depth += 1
            self._owner = threading.get_ident()
            try:
                yield self.db
            except sqlite3.Error as exc:
                self._depth -= 1
                if outer:
                    self._owner = None
                    self._rollback()
                raise storage_error(exc) from exc
            except BaseException:
                self._depth -= 1
                if outer:
                    self._owner = None
                    self._rollback()
                raise
            self._depth -= 1
            if outer:
                self._owner = None
                try:
                    self._writer.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise storage_error(exc) from exc

    def _rollback(self) -> None:
        # SQLite may already have rolled back itself (a full disk aborts the transaction).
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    @property
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (the writer's own thread reads its writes)."""
        if self._depth and self._owner == threading.get_ident():
            return self._writer
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        try:
            return self.reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self.reader.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        return row

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        self._writer.close()

    # -- small key/value state -----------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.query_one("SELECT value FROM sync_state WHERE key = ?", (key,))
        return default if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sync_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # -- migrations ----------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration not applied yet; return their names."""
        applied: list[str] = []
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {r[0] for r in db.execute("SELECT name FROM _migrations").fetchall()}
            for migration in MIGRATIONS:
                if migration.__name__ in done:
                    continue
                migration(db)
                db.execute(
                    "INSERT INTO _migrations(name, applied_at) VALUES (?, ?)",
                    [migration.__name__, utc_now().isoformat()],
                )
                applied.append(migration.__name__)
        if applied:
            log.info("local store %s: applied %s", self.path, ", ".join(applied))
        return applied


def m001_initial(db: sqlite_utils.Database) -> None:
    """Catalogue, customers, recommendations, sales, outbox, jobs and sync state."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS products (
            sku TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            brand TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '',
            price_minor INTEGER NOT NULL,
            currency TEXT NOT NULL,
            tax_rate TEXT NOT NULL DEFAULT '0',
            variable_measure TEXT,
            item_reference TEXT,
            barcodes TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ix_products_category ON products(category);
        CREATE INDEX IF NOT EXISTS ix_products_item_reference ON products(item_reference);
        CREATE TABLE IF NOT EXISTS barcodes (
            gtin TEXT PRIMARY KEY,
            sku TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ix_barcodes_sku ON barcodes(sku);
        CREATE TABLE IF NOT EXISTS prices (
            sku TEXT NOT NULL,
            store_id TEXT NOT NULL DEFAULT '*',
            price_minor INTEGER NOT NULL,
            valid_from TEXT,
            valid_to TEXT,
            PRIMARY KEY (sku, store_id)
        );
        CREATE TABLE IF NOT EXISTS store_config (
            key TEXT PRIMARY KEY,
            data TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS customers (
            customer_id TEXT PRIMARY KEY,
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            provisional INTEGER NOT NULL DEFAULT 0,
            card TEXT NOT NULL,
            updated_at TEXT
        );
        CREATE TABLE IF NOT EXISTS customer_identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            PRIMARY KEY (kind, value)
        );
        CREATE INDEX IF NOT EXISTS ix_customer_identifiers_customer
            ON customer_identifiers(customer_id);
        CREATE TABLE IF NOT EXISTS customer_aliases (
            old_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS recommendations (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            items TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        );
        CREATE TABLE IF NOT EXISTS sales (
            sale_id TEXT PRIMARY KEY,
            receipt_number TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL DEFAULT 'sale',
            created_at TEXT NOT NULL,
            customer_id TEXT,
            total_minor INTEGER NOT NULL,
            payload TEXT NOT NULL,
            z_report_id TEXT
        );
        CREATE INDEX IF NOT EXISTS ix_sales_created ON sales(created_at);
        CREATE TABLE IF NOT EXISTS parked (
            park_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            basket TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY,
            op_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            acked_at TEXT
        );
        CREATE INDEX IF NOT EXISTS ix_outbox_status ON outbox(status, seq);
        CREATE TABLE IF NOT EXISTS dead_letters (
            op_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            error TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sync_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS print_jobs (
            job_id TEXT PRIMARY KEY,
            sale_id TEXT,
            kind TEXT NOT NULL,
            copy INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            printed_at TEXT,
            document TEXT
        );
        CREATE INDEX IF NOT EXISTS ix_print_jobs_status ON print_jobs(status, created_at);
        CREATE TABLE IF NOT EXISTS email_jobs (
            job_id TEXT PRIMARY KEY,
            sale_id TEXT,
            address TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            document TEXT
        );
        CREATE INDEX IF NOT EXISTS ix_email_jobs_status ON email_jobs(status, next_attempt_at);
        CREATE TABLE IF NOT EXISTS z_reports (
            report_id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            totals TEXT NOT NULL
        );
        """
    )
    if "products_fts" not in db.table_names():
        db.table("products").enable_fts(
            ["name", "brand", "sku", "barcodes"], create_triggers=True, tokenize="unicode61"
        )


#: Every migration, oldest first. Append; never edit one that has shipped.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [m001_initial]


def dumps(value: Any) -> str:
    """Compact JSON for storage."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
