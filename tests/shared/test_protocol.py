from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shared.errors import InvalidInput, UnknownOpType
from shared.protocol import (
    Change,
    CustomerPatch,
    Op,
    PullPage,
    PushRequest,
    PushResponse,
    parse_op_payload,
)
from shared.sale import Sale
from tests.shared.factories import make_sale


def test_push_request_round_trips_through_json() -> None:
    sale = make_sale()
    op = Op(op_id=uuid.uuid4(), seq=1, type="sale", payload=sale.model_dump(mode="json"))
    request = PushRequest(till_id="S001-T1", ops=(op,))
    again = PushRequest.model_validate_json(request.model_dump_json())
    assert again == request
    parsed = parse_op_payload(again.ops[0].type, again.ops[0].payload)
    assert isinstance(parsed, Sale)
    assert parsed == sale


def test_op_envelope_is_strict() -> None:
    with pytest.raises(ValidationError):
        Op(op_id="not-a-uuid", seq=1, type="sale", payload={})
    with pytest.raises(ValidationError):
        Op(op_id=uuid.uuid4(), seq=0, type="sale", payload={})
    with pytest.raises(ValidationError):
        Op(op_id=uuid.uuid4(), seq=1, type="refund", payload={})
    with pytest.raises(ValidationError):
        PushRequest(till_id="S001-T1", ops=())


def test_unknown_op_type_names_the_known_ones() -> None:
    with pytest.raises(UnknownOpType, match="known: customer_patch, event, return, sale"):
        parse_op_payload("refund", {})


def test_bad_payload_names_the_fields() -> None:
    with pytest.raises(InvalidInput, match=r"Invalid sale payload: .*sale_id"):
        parse_op_payload("sale", {"store_id": "S001"})


def test_customer_patch_payload() -> None:
    patch = parse_op_payload(
        "customer_patch",
        {
            "customer_id": str(uuid.uuid4()),
            "fields": {"first_name": {"value": "Maria", "hlc": "000001700000000-000000-T1"}},
        },
    )
    assert isinstance(patch, CustomerPatch)
    assert patch.fields["first_name"].value == "Maria"


def test_verdicts_and_pull_page_shapes() -> None:
    response = PushResponse.model_validate(
        {"results": [{"op_id": str(uuid.uuid4()), "status": "duplicate"}], "last_seq": 7}
    )
    assert response.results[0].status == "duplicate"
    with pytest.raises(ValidationError):
        PushResponse.model_validate(
            {"results": [{"op_id": str(uuid.uuid4()), "status": "lost"}], "last_seq": 7}
        )
    page = PullPage(
        changes=(
            Change(entity="customer", key="a", action="delete", reason="merged", merged_into="b"),
        ),
        cursor="42",
        has_more=False,
    )
    assert PullPage.model_validate_json(page.model_dump_json()) == page
