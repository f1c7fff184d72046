"""Screenshots of the cashier's screen for the docs: ``python -m edge_agent.ui.screenshots``.

``make screenshots`` runs this offscreen (``QT_QPA_PLATFORM=offscreen``): it fills a throwaway
till database through the real feed path (``edge_agent.feed.apply_page``) with a small demo
catalogue and one customer, drives the real window (scans typed in by the simulated
keyboard-wedge scanner of :mod:`edge_agent.ui.keyboard_wedge`, buttons through the presenter),
and saves ``QWidget.grab()`` images:

- ``till-empty.png``: the till waiting for the first scan;
- ``till-mid-sale.png``: items scanned, a loyalty customer with their highlights, and the
  basket's suggestions;
- ``till-payment.png``: a split payment, the card part taken, cash being keyed;
- ``till-receipt.png``: the sale complete, the change, and the receipt choice;
- ``till-offline-fault.png``: HQ unreachable and the printer out of paper while the next sale
  goes on: the banner and the status bar say so, in words.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge_agent import feed
from edge_agent.config import TillSettings
from edge_agent.hq_client import HQClient
from edge_agent.printing.connections import PrinterStatus
from edge_agent.store import LocalStore
from edge_agent.till import Till
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_gtin, make_loyalty_number
from shared.catalogue import Product, Store
from shared.customer import CardItem, CustomerCard, CustomerIdentifierModel
from shared.recommendations import RecommendationList, RecommendedItem

__all__ = ["DEMO_LOYALTY", "demo_changes", "main", "render_screenshots"]

STORE_ID = "S001"
TILL_ID = "S001-T1"
DEMO_LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)
_SIZE = (1366, 768)  # the common till display

_PRODUCTS = (
    ("GRO-MILK", "Alpenhof Fresh Milk 1 l", "Alpenhof", "Grocery", 129, "7"),
    ("GRO-BREAD", "Backstube Rye Bread 500 g", "Backstube", "Grocery", 299, "7"),
    ("GRO-BUTTER", "Alpenhof Butter 250 g", "Alpenhof", "Grocery", 249, "7"),
    ("GRO-JAM", "Sonnhof Strawberry Jam 450 g", "Sonnhof", "Grocery", 349, "7"),
    ("GRO-COFFEE", "Hochland Coffee Beans 1 kg", "Hochland", "Grocery", 1299, "7"),
    ("APP-TSHIRT", "Nordkind Organic Cotton T-Shirt Navy", "Nordkind", "Apparel", 1999, "19"),
    ("APP-JEANS", "Nordkind Slim Jeans Indigo", "Nordkind", "Apparel", 5999, "19"),
    ("APP-BELT", "Nordkind Leather Belt Cognac", "Nordkind", "Apparel", 2999, "19"),
    ("APP-SOCKS", "Nordkind Sneaker Socks 3-Pack", "Nordkind", "Apparel", 999, "19"),
)
_ALSO_BOUGHT = {
    "GRO-BREAD": (("GRO-BUTTER", 0.9), ("GRO-JAM", 0.6)),
    "APP-TSHIRT": (("APP-JEANS", 0.7), ("APP-BELT", 0.5), ("APP-SOCKS", 0.2)),
    "GRO-COFFEE": (("GRO-MILK", 0.8),),
}


def demo_gtin(n: int) -> str:
    """The EAN-13 of demo product number ``n`` (1-based, in catalogue order)."""
    return make_gtin(f"400{n:09d}")


def upsert_change(entity: str, key: str, data: dict[str, Any]) -> dict[str, Any]:
    """One ``upsert`` row of the change feed."""
    return {"entity": entity, "key": key, "action": "upsert", "data": data}


def product_change(
    n: int, sku: str, name: str, brand: str, category: str, price: int, rate: str
) -> dict[str, Any]:
    """The feed row of demo product number ``n`` (its barcode is ``demo_gtin(n)``)."""
    product = Product(
        sku=sku,
        name=name,
        brand=brand,
        category=category,
        gtins=(demo_gtin(n).zfill(14),),
        price_minor=price,
        currency="EUR",
        tax_rate=Decimal(rate),
    )
    return upsert_change("product", sku, product.model_dump(mode="json"))


def demo_changes() -> list[dict[str, Any]]:
    """Feed changes for a small demo store: products, also-bought lists and one customer."""
    shop = Store(
        store_id=STORE_ID,
        name="Omnitill Demo Berlin",
        city="Berlin",
        currency="EUR",
        tax_mode="inclusive",
        timezone="Europe/Berlin",
        tills=(TILL_ID,),
    )
    changes = [upsert_change("store", STORE_ID, shop.model_dump(mode="json"))]
    for n, (sku, name, brand, category, price, rate) in enumerate(_PRODUCTS, start=1):
        changes.append(product_change(n, sku, name, brand, category, price, rate))
    for sku, partners in _ALSO_BOUGHT.items():
        rec = RecommendationList(
            kind="also_bought",
            key=sku,
            items=tuple(RecommendedItem(sku=p, score=s) for p, s in partners),
        )
        changes.append(
            upsert_change("recommendation", f"also_bought:{sku}", rec.model_dump(mode="json"))
        )
    card = CustomerCard(
        customer_id=uuid.UUID("5b0d7f5e-8d0c-4d8e-9a51-2f3d8e7d1c42"),
        first_name="Maria",
        last_name="Schmidt",
        identifiers=(
            CustomerIdentifierModel(kind="email", value="maria@example.com"),
            CustomerIdentifierModel(kind="loyalty", value=DEMO_LOYALTY),
        ),
        loyalty_points=1250,
        consents={"marketing_email": True, "marketing_sms": False},
        recently_viewed=(CardItem(sku="APP-JEANS", at=datetime(2026, 11, 20, 9, tzinfo=UTC)),),
        cart_items=(CardItem(sku="APP-BELT", price_minor=2999),),
        recent_purchases=(CardItem(sku="GRO-COFFEE", at=datetime(2026, 11, 14, 17, tzinfo=UTC)),),
    )
    changes.append(upsert_change("customer", str(card.customer_id), card.model_dump(mode="json")))
    return changes


class _EmptyRoll:
    """A receipt printer whose paper roll ran out (it answers, and refuses to print)."""

    def status(self) -> PrinterStatus:
        return PrinterStatus(online=False, paper_end=True)

    def send(self, data: bytes) -> None:
        raise AssertionError("nothing is sent to a printer without paper")

    def close(self) -> None:
        pass


def offline_demo_till(directory: Path) -> Till:
    """A demo till whose HQ does not answer (nothing listens on its port) and whose printer is
    out of paper; its workers are not started: ``run_once`` them."""
    directory.mkdir(parents=True, exist_ok=True)
    store = LocalStore.open(directory / "till.sqlite")
    feed.apply_page(store, demo_changes(), "demo-1")
    url = "http://127.0.0.1:9"  # the discard port: refused at once on loopback
    settings = TillSettings(
        db_path=directory / "till.sqlite",
        store_id=STORE_ID,
        till_id=TILL_ID,
        cashier_id="cashier-7",
        suggestions=3,
        server_url=url,
        token="demo-token-0123456789abcdef",
        request_timeout_s=1.0,
    )
    client = HQClient(url, "demo-token-0123456789abcdef", till_id=TILL_ID, timeout=1.0)
    return Till(
        settings=settings,
        store=store,
        client=client,
        own_store=True,
        own_client=True,
        printer_connection=_EmptyRoll,
    )


def demo_till(directory: Path) -> Till:
    """An offline till over a fresh demo database in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    store = LocalStore.open(directory / "till.sqlite")
    feed.apply_page(store, demo_changes(), "demo-1")
    settings = TillSettings(
        db_path=directory / "till.sqlite",
        store_id=STORE_ID,
        till_id=TILL_ID,
        cashier_id="cashier-7",
        suggestions=3,
    )
    return Till(settings=settings, store=store, client=None, own_store=True)


def render_screenshots(out: Path) -> list[Path]:
    """Save the till screenshots into ``out``; returns the files written."""
    # Imported here: the demo data above is useful without Qt (and without a display).
    from PySide6.QtWidgets import QApplication

    from edge_agent.ui.keyboard_wedge import ManualClock, wedge_scan
    from edge_agent.ui.main_window import TillWindow
    from edge_agent.ui.presenters import TillPresenter

    app = QApplication.instance() or QApplication([])
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def shoot(window: TillWindow, name: str) -> None:
        for _ in range(3):  # layouts settle over a few passes of the event loop
            app.processEvents()
        path = out / name
        window.grab().save(str(path))
        written.append(path)

    def opened(till: Till, clock: ManualClock) -> TillWindow:
        window = TillWindow(TillPresenter(till), clock_ms=clock, status_interval_ms=60_000)
        window.resize(*_SIZE)
        window.show()
        window.activateWindow()
        window.scan_field.setFocus()
        app.processEvents()
        return window

    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        with demo_till(Path(tmp) / "day") as till:
            window = opened(till, clock)
            presenter = window.presenter
            shoot(window, "till-empty.png")
            for code in (demo_gtin(6), DEMO_LOYALTY, demo_gtin(2), "CMD-QTY-2", demo_gtin(1)):
                wedge_scan(code, clock=clock)
            shoot(window, "till-mid-sale.png")
            presenter.show("payment")
            presenter.pay_card(2000, "TID-58213")
            window.amount.setText("10")
            shoot(window, "till-payment.png")
            window.payment_panel.pay_cash()
            shoot(window, "till-receipt.png")
            window.close()
        with offline_demo_till(Path(tmp) / "offline") as till:
            window = opened(till, clock)
            presenter = window.presenter
            for code in (demo_gtin(5), demo_gtin(1)):
                wedge_scan(code, clock=clock)
            presenter.pay_cash(2000)
            presenter.choose_receipt("print")
            for code in (demo_gtin(6), demo_gtin(7)):
                wedge_scan(code, clock=clock)
            # The faults are staged: their warnings would only clutter the command's output.
            logging.disable(logging.WARNING)
            try:
                till.sync.run_once()  # HQ does not answer
                assert till.printer is not None
                till.printer.run_once()  # the printer has no paper
            finally:
                logging.disable(logging.NOTSET)
            presenter.refresh_status()
            shoot(window, "till-offline-fault.png")
            window.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="output directory")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from edge_agent.ui.kiosk_screenshots import render_kiosk_screenshots  # it imports this module

    for path in [*render_screenshots(args.out), *render_kiosk_screenshots(args.out)]:
        print(path)  # noqa: T201 - a command-line script reports what it wrote
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
