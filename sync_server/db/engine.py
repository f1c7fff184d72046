"""Engines and migrations for SQLite and PostgreSQL.

SQLite: WAL, ``synchronous=FULL`` (sales are money: NORMAL may lose the last commits after a
power cut), a busy timeout, foreign keys on, and writers that queue instead of spinning on
SQLITE_BUSY: within a process on a lock, and across processes (several server workers, an
admin import beside a running server) on an advisory ``flock`` of ``<database>.writelock``,
whose waiters the kernel wakes the moment it is free (SQLite's own busy handler polls with
sleeps of up to 100 ms). Write transactions start with ``BEGIN IMMEDIATE``, so a writer that
does not take the file lock still never deadlocks with us. PostgreSQL: a connection pool;
several server processes may share one database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, OperationalError

from shared.errors import DiskFull, InvalidInput, StorageError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: Advisory lock key for migrations on PostgreSQL ("omnitill" in ASCII, truncated).
MIGRATION_LOCK = 0x6F6D6E6974696C


class Database:
    """An engine plus the one rule that differs by engine: how writers take turns."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = sa.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._lock_path: str | None = None
        self._file_lock: int | None = None
        self._immediate = threading.local()
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                self._lock_path = f"{database}.writelock"
            self.engine: Engine = sa.create_engine(
                self.url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            # Let us issue BEGIN ourselves: pysqlite's own transaction handling defers it.
            sa.event.listen(self.engine, "begin", self._begin)
        else:
            self.engine = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _begin(self, conn: Connection) -> None:
        immediate = getattr(self._immediate, "on", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction. Committed on success, rolled back on any error."""
        with self.write_lock():
            self._immediate.on = True
            try:
                with translate_errors(), self.engine.begin() as conn:
                    self._immediate.on = False
                    yield conn
            finally:
                self._immediate.on = False

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold SQLite's writer turn (this process's lock, then the file lock); no-op elsewhere."""
        lock = self._write_lock
        if lock is None:
            yield
            return
        with lock:
            if self._lock_path is None:  # an in-memory database lives in one process
                yield
                return
            if self._file_lock is None:
                self._file_lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fd = self._file_lock
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def turn(self, job: str) -> Iterator[bool]:
        """Whether this process may run background ``job`` now; held until the block ends.

        Every server process runs the same background loops; two of them counting the same new
        orders at once would waste the work of one (the second's write is refused). The turn is
        a non-blocking lock: ``flock`` of ``<database>.<job>.lock`` on a SQLite file, a session
        advisory lock on PostgreSQL. A process that does not get it skips this round.
        """
        if self.is_sqlite:
            if self._lock_path is None:  # in memory: one process
                yield True
                return
            path = f"{self.url.database}.{_slug(job)}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # closing the descriptor releases the lock
            return
        key = zlib.crc32(f"omnitill background {job}".encode())
        with self.engine.connect() as conn:
            mine = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
            conn.commit()
            try:
                yield mine
            finally:
                if mine:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                    conn.commit()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with translate_errors(), self.engine.connect() as conn:
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run from many processes at once."""
        config = alembic_config(self)
        with self.write_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._write_lock is not None:
            with self._write_lock:
                if self._file_lock is not None:
                    os.close(self._file_lock)
                    self._file_lock = None


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see above)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.render_as_string(hide_password=False))
    return config


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn database failures the caller cannot handle into our error tree.

    A value the engine cannot hold (a NUL character in PostgreSQL text, an integer beyond 64
    bits) comes from the request: it is bad input (4xx), and the transaction is rolled back.
    """
    try:
        yield
    except DataError as exc:
        raise InvalidInput(f"HQ cannot store a value of this request: {exc.orig}") from exc
    except OverflowError as exc:  # raised by the sqlite3 driver, not wrapped by SQLAlchemy
        raise InvalidInput(f"HQ cannot store a value of this request: {exc}") from exc
    except OperationalError as exc:
        text = str(exc.orig).lower()
        if "disk is full" in text or "no space left" in text or "could not extend" in text:
            raise DiskFull("The HQ database disk is full; nothing was written.") from exc
        raise StorageError(f"Database error: {exc.orig}") from exc
