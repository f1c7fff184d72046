"""Sales and returns as the till records them and HQ ingests them.

A sale is made at the till, gets its UUID there, and is never changed afterwards: corrections
are returns that reference the original sale's UUID. Every amount is in integer minor units of
the sale's currency. Line amounts are final (after discounts) and their tax is computed per line
(see ``shared.tax``), so the totals are exactly the sums of the lines; ``check_totals`` verifies
that on both sides. A basket discount is spread over the lines (``Money.allocate``) before tax,
so each line's amount is what the customer really paid for it; ``basket_discounts`` records the
discount's reason and size for the receipt.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import Field

from shared.catalogue import TaxRate
from shared.errors import InvalidInput
from shared.tax import TaxMode
from shared.wire import (
    CurrencyCode,
    MinorUnits,
    Sku,
    StoreId,
    TillId,
    UtcDatetime,
    WireModel,
)

TenderKind = Literal["cash", "card", "voucher", "other"]
DiscountKind = Literal["amount", "percent"]


class Discount(WireModel):
    """A discount on a line or the basket; ``amount_minor`` is what it took off."""

    kind: DiscountKind
    value: Decimal = Field(ge=0, description="Minor units for 'amount', percent for 'percent'.")
    amount_minor: MinorUnits = Field(ge=0)
    reason: str = Field(min_length=1, max_length=200)


class SaleLine(WireModel):
    """One line of a sale; prices are snapshots of what the customer paid."""

    line_no: int = Field(ge=1, le=10_000)
    sku: Sku
    name: str = Field(min_length=1, max_length=300)
    barcode: str | None = None
    quantity: int = Field(ge=1, le=100_000)
    weight_g: int | None = Field(default=None, ge=1, le=10_000_000)
    unit_price_minor: MinorUnits = Field(ge=0)
    discounts: tuple[Discount, ...] = ()
    tax_rate: TaxRate = Decimal("0")
    amount_minor: MinorUnits = Field(description="What the line costs after discounts.")
    tax_minor: MinorUnits
    open_price: bool = False


class Tender(WireModel):
    """A payment. Cash: ``amount_minor`` is what was tendered, ``change_minor`` given back."""

    kind: TenderKind
    amount_minor: MinorUnits = Field(gt=0)
    change_minor: MinorUnits = Field(default=0, ge=0)
    reference: str | None = Field(default=None, max_length=200)


class Sale(WireModel):
    """A completed sale."""

    sale_id: UUID
    receipt_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9-]+$")
    store_id: StoreId
    till_id: TillId
    cashier_id: str = Field(min_length=1, max_length=64)
    customer_id: UUID | None = None
    customer_identifier: str | None = Field(
        default=None, description="'kind:value' of a customer the till could not resolve."
    )
    created_at: UtcDatetime
    currency: CurrencyCode
    tax_mode: TaxMode
    lines: tuple[SaleLine, ...] = Field(min_length=1, max_length=1000)
    basket_discounts: tuple[Discount, ...] = ()
    subtotal_minor: MinorUnits
    tax_minor: MinorUnits
    total_minor: MinorUnits
    tenders: tuple[Tender, ...] = Field(min_length=1)
    loyalty_points_earned: int = Field(default=0, ge=0, le=10_000_000)


class ReturnLine(WireModel):
    """A returned line; amounts are positive and snapshot the original sale's prices."""

    original_line_no: int = Field(ge=1, le=10_000)
    sku: Sku
    name: str = Field(min_length=1, max_length=300)
    quantity: int = Field(ge=1, le=100_000)
    amount_minor: MinorUnits = Field(ge=0)
    tax_minor: MinorUnits = Field(ge=0)
    tax_rate: TaxRate = Decimal("0")


class Return(WireModel):
    """Goods brought back against a sale (referenced by its UUID)."""

    return_id: UUID
    original_sale_id: UUID
    receipt_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9-]+$")
    store_id: StoreId
    till_id: TillId
    cashier_id: str = Field(min_length=1, max_length=64)
    customer_id: UUID | None = None
    created_at: UtcDatetime
    currency: CurrencyCode
    lines: tuple[ReturnLine, ...] = Field(min_length=1)
    total_minor: MinorUnits = Field(ge=0)
    tax_minor: MinorUnits = Field(ge=0)
    refund_tenders: tuple[Tender, ...] = Field(min_length=1)
    reason: str = ""


def check_totals(sale: Sale) -> None:
    """Raise InvalidInput unless the sale's totals, taxes and tenders add up.

    ``total`` is what the customer pays: the sum of line amounts (after every discount), plus the
    tax when the store prices tax-exclusive. Tenders less change must cover exactly the total.
    """
    lines_amount = sum(line.amount_minor for line in sale.lines)
    if sale.subtotal_minor != lines_amount:
        raise InvalidInput(
            f"Sale {sale.sale_id}: subtotal {sale.subtotal_minor} is not the sum of its lines"
            f" {lines_amount}"
        )
    line_tax = sum(line.tax_minor for line in sale.lines)
    if sale.tax_minor != line_tax:
        raise InvalidInput(
            f"Sale {sale.sale_id}: tax {sale.tax_minor} is not the sum of line taxes {line_tax}"
        )
    expected_total = sale.subtotal_minor + (sale.tax_minor if sale.tax_mode == "exclusive" else 0)
    if sale.total_minor != expected_total:
        raise InvalidInput(
            f"Sale {sale.sale_id}: total {sale.total_minor} should be {expected_total}"
            f" ({sale.tax_mode} tax)"
        )
    paid = sum(t.amount_minor - t.change_minor for t in sale.tenders)
    if paid != sale.total_minor:
        raise InvalidInput(
            f"Sale {sale.sale_id}: tenders pay {paid} but the total is {sale.total_minor}"
        )
    if any(t.change_minor and t.kind != "cash" for t in sale.tenders):
        raise InvalidInput(f"Sale {sale.sale_id}: only cash tenders give change")


def check_return_totals(ret: Return) -> None:
    """Raise InvalidInput unless the return's lines add up to its totals and refunds."""
    amount = sum(line.amount_minor for line in ret.lines)
    tax = sum(line.tax_minor for line in ret.lines)
    if ret.tax_minor != tax:
        raise InvalidInput(f"Return {ret.return_id}: tax {ret.tax_minor} is not {tax}")
    if ret.total_minor not in (amount, amount + tax):
        raise InvalidInput(
            f"Return {ret.return_id}: total {ret.total_minor} does not match its lines {amount}"
        )
    refunded = sum(t.amount_minor for t in ret.refund_tenders)
    if refunded != ret.total_minor:
        raise InvalidInput(
            f"Return {ret.return_id}: refunds {refunded} but the total is {ret.total_minor}"
        )
