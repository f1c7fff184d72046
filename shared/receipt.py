"""The receipt: one model built from a sale or a return, rendered on paper or by email.

Renderers (ESC/POS at the till, HTML and plain-text email) only lay out what is here; every
number on a receipt is computed once, in :func:`receipt_from_sale` / :func:`receipt_from_return`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.catalogue import Store, TaxRate
from shared.sale import Return, Sale, Tender
from shared.wire import MinorUnits, Sku, UtcDatetime, WireModel

ReceiptKind = Literal["sale", "return"]


class ReceiptLine(WireModel):
    name: str
    quantity: int
    weight_g: int | None = None
    unit_price_minor: MinorUnits
    amount_minor: MinorUnits
    discount_minor: MinorUnits = 0
    discount_reasons: tuple[str, ...] = ()
    tax_rate: TaxRate


class TaxBreakdownRow(WireModel):
    rate: TaxRate
    net_minor: MinorUnits
    tax_minor: MinorUnits
    gross_minor: MinorUnits


class ReceiptSuggestion(WireModel):
    sku: Sku
    name: str
    price_minor: MinorUnits
    because_of: str | None = Field(
        default=None, description="The name of the basket item it goes with, as printed."
    )


class Receipt(WireModel):
    kind: ReceiptKind
    copy_: bool = Field(default=False, alias="copy")
    store: Store
    receipt_number: str
    created_at: UtcDatetime
    till_id: str
    cashier_id: str
    currency: str
    lines: tuple[ReceiptLine, ...]
    tax_breakdown: tuple[TaxBreakdownRow, ...]
    subtotal_minor: MinorUnits
    tax_minor: MinorUnits
    total_minor: MinorUnits
    tenders: tuple[Tender, ...]
    change_minor: MinorUnits = 0
    customer_name: str | None = None
    loyalty_points: int | None = None
    loyalty_points_earned: int = 0
    suggestions: tuple[ReceiptSuggestion, ...] = Field(default=(), max_length=3)
    receipt_url: str | None = None
    original_receipt_number: str | None = None

    model_config = WireModel.model_config | {"populate_by_name": True}


def tax_breakdown(
    rows: list[tuple[Decimal, int, int]], tax_mode: Literal["inclusive", "exclusive"]
) -> tuple[TaxBreakdownRow, ...]:
    """Group (rate, amount, tax) line rows by rate. ``amount`` is gross when tax is inclusive."""
    sums: dict[Decimal, list[int]] = defaultdict(lambda: [0, 0])
    for rate, amount, tax in rows:
        sums[rate][0] += amount
        sums[rate][1] += tax
    out = []
    for rate in sorted(sums):
        amount, tax = sums[rate]
        net, gross = (amount - tax, amount) if tax_mode == "inclusive" else (amount, amount + tax)
        out.append(TaxBreakdownRow(rate=rate, net_minor=net, tax_minor=tax, gross_minor=gross))
    return tuple(out)


def receipt_from_sale(
    sale: Sale,
    store: Store,
    *,
    customer_name: str | None = None,
    loyalty_points: int | None = None,
    suggestions: tuple[ReceiptSuggestion, ...] = (),
    receipt_url: str | None = None,
    copy: bool = False,
) -> Receipt:
    lines = tuple(
        ReceiptLine(
            name=line.name,
            quantity=line.quantity,
            weight_g=line.weight_g,
            unit_price_minor=line.unit_price_minor,
            amount_minor=line.amount_minor,
            discount_minor=sum(d.amount_minor for d in line.discounts),
            discount_reasons=tuple(d.reason for d in line.discounts),
            tax_rate=line.tax_rate,
        )
        for line in sale.lines
    )
    return Receipt(
        kind="sale",
        copy=copy,
        store=store,
        receipt_number=sale.receipt_number,
        created_at=sale.created_at,
        till_id=sale.till_id,
        cashier_id=sale.cashier_id,
        currency=sale.currency,
        lines=lines,
        tax_breakdown=tax_breakdown(
            [(ln.tax_rate, ln.amount_minor, ln.tax_minor) for ln in sale.lines], sale.tax_mode
        ),
        subtotal_minor=sale.subtotal_minor,
        tax_minor=sale.tax_minor,
        total_minor=sale.total_minor,
        tenders=sale.tenders,
        change_minor=sum(t.change_minor for t in sale.tenders),
        customer_name=customer_name,
        loyalty_points=loyalty_points,
        loyalty_points_earned=sale.loyalty_points_earned,
        suggestions=suggestions[:3],
        receipt_url=receipt_url,
    )


def receipt_from_return(
    ret: Return,
    store: Store,
    *,
    original_receipt_number: str | None = None,
    tax_mode: Literal["inclusive", "exclusive"] = "inclusive",
    copy: bool = False,
) -> Receipt:
    lines = tuple(
        ReceiptLine(
            name=line.name,
            quantity=line.quantity,
            unit_price_minor=line.amount_minor // line.quantity,
            amount_minor=line.amount_minor,
            tax_rate=line.tax_rate,
        )
        for line in ret.lines
    )
    return Receipt(
        kind="return",
        copy=copy,
        store=store,
        receipt_number=ret.receipt_number,
        created_at=ret.created_at,
        till_id=ret.till_id,
        cashier_id=ret.cashier_id,
        currency=ret.currency,
        lines=lines,
        tax_breakdown=tax_breakdown(
            [(ln.tax_rate, ln.amount_minor, ln.tax_minor) for ln in ret.lines], tax_mode
        ),
        subtotal_minor=sum(ln.amount_minor for ln in ret.lines),
        tax_minor=ret.tax_minor,
        total_minor=ret.total_minor,
        tenders=ret.refund_tenders,
        original_receipt_number=original_receipt_number,
    )
