"""Helpers for the till's network tests: a real HQ that can be stopped and started again on the
same port, a transport that loses answers, sales in a till's outbox, customers made at HQ, and a
check of whether multicast works here (for zeroconf).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from edge_agent import outbox
from edge_agent.hq_client import HQClient
from edge_agent.store import LocalStore
from shared.identifiers import Identifier
from shared.sale import Sale
from shared.wire import utc_now
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import changes, orders
from sync_server.main import create_app
from sync_server.services import identity
from tests.shared.factories import make_sale
from tests.support.server import ADMIN_TOKEN, STARTUP_TIMEOUT_S, free_port, hq_settings

STORE = "S001"
TILL = "S001-T1"


# ---------------------------------------------------------------------------------------------
# HQ


class RestartableHq:
    """A real HQ server (uvicorn, in a thread) that can go down and come back on one port."""

    def __init__(self, db_url: str, db: Database) -> None:
        self.db_url = db_url
        self.db = db
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(
            create_app(hq_settings(self.db_url), db=self.db),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            log_config=None,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"hq-{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HQ server did not start")
            time.sleep(0.01)
        self._server, self._thread, self._sock = server, thread, sock

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        assert self._thread is not None and self._sock is not None
        self._thread.join(timeout=30)
        self._sock.close()
        self._server = self._thread = self._sock = None

    def enroll(self, till_id: str = TILL, store_id: str = STORE) -> str:
        from sync_server.services.tills import enroll_till

        return enroll_till(self.db, store_id=store_id, till_id=till_id)

    def client(self, token: str, till_id: str = TILL, **kwargs: Any) -> HQClient:
        return HQClient(self.base_url, token, till_id=till_id, **kwargs)


@contextlib.contextmanager
def hq_running(tmp_path: Path) -> Iterator[RestartableHq]:
    """A migrated SQLite HQ database in ``tmp_path`` and a server over it."""
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    hq = RestartableHq(url, db)
    hq.start()
    try:
        yield hq
    finally:
        hq.stop()
        db.dispose()


def mailing_hq_settings(url: str, *, public_url: str, smtp_port: int) -> Settings:
    """HQ settings with mail on, sent quickly (short worker and retry intervals) to a local
    SMTP sink without TLS."""
    return Settings(
        db_url=url,
        admin_token=ADMIN_TOKEN,
        card_worker_interval_s=0.05,
        public_url=public_url,
        mail_enabled=True,
        mail_from="Omnitill Demo Berlin <receipts@shop.example>",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_timeout_s=5,
        mail_worker_interval_s=0.05,
        mail_retry_initial_s=0.2,
        mail_retry_max_s=0.4,
    )


def hq_orders(db: Database) -> list[str]:
    """The ids of every sale stored at HQ."""
    with db.read() as conn:
        return [str(r) for r in conn.execute(sa.select(orders.c.order_id)).scalars()]


def hq_customer(
    db: Database, *, email: str, first_name: str = "", store_id: str = STORE
) -> uuid.UUID:
    """A customer known at HQ (and to ``store_id``'s tills), as an import would make it."""
    profile = uuid.uuid4()
    with db.write() as conn:
        customer = identity.ensure_profile(
            conn,
            profile_id=profile,
            source="import",
            claims=[Identifier("email", email)],
            home_store=store_id,
        )
        if first_name:
            identity.write_field(
                conn,
                customer=customer,
                profile=profile,
                field="first_name",
                value=first_name,
                hlc=f"{0:015d}-000000-import",
                writer="import",
                now=utc_now(),
            )
        identity.customers_changed(conn, {customer}, store_id=store_id)
    return customer


def feed_has(db: Database, *, entity: str, key: str, **where: Any) -> bool:
    """True when HQ's change feed holds a row for ``entity``/``key`` matching ``where``."""
    query = sa.select(changes.c.id).where(changes.c.entity == entity, changes.c.key == key)
    for column, value in where.items():
        query = query.where(changes.c[column] == value)
    with db.read() as conn:
        return conn.execute(query).first() is not None


# ---------------------------------------------------------------------------------------------
# The till side


class LostAck(httpx.BaseTransport):
    """Performs each request for real, then loses the answer (``ReadTimeout``) ``times`` times."""

    def __init__(self, times: int = 1, inner: httpx.BaseTransport | None = None) -> None:
        self.times = times
        self.inner = inner or httpx.HTTPTransport()
        self.lost: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.times <= 0:
            return response
        self.times -= 1
        response.read()
        response.close()
        self.lost.append(f"{request.method} {request.url.path} -> {response.status_code}")
        raise httpx.ReadTimeout("the answer was lost on the way back", request=request)

    def close(self) -> None:
        self.inner.close()


def open_store(tmp_path: Path, name: str = "till.db") -> LocalStore:
    return LocalStore.open(tmp_path / name)


def sale_made(store_id: str = STORE, till_id: str = TILL, **over: Any) -> Sale:
    """A valid sale with a receipt number of its own."""
    number = f"{till_id}-{uuid.uuid4().hex[:8]}".upper()
    return make_sale(2, store_id=store_id, till_id=till_id, receipt_number=number, **over)


def sell(store: LocalStore, count: int = 1, **over: Any) -> list[Sale]:
    """``count`` sales, each written to the outbox in its own transaction, as the till does."""
    sales = [sale_made(**over) for _ in range(count)]
    for sale in sales:
        with store.transaction() as db:
            outbox.enqueue(db, "sale", sale.model_dump(mode="json"))
    return sales


def outbox_statuses(store: LocalStore) -> dict[str, int]:
    return {r[0]: r[1] for r in store.query("SELECT status, COUNT(*) FROM outbox GROUP BY 1")}


# ---------------------------------------------------------------------------------------------
# Multicast


def multicast_loopback_problem() -> str | None:
    """Why multicast on 127.0.0.1 does not work here, or None when a datagram makes the trip."""
    group, port = "239.255.77.77", free_port()
    try:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    except OSError as exc:
        return f"cannot open UDP sockets: {exc}"
    with rx, tx:
        try:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rx.bind(("", port))
            membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            rx.settimeout(1.0)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            tx.sendto(b"omnitill-probe", (group, port))
        except OSError as exc:
            return f"multicast on 127.0.0.1 is refused by this system: {exc}"
        try:
            data, _ = rx.recvfrom(64)
        except TimeoutError:
            return f"a multicast datagram sent to {group} on 127.0.0.1 never came back (1 s)"
    return None if data == b"omnitill-probe" else "multicast probe received foreign data"
