from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shared.catalogue import Store
from shared.errors import InvalidInput, UnknownOpType
from shared.protocol import (
    Change,
    CustomerPatch,
    Op,
    PullPage,
    PushRequest,
    PushResponse,
    ReceiptEmail,
    parse_op_payload,
    parse_push,
)
from shared.receipt import ReceiptSuggestion, receipt_from_sale
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
    with pytest.raises(
        UnknownOpType, match="known: customer_patch, event, receipt_email, return, sale"
    ):
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


def receipt_email_payload(address: str = "  Maria.Rossi@Example.COM ") -> dict[str, object]:
    sale = make_sale()
    receipt = receipt_from_sale(
        sale,
        Store(store_id="S001", name="Omnitill Berlin"),
        suggestions=(ReceiptSuggestion(sku="SKU-9", name="Socks", price_minor=499),),
    )
    return {
        "email_id": str(uuid.uuid4()),
        "sale_id": str(sale.sale_id),
        "address": address,
        "consent_marketing": True,
        "receipt": receipt.model_dump(mode="json", by_alias=True),
        "at": "2026-11-23T09:31:00Z",
    }


def test_receipt_email_payload_normalizes_the_address_and_keeps_the_receipt() -> None:
    payload = receipt_email_payload()
    parsed = parse_op_payload("receipt_email", payload)
    assert isinstance(parsed, ReceiptEmail)
    assert parsed.address == "maria.rossi@example.com"
    assert parsed.receipt.suggestions[0].name == "Socks"
    assert parsed.consent_marketing is True
    again = ReceiptEmail.model_validate_json(parsed.model_dump_json(by_alias=True))
    assert again == parsed


def test_receipt_email_refuses_an_address_that_is_not_one() -> None:
    with pytest.raises(
        InvalidInput, match=r"Invalid receipt_email payload: address: .*needs a dot"
    ):
        parse_op_payload("receipt_email", receipt_email_payload("maria@localhost"))


def test_a_push_of_receipt_emails_parses_in_one_pass() -> None:
    op = Op(op_id=uuid.uuid4(), seq=1, type="receipt_email", payload=receipt_email_payload())
    body = PushRequest(till_id="S001-T1", ops=(op,)).model_dump_json()
    request, payloads = parse_push(body)
    assert request.ops[0].type == "receipt_email"
    assert payloads is not None and isinstance(payloads[0], ReceiptEmail)
