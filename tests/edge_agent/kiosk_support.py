"""What the kiosk tests share: a local cache as HQ's feed fills it for a kiosk (the grocery
catalogue, bestsellers per category, a loyalty customer and her personal list), a fake clock and
a cheap PIN hash."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge_agent.kiosk import KioskSettings, hash_pin
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.catalogue import Product
from shared.customer import CardItem, CustomerIdentifierModel
from tests.edge_agent import factories as f

LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)
#: A card the kiosk cache does not hold (valid prefix, length and Luhn digit).
STRANGER = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 777)
MARIA_ID = uuid.UUID("5b0d7f5e-8d0c-4d8e-9a51-2f3d8e7d1c42")
#: Maria's personal list from HQ, best first.
PERSONAL = (f.SOCKS.sku, f.BELT.sku, f.COFFEE.sku)
#: A product with a description attribute.
TEA_SKU = "GRO-TEA"
TEA_EAN = f.gtin(20)
TEA_DESCRIPTION = "Twenty bags of strong black tea from Assam"
PIN = "2468"
#: Few iterations keep the tests fast; the format and the check are the real ones.
PIN_HASH = hash_pin(PIN, iterations=1000)
#: Personal data of Maria that a public kiosk must never show.
PRIVATE = ("Schmidt", "maria@example.com", "1250", LOYALTY, "Viewed online", "cart")


def maria() -> Any:
    return f.make_card(
        customer_id=MARIA_ID,
        identifiers=(
            CustomerIdentifierModel(kind="email", value="maria@example.com"),
            CustomerIdentifierModel(kind="loyalty", value=LOYALTY),
        ),
        loyalty_points=1250,
        recently_viewed=(CardItem(sku=f.JEANS.sku),),
        cart_items=(CardItem(sku=f.BELT.sku, price_minor=2999),),
    )


def kiosk_changes() -> list[f.Change]:
    tea = Product(
        sku=TEA_SKU,
        name="Hochland Black Tea 20 Bags",
        brand="Hochland",
        category="Grocery",
        gtins=(f.gtin14(TEA_EAN),),
        price_minor=349,
        currency="EUR",
        tax_rate=Decimal("7"),
        attributes={"description": TEA_DESCRIPTION},
    )
    return [
        *f.grocery_changes(),
        {
            "entity": "product",
            "key": TEA_SKU,
            "action": "upsert",
            "data": tea.model_dump(mode="json"),
        },
        f.customer_change(maria()),
        f.recommendation_change(
            "personal", str(MARIA_ID), [(s, 3.0 - n) for n, s in enumerate(PERSONAL)]
        ),
        f.recommendation_change(
            "bestsellers",
            f"{f.STORE_ID}/Apparel",
            [(f.JEANS.sku, 9.0), (f.TSHIRT.sku, 7.0), (f.SOCKS.sku, 2.0)],
        ),
    ]


def build_kiosk_template(directory: Path) -> Path:
    return f.build_template(directory, kiosk_changes())


class FakeClock:
    """Monotonic seconds (or milliseconds) that only move when a test moves them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def kiosk_settings(**over: Any) -> KioskSettings:
    values: dict[str, Any] = {
        "pin_hash": PIN_HASH,
        "idle_timeout_s": 30.0,
        "slide_interval_s": 8.0,
        "notice_s": 4.0,
        "lookup_timeout_s": 2.0,
        "pin_attempts": 3,
        "pin_lockout_s": 60.0,
    }
    values.update(over)
    return KioskSettings(**values)
