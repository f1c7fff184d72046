"""Fixtures for the HQ server's integration tests: a fresh database per test on SQLite and on
PostgreSQL, and a real uvicorn server over it.

PostgreSQL runs as one throwaway cluster for the whole session (from the machine's binaries,
see ``tests.support.postgres``) with a new database per test; where there are no binaries the
PostgreSQL variants are skipped with the reason. Select or deselect them with ``-m postgres``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync_server.db.engine import Database
from sync_server.main import create_app
from tests.support.postgres import PostgresUnavailable, create_database, temporary_cluster
from tests.support.server import Hq, hq_settings, running_server

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The URL of a session-wide throwaway PostgreSQL cluster (skips when there is none)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_cluster())
        except PostgresUnavailable as exc:
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        yield url


@contextlib.contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty database in the cluster, dropped afterwards (even if a connection lingers)."""
    name = f"hq_{uuid.uuid4().hex[:12]}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            engine.dispose()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database."""
    with fresh_pg_database(pg_admin_url) as url:
        yield url


@contextlib.contextmanager
def empty_database(backend: str, directory: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{(directory / 'hq.db').as_posix()}"
        return
    with fresh_pg_database(request.getfixturevalue("pg_admin_url")) as url:
        yield url


@contextlib.contextmanager
def serving(db: Database, db_url: str) -> Iterator[Hq]:
    app = create_app(hq_settings(db_url), db=db)
    with running_server(app) as base_url:
        server = Hq(base_url=base_url, db=db)
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on each engine."""
    with empty_database(request.param, tmp_path, request) as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The migrated database, for enrolling tills and looking at rows directly."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def hq(db: Database, db_url: str) -> Iterator[Hq]:
    """A real HQ server on a loopback port over ``db``."""
    with serving(db, db_url) as server:
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
def module_hq(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hq]:
    """One server per module and engine, for many tests that must each leave it unchanged."""
    with empty_database(request.param, tmp_path_factory.mktemp("hq"), request) as url:
        database = Database(url)
        database.migrate()
        try:
            with serving(database, url) as server:
                yield server
        finally:
            database.dispose()
