"""What the till screen tests share: a customer with every highlight, the till's settings and
helpers to drive the window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton, QWidget
from pytestqt.qtbot import QtBot

from edge_agent.config import TillSettings
from edge_agent.ui.keyboard_wedge import ManualClock
from edge_agent.ui.main_window import TillWindow
from edge_agent.ui.presenters import TillPresenter
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


# -- the window ---------------------------------------------------------------------------------


def open_window(qtbot: QtBot, presenter: TillPresenter, clock: ManualClock) -> TillWindow:
    """A shown and active till window over ``presenter`` whose wedge detector reads ``clock``."""
    window = TillWindow(presenter, clock_ms=clock, status_interval_ms=60_000)
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    focus(qtbot, window.scan_field)
    return window


def focus(qtbot: QtBot, widget: QWidget) -> None:
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=1000)


def button(window: TillWindow, name: str) -> QPushButton:
    """The window's button called ``name`` (its object name)."""
    found = window.findChild(QPushButton, name)
    assert isinstance(found, QPushButton), name
    return found


def click(window: TillWindow, name: str) -> None:
    widget = button(window, name)
    assert widget.isVisible(), f"{name} is not on screen"
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def table_text(window: TillWindow) -> list[list[str]]:
    model = window.basket_model
    return [
        [str(model.data(model.index(r, c))) for c in range(model.columnCount())]
        for r in range(model.rowCount())
    ]
