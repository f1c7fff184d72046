from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.catalogue import Product, Store
from shared.customer import CustomerCard
from shared.errors import InvalidInput
from shared.receipt import receipt_from_sale
from shared.sale import Tender, check_totals
from tests.shared.factories import make_line, make_sale


def test_naive_timestamps_are_refused_and_offsets_become_utc() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        make_sale(created_at=datetime(2026, 11, 23, 9, 30))
    cet = timezone(timedelta(hours=1))
    sale = make_sale(created_at=datetime(2026, 11, 23, 10, 30, tzinfo=cet))
    assert sale.created_at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert sale.created_at.utcoffset() == timedelta(0)


def test_money_must_be_integer_minor_units() -> None:
    with pytest.raises(ValidationError):
        make_line(unit_price_minor=9.99)
    with pytest.raises(ValidationError):
        make_line(amount_minor="999")
    with pytest.raises(ValidationError):
        Product(sku="A", name="x", price_minor=True)


def test_unknown_fields_are_errors_not_dropped() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Product(sku="A", name="x", price_minor=1, colour="red")


def test_a_consistent_sale_passes_the_totals_check() -> None:
    check_totals(make_sale(lines=3))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"subtotal_minor": 1}, "subtotal"),
        ({"tax_minor": 1}, "tax"),
        ({"total_minor": 1999}, "total"),
        ({"tenders": (Tender(kind="card", amount_minor=1500),)}, "tenders pay"),
        ({"tenders": (Tender(kind="card", amount_minor=2500, change_minor=500),)}, "change"),
    ],
)
def test_inconsistent_sales_are_refused_with_a_reason(override: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_totals(make_sale(**override))


def test_exclusive_tax_is_added_to_the_total() -> None:
    sale = make_sale(
        lines=1,
        tax_mode="exclusive",
        total_minor=1160,
        tenders=(Tender(kind="card", amount_minor=1160, reference="T-1"),),
    )
    check_totals(sale)


def test_receipt_groups_tax_by_rate() -> None:
    lines = (
        make_line(1, amount_minor=1190, tax_minor=190, tax_rate=Decimal("19")),
        make_line(2, amount_minor=1070, tax_minor=70, tax_rate=Decimal("7")),
        make_line(3, amount_minor=2380, tax_minor=380, tax_rate=Decimal("19")),
    )
    sale = make_sale(
        lines=lines,
        subtotal_minor=4640,
        tax_minor=640,
        total_minor=4640,
        tenders=(Tender(kind="card", amount_minor=4640),),
    )
    receipt = receipt_from_sale(sale, Store(store_id="S001", name="Berlin Mitte"))
    rows = {row.rate: row for row in receipt.tax_breakdown}
    assert rows[Decimal("19")].tax_minor == 570
    assert rows[Decimal("19")].gross_minor == 3570
    assert rows[Decimal("19")].net_minor == 3000
    assert rows[Decimal("7")].net_minor == 1000
    assert sum(r.tax_minor for r in receipt.tax_breakdown) == receipt.tax_minor


def test_customer_card_display_name() -> None:
    card = CustomerCard(customer_id=uuid.uuid4(), first_name="Zoë", last_name="Müller")
    assert card.display_name == "Zoë Müller"
    assert CustomerCard(customer_id=uuid.uuid4()).display_name == "Customer"
