"""The till's HTTP client against a real HQ server: verdicts, exactly once, errors as ours."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edge_agent import outbox
from edge_agent.hq_client import HQClient
from edge_agent.outbox import PendingOp
from shared.errors import (
    AuthError,
    Conflict,
    CursorExpired,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SequenceGap,
    ServerUnavailable,
)
from sync_server.db.schema import feed_state, tills
from sync_server.services import feed as hq_feed
from sync_server.services.tills import revoke_till
from tests.support.server import free_port
from tests.support.till import (
    TILL,
    LostAck,
    RestartableHq,
    hq_customer,
    hq_orders,
    hq_running,
    open_store,
    sell,
)


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RestartableHq]:
    with hq_running(tmp_path) as server:
        yield server


def pending_sales(tmp_path: Path, count: int) -> list[PendingOp]:
    store = open_store(tmp_path)
    sell(store, count)
    ops = outbox.pending(store)
    store.close()
    return ops


def test_push_applies_each_op_and_reports_the_backlog(hq: RestartableHq, tmp_path: Path) -> None:
    ops = pending_sales(tmp_path, 3)
    with hq.client(hq.enroll()) as client:
        response = client.push(ops, backlog=10)

    assert [r.status for r in response.results] == ["applied"] * 3
    assert [str(r.op_id) for r in response.results] == [op.op_id for op in ops]
    assert response.last_seq == 3
    assert len(hq_orders(hq.db)) == 3
    with hq.db.read() as conn:
        backlog = conn.execute(sa.select(tills.c.backlog).where(tills.c.till_id == TILL))
        assert backlog.scalar_one() == 7  # HQ subtracts what this push carried


def test_a_lost_answer_and_the_retry_store_the_sale_once(hq: RestartableHq, tmp_path: Path) -> None:
    ops = pending_sales(tmp_path, 1)
    token = hq.enroll()
    lossy = LostAck(times=1)
    with hq.client(token, transport=lossy) as client:
        with pytest.raises(ServerUnavailable, match="did not answer in time") as caught:
            client.push(ops, backlog=1)
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
        assert lossy.lost == ["POST /api/v1/sync/push -> 200"]
        assert len(hq_orders(hq.db)) == 1  # HQ stored it; only the answer was lost

        retried = client.push(ops, backlog=1)

    assert [r.status for r in retried.results] == ["duplicate"]
    assert len(hq_orders(hq.db)) == 1


def test_a_gap_is_a_sequence_gap_naming_the_seq_hq_expects(
    hq: RestartableHq, tmp_path: Path
) -> None:
    ops = pending_sales(tmp_path, 3)
    with hq.client(hq.enroll()) as client, pytest.raises(SequenceGap) as caught:
        client.push(ops[2:], backlog=1)

    assert (caught.value.expected, caught.value.found) == (1, 3)
    assert "HQ expects 1" in caught.value.message
    assert hq_orders(hq.db) == []


def test_tokens_hq_refuses(hq: RestartableHq, tmp_path: Path) -> None:
    ops = pending_sales(tmp_path, 1)
    token = hq.enroll()
    with hq.client("otl_not-a-real-token") as client, pytest.raises(AuthError, match="Unknown"):
        client.push(ops, backlog=1)
    other_till = hq.client(token, till_id="S001-T9")
    with other_till as client, pytest.raises(PermissionDenied, match="cannot push as S001-T9"):
        client.push(ops, backlog=1)
    revoke_till(hq.db, TILL)
    with hq.client(token) as client:
        with pytest.raises(AuthError, match="revoked") as caught:
            client.push(ops, backlog=1)
        assert not isinstance(caught.value, PermissionDenied)
        with pytest.raises(AuthError, match="revoked"):
            client.pull(None)
        with pytest.raises(AuthError, match="revoked"):
            client.lookup("email:ann@example.com", 1.0)
    assert hq_orders(hq.db) == []


def test_an_envelope_hq_cannot_read_is_invalid_input_with_its_reason(
    hq: RestartableHq, tmp_path: Path
) -> None:
    bad = PendingOp(seq=1, op_id=str(uuid.uuid4()), type="teleport", payload="{}")
    with hq.client(hq.enroll()) as client, pytest.raises(InvalidInput) as caught:
        client.push([bad], backlog=1)

    assert "ops.0.type" in caught.value.message
    assert "'sale', 'return', 'customer_patch', 'event' or 'receipt_email'" in caught.value.message


def test_pull_reads_pages_and_an_expired_cursor_says_so(hq: RestartableHq) -> None:
    with hq.db.write() as conn:
        hq_feed.record_changes(
            conn,
            [
                {"entity": "product", "key": f"SKU-{i}", "data": f'{{"name": "Item {i}"}}'}
                for i in range(3)
            ],
        )
    with hq.client(hq.enroll()) as client:
        first = client.pull(None, limit=2)
        second = client.pull(first.cursor, limit=2)
        assert [c.key for c in first.changes] == ["SKU-0", "SKU-1"]
        assert first.has_more
        assert [c.key for c in second.changes] == ["SKU-2"]
        assert not second.has_more
        assert second.changes[0].data == {"name": "Item 2"}

        with hq.db.write() as conn:  # as if tombstones past this cursor were purged
            conn.execute(feed_state.insert(), [{"name": "horizon_id", "value": 10**9}])
        with pytest.raises(CursorExpired, match="refetch"):
            client.pull(second.cursor)
        assert client.pull(None).changes  # from the start is always allowed


def test_lookup_answers_a_card_or_none(hq: RestartableHq) -> None:
    customer = hq_customer(hq.db, email="ann@example.com", first_name="Ann")
    with hq.client(hq.enroll()) as client:
        card = client.lookup("email:ANN@example.com", 2.0)
        typed = client.lookup(" ann@example.com ", 2.0)
        nobody = client.lookup("email:bob@example.com", 2.0)
        with pytest.raises(InvalidInput, match="not an email address"):
            client.lookup("email:no-at-sign", 2.0)

    assert card is not None and typed is not None
    assert card.customer_id == typed.customer_id == customer
    assert card.first_name == "Ann"
    assert nobody is None


def test_nobody_listening_is_server_unavailable() -> None:
    with HQClient(f"http://127.0.0.1:{free_port()}", "otl_x", till_id=TILL) as client:
        with pytest.raises(ServerUnavailable, match="Cannot reach HQ") as caught:
            client.pull(None)
        assert isinstance(caught.value.__cause__, httpx.ConnectError)
        with pytest.raises(ServerUnavailable):
            client.lookup("email:ann@example.com", 0.2)


def test_a_server_that_never_answers_times_out_within_the_lookup_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with HQClient(url, "otl_x", till_id=TILL) as client:
            started = time.monotonic()
            with pytest.raises(ServerUnavailable, match="did not answer in time"):
                client.lookup("email:ann@example.com", 0.2)
            assert time.monotonic() - started < 1.0


def answering(status: int, body: bytes, content_type: str = "application/json") -> HQClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return HQClient("http://hq.test", "otl_x", till_id=TILL, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 507, 429])
def test_server_trouble_is_server_unavailable_with_hqs_detail(status: int) -> None:
    op = PendingOp(seq=1, op_id=str(uuid.uuid4()), type="event", payload="{}")
    body = b'{"detail": "HQ database unavailable", "error": "StorageError"}'
    with answering(status, body) as client, pytest.raises(ServerUnavailable) as caught:
        client.push([op], backlog=1)
    assert f"HTTP {status}" in caught.value.message
    assert "HQ database unavailable" in caught.value.message


def test_an_answer_that_is_not_ours_is_retried_not_trusted() -> None:
    op = PendingOp(seq=1, op_id=str(uuid.uuid4()), type="event", payload="{}")
    portal = answering(200, b"<html>Welcome to the hotel wifi</html>", "text/html")
    with portal as client, pytest.raises(ServerUnavailable, match="not an Omnitill PushResponse"):
        client.push([op], backlog=1)


def test_a_url_that_is_not_hq_is_not_found() -> None:
    other = answering(404, b"<h1>Not Found</h1>", "text/html")
    with other as client, pytest.raises(NotFound, match="server_url the address of an Omnitill"):
        client.pull(None)


def test_a_409_that_is_not_a_gap_is_a_plain_conflict() -> None:
    op = PendingOp(seq=1, op_id=str(uuid.uuid4()), type="event", payload="{}")
    body = b'{"detail": "Push conflicts with stored ops: UNIQUE", "error": "Conflict"}'
    with answering(409, body) as client, pytest.raises(Conflict) as caught:
        client.push([op], backlog=1)
    assert not isinstance(caught.value, SequenceGap)
    assert "UNIQUE" in caught.value.message


def test_pushing_needs_the_till_id() -> None:
    with HQClient("http://hq.test", "otl_x") as client, pytest.raises(ValueError, match="till_id"):
        client.push([], backlog=0)
