"""What the till screen tests share: a customer with every highlight and the till's settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.config import TillSettings
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.customer import CardItem, CustomerCard, CustomerIdentifierModel
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)


def maria() -> CustomerCard:
    """A customer with every highlight the customer panel shows."""
    return f.make_card(
        identifiers=(
            CustomerIdentifierModel(kind="email", value="maria@example.com"),
            CustomerIdentifierModel(kind="loyalty", value=LOYALTY),
        ),
        loyalty_points=1250,
        consents={"marketing_email": True, "marketing_sms": False},
        recently_viewed=(CardItem(sku=f.JEANS.sku, at=datetime(2026, 11, 20, 9, tzinfo=UTC)),),
        cart_items=(CardItem(sku=f.BELT.sku, price_minor=2999),),
        recent_purchases=(CardItem(sku=f.COFFEE.sku, name="Hochland Coffee Beans 1 kg"),),
    )


def till_settings(tmp_path: Path, **over: Any) -> TillSettings:
    values: dict[str, Any] = {
        "db_path": tmp_path / "till.sqlite",
        "store_id": f.STORE_ID,
        "till_id": f.TILL_ID,
        "cashier_id": "cashier-7",
        "suggestions": 3,
    }
    values.update(over)
    return TillSettings(**values)
