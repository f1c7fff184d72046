"""Screenshots of the in-store kiosk for the docs (``make screenshots`` runs them with the till's).

The demo store of ``edge_agent.ui.screenshots`` (filled through the real feed path), plus what a
kiosk shows: a few more products, product descriptions, the store's bestsellers per category
and Maria's personal list. The real kiosk window is driven through its presenter at 1920x1080,
a common kiosk display, and saved with ``QWidget.grab()``:

- ``kiosk-idle.png``: the bestseller slides, waiting for a shopper;
- ``kiosk-price.png``: a scanned T-shirt, its price and what others bought with it;
- ``kiosk-personal.png``: Maria's loyalty card scanned: her first name and her picks.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge_agent import feed
from edge_agent.kiosk import KioskSettings
from edge_agent.ui.screenshots import (
    DEMO_LOYALTY,
    STORE_ID,
    demo_gtin,
    demo_till,
    product_change,
    upsert_change,
)
from shared.catalogue import Product
from shared.recommendations import RecommendationList, RecommendedItem

__all__ = ["KIOSK_SIZE", "kiosk_changes", "render_kiosk_screenshots"]

KIOSK_SIZE = (1920, 1080)
_MARIA = "5b0d7f5e-8d0c-4d8e-9a51-2f3d8e7d1c42"  # the demo customer of edge_agent.ui.screenshots

# (sku, name, brand, category, price, tax rate, description); numbered on from the demo's 9.
_MORE = (
    ("GRO-HONEY", "Sonnhof Blossom Honey 500 g", "Sonnhof", "Grocery", 599, "7", ""),
    ("GRO-TEA", "Hochland Black Tea 20 Bags", "Hochland", "Grocery", 349, "7", ""),
    ("APP-CAP", "Nordkind Baseball Cap Navy", "Nordkind", "Apparel", 1799, "19", ""),
    ("APP-HOODIE", "Nordkind Hoodie Grey Melange", "Nordkind", "Apparel", 4999, "19", ""),
)
_DESCRIPTIONS = {
    "APP-TSHIRT": "100% organic cotton, regular fit, sizes XS to XXL",
}
_BESTSELLERS = {
    "*": ("GRO-COFFEE", "APP-TSHIRT", "GRO-BREAD", "APP-JEANS", "GRO-MILK"),
    "Grocery": ("GRO-COFFEE", "GRO-BREAD", "GRO-MILK", "GRO-HONEY", "GRO-JAM"),
    "Apparel": ("APP-TSHIRT", "APP-JEANS", "APP-HOODIE", "APP-SOCKS", "APP-CAP"),
}
_PERSONAL = ("APP-HOODIE", "APP-JEANS", "APP-CAP", "GRO-HONEY", "GRO-TEA", "APP-SOCKS")


def _list(kind: str, key: str, skus: tuple[str, ...]) -> dict[str, Any]:
    items = tuple(RecommendedItem(sku=s, score=float(len(skus) - n)) for n, s in enumerate(skus))
    rec = RecommendationList(kind=kind, key=key, items=items)
    return upsert_change("recommendation", f"{kind}:{key}", rec.model_dump(mode="json"))


def kiosk_changes() -> list[dict[str, Any]]:
    """Feed changes a kiosk adds to the demo store: products, descriptions, lists."""
    changes: list[dict[str, Any]] = []
    for n, (sku, name, brand, category, price, rate, _) in enumerate(_MORE, start=10):
        changes.append(product_change(n, sku, name, brand, category, price, rate))
    tshirt = Product(
        sku="APP-TSHIRT",
        name="Nordkind Organic Cotton T-Shirt Navy",
        brand="Nordkind",
        category="Apparel",
        gtins=(demo_gtin(6).zfill(14),),
        price_minor=1999,
        currency="EUR",
        tax_rate=Decimal("19"),
        attributes={"description": _DESCRIPTIONS["APP-TSHIRT"]},
    )
    changes.append(upsert_change("product", tshirt.sku, tshirt.model_dump(mode="json")))
    for category, skus in _BESTSELLERS.items():
        changes.append(_list("bestsellers", f"{STORE_ID}/{category}", skus))
    changes.append(_list("personal", _MARIA, _PERSONAL))
    return changes


def render_kiosk_screenshots(out: Path) -> list[Path]:
    """Save the kiosk screenshots into ``out``; returns the files written."""
    from PySide6.QtWidgets import QApplication

    from edge_agent.kiosk import KioskPresenter
    from edge_agent.ui.kiosk import KioskWindow

    app = QApplication.instance() or QApplication([])
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp, demo_till(Path(tmp)) as till:
        feed.apply_page(till.store, kiosk_changes(), "demo-kiosk")
        # Long timeouts: nothing may move on while the pictures are taken.
        settings = KioskSettings(idle_timeout_s=3600, slide_interval_s=600, notice_s=120)
        presenter = KioskPresenter(till, settings)
        window = KioskWindow(presenter, kiosk_mode=False, tick_ms=60_000)
        window.resize(*KIOSK_SIZE)
        window.show()

        def save(name: str) -> None:
            app.processEvents()
            path = out / name
            window.grab().save(str(path))
            written.append(path)

        save("kiosk-idle.png")
        presenter.scan(demo_gtin(6))  # the T-shirt
        save("kiosk-price.png")
        presenter.scan(DEMO_LOYALTY)
        save("kiosk-personal.png")
        window.close()
        presenter.close()
    return written
