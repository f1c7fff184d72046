"""A real HQ server for integration tests: in-process under uvicorn, or as separate processes.

``running_server`` serves an app from a background thread on a loopback port that it binds
itself (so two tests never race for a port); ``launch_server`` starts ``omnitill server`` as a
separate process, the way an operator runs it, for tests where several processes share one
PostgreSQL database.

The rest are small helpers the sync tests share: ops built from sales, a till's client, row
counts read straight from the database, and polling with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
import uvicorn
from starlette.types import ASGIApp

from shared.hlc import HLCTimestamp
from shared.sale import Sale, SaleLine
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import (
    changes,
    customer_fields,
    identifiers,
    ops,
    order_lines,
    orders,
    profiles,
    quarantine,
    returns,
    tills,
)
from sync_server.services.tills import enroll_till
from tests.shared.factories import make_sale

ROOT = Path(__file__).resolve().parents[2]
#: Long enough to pass the production placeholder check.
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STARTUP_TIMEOUT_S = 60.0

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Servers


def hq_settings(db_url: str) -> Settings:
    """Server settings for tests: the admin token set, cards built every 50 ms."""
    return Settings(db_url=db_url, admin_token=ADMIN_TOKEN, card_worker_interval_s=0.05)


def free_port() -> int:
    """A port nobody listens on right now (for a child process, which must bind it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(app: ASGIApp, *, timeout: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Serve ``app`` under uvicorn in a background thread; yield its base URL.

    The socket is bound here and handed to uvicorn, so the port is ours from the start. The
    app's lifespan runs (migrations, background workers) before the URL is yielded.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,  # leave the test process's logging alone
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the HQ server stopped during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HQ server did not start within {timeout:.0f} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class ServerProcess:
    """``omnitill server`` running as a child process."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until ``/healthz`` answers 200; fail with the server's log if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"omnitill server exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"omnitill server not ready after {timeout:.0f} s:\n{self.log()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


def server_env(admin_token: str = ADMIN_TOKEN, **settings: str) -> dict[str, str]:
    """The environment of a child server: ours without OMNITILL_* settings, plus the given ones.

    Settings are given by field name (``card_worker_interval_s="0.05"``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITILL_")}
    env["OMNITILL_ADMIN_TOKEN"] = admin_token
    env["OMNITILL_CONFIG"] = os.devnull  # never read an omnitill-server.toml lying around
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for name, value in settings.items():
        env[f"OMNITILL_{name.upper()}"] = value
    return env


def launch_server(
    db_url: str, *, workdir: Path, admin_token: str = ADMIN_TOKEN, **settings: str
) -> ServerProcess:
    """Start ``python -m omnitill server --db URL --port P``; call ``wait_ready`` before use."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omnitill",
                "--log-level",
                "WARNING",
                "server",
                "--db",
                db_url,
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=server_env(admin_token, **settings),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


@contextlib.contextmanager
def server_processes(
    db_url: str, count: int, *, workdir: Path, **settings: str
) -> Iterator[list[ServerProcess]]:
    """``count`` server processes on one database, started together (their migrations race)."""
    started: list[ServerProcess] = []
    try:
        for _ in range(count):
            started.append(launch_server(db_url, workdir=workdir, **settings))
        for proc in started:
            proc.wait_ready()
        yield started
    finally:
        for proc in started:
            proc.stop()


# ---------------------------------------------------------------------------------------------
# Tills and ops


def new_op(op_type: str, payload: dict[str, Any], seq: int, op_id: uuid.UUID | None = None) -> Any:
    """One outbox op as JSON."""
    return {"op_id": str(op_id or uuid.uuid4()), "seq": seq, "type": op_type, "payload": payload}


def sale_for(till: TillClient, *, lines: int | tuple[SaleLine, ...] = 2, **over: Any) -> Sale:
    """A valid sale made at ``till``."""
    return make_sale(lines, **{"store_id": till.store_id, "till_id": till.till_id, **over})


def sale_op(sale: Sale, seq: int, op_id: uuid.UUID | None = None) -> Any:
    return new_op("sale", sale.model_dump(mode="json"), seq, op_id)


def hlc(till_id: str, counter: int = 0, wall_ms: int | None = None) -> str:
    """A clock stamp written by ``till_id`` now (or at ``wall_ms``)."""
    wall = wall_ms if wall_ms is not None else time.time_ns() // 1_000_000
    return HLCTimestamp(wall, counter, till_id).encode()


def till_local(profile: uuid.UUID) -> dict[str, str]:
    return {"kind": "till_local", "value": f"TL-{profile}"}


@dataclass
class TillClient:
    """An enrolled till talking to one HQ server."""

    base_url: str
    store_id: str
    till_id: str
    token: str
    client: httpx.Client = field(init=False, repr=False)
    next_seq: int = 1

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=30.0, headers=self.headers)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def close(self) -> None:
        self.client.close()

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def push(self, ops_: Sequence[Any], *, till_id: str | None = None) -> httpx.Response:
        body = {"till_id": till_id or self.till_id, "ops": list(ops_)}
        return self.client.post("/api/v1/sync/push", json=body)

    def push_ok(self, ops_: Sequence[Any]) -> list[dict[str, Any]]:
        """Push and return the verdicts; the push itself must succeed."""
        response = self.push(ops_)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def push_sales(self, count: int = 1, **over: Any) -> list[Sale]:
        """Push ``count`` new sales, one op each, all of which must be applied."""
        sales = [sale_for(self, **over) for _ in range(count)]
        results = self.push_ok([sale_op(s, self.take_seq()) for s in sales])
        assert [r["status"] for r in results] == ["applied"] * count, results
        return sales

    def patch_customer(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Push one customer_patch op; return its verdict."""
        [result] = self.push_ok([new_op("customer_patch", patch, self.take_seq())])
        return result

    def pull(self, cursor: str | None = None, limit: int | None = None) -> httpx.Response:
        params: dict[str, Any] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        return self.client.get("/api/v1/sync/pull", params=params)

    def pull_all(self, cursor: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every page from ``cursor`` on; the changes in order and the last cursor."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.pull(cursor)
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["changes"])
            cursor = page["cursor"]
            if not page["has_more"]:
                assert cursor is not None
                return found, cursor


@dataclass
class Hq:
    """A running HQ server and a direct handle on its database."""

    base_url: str
    db: Database
    tills: list[TillClient] = field(default_factory=list)

    def enroll(self, store_id: str = "S001", till_id: str = "S001-T1") -> TillClient:
        token = enroll_till(self.db, store_id=store_id, till_id=till_id)
        till = TillClient(self.base_url, store_id, till_id, token)
        self.tills.append(till)
        return till

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30.0, headers=ADMIN_HEADERS)

    def close(self) -> None:
        for till in self.tills:
            till.close()


# ---------------------------------------------------------------------------------------------
# Looking at the database directly


def count_rows(db: Database, table: sa.Table, *where: Any) -> int:
    with db.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


#: Tables a refused request must leave untouched.
WATCHED = (orders, order_lines, returns, ops, quarantine, profiles, identifiers, customer_fields)


def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of the watched tables, the feed's size and every till's last seq."""
    state: dict[str, Any] = {t.name: count_rows(db, t) for t in WATCHED}
    state["changes"] = count_rows(db, changes)
    with db.read() as conn:
        state["last_seq"] = dict(conn.execute(sa.select(tills.c.till_id, tills.c.last_seq)).all())
    return state


def last_seq(db: Database, till_id: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(sa.select(tills.c.last_seq).where(tills.c.till_id == till_id)).scalar_one()
        )


def at_once(*calls: Callable[[], T], timeout: float = 60.0) -> list[T]:
    """Run the calls in threads released together by a barrier; their results, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"calls still running after {timeout} s")
    return results


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 5.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)
