"""The kiosk window driven through its real widgets (pytest-qt, offscreen) over a real local
cache: wedge scans of products and cards, the touch keyboard, the inactivity timeout, the PIN
that alone leaves kiosk mode, and a serial scanner on its own thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QPushButton
from pytestqt.qtbot import QtBot

from edge_agent.kiosk import KioskPresenter
from edge_agent.scanner import scanner_from_url
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.kiosk import ItemButton, KioskWindow, run_kiosk
from hardware_sim.scanner import ScannerSimulator
from tests.edge_agent import factories as f
from tests.edge_agent.kiosk_support import (
    LOYALTY,
    PERSONAL,
    PIN,
    PRIVATE,
    FakeClock,
    build_kiosk_template,
    kiosk_settings,
)
from tests.edge_agent.ui.support import till_settings

SCANNER_MS = 3.0  # a wedge scanner: a character every few milliseconds
HUMAN_MS = 140.0  # a quick typist


@pytest.fixture(scope="module")
def kiosk_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_kiosk_template(tmp_path_factory.mktemp("kiosk-ui"))


@pytest.fixture
def kiosk_till(kiosk_template: Path, tmp_path: Path) -> Iterator[Till]:
    local: LocalStore = f.store_from_template(kiosk_template, tmp_path)
    with Till(settings=till_settings(tmp_path), store=local, client=None, own_store=True) as t:
        yield t


@pytest.fixture
def key_clock() -> FakeClock:
    return FakeClock(10_000.0)


def make_window(
    qtbot: QtBot,
    till: Till,
    key_clock: FakeClock,
    *,
    kiosk_mode: bool = False,
    tick_ms: int = 20,
    **settings: float,
) -> KioskWindow:
    presenter = KioskPresenter(till, kiosk_settings(**settings))
    window = KioskWindow(presenter, kiosk_mode=kiosk_mode, clock_ms=key_clock, tick_ms=tick_ms)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def window(qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock) -> Iterator[KioskWindow]:
    shown = make_window(qtbot, kiosk_till, key_clock)
    yield shown
    shown.presenter.exit_requested = True
    shown.close()
    shown.presenter.close()


def type_keys(window: KioskWindow, text: str, clock: FakeClock, step_ms: float) -> None:
    """Key presses with a scanner's or a person's timing; ``\\r`` is the Enter key."""
    for char in text:
        clock.now += step_ms
        if char == "\r":
            QTest.keyClick(window, Qt.Key.Key_Return)
        else:
            QTest.keyClicks(window, char)


def wedge_scan(window: KioskWindow, code: str, clock: FakeClock) -> None:
    clock.now += 500  # a pause before the trigger is pulled
    type_keys(window, code + "\r", clock, SCANNER_MS)


def button(window: KioskWindow, name: str) -> QPushButton:
    found = window.findChild(QPushButton, name)
    assert isinstance(found, QPushButton), name
    return found


def shown_items(buttons: list[ItemButton]) -> list[tuple[str, str]]:
    return [(b.name_label.text(), b.price_label.text()) for b in buttons if b.isVisible()]


def shown_text(window: KioskWindow) -> str:
    """Every text a shopper can see on the window now."""
    labels = [w.text() for w in window.findChildren(QLabel) if w.isVisible()]
    buttons = [w.text() for w in window.findChildren(QPushButton) if w.isVisible()]
    return "\n".join(labels + buttons)


def test_idle_shows_the_bestseller_slides(window: KioskWindow) -> None:
    assert window.stack.currentWidget() is window.pages["idle"]
    assert window.slide_title.text() == "Bestsellers in this store"
    assert shown_items(window.slide_items) == [(f.TSHIRT.name, "€19.99")]
    assert window.slide_position.text() == "Slide 1 of 3"
    assert "Scan a barcode to check its price" in shown_text(window)


def test_idle_shows_trending_now_after_the_bestsellers(
    qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock
) -> None:
    f.apply(
        kiosk_till.store,
        [f.recommendation_change("trending", "*/*", [(f.WINE.sku, 2.0), (f.BELT.sku, 1.0)])],
    )
    shown = make_window(qtbot, kiosk_till, key_clock, slide_interval_s=0.3)
    try:
        qtbot.waitUntil(lambda: shown.slide_title.text() == "Trending now", timeout=3000)
        assert shown_items(shown.slide_items) == [(f.WINE.name, "€8.99"), (f.BELT.name, "€29.99")]
        assert shown.slide_position.text() == "Slide 2 of 4"
    finally:
        shown.close()
        shown.presenter.close()


def test_a_wedge_scan_shows_the_price_and_also_bought(
    window: KioskWindow, key_clock: FakeClock
) -> None:
    assert f.BREAD.ean is not None
    wedge_scan(window, f.BREAD.ean, key_clock)
    assert window.stack.currentWidget() is window.pages["product"]
    assert window.product_name.text() == f.BREAD.name
    assert window.price.text() == "€2.99"
    assert window.related_title.text() == "Customers who bought this also bought"
    assert shown_items(window.related_items) == [
        (f.BUTTER.name, "€2.49"),
        (f.JAM.name, "€3.49"),
        (f.MILK.name, "€1.29"),
    ]
    # Touch an also-bought item: its own price check.
    QTest.mouseClick(window.related_items[1], Qt.MouseButton.LeftButton)
    assert window.product_name.text() == f.JAM.name and window.price.text() == "€3.49"
    QTest.mouseClick(button(window, "product_done"), Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["idle"]


def test_a_person_typing_digits_is_not_a_scan(window: KioskWindow, key_clock: FakeClock) -> None:
    assert f.BREAD.ean is not None
    type_keys(window, f.BREAD.ean + "\r", key_clock, HUMAN_MS)
    window.flush_now()
    assert window.presenter.screen == "idle"


def test_a_wedge_scanned_card_greets_by_first_name_only(
    window: KioskWindow, key_clock: FakeClock
) -> None:
    wedge_scan(window, LOYALTY, key_clock)
    assert window.stack.currentWidget() is window.pages["personal"]
    assert window.personal_greeting.text() == "Hello, Maria!"
    assert window.personal_title.text() == "Picked for you"
    assert [sku for sku in (b.sku for b in window.personal_items) if sku] == list(PERSONAL)
    assert shown_items(window.personal_items)[0] == (f.SOCKS.name, "€9.99")
    text = shown_text(window)
    for private in PRIVATE:
        assert private not in text, private
    # A product scanned with the card on: the header keeps the greeting.
    assert f.TSHIRT.ean is not None
    wedge_scan(window, f.TSHIRT.ean, key_clock)
    assert window.greeting_label.text() == "Hello, Maria"
    QTest.mouseClick(button(window, "product_done"), Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["personal"]
    QTest.mouseClick(button(window, "personal_done"), Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["idle"]
    assert "Maria" not in shown_text(window)


def test_touch_keyboard_search_ranked_by_the_personal_list(
    window: KioskWindow, key_clock: FakeClock
) -> None:
    wedge_scan(window, LOYALTY, key_clock)
    QTest.mouseClick(button(window, "personal_search"), Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["search"]
    for key in "NORD":
        QTest.mouseClick(window.keys[key], Qt.MouseButton.LeftButton)
    assert window.query_label.text() == "Search: nord_"
    results = [b for b in window.search_items if b.isVisible()]
    assert [b.sku for b in results[:2]] == [f.SOCKS.sku, f.BELT.sku]
    assert results[0].note_label.text() == "Picked for Maria"
    QTest.mouseClick(button(window, "key_delete"), Qt.MouseButton.LeftButton)
    assert window.query_label.text() == "Search: nor_"
    QTest.mouseClick(results[1], Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.pages["product"]
    assert window.product_name.text() == f.BELT.name and window.price.text() == "€29.99"


def test_a_keyboard_person_types_into_the_search_and_a_scan_still_scans(
    window: KioskWindow, key_clock: FakeClock
) -> None:
    QTest.mouseClick(button(window, "search"), Qt.MouseButton.LeftButton)
    type_keys(window, "alpen", key_clock, HUMAN_MS)
    window.flush_now()
    assert window.presenter.search.query == "alpen"
    assert {b.sku for b in window.search_items if b.isVisible()} == {f.MILK.sku, f.BUTTER.sku}
    assert f.COFFEE.ean is not None
    wedge_scan(window, f.COFFEE.ean, key_clock)
    assert window.presenter.search.query == "alpen"  # the burst did not land in the query
    assert window.product_name.text() == f.COFFEE.name


def test_a_malformed_code_shows_a_friendly_message_then_goes_back(
    qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock
) -> None:
    shown = make_window(qtbot, kiosk_till, key_clock, notice_s=0.3)
    try:
        wedge_scan(shown, "40012345", key_clock)  # eight digits, wrong check digit
        assert shown.stack.currentWidget() is shown.pages["notice"]
        assert shown.notice_title.text() == "Sorry, we could not read that code"
        assert "Please scan it again" in shown.notice_text.text()
        qtbot.waitUntil(lambda: shown.stack.currentWidget() is shown.pages["idle"], timeout=3000)
    finally:
        shown.close()
        shown.presenter.close()


def test_inactivity_goes_back_to_idle_and_forgets_the_card(
    qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock
) -> None:
    shown = make_window(qtbot, kiosk_till, key_clock, idle_timeout_s=0.4)
    try:
        wedge_scan(shown, LOYALTY, key_clock)
        assert shown.personal_greeting.text() == "Hello, Maria!"
        qtbot.waitUntil(lambda: shown.stack.currentWidget() is shown.pages["idle"], timeout=3000)
        assert shown.greeting_label.text() == "" and shown.presenter.customer is None
        assert "Maria" not in shown_text(shown)
    finally:
        shown.close()
        shown.presenter.close()


def test_kiosk_mode_leaves_only_with_the_admin_pin(
    qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock
) -> None:
    shown = make_window(qtbot, kiosk_till, key_clock, kiosk_mode=True)
    try:
        assert shown.windowFlags() & Qt.WindowType.FramelessWindowHint
        assert shown.cursor().shape() == Qt.CursorShape.BlankCursor
        shown.close()  # Alt+F4, the window manager: refused, the PIN pad opens
        assert shown.isVisible()
        assert shown.stack.currentWidget() is shown.pages["pin"]
        for digit in "1357":
            QTest.mouseClick(shown.pin_keys[digit], Qt.MouseButton.LeftButton)
        assert shown.pin_display.text() == "* * * *"
        QTest.mouseClick(button(shown, "pin_ok"), Qt.MouseButton.LeftButton)
        qtbot.wait(50)
        assert shown.isVisible() and shown.pin_message.text() == "Wrong PIN"
        assert shown.pin_display.text() == ""
        QTest.mouseClick(button(shown, "pin_cancel"), Qt.MouseButton.LeftButton)
        assert shown.stack.currentWidget() is shown.pages["idle"]
        QTest.mouseClick(shown.staff_button, Qt.MouseButton.LeftButton)
        for digit in PIN:
            QTest.mouseClick(shown.pin_keys[digit], Qt.MouseButton.LeftButton)
        QTest.mouseClick(button(shown, "pin_ok"), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not shown.isVisible(), timeout=3000)
    finally:
        shown.presenter.exit_requested = True
        shown.close()
        shown.presenter.close()


def test_a_staff_keyboard_opens_the_pin_pad_and_types_the_pin(
    qtbot: QtBot, kiosk_till: Till, key_clock: FakeClock
) -> None:
    shown = make_window(qtbot, kiosk_till, key_clock, kiosk_mode=True)
    try:
        QTest.keyClick(
            shown,
            Qt.Key.Key_Q,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
        assert shown.presenter.screen == "pin"
        type_keys(shown, PIN + "\r", key_clock, HUMAN_MS)
        qtbot.waitUntil(lambda: not shown.isVisible(), timeout=3000)
    finally:
        shown.presenter.exit_requested = True
        shown.close()
        shown.presenter.close()


def test_run_kiosk_reads_a_serial_scanner_off_the_ui_thread(kiosk_till: Till) -> None:
    """``run_kiosk`` end to end: a code from the serial scanner simulator (a pty) reaches the
    window through the scanner thread; the admin PIN ends the event loop."""
    seen: dict[str, object] = {}
    with ScannerSimulator(suffix="CR") as sim:
        scanner = scanner_from_url(f"serial://{sim.device}?suffix=CR")
        assert f.JEANS.ean is not None
        ean = f.JEANS.ean

        def send() -> None:
            try:
                sim.send(ean, timeout=10)
            except Exception as exc:  # reported to the test through ``seen``
                seen["send_error"] = exc

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        windows: list[KioskWindow] = []
        started = QTimer()

        def watch() -> None:
            if not windows:
                windows.extend(
                    w for w in QApplication.topLevelWidgets() if isinstance(w, KioskWindow)
                )
                if not windows:
                    return
            shown = windows[0]
            presenter = shown.presenter
            if presenter.screen == "product" or started.remainingTime() < 0:
                seen["price"] = shown.price.text()
                seen["fullscreen"] = shown.isFullScreen()
                presenter.open_pin()
                for digit in PIN:
                    presenter.pin_digit(digit)
                presenter.submit_pin()

        poll = QTimer()
        poll.timeout.connect(watch)
        poll.start(20)
        started.setSingleShot(True)
        started.start(8000)  # give up (and leave by the PIN) after this long
        try:
            code = run_kiosk(kiosk_till, kiosk_settings(), scanner)
        finally:
            poll.stop()
        sender.join(5)
    assert code == 0
    assert "send_error" not in seen, seen.get("send_error")
    assert seen["price"] == "€59.99"
    assert seen["fullscreen"] is True


def test_screenshots_render_the_three_kiosk_screens(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    from edge_agent.ui.kiosk_screenshots import KIOSK_SIZE, render_kiosk_screenshots

    written = render_kiosk_screenshots(tmp_path)
    assert [p.name for p in written] == ["kiosk-idle.png", "kiosk-price.png", "kiosk-personal.png"]
    for path in written:
        image = QImage(str(path))
        assert (image.width(), image.height()) == KIOSK_SIZE, path.name
