"""Bad input against a real server: every refusal is a 4xx with a message, never a 500, and
leaves the database exactly as it was.

Each case runs after one good sale is stored, so "nothing half-written" compares real state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sync_server.db.schema import ops, order_lines, orders, tills
from sync_server.services.tills import enroll_till
from tests.support.server import (
    ADMIN_HEADERS,
    Hq,
    TillClient,
    count_rows,
    new_op,
    sale_for,
    sale_op,
    snapshot,
)

PUSH = "/api/v1/sync/push"


@dataclass(frozen=True)
class World:
    hq: Hq
    till: TillClient  # S001-T1, one sale pushed
    other: TillClient  # S002-T1

    def raw(self) -> httpx.Client:
        return httpx.Client(base_url=self.hq.base_url, timeout=30)


Case = Callable[[World], httpx.Response]


def malformed_json(w: World) -> httpx.Response:
    with w.raw() as c:
        return c.post(
            PUSH,
            content=b'{"till_id": "S001-T1", "ops": [{"op_id": ',
            headers={**w.till.headers, "Content-Type": "application/json"},
        )


def not_json_at_all(w: World) -> httpx.Response:
    with w.raw() as c:
        return c.post(
            PUSH,
            content=b"till_id=S001-T1",
            headers={**w.till.headers, "Content-Type": "text/plain"},
        )


def wrong_types(w: World) -> httpx.Response:
    return w.till.push([{"op_id": "not-a-uuid", "seq": "one", "type": "sale", "payload": []}])


def envelope_is_a_list(w: World) -> httpx.Response:
    return w.till.client.post(PUSH, json=[sale_op(sale_for(w.till), 2)])


def no_ops(w: World) -> httpx.Response:
    return w.till.push([])


def seq_zero(w: World) -> httpx.Response:
    return w.till.push([sale_op(sale_for(w.till), 0)])


def unknown_op_type(w: World) -> httpx.Response:
    # A valid sale before it: the whole push must be refused, not just the bad op.
    good = sale_op(sale_for(w.till), 2)
    bad = new_op("refund", sale_for(w.till).model_dump(mode="json"), 3)
    return w.till.push([good, bad])


def same_op_id_twice(w: World) -> httpx.Response:
    op_id = uuid.uuid4()
    return w.till.push(
        [sale_op(sale_for(w.till), 2, op_id=op_id), sale_op(sale_for(w.till), 3, op_id=op_id)]
    )


def oversized_batch(w: World) -> httpx.Response:
    # 501 valid sales in sequence: without the limit every one of them would be stored.
    return w.till.push([sale_op(sale_for(w.till, lines=1), seq) for seq in range(2, 503)])


def wrong_till(w: World) -> httpx.Response:
    # S002-T1's token pushing as S001-T1 (valid ops for S001-T1's next seq).
    return w.other.push([sale_op(sale_for(w.till), 2)], till_id=w.till.till_id)


def revoked_token(w: World) -> httpx.Response:
    with w.hq.admin() as admin:
        assert admin.delete(f"/api/v1/admin/tills/{w.till.till_id}").status_code == 200
    return w.till.push([sale_op(sale_for(w.till), 2)])


def missing_token(w: World) -> httpx.Response:
    with w.raw() as c:
        return c.post(PUSH, json={"till_id": w.till.till_id, "ops": [sale_op(sale_for(w.till), 2)]})


def unknown_token(w: World) -> httpx.Response:
    with w.raw() as c:
        return c.post(
            PUSH,
            json={"till_id": w.till.till_id, "ops": [sale_op(sale_for(w.till), 2)]},
            headers={"Authorization": "Bearer otl_" + "x" * 43},
        )


def admin_token_pushing(w: World) -> httpx.Response:
    with w.raw() as c:
        return c.post(
            PUSH,
            json={"till_id": w.till.till_id, "ops": [sale_op(sale_for(w.till), 2)]},
            headers=ADMIN_HEADERS,
        )


def admin_route_with_till_token(w: World) -> httpx.Response:
    return w.till.client.get("/api/v1/admin/stats")


def erase_with_till_token(w: World) -> httpx.Response:
    return w.till.client.delete(f"/api/v1/customers/{uuid.uuid4()}")


def lookup_garbage(w: World) -> httpx.Response:
    return w.till.client.get("/api/v1/customers/lookup", params={"identifier": "not a thing!"})


def lookup_bad_email(w: World) -> httpx.Response:
    return w.till.client.get("/api/v1/customers/lookup", params={"identifier": "email:nope"})


def pull_malformed_cursor(w: World) -> httpx.Response:
    return w.till.pull(cursor="v1.oops")


def pull_overlong_cursor(w: World) -> httpx.Response:
    return w.till.pull(cursor="v1." + "9" * 100)


def pull_zero_limit(w: World) -> httpx.Response:
    return w.till.pull(limit=0)


def customer_view_of_a_non_uuid(w: World) -> httpx.Response:
    with w.hq.admin() as admin:
        return admin.get("/api/v1/customers/not-a-uuid")


CASES: list[tuple[Case, int]] = [
    (malformed_json, 422),
    (not_json_at_all, 422),
    (wrong_types, 422),
    (envelope_is_a_list, 422),
    (no_ops, 422),
    (seq_zero, 422),
    (unknown_op_type, 422),
    (same_op_id_twice, 422),
    (oversized_batch, 413),
    (wrong_till, 403),
    (revoked_token, 401),
    (missing_token, 401),
    (unknown_token, 401),
    (admin_token_pushing, 401),
    (admin_route_with_till_token, 403),
    (erase_with_till_token, 403),
    (lookup_garbage, 422),
    (lookup_bad_email, 422),
    (pull_malformed_cursor, 422),
    (pull_overlong_cursor, 422),
    (pull_zero_limit, 422),
    (customer_view_of_a_non_uuid, 422),
]


def new_world(hq: Hq) -> World:
    till = hq.enroll("S001", "S001-T1")
    other = hq.enroll("S002", "S002-T1")
    till.push_sales(1)
    return World(hq=hq, till=till, other=other)


@pytest.fixture
def world(hq: Hq) -> World:
    return new_world(hq)


@pytest.fixture
def shared_world(module_hq: Hq) -> World:
    """The module's server, with fresh (re-issued) tokens for both tills."""
    with module_hq.db.read() as conn:
        enrolled = conn.execute(sa.select(tills.c.till_id)).first() is not None
    if not enrolled:
        return new_world(module_hq)
    till, other = (
        TillClient(module_hq.base_url, store, till_id, token)
        for store, till_id in (("S001", "S001-T1"), ("S002", "S002-T1"))
        for token in [enroll_till(module_hq.db, store_id=store, till_id=till_id, rotate=True)]
    )
    till.next_seq = 2
    module_hq.tills += [till, other]
    return World(hq=module_hq, till=till, other=other)


@pytest.mark.parametrize(("case", "status"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_bad_input_is_a_4xx_with_a_message_and_writes_nothing(
    shared_world: World, case: Case, status: int
) -> None:
    before = snapshot(shared_world.hq.db)

    response = case(shared_world)

    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    assert snapshot(shared_world.hq.db) == before


def test_messages_say_what_is_wrong(world: World) -> None:
    assert "Malformed JSON" in malformed_json(world).json()["detail"]
    assert "500" in oversized_batch(world).json()["detail"]
    assert world.other.till_id in wrong_till(world).json()["detail"]
    assert "type" in unknown_op_type(world).json()["detail"]
    wrong = wrong_types(world).json()["detail"]
    assert "op_id" in wrong and "seq" in wrong, wrong
    assert "cursor" in pull_malformed_cursor(world).json()["detail"].lower()
    assert "revoked" in revoked_token(world).json()["detail"]


def tampered_sale_op(till: TillClient, seq: int, **line_fields: Any) -> Any:
    """A sale op whose first line carries values no valid till would send."""
    op = sale_op(sale_for(till, lines=1), seq)
    op["payload"]["lines"][0].update(line_fields)
    return op


@pytest.mark.parametrize(
    "line_fields",
    [
        {"unit_price_minor": 2**64, "amount_minor": 2**64},  # beyond a 64-bit column
        {"sku": "AB\x00C"},  # PostgreSQL text cannot hold NUL
        {"sku": "AB\x1bC"},  # a garbled scan
        {"quantity": 10**9},
    ],
    ids=["huge-amount", "nul-in-sku", "control-char", "huge-quantity"],
)
def test_values_the_database_cannot_hold_are_rejected_per_op_not_a_500(
    hq: Hq, line_fields: dict[str, Any]
) -> None:
    till = hq.enroll()
    good = sale_for(till)

    response = till.push([tampered_sale_op(till, 1, **line_fields), sale_op(good, 2)])

    assert response.status_code == 200, response.text
    bad, ok = response.json()["results"]
    assert bad["status"] == "rejected" and "lines.0" in bad["error"]
    assert ok["status"] == "applied"
    assert count_rows(hq.db, orders) == 1
    assert count_rows(hq.db, order_lines, order_lines.c.order_id == good.sale_id) == 2


def test_an_invalid_sale_in_a_valid_batch_is_rejected_and_the_next_op_applied(hq: Hq) -> None:
    till = hq.enroll()
    good = sale_for(till)
    bad = sale_for(till)
    bad = bad.model_copy(update={"total_minor": bad.total_minor + 1})  # totals do not add up
    foreign = sale_for(till, store_id="S999")  # claims another store
    batch = [sale_op(bad, 1), sale_op(foreign, 2), sale_op(good, 3)]

    results = till.push_ok(batch)

    assert [r["status"] for r in results] == ["rejected", "rejected", "applied"]
    assert "total" in results[0]["error"] and str(bad.sale_id) in results[0]["error"]
    assert "S999" in results[1]["error"]
    assert count_rows(hq.db, orders) == 1
    assert count_rows(hq.db, orders, orders.c.order_id == good.sale_id) == 1
    # A rejected op still consumes its seq (the till dead-letters it) and is not retried.
    assert count_rows(hq.db, ops, ops.c.status == "rejected") == 2
    again = till.push_ok(batch)
    assert [r["status"] for r in again] == ["rejected", "rejected", "duplicate"]
    assert again[0]["error"] == results[0]["error"]
    assert count_rows(hq.db, orders) == 1


def test_a_malformed_payload_of_a_known_type_is_rejected_with_its_field(hq: Hq) -> None:
    till = hq.enroll()
    payload = sale_for(till).model_dump(mode="json")
    payload["lines"][0]["quantity"] = "lots"
    payload["tenders"] = []
    good = sale_for(till)

    results = till.push_ok([new_op("sale", payload, 1), sale_op(good, 2)])

    assert [r["status"] for r in results] == ["rejected", "applied"]
    assert "lines.0.quantity" in results[0]["error"] and "tenders" in results[0]["error"]
    assert count_rows(hq.db, orders) == 1
