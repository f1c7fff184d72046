"""The cashier's window driven through real widgets (pytest-qt, offscreen): keyboard-wedge scans
land in the basket whichever field has the focus, people's typing stays in its field, every panel
works from the keyboard and by touch, and the basket table updates in place."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from edge_agent import outbox
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.keyboard_wedge import (
    HUMAN_INTERVAL_MS,
    ManualClock,
    type_text,
    wedge_scan,
)
from edge_agent.ui.main_window import SHORTCUTS, TillWindow
from edge_agent.ui.presenters import TillPresenter
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import (
    LOYALTY,
    button,
    click,
    focus,
    open_window,
    table_text,
)


@pytest.fixture
def window(qtbot: QtBot, till: Till, clock: ManualClock) -> Iterator[TillWindow]:
    shown = open_window(qtbot, TillPresenter(till), clock)
    yield shown
    shown.close()


def scan(window: TillWindow, code: str, clock: ManualClock) -> None:
    """A wedge scanner's burst into whatever has the focus."""
    wedge_scan(code, clock=clock)


def key(window: TillWindow, key: Qt.Key, modifier: Qt.KeyboardModifier | None = None) -> None:
    target = window.focusWidget() or window
    if modifier is None:
        QTest.keyClick(target, key)
    else:
        QTest.keyClick(target, key, modifier)


def test_a_wedge_scan_into_the_search_field_lands_in_the_basket(
    qtbot: QtBot, window: TillWindow, clock: ManualClock
) -> None:
    focus(qtbot, window.search_field)
    assert f.MILK.ean and f.BREAD.ean
    scan(window, f.MILK.ean, clock)
    scan(window, f.BREAD.ean, clock)
    assert table_text(window) == [
        ["1", f.MILK.name, "€1.29", "€1.29", ""],
        ["1", f.BREAD.name, "€2.99", "€2.99", ""],
    ]
    assert window.search_field.text() == ""  # not one digit leaked into the focused field
    assert window.total.text() == "Total €4.28"
    assert window.message.text().startswith("Added 1 x Backstube Rye Bread")
    assert [b.property("sku") for b in window.suggestion_buttons][:1] == [f.BUTTER.sku]


def test_human_typing_in_the_search_field_stays_there(
    qtbot: QtBot, window: TillWindow, clock: ManualClock
) -> None:
    focus(qtbot, window.search_field)
    type_text("riesling", clock=clock)
    clock.advance(100)
    qtbot.waitUntil(lambda: window.search_field.text() == "riesling", timeout=2000)
    assert window.basket_model.rowCount() == 0
    qtbot.waitUntil(lambda: window.search_results.count() == 1, timeout=2000)
    assert window.search_results.item(0).text().startswith(f.WINE.name)
    QTest.keyClick(window.search_field, Qt.Key.Key_Return)  # Enter adds the first result
    assert table_text(window)[0][1] == f.WINE.name
    assert window.search_field.text() == "" and window.scan_field.hasFocus()


def test_a_typed_barcode_in_the_scan_field_is_scanned_on_enter(
    qtbot: QtBot, window: TillWindow, clock: ManualClock
) -> None:
    assert f.JAM.ean
    type_text(f.JAM.ean + "\r", clock=clock, interval_ms=HUMAN_INTERVAL_MS)
    assert table_text(window)[0][1] == f.JAM.name
    assert window.scan_field.text() == ""


def test_a_bad_scan_shows_an_error_in_words(window: TillWindow, clock: ManualClock) -> None:
    scan(window, "4006381333932", clock)
    assert window.message.text().startswith("Failed scan:")
    assert window.message.property("error") is True
    assert window.status_text().startswith("OFFLINE: no HQ configured")
    assert window.status_parts[0].property("fault") is True


def test_a_whole_cash_sale_through_the_widgets(
    qtbot: QtBot, window: TillWindow, clock: ManualClock, store: LocalStore
) -> None:
    assert f.TSHIRT.ean
    scan(window, LOYALTY, clock)
    scan(window, f.TSHIRT.ean, clock)
    assert window.sale_panel.customer_box.title() == "Customer: Maria Schmidt"
    assert "Left in online cart" in window.customer_label.text()

    jeans = next(b for b in window.suggestion_buttons if b.property("sku") == f.JEANS.sku)
    QTest.mouseClick(jeans, Qt.MouseButton.LeftButton)
    assert [row[1] for row in table_text(window)] == [f.TSHIRT.name, f.JEANS.name]
    assert window.total.text() == "Total €79.98"

    key(window, Qt.Key.Key_F3)
    assert window.pages.currentWidget() is window.payment_panel
    assert window.amount.hasFocus()
    assert window.payment_panel.due.text() == "Due €79.98"
    type_text("100", clock=clock)
    clock.advance(100)
    qtbot.waitUntil(lambda: window.amount.text() == "100", timeout=2000)
    click(window, "pay_cash")
    assert window.message.text().startswith("Sale complete S001-T1-000001")
    assert window.pages.currentWidget() is window.receipt_box
    assert window.receipt_panel.change.text() == "Change €20.02"
    assert window.receipt_summary.text().endswith("change €20.02")
    assert window.email_field.text() == "maria@example.com"
    assert table_text(window) == []

    window.consent.setChecked(True)
    click(window, "receipt_both")
    assert window.pages.currentWidget() is window.sale_panel
    assert window.message.text().startswith("Email of receipt S001-T1-000001 queued")
    ops = {
        row[0]: json.loads(row[1])
        for row in store.db.execute("SELECT type, payload FROM outbox").fetchall()
    }
    assert ops["event"]["kind"] == "suggestion_accepted" and ops["event"]["sku"] == f.JEANS.sku
    assert ops["sale"]["total_minor"] == 7998
    assert ops["receipt_email"]["consent_marketing"] is True
    assert "ops waiting to sync" in window.status_text()


def test_function_keys_pay_and_void(window: TillWindow, clock: ManualClock) -> None:
    assert f.MILK.ean and f.BREAD.ean
    scan(window, f.MILK.ean, clock)
    scan(window, f.BREAD.ean, clock)
    key(window, Qt.Key.Key_F4)  # voids the last line (nothing selected)
    assert [row[1] for row in table_text(window)] == [f.MILK.name]
    key(window, Qt.Key.Key_F7)
    assert window.message.text().startswith("Sale complete")
    key(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.pages.currentWidget() is window.sale_panel
    assert window.message.text().startswith("No paper receipt for S001-T1-000001")


def test_quantity_and_a_discount_with_a_reason_from_the_keyboard(
    qtbot: QtBot, window: TillWindow, clock: ManualClock
) -> None:
    assert f.COFFEE.ean and f.MILK.ean
    scan(window, f.COFFEE.ean, clock)
    scan(window, f.MILK.ean, clock)
    window.basket.selectRow(0)
    window.quantity.setValue(2)
    key(window, Qt.Key.Key_F5)
    assert table_text(window)[0][:4] == ["2", f.COFFEE.name, "€12.99", "€25.98"]

    key(window, Qt.Key.Key_F6)
    panel = window.discount_panel
    assert window.pages.currentWidget() is panel and panel.value.hasFocus()
    assert panel.on_line.text() == f"Line: 2 x {f.COFFEE.name}"
    type_text("10\r", clock=clock)  # no reason yet: refused, the panel stays
    qtbot.waitUntil(lambda: window.message.property("error") is True, timeout=2000)
    assert window.message.text() == "Refused: a discount needs a reason: pick one or type it"
    assert window.pages.currentWidget() is panel
    panel.reason.setCurrentText("Damaged packaging")
    click(window, "discount_apply")
    assert table_text(window)[0] == [
        "2",
        f.COFFEE.name,
        "€12.99",
        "€23.38",
        "-€2.60 Damaged packaging",
    ]
    assert window.pages.currentWidget() is window.sale_panel

    key(window, Qt.Key.Key_F6)
    panel.on_basket.setChecked(True)
    panel.amount_off.setChecked(True)
    panel.reason.setCurrentText("Price match")
    type_text("1\r", clock=clock)
    qtbot.waitUntil(lambda: window.total.text() == "Total €23.67", timeout=2000)


def test_an_open_price_item_by_touch(window: TillWindow) -> None:
    click(window, "key_open_price")
    panel = window.open_price_panel
    assert window.pages.currentWidget() is panel and panel.name.hasFocus()
    assert [panel.rate.itemText(i) for i in range(panel.rate.count())] == ["19", "7"]
    panel.name.setText("Gift wrap")
    panel.price.setText("2.50")
    panel.rate.setCurrentText("19")
    click(window, "open_add")
    assert table_text(window) == [["1", "Gift wrap", "€2.50", "€2.50", ""]]


def test_park_and_resume_from_the_list(window: TillWindow, clock: ManualClock) -> None:
    assert f.MILK.ean and f.BREAD.ean
    scan(window, f.MILK.ean, clock)
    click(window, "key_parked")
    window.parked_panel.label.setText("Mrs Weber")
    click(window, "park_now")
    assert table_text(window) == []
    scan(window, f.BREAD.ean, clock)
    key(window, Qt.Key.Key_F9)  # parks with no label
    key(window, Qt.Key.Key_F10)
    listing = window.parked_panel.parked
    assert window.pages.currentWidget() is window.parked_panel and listing.count() == 2
    texts = [listing.item(i).text() for i in range(2)]
    row = next(i for i, text in enumerate(texts) if "Mrs Weber" in text)
    listing.setCurrentRow(row)
    click(window, "resume_selected")
    assert [r[1] for r in table_text(window)] == [f.MILK.name]
    assert window.pages.currentWidget() is window.sale_panel


def test_a_return_from_the_receipt_barcode_refunded_with_f8(
    window: TillWindow, clock: ManualClock
) -> None:
    assert f.WINE.ean
    scan(window, f.WINE.ean, clock)
    key(window, Qt.Key.Key_F8)
    key(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    scan(window, "RS001-T1-000001", clock)  # the barcode printed on the receipt
    panel = window.return_panel
    assert window.pages.currentWidget() is panel
    assert panel.refund.text() == "Refund €8.99"
    assert f.WINE.name in panel.lines.text()
    key(window, Qt.Key.Key_F8)
    assert window.message.text().startswith("Return complete")
    assert window.pages.currentWidget() is window.sale_panel


def test_reports_from_the_keyboard_and_escape(window: TillWindow) -> None:
    key(window, Qt.Key.Key_X, Qt.KeyboardModifier.AltModifier)
    panel = window.reports_panel
    assert window.pages.currentWidget() is panel
    assert "X report" in panel.report.text() and "Cash expected in drawer" in panel.report.text()
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.AltModifier)
    assert button(window, "z_report").text().startswith("CONFIRM")
    key(window, Qt.Key.Key_Escape)
    assert window.pages.currentWidget() is window.sale_panel and window.scan_field.hasFocus()
    assert not window.presenter.z_armed


def test_every_shortcut_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "till.md").read_text(encoding="utf-8")
    for keys in SHORTCUTS:
        assert f"`{keys}`" in doc, keys


def test_the_basket_table_updates_in_place(window: TillWindow, clock: ManualClock) -> None:
    model = window.basket_model
    seen: list[str] = []
    model.modelReset.connect(lambda: seen.append("reset"))
    model.rowsInserted.connect(lambda _p, first, last: seen.append(f"insert {first}-{last}"))
    model.rowsRemoved.connect(lambda _p, first, last: seen.append(f"remove {first}-{last}"))

    def changed(top: QModelIndex, bottom: QModelIndex) -> None:
        seen.append(f"change {top.row()}-{bottom.row()}")

    model.dataChanged.connect(changed)
    assert f.MILK.ean and f.BREAD.ean and f.JAM.ean
    for code in (f.MILK.ean, f.BREAD.ean, f.JAM.ean):
        scan(window, code, clock)
    scan(window, f.BREAD.ean, clock)  # a second bread: its row changes, nothing else
    window.presenter.void(window.presenter.rows[0].line_no)
    assert seen == ["insert 0-0", "insert 1-1", "insert 2-2", "change 1-1", "remove 0-0"]
    assert [r[0] for r in table_text(window)] == ["2", "1"]


def test_a_status_change_on_another_thread_reaches_the_status_bar(
    qtbot: QtBot, window: TillWindow, till: Till, store: LocalStore
) -> None:
    assert window.status_parts[1].text() == "all sent"
    with store.transaction() as db:  # an op the window was not told about
        outbox.enqueue(db, "event", {"kind": "test"})
    qtbot.wait(50)
    assert window.status_parts[1].text() == "all sent"  # no timer runs in this test
    # The sync worker reports from its own thread after a cycle; the window re-reads its
    # status on the UI thread at once.
    cycle = threading.Thread(target=till.sync.run_once)
    cycle.start()
    cycle.join()
    qtbot.waitUntil(lambda: window.status_parts[1].text() == "1 op waiting to sync", timeout=2000)


def test_a_wedge_scan_with_the_email_field_focused_starts_the_next_sale(
    window: TillWindow, clock: ManualClock
) -> None:
    assert f.MILK.ean and f.BREAD.ean
    scan(window, LOYALTY, clock)
    scan(window, f.MILK.ean, clock)
    key(window, Qt.Key.Key_F7)
    assert window.pages.currentWidget() is window.receipt_box
    assert window.email_field.hasFocus() and window.email_field.text() == "maria@example.com"
    scan(window, f.BREAD.ean, clock)  # the next customer's first item, scanned at once
    assert window.email_field.text() == "maria@example.com"  # not one digit leaked into it
    assert [row[1] for row in table_text(window)] == [f.BREAD.name]
    assert window.pages.currentWidget() is window.sale_panel
