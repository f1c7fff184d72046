"""The cashier's window driven through real widgets (pytest-qt, offscreen): keyboard-wedge scans
land in the basket whichever field has the focus, people's typing stays in its field, and a whole
cash sale runs through the buttons."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton, QWidget
from pytestqt.qtbot import QtBot

from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.main_window import TillWindow
from edge_agent.ui.presenters import TillPresenter
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import LOYALTY

SCANNER_MS = 3.0  # a wedge scanner: a character every few milliseconds
HUMAN_MS = 140.0  # a quick typist


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def window(qtbot: QtBot, till: Till, clock: FakeClock) -> Iterator[TillWindow]:
    shown = TillWindow(TillPresenter(till), clock_ms=clock, status_interval_ms=60_000)
    qtbot.addWidget(shown)
    shown.resize(1366, 768)
    shown.show()
    qtbot.waitExposed(shown)
    shown.activateWindow()
    yield shown
    shown.close()


def focus(qtbot: QtBot, widget: QWidget) -> None:
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=1000)


def type_keys(widget: QWidget, text: str, clock: FakeClock, step_ms: float) -> None:
    """Key clicks with the timing of a scanner or a person; ``\\r`` is the Enter key."""
    for char in text:
        clock.now += step_ms
        if char == "\r":
            QTest.keyClick(widget, Qt.Key.Key_Return)
        else:
            QTest.keyClicks(widget, char)


def wedge_scan(window: TillWindow, code: str, clock: FakeClock) -> None:
    target = window.focusWidget() or window
    clock.now += 500  # a pause before the trigger is pulled
    type_keys(target, code + "\r", clock, SCANNER_MS)


def button(window: TillWindow, name: str) -> QPushButton:
    found = window.findChild(QPushButton, name)
    assert isinstance(found, QPushButton), name
    return found


def table_text(window: TillWindow) -> list[list[str]]:
    model = window.basket_model
    return [
        [str(model.data(model.index(r, c))) for c in range(model.columnCount())]
        for r in range(model.rowCount())
    ]


def test_a_wedge_scan_into_the_search_field_lands_in_the_basket(
    qtbot: QtBot, window: TillWindow, clock: FakeClock
) -> None:
    focus(qtbot, window.search_field)
    assert f.MILK.ean and f.BREAD.ean
    wedge_scan(window, f.MILK.ean, clock)
    wedge_scan(window, f.BREAD.ean, clock)
    assert table_text(window) == [
        ["1", f.MILK.name, "€1.29", "€1.29", ""],
        ["1", f.BREAD.name, "€2.99", "€2.99", ""],
    ]
    assert window.search_field.text() == ""  # not one digit leaked into the focused field
    assert window.total.text() == "Total €4.28"
    assert window.message.text().startswith("Added 1 x Backstube Rye Bread")
    assert [b.property("sku") for b in window.suggestion_buttons][:1] == [f.BUTTER.sku]


def test_human_typing_in_the_search_field_stays_there(
    qtbot: QtBot, window: TillWindow, clock: FakeClock
) -> None:
    focus(qtbot, window.search_field)
    type_keys(window.search_field, "riesling", clock, HUMAN_MS)
    clock.now += 100
    qtbot.waitUntil(lambda: window.search_field.text() == "riesling", timeout=2000)
    assert window.basket_model.rowCount() == 0
    qtbot.waitUntil(lambda: window.search_results.count() == 1, timeout=2000)
    assert window.search_results.item(0).text().startswith(f.WINE.name)
    window.search_results.itemActivated.emit(window.search_results.item(0))
    assert table_text(window)[0][1] == f.WINE.name


def test_a_typed_barcode_in_the_scan_field_is_scanned_on_enter(
    qtbot: QtBot, window: TillWindow, clock: FakeClock
) -> None:
    focus(qtbot, window.scan_field)
    assert f.JAM.ean
    type_keys(window.scan_field, f.JAM.ean + "\r", clock, HUMAN_MS)
    assert table_text(window)[0][1] == f.JAM.name
    assert window.scan_field.text() == ""


def test_a_bad_scan_shows_an_error_in_words(
    qtbot: QtBot, window: TillWindow, clock: FakeClock
) -> None:
    focus(qtbot, window.scan_field)
    wedge_scan(window, "4006381333932", clock)
    assert window.message.text().startswith("Failed scan:")
    assert window.message.property("error") is True
    assert window.status_label.text().startswith("OFFLINE")


def test_a_whole_cash_sale_through_the_widgets(
    qtbot: QtBot, window: TillWindow, clock: FakeClock, store: LocalStore
) -> None:
    focus(qtbot, window.scan_field)
    assert f.TSHIRT.ean
    wedge_scan(window, LOYALTY, clock)
    wedge_scan(window, f.TSHIRT.ean, clock)
    assert "Maria Schmidt" in window.customer_label.text()
    assert "Left in online cart" in window.customer_label.text()

    jeans = next(b for b in window.suggestion_buttons if b.property("sku") == f.JEANS.sku)
    QTest.mouseClick(jeans, Qt.MouseButton.LeftButton)
    assert [row[1] for row in table_text(window)] == [f.TSHIRT.name, f.JEANS.name]
    assert window.total.text() == "Total €79.98"

    focus(qtbot, window.amount)
    type_keys(window.amount, "100", clock, HUMAN_MS)
    clock.now += 100
    qtbot.waitUntil(lambda: window.amount.text() == "100", timeout=2000)
    QTest.mouseClick(button(window, "pay_cash"), Qt.MouseButton.LeftButton)
    assert window.message.text().startswith("Sale complete S001-T1-000001")
    assert window.receipt_box.isVisible()
    assert window.receipt_summary.text().endswith("change €20.02")
    assert window.email_field.text() == "maria@example.com"
    assert table_text(window) == []

    window.consent.setChecked(True)
    QTest.mouseClick(button(window, "receipt_both"), Qt.MouseButton.LeftButton)
    assert not window.receipt_box.isVisible()
    assert window.message.text().startswith("Email of receipt S001-T1-000001 queued")
    ops = {
        row[0]: json.loads(row[1])
        for row in store.db.execute("SELECT type, payload FROM outbox").fetchall()
    }
    assert ops["event"]["kind"] == "suggestion_accepted" and ops["event"]["sku"] == f.JEANS.sku
    assert ops["sale"]["total_minor"] == 7998
    assert ops["receipt_email"]["consent_marketing"] is True
    assert "ops waiting to sync" in window.status_label.text()


def test_function_keys_pay_and_void(qtbot: QtBot, window: TillWindow, clock: FakeClock) -> None:
    focus(qtbot, window.scan_field)
    assert f.MILK.ean and f.BREAD.ean
    wedge_scan(window, f.MILK.ean, clock)
    wedge_scan(window, f.BREAD.ean, clock)
    QTest.keyClick(window.scan_field, Qt.Key.Key_F4)  # voids the last (selected) line
    assert [row[1] for row in table_text(window)] == [f.MILK.name]
    QTest.keyClick(window.scan_field, Qt.Key.Key_F7)
    assert window.message.text().startswith("Sale complete")
    QTest.keyClick(window.scan_field, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert not window.receipt_box.isVisible()
