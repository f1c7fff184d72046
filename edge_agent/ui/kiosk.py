"""The in-store kiosk's window: thin Qt widgets over :class:`~edge_agent.kiosk.KioskPresenter`.

The widgets hold no kiosk logic: each touch calls one presenter action, one presenter listener
repaints the current page, and a timer calls :meth:`KioskPresenter.tick` (timeouts, slides,
HQ's answer about a card). What lives here is what only Qt can do:

- **Kiosk mode.** Full screen, frameless, on top, the mouse cursor hidden (a touch screen needs
  none); closing the window (Alt+F4, the window manager) opens the PIN pad instead, and only the
  admin PIN ends it. ``kiosk_mode=False`` (``omnitill kiosk --windowed``) is an ordinary window
  for trying the kiosk out at a desk.
- **Scanners.** No widget takes the keyboard focus, so every key reaches the window, where a
  :class:`~edge_agent.ui.wedge.WedgeDetector` tells a keyboard-wedge scanner's burst (a scan)
  from a person's typing (search text or PIN digits, when those screens are open). A serial
  scanner runs on its own thread (:class:`~edge_agent.ui.main_window.ScannerBridge`), its lines
  reaching the UI thread through a queued signal.
- **Readable at a distance.** Type scales with the screen (designed for 1080 lines, at least
  30 px on it), black on white with bold borders; every state is written in words, never told
  by colour alone; touch targets are at least 84 px high on a 1080-line screen.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import Final

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from edge_agent.kiosk import (
    ALSO_BOUGHT_SHOWN,
    PERSONAL_SHOWN,
    SEARCH_SHOWN,
    SLIDE_ITEMS,
    CardLookup,
    ItemView,
    KioskPresenter,
    KioskSettings,
    Screen,
)
from edge_agent.scanner import Scanner
from edge_agent.till import Till
from edge_agent.ui.main_window import ScannerBridge
from edge_agent.ui.wedge import WedgeDetector

__all__ = ["KEYBOARD_ROWS", "ItemButton", "KioskWindow", "kiosk_style", "run_kiosk"]

log = logging.getLogger(__name__)

#: The on-screen keyboard, row by row (letters are typed in lower case).
KEYBOARD_ROWS: Final = ("1234567890", "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM")
#: Lines of the screen the type sizes below are designed for.
_DESIGN_HEIGHT: Final = 1080


def kiosk_style(scale: float) -> str:
    """The kiosk's style sheet with sizes for a screen ``scale`` times 1080 lines high."""

    def px(size: float) -> str:
        return f"{max(1, round(size * scale))}px"

    return f"""
QWidget {{ background: #ffffff; color: #000000; font-size: {px(30)}; }}
QFrame#header {{ background: #000000; }}
QFrame#header QLabel {{ background: #000000; color: #ffffff; font-size: {px(36)};
                        font-weight: bold; padding: {px(10)} {px(24)}; }}
QLabel#slideTitle, QLabel#personalTitle, QLabel#relatedTitle {{
    font-size: {px(44)}; font-weight: bold; }}
QLabel#slidePosition, QLabel#footerHint, QLabel#searchHint {{ font-size: {px(26)}; }}
QLabel#productName {{ font-size: {px(58)}; font-weight: bold; }}
QLabel#productDescription, QLabel#productNote {{ font-size: {px(32)}; }}
QLabel#price {{ font-size: {px(132)}; font-weight: bold; }}
QLabel#unit {{ font-size: {px(44)}; font-weight: bold; }}
QLabel#greeting {{ font-size: {px(88)}; font-weight: bold; }}
QFrame#callToAction {{ border: {px(4)} solid #000000; border-radius: {px(14)}; }}
QFrame#callToAction QLabel {{ border: 0; }}
QLabel#ctaTitle {{ font-size: {px(48)}; font-weight: bold; }}
QLabel#ctaText {{ font-size: {px(34)}; }}
QLabel#query {{ font-size: {px(48)}; font-weight: bold; border: {px(4)} solid #000000;
                padding: {px(8)} {px(18)}; min-height: {px(72)}; }}
QFrame#notice {{ border: {px(6)} solid #000000; border-radius: {px(18)}; }}
QFrame#notice QLabel {{ border: 0; }}
QLabel#noticeTitle {{ font-size: {px(66)}; font-weight: bold; }}
QLabel#noticeText {{ font-size: {px(42)}; }}
QLabel#pinPrompt {{ font-size: {px(44)}; font-weight: bold; }}
QLabel#pinDisplay {{ font-size: {px(80)}; font-weight: bold; border: {px(4)} solid #000000;
                     min-height: {px(110)}; }}
QLabel#pinMessage {{ font-size: {px(36)}; font-weight: bold; }}
QPushButton {{ min-height: {px(84)}; padding: {px(6)} {px(20)}; border: {px(4)} solid #000000;
               border-radius: {px(12)}; font-size: {px(34)}; font-weight: bold;
               background: #f0f0f0; }}
QPushButton:pressed {{ background: #000000; color: #ffffff; }}
QPushButton#item {{ min-height: {px(104)}; background: #ffffff; padding: {px(6)} {px(22)}; }}
QPushButton#item QLabel {{ background: transparent; }}
QLabel#itemName {{ font-size: {px(34)}; }}
QLabel#itemNote {{ font-size: {px(24)}; font-style: italic; }}
QLabel#itemPrice {{ font-size: {px(40)}; font-weight: bold; }}
QPushButton#staff {{ min-height: {px(50)}; font-size: {px(22)}; border: {px(2)} solid #000000;
                     padding: {px(2)} {px(16)}; }}
QPushButton[key="true"] {{ min-height: {px(80)}; min-width: {px(120)}; font-size: {px(38)};
                           padding: 0; }}
QPushButton#notice_ok {{ min-width: {px(240)}; }}
"""


class ItemButton(QPushButton):
    """A product in a list: name (and a note) on the left, price on the right; touch it for its
    price check. Hidden while it has no item."""

    def __init__(self, on_touch: Callable[[str], object]) -> None:
        super().__init__()
        self.setObjectName("item")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.sku = ""
        self.name_label = _label("", "itemName", wrap=True)
        self.note_label = _label("", "itemNote")
        self.price_label = _label("", "itemPrice")
        self.price_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for label in (self.name_label, self.note_label, self.price_label):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        words = QVBoxLayout()
        words.setSpacing(0)
        words.addWidget(self.name_label)
        words.addWidget(self.note_label)
        row = QHBoxLayout(self)
        row.setContentsMargins(18, 6, 18, 6)
        row.addLayout(words, 1)
        row.addWidget(self.price_label)
        self.clicked.connect(lambda: on_touch(self.sku) if self.sku else None)
        self.show_item(None)

    def show_item(self, item: ItemView | None) -> None:
        self.sku = "" if item is None else item.sku
        self.setVisible(item is not None)
        if item is None:
            return
        self.name_label.setText(item.name)
        self.note_label.setText(item.note)
        self.note_label.setVisible(bool(item.note))
        self.price_label.setText(item.price)
        self.setAccessibleName(f"{item.name}, {item.price}")


def _label(text: str, name: str, *, wrap: bool = False, center: bool = False) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setTextFormat(Qt.TextFormat.PlainText)  # names come from HQ: never rich text
    if center:
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


def _button(text: str, name: str, slot: Callable[[], object]) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    button.clicked.connect(slot)
    return button


def _grid(buttons: Sequence[QWidget], columns: int) -> QGridLayout:
    grid = QGridLayout()
    grid.setSpacing(16)
    for n, button in enumerate(buttons):
        grid.addWidget(button, n // columns, n % columns)
    return grid


class KioskWindow(QWidget):
    """The kiosk's screen. ``kiosk_mode``: full screen, frameless, no cursor, PIN to leave.

    ``clock_ms`` gives the time of each key for the wedge detector (tests play scanner or human
    timing with a fake one); ``tick_ms`` is how often the presenter's clock is looked at.
    """

    def __init__(
        self,
        presenter: KioskPresenter,
        *,
        kiosk_mode: bool = True,
        detector: WedgeDetector | None = None,
        clock_ms: Callable[[], float] | None = None,
        tick_ms: int = 200,
    ) -> None:
        super().__init__()
        self.presenter = presenter
        self.kiosk_mode = kiosk_mode
        self.detector = detector or WedgeDetector()
        self._clock_ms = clock_ms or (lambda: time.monotonic() * 1000.0)
        self._scale = 0.0
        self.setWindowTitle(f"Omnitill kiosk | {presenter.store_name}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        if kiosk_mode:
            self.setWindowFlags(
                Qt.WindowType.Window
                | Qt.WindowType.FramelessWindowHint
                | Qt.WindowType.WindowStaysOnTopHint
            )
            self.setCursor(Qt.CursorShape.BlankCursor)

        # -- header and footer, on every page
        header = QFrame()
        header.setObjectName("header")
        self.store_label = _label("", "storeName")
        self.greeting_label = _label("", "headerGreeting")
        self.greeting_label.setAlignment(
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        top = QHBoxLayout(header)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.store_label, 1)
        top.addWidget(self.greeting_label)
        self.footer_hint = _label("", "footerHint")
        self.staff_button = _button("Staff", "staff", presenter.open_pin)
        footer = QHBoxLayout()
        footer.addWidget(self.footer_hint, 1)
        footer.addWidget(self.staff_button)

        self.stack = QStackedWidget()
        # The screen's size is given (full screen): the type scales to it (resizeEvent) rather
        # than the pages' minimum sizes growing the window beyond it.
        self.stack.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        builders: dict[Screen, Callable[[], QWidget]] = {
            "idle": self._idle_page,
            "product": self._product_page,
            "personal": self._personal_page,
            "search": self._search_page,
            "notice": self._notice_page,
            "pin": self._pin_page,
        }
        self.pages: dict[Screen, QWidget] = {}
        for screen, build in builders.items():
            page = build()
            self.pages[screen] = page
            self.stack.addWidget(page)

        body = QVBoxLayout()
        body.setContentsMargins(40, 24, 40, 16)
        body.addWidget(self.stack, 1)
        body.addSpacing(10)
        body.addLayout(footer)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(header)
        outer.addLayout(body, 1)

        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush)
        self._tick_timer = QTimer(self)
        self._tick_timer.timeout.connect(presenter.tick)
        self._tick_timer.start(tick_ms)
        self._remove_listener = presenter.add_listener(self.refresh)
        self._apply_scale(1.0)
        self.refresh()

    # -- pages ---------------------------------------------------------------------------------

    def _idle_page(self) -> QWidget:
        page = QWidget()
        self.slide_title = _label("", "slideTitle")
        self.slide_items = [ItemButton(self.presenter.show_product) for _ in range(SLIDE_ITEMS)]
        self.slide_position = _label("", "slidePosition")
        cta = QFrame()
        cta.setObjectName("callToAction")
        words = QVBoxLayout()
        words.addWidget(_label("Scan a barcode to check its price", "ctaTitle", wrap=True))
        words.addWidget(_label("Scan your loyalty card for your own picks", "ctaText", wrap=True))
        row = QHBoxLayout(cta)
        row.setContentsMargins(28, 18, 28, 18)
        row.addLayout(words, 1)
        row.addWidget(_button("Search products", "search", self.presenter.open_search))
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slide_title)
        for button in self.slide_items:
            layout.addWidget(button)
        layout.addWidget(self.slide_position)
        layout.addStretch(1)
        layout.addWidget(cta)
        return page

    def _product_page(self) -> QWidget:
        page = QWidget()
        self.product_name = _label("", "productName", wrap=True)
        self.product_description = _label("", "productDescription", wrap=True)
        self.price = _label("", "price")
        self.unit = _label("", "unit")
        self.product_note = _label("", "productNote")
        price_row = QHBoxLayout()
        price_row.addWidget(self.price)
        price_row.addWidget(self.unit, 0, Qt.AlignmentFlag.AlignBottom)
        price_row.addStretch(1)
        self.related_title = _label("", "relatedTitle")
        self.related_items = [
            ItemButton(self.presenter.show_product) for _ in range(ALSO_BOUGHT_SHOWN)
        ]
        buttons = QHBoxLayout()
        buttons.addWidget(_button("Search products", "product_search", self.presenter.open_search))
        buttons.addStretch(1)
        buttons.addWidget(_button("Done", "product_done", self.presenter.back))
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.product_name)
        layout.addWidget(self.product_description)
        layout.addLayout(price_row)
        layout.addWidget(self.product_note)
        layout.addSpacing(12)
        layout.addWidget(self.related_title)
        layout.addLayout(_grid(self.related_items, 2))
        layout.addStretch(1)
        layout.addLayout(buttons)
        return page

    def _personal_page(self) -> QWidget:
        page = QWidget()
        self.personal_greeting = _label("", "greeting")
        self.personal_title = _label("", "personalTitle")
        self.personal_items = [
            ItemButton(self.presenter.show_product) for _ in range(PERSONAL_SHOWN)
        ]
        buttons = QHBoxLayout()
        buttons.addWidget(_button("Search products", "personal_search", self.presenter.open_search))
        buttons.addStretch(1)
        buttons.addWidget(_button("Done: forget my card", "personal_done", self.presenter.back))
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.personal_greeting)
        layout.addWidget(self.personal_title)
        layout.addLayout(_grid(self.personal_items, 2))
        layout.addStretch(1)
        layout.addLayout(buttons)
        return page

    def _search_page(self) -> QWidget:
        page = QWidget()
        self.query_label = _label("", "query")
        self.search_hint = _label("", "searchHint")
        self.search_items = [ItemButton(self.presenter.show_product) for _ in range(SEARCH_SHOWN)]
        self.keys: dict[str, QPushButton] = {}
        keyboard = QVBoxLayout()
        keyboard.setSpacing(10)
        for chars in KEYBOARD_ROWS:
            row = QHBoxLayout()
            row.setSpacing(10)
            row.addStretch(1)
            for char in chars:
                key = _button(char, f"key_{char}", partial(self.presenter.type_text, char.lower()))
                key.setProperty("key", True)
                self.keys[char] = key
                row.addWidget(key)
            row.addStretch(1)
            keyboard.addLayout(row)
        last = QHBoxLayout()
        last.setSpacing(10)
        for text, name, slot in (
            ("Back", "search_back", self.presenter.back),
            ("Space", "key_space", partial(self.presenter.type_text, " ")),
            ("Delete", "key_delete", self.presenter.backspace),
            ("Clear", "key_clear", self.presenter.clear_search),
        ):
            key = _button(text, name, slot)
            key.setProperty("key", True)
            last.addWidget(key, 3 if name == "key_space" else 1)
        keyboard.addLayout(last)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.query_label)
        layout.addWidget(self.search_hint)
        layout.addLayout(_grid(self.search_items, 2))
        layout.addStretch(1)
        layout.addLayout(keyboard)
        return page

    def _notice_page(self) -> QWidget:
        page = QWidget()
        box = QFrame()
        box.setObjectName("notice")
        self.notice_title = _label("", "noticeTitle", wrap=True, center=True)
        self.notice_text = _label("", "noticeText", wrap=True, center=True)
        self.notice_ok = _button("OK", "notice_ok", self.presenter.back)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(48, 48, 48, 48)
        inner.setSpacing(28)
        inner.addWidget(self.notice_title)
        inner.addWidget(self.notice_text)
        inner.addWidget(self.notice_ok, 0, Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        layout.addWidget(box)
        layout.addStretch(1)
        return page

    def _pin_page(self) -> QWidget:
        page = QWidget()
        self.pin_prompt = _label("Staff only: enter the admin PIN", "pinPrompt", center=True)
        self.pin_display = _label("", "pinDisplay", center=True)
        self.pin_message = _label("", "pinMessage", center=True)
        self.pin_keys: dict[str, QPushButton] = {}
        pad = QGridLayout()
        pad.setSpacing(12)
        for n, digit in enumerate("123456789"):
            key = _button(digit, f"pin_{digit}", partial(self.presenter.pin_digit, digit))
            pad.addWidget(key, n // 3, n % 3)
            self.pin_keys[digit] = key
        self.pin_keys["0"] = _button("0", "pin_0", partial(self.presenter.pin_digit, "0"))
        delete = _button("Delete", "pin_delete", self.presenter.backspace)
        ok = _button("OK", "pin_ok", self.presenter.submit_pin)
        for place, key in enumerate((delete, self.pin_keys["0"], ok)):
            pad.addWidget(key, 3, place)
        for key in (*self.pin_keys.values(), delete, ok):
            key.setProperty("key", True)
        column = QVBoxLayout()
        column.addWidget(self.pin_prompt)
        column.addWidget(self.pin_display)
        column.addWidget(self.pin_message)
        column.addLayout(pad)
        column.addWidget(_button("Cancel", "pin_cancel", self.presenter.back))
        layout = QHBoxLayout(page)
        layout.addStretch(1)
        layout.addLayout(column, 2)
        layout.addStretch(1)
        return page

    # -- painting ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Paint the presenter's current screen."""
        p = self.presenter
        if p.exit_requested:
            QTimer.singleShot(0, self.close)
        self.store_label.setText(f"{p.store_name} | Price check")
        # The personal screen greets in large type already.
        self.greeting_label.setText(p.greeting if p.screen != "personal" else "")
        self.stack.setCurrentWidget(self.pages[p.screen])
        paint = {
            "idle": self._paint_idle,
            "product": self._paint_product,
            "personal": self._paint_personal,
            "search": self._paint_search,
            "notice": self._paint_notice,
            "pin": self._paint_pin,
        }
        paint[p.screen]()

    def _paint_idle(self) -> None:
        slide = self.presenter.slide
        self.slide_title.setText(slide.title)
        _fill(self.slide_items, slide.items)
        self.slide_position.setText(slide.position if len(self.presenter.slides) > 1 else "")
        self.footer_hint.setText("Touch a product for its price")

    def _paint_product(self) -> None:
        view = self.presenter.product
        if view is None:
            return
        self.product_name.setText(view.name)
        self.product_description.setText(view.description)
        self.product_description.setVisible(bool(view.description))
        self.price.setText(view.price)
        self.unit.setText(view.unit)
        self.product_note.setText(view.note)
        self.product_note.setVisible(bool(view.note))
        self.related_title.setText(view.related_title)
        self.related_title.setVisible(bool(view.related))
        _fill(self.related_items, view.related)
        self.footer_hint.setText("Scan another product, or touch one above")

    def _paint_personal(self) -> None:
        view = self.presenter.personal
        if view is None:
            return
        self.personal_greeting.setText(view.greeting)
        self.personal_title.setText(view.title)
        _fill(self.personal_items, view.items)
        self.footer_hint.setText("Touch a product for its price, or scan one")

    def _paint_search(self) -> None:
        view = self.presenter.search
        self.query_label.setText(f"Search: {view.query}_")
        self.search_hint.setText(view.hint)
        _fill(self.search_items, view.results)
        self.footer_hint.setText("Type on the keyboard; touch a result for its price")

    def _paint_notice(self) -> None:
        view = self.presenter.notice
        if view is None:
            return
        self.notice_title.setText(view.title)
        self.notice_text.setText(view.text)
        self.notice_ok.setVisible(not view.waiting)
        self.footer_hint.setText("")

    def _paint_pin(self) -> None:
        view = self.presenter.pin
        self.pin_display.setText(view.masked)
        self.pin_message.setText(view.message)
        self.footer_hint.setText("")

    # -- keys: scanner bursts and typing -------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        staff = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        if key == Qt.Key.Key_Q and event.modifiers() == staff:
            # The staff's key to the PIN pad (a scanner never sends Ctrl or Shift+Ctrl).
            self._typed(self.detector.release())
            self.presenter.open_pin()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._feed(self.detector.terminator)
            return
        text = event.text()
        plain = event.modifiers() & ~(
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
        )
        if plain == Qt.KeyboardModifier.NoModifier and len(text) == 1 and text.isprintable():
            self._feed(text)
            return
        # A key that is not a character: what was held is typing, and goes first.
        self._typed(self.detector.release())
        if key == Qt.Key.Key_Backspace:
            self.presenter.backspace()
        elif key == Qt.Key.Key_Escape:
            self.presenter.back()
        else:
            super().keyPressEvent(event)

    def _feed(self, char: str) -> None:
        outcome = self.detector.feed(char, self._clock_ms())
        self._typed(outcome.deliver)
        if outcome.scan is not None:
            self._flush_timer.stop()
            self.presenter.scan(outcome.scan)
            return
        deadline = self.detector.deadline_ms
        if deadline is None:
            self._flush_timer.stop()
        else:
            self._flush_timer.start(max(1, int(deadline - self._clock_ms()) + 1))

    def flush_now(self) -> None:
        """Release held characters as typing (tests; the timer does it otherwise)."""
        self._flush_timer.stop()
        self._typed(self.detector.release())

    def _flush(self) -> None:
        released = self.detector.flush(self._clock_ms())
        if not released and self.detector.pending:
            deadline = self.detector.deadline_ms or 0.0
            self._flush_timer.start(max(1, int(deadline - self._clock_ms()) + 1))
            return
        self._typed(released)

    def _typed(self, text: str) -> None:
        """A person's typing: search text, or PIN digits and Enter; ignored elsewhere."""
        if not text:
            return
        p = self.presenter
        if p.screen == "pin":
            for char in text:
                if char in "\r\n":
                    p.submit_pin()
                else:
                    p.pin_digit(char)
        elif p.screen == "search":
            p.type_text(text.replace("\r", "").replace("\n", ""))

    # -- size and life cycle -------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._apply_scale(max(0.5, event.size().height() / _DESIGN_HEIGHT))
        super().resizeEvent(event)

    def _apply_scale(self, scale: float) -> None:
        if abs(scale - self._scale) < 0.02:
            return
        self._scale = scale
        self.setStyleSheet(kiosk_style(scale))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.kiosk_mode and not self.presenter.exit_requested:
            # Alt+F4 or the window manager: only the admin PIN leaves the kiosk.
            event.ignore()
            self.presenter.open_pin()
            return
        self._tick_timer.stop()
        self._flush_timer.stop()
        self._remove_listener()
        super().closeEvent(event)


def _fill(buttons: Sequence[ItemButton], items: Sequence[ItemView]) -> None:
    for n, button in enumerate(buttons):
        button.show_item(items[n] if n < len(items) else None)


def run_kiosk(
    till: Till,
    settings: KioskSettings,
    scanner: Scanner | None,
    *,
    lookup: CardLookup | None = None,
    kiosk_mode: bool = True,
) -> int:
    """Show the kiosk over ``till`` until the admin PIN (or, windowed, closing) ends it."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Omnitill kiosk")
    presenter = KioskPresenter(till, settings, lookup=lookup)
    window = KioskWindow(presenter, kiosk_mode=kiosk_mode)
    bridge: ScannerBridge | None = None
    if scanner is not None:
        bridge = ScannerBridge(scanner, window)
        bridge.scanned.connect(presenter.scan)
        bridge.failed.connect(presenter.scanner_failed)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The machine is shutting down (or IT stops the service): no PIN needed for that.
        presenter.exit_requested = True
        window.close()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    wake = QTimer()  # Python runs signal handlers only between bytecodes
    wake.timeout.connect(lambda: None)
    wake.start(200)
    till.start()
    if bridge is not None:
        bridge.start()
    try:
        if kiosk_mode:
            window.showFullScreen()
        else:
            window.resize(1280, 800)
            window.show()
        window.activateWindow()
        window.setFocus()
        app.exec()
    finally:
        wake.stop()
        if bridge is not None:
            bridge.stop()
        presenter.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
