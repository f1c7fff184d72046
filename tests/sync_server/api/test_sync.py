"""Push against a real server on SQLite and PostgreSQL: exactly once, gaps, restored backups.

Every assertion about what was stored reads the database directly, not the server's answer.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync_server.db.engine import Database
from sync_server.db.schema import ops, order_lines, orders, quarantine
from sync_server.main import create_app
from sync_server.services import cards, feed
from tests.support.server import (
    Hq,
    at_once,
    count_rows,
    hq_settings,
    last_seq,
    running_server,
    sale_for,
    sale_op,
    snapshot,
)


def test_the_same_push_sent_twice_stores_one_sale(hq: Hq) -> None:
    till = hq.enroll()
    sale = sale_for(till)
    batch = [sale_op(sale, seq=1)]

    first = till.push_ok(batch)
    second = till.push_ok(batch)

    assert [r["status"] for r in first] == ["applied"]
    assert [r["status"] for r in second] == ["duplicate"]
    assert count_rows(hq.db, orders) == 1
    assert count_rows(hq.db, order_lines) == len(sale.lines)
    assert count_rows(hq.db, ops) == 1
    assert last_seq(hq.db, till.till_id) == 1


def test_the_same_push_sent_concurrently_stores_one_sale(hq: Hq) -> None:
    till = hq.enroll()
    # Two connections of their own, so the pushes really are in flight together.
    clients = [httpx.Client(base_url=hq.base_url, headers=till.headers, timeout=30) for _ in "ab"]
    rounds, per_batch = 3, 20
    try:
        for _ in range(rounds):
            sales = [sale_for(till) for _ in range(per_batch)]
            body = {"till_id": till.till_id, "ops": [sale_op(s, till.take_seq()) for s in sales]}
            answers = at_once(
                *(functools.partial(c.post, "/api/v1/sync/push", json=body) for c in clients)
            )
            assert all(a.status_code == 200 for a in answers), answers
            verdicts = sorted(
                ",".join(sorted({r["status"] for r in a.json()["results"]})) for a in answers
            )
            # One push stored the batch; the other found every op already there.
            assert verdicts == ["applied", "duplicate"]
    finally:
        for client in clients:
            client.close()

    assert count_rows(hq.db, orders) == rounds * per_batch
    assert count_rows(hq.db, ops) == rounds * per_batch
    assert last_seq(hq.db, till.till_id) == rounds * per_batch


class AckDroppingProxy:
    """A TCP hop that delivers one request and the server's answer is lost on the way back.

    It forwards the client's request, reads the server's whole response (so the server has
    committed and answered), then hangs up on the client without relaying a byte of it.
    """

    def __init__(self, upstream: str) -> None:
        url = httpx.URL(upstream)
        self.upstream = (url.host, url.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.swallowed = b""
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve_one(self) -> None:
        client, _ = self.listener.accept()
        with client:
            request = read_http_message(client)
            with socket.create_connection(self.upstream) as server:
                server.sendall(request)
                self.swallowed = read_http_message(server)
        # Leaving the block closes the client's connection: the ack never arrives.

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.listener.close()


def read_http_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 request or response with a Content-Length body, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed mid-headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_lost_ack_then_a_retry_stores_one_sale(hq: Hq) -> None:
    till = hq.enroll()
    sale = sale_for(till)
    batch = [sale_op(sale, seq=1)]
    proxy = AckDroppingProxy(hq.base_url)
    try:
        with pytest.raises(httpx.TransportError):
            httpx.post(
                f"{proxy.url}/api/v1/sync/push",
                json={"till_id": till.till_id, "ops": batch},
                headers=till.headers,
                timeout=30,
            )
    finally:
        proxy.close()
    # The server did answer (after committing); only the till never heard it.
    assert proxy.swallowed.startswith(b"HTTP/1.1 200"), proxy.swallowed
    assert b'"applied"' in proxy.swallowed
    assert count_rows(hq.db, orders) == 1

    retry = till.push_ok(batch)

    assert [r["status"] for r in retry] == ["duplicate"]
    assert count_rows(hq.db, orders, orders.c.order_id == sale.sale_id) == 1
    assert count_rows(hq.db, orders) == 1
    assert count_rows(hq.db, ops) == 1


def test_a_sequence_gap_at_the_first_op_is_refused_and_nothing_is_written(hq: Hq) -> None:
    till = hq.enroll()
    till.push_sales(2)
    before = snapshot(hq.db)

    response = till.push([sale_op(sale_for(till), seq=4), sale_op(sale_for(till), seq=5)])

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "expects 3" in detail and "seq 4" in detail, detail
    assert snapshot(hq.db) == before


def test_a_gap_mid_batch_applies_the_ops_before_it_and_leaves_the_rest_unanswered(
    hq: Hq,
) -> None:
    till = hq.enroll()
    sales = [sale_for(till) for _ in range(4)]
    batch = [sale_op(s, seq) for s, seq in zip(sales, (1, 2, 4, 5), strict=True)]

    response = till.push(batch)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["op_id"], r["status"]) for r in body["results"]] == [
        (batch[0]["op_id"], "applied"),
        (batch[1]["op_id"], "applied"),
    ]
    assert body["last_seq"] == 2
    assert last_seq(hq.db, till.till_id) == 2
    stored = {s.sale_id for s in sales[:2]}
    assert count_rows(hq.db, orders) == 2
    assert count_rows(hq.db, orders, orders.c.order_id.in_(stored)) == 2
    unanswered = [uuid.UUID(op["op_id"]) for op in batch[2:]]
    assert count_rows(hq.db, ops, ops.c.op_id.in_(unanswered)) == 0

    # The till resends from the gap and everything lands.
    missing = sale_for(till)
    resend = [sale_op(missing, 3), batch[2], batch[3]]
    assert [r["status"] for r in till.push_ok(resend)] == ["applied"] * 3
    assert count_rows(hq.db, orders) == 5
    assert last_seq(hq.db, till.till_id) == 5


def quarantined_gauge(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "omnitill_quarantined_ops":
            [sample] = family.samples
            return float(sample.value)
    raise AssertionError(f"omnitill_quarantined_ops missing from /metrics:\n{text}")


def test_a_restored_backup_reusing_a_seq_is_quarantined(hq: Hq) -> None:
    till = hq.enroll()
    till.push_sales(3)
    assert quarantined_gauge(hq.base_url) == 0
    # The till was restored from a backup taken after seq 1: it numbers a new sale 2 again.
    replay = sale_op(sale_for(till), seq=2)

    [result] = till.push_ok([replay])

    assert result["status"] == "rejected"
    assert "restored from an old backup" in result["error"]
    assert count_rows(hq.db, quarantine) == 1
    assert count_rows(hq.db, quarantine, quarantine.c.op_id == uuid.UUID(replay["op_id"])) == 1
    assert count_rows(hq.db, orders) == 3  # the replayed sale is kept aside, not booked
    assert count_rows(hq.db, ops) == 3
    assert last_seq(hq.db, till.till_id) == 3
    assert quarantined_gauge(hq.base_url) == 1

    # Sent again, it is still rejected and not quarantined twice; the till's next op is fine.
    assert till.push_ok([replay])[0]["status"] == "rejected"
    assert count_rows(hq.db, quarantine) == 1
    next_sale = sale_op(sale_for(till), seq=4)
    assert till.push_ok([next_sale])[0]["status"] == "applied"
    assert count_rows(hq.db, orders) == 4


def test_pushes_of_two_tills_do_not_interfere(hq: Hq) -> None:
    one, two = hq.enroll("S001", "S001-T1"), hq.enroll("S002", "S002-T1")
    one.push_sales(3)
    two.push_sales(2)
    # Each till numbers its own ops: seq 1 of the second till is not a replay of the first's.
    assert count_rows(hq.db, quarantine) == 0
    assert count_rows(hq.db, orders, orders.c.till_id == "S001-T1") == 3
    assert count_rows(hq.db, orders, orders.c.till_id == "S002-T1") == 2
    assert (last_seq(hq.db, "S001-T1"), last_seq(hq.db, "S002-T1")) == (3, 2)


def test_a_tombstone_that_replaces_the_newest_row_reaches_a_till_already_past_it(hq: Hq) -> None:
    # Erasure and merges drop a key's rows and then write its tombstone. If the dropped row was
    # the newest on the feed, the tombstone must still land beyond every cursor handed out.
    till = hq.enroll()
    with hq.db.write() as conn:
        feed.record_change(conn, entity="customer", key="c-1", scope="S001", data={"n": 1})
    first, cursor = till.pull_all()
    assert [(c["key"], c["action"]) for c in first] == [("c-1", "upsert")]

    with hq.db.write() as conn:
        feed.drop_key(conn, entity="customer", key="c-1")
        feed.record_change(conn, entity="customer", key="c-1", action="delete", reason="erased")
    after, _ = till.pull_all(cursor)

    assert [(c["key"], c["action"], c["reason"]) for c in after] == [("c-1", "delete", "erased")]


def test_stopping_the_server_waits_for_a_background_job_in_flight(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job cut off mid-transaction would leave its connection to a pool that is then disposed.
    started, finished = threading.Event(), threading.Event()

    def slow_refresh(database: Database, **_: Any) -> int:
        with database.write():
            started.set()
            time.sleep(0.3)
        finished.set()
        return 0

    monkeypatch.setattr(cards, "refresh_dirty_cards", slow_refresh)
    with running_server(create_app(hq_settings(db_url), db=db)):
        assert started.wait(timeout=10)
    assert finished.is_set()
