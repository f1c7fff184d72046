"""Small factories for valid domain objects; tests override what they care about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.sale import Sale, SaleLine, Tender


def make_line(line_no: int = 1, **over: Any) -> SaleLine:
    data: dict[str, Any] = {
        "line_no": line_no,
        "sku": f"SKU-{line_no}",
        "name": f"Item {line_no}",
        "quantity": 1,
        "unit_price_minor": 1000,
        "tax_rate": Decimal("19"),
        "amount_minor": 1000,
        "tax_minor": 160,
    }
    data.update(over)
    return SaleLine(**data)


def make_sale(lines: int | tuple[SaleLine, ...] = 2, **over: Any) -> Sale:
    sale_lines = (
        lines if isinstance(lines, tuple) else tuple(make_line(i + 1) for i in range(lines))
    )
    total = sum(line.amount_minor for line in sale_lines)
    data: dict[str, Any] = {
        "sale_id": uuid.uuid4(),
        "receipt_number": "S001-T1-000001",
        "store_id": "S001",
        "till_id": "S001-T1",
        "cashier_id": "c1",
        "created_at": datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
        "currency": "EUR",
        "tax_mode": "inclusive",
        "lines": sale_lines,
        "subtotal_minor": total,
        "tax_minor": sum(line.tax_minor for line in sale_lines),
        "total_minor": total,
        "tenders": (Tender(kind="cash", amount_minor=total + 500, change_minor=500),),
    }
    data.update(over)
    return Sale(**data)
