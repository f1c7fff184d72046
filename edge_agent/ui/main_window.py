"""The cashier's main window: thin Qt widgets over :class:`~edge_agent.ui.presenters.TillPresenter`.

The widgets hold no sale logic: every button calls one presenter action, and one presenter
listener repaints the window from the view models. The layout, for a 1366 x 768 till display::

    [ scan field                                                          ]
    [ message line: the last event in words                               ]
    [ fault banner (only while the printer or HQ needs someone)           ]
    [ basket table                 ] [ side panel: sale / payment /       ]
    [ void, quantity               ] [ receipt / discount / open price /  ]
    [ totals                       ] [ parked / return / reports          ]
    [ function keys: Pay F3, Discount F6, Open price, Park, ...           ]
    [ status bar: HQ link | ops waiting | last sync | printer             ]

What lives here is what only Qt can do:

- **Keyboard-wedge scans anywhere in the window.** :class:`WedgeFilter`, an event filter on the
  application, feeds every character typed into this window to a
  :class:`~edge_agent.ui.wedge.WedgeDetector`. A scanner's burst goes to the presenter's
  ``scan`` whichever field has the focus (the product search, the email address...); a
  person's typing is handed back to the focused field, at most ``max_interval_ms`` later.
- **The serial scanner off the UI thread.** :class:`ScannerBridge` runs a
  :class:`~edge_agent.scanner.Scanner` on a worker thread and hands each line to the UI thread
  through a queued Qt signal.
- **A status bar that never lies.** The till calls back from its sync and printer threads when
  their state changes; :class:`StatusRelay` turns that into a queued signal, so the status is
  re-read on the UI thread at once (a slow timer re-reads it too, as a safety net).
- **The basket table updates in place.** :class:`BasketModel` compares the presenter's rows with
  what it shows and emits row inserts, removals and ``dataChanged`` for just those rows: a scan
  on a 100-line basket repaints one row, not the table.
- **Touch, keyboard, contrast.** Buttons are at least 56 px high; everything has a key (the list
  is :data:`SHORTCUTS`, also in docs/till.md); black on white with bold borders, and every state
  is written out (``OFFLINE``, ``PRINTER PAPER OUT``), never shown by colour alone. Faults
  appear in the banner and the status bar; no dialog ever blocks the next scan.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Final

from PySide6.QtCore import (
    QEvent,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QCloseEvent,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from edge_agent.scanner import Scanner
from edge_agent.ui.keyboard_wedge import key_events
from edge_agent.ui.panels import (
    DiscountPanel,
    OpenPricePanel,
    Panel,
    ParkedPanel,
    PaymentPanel,
    ReceiptPanel,
    ReportsPanel,
    ReturnPanel,
    SalePanel,
    SuggestionButton,
    TextRow,
    button,
)
from edge_agent.ui.presenters import PAGES, BasketRow, Page, TillPresenter
from edge_agent.ui.wedge import WedgeDetector

__all__ = [
    "SHORTCUTS",
    "BasketModel",
    "ScannerBridge",
    "StatusRelay",
    "TillWindow",
    "WedgeFilter",
]

log = logging.getLogger(__name__)

#: Every keyboard shortcut of the window, as shown on its buttons and in docs/till.md.
SHORTCUTS: Final[dict[str, str]] = {
    "F1": "scan field",
    "F2": "product search",
    "F3": "payment panel (what is due, cash, card, split)",
    "F4 / Delete": "void the selected line (the last line when none is selected)",
    "F5": "set the quantity of the selected line to the Qty box",
    "F6": "discount panel (selected line or whole basket, with a reason)",
    "F7": "pay by card (the amount typed on the payment panel, else what is due); refund to card",
    "F8": "pay cash (the amount typed on the payment panel, else what is due); refund in cash",
    "F9": "park the sale (with the label typed on the parked panel)",
    "F10": "parked sales: pick one to resume",
    "F11": "reprint the last receipt (prints the original if it was never printed)",
    "F12": "cancel the sale or the return",
    "Esc": "close the panel: back to customer, suggestions and search",
    "Alt+1..3": "add suggestion 1 to 3",
    "Alt+O": "open-price item",
    "Alt+R": "return: type the receipt number (or just scan the receipt's barcode)",
    "Alt+X": "print the X report",
    "Alt+Z": "Z report: press twice to close the day",
    "Ctrl+P / Ctrl+E / Ctrl+B / Ctrl+N": "receipt: print / email / both / none",
}

STYLE: Final = """
QWidget { color: #000000; font-size: 17px; }
QMainWindow, QAbstractScrollArea, QScrollBar { background: #ffffff; }
QPushButton { min-height: 56px; padding: 2px 10px; border: 3px solid #000000;
              border-radius: 6px; font-weight: bold; background: #eeeeee; }
QPushButton:focus { border: 4px solid #0033cc; }
QPushButton:pressed { background: #000000; color: #ffffff; }
QPushButton[fkey="true"] { min-height: 58px; font-size: 15px; padding: 2px 4px; }
QLineEdit, QSpinBox, QComboBox { min-height: 46px; border: 3px solid #000000; padding: 0 8px;
                                 font-size: 20px; background: #ffffff; }
QLineEdit:focus, QSpinBox:focus, QComboBox:focus { border: 4px solid #0033cc; }
QRadioButton, QCheckBox { min-height: 44px; font-size: 18px; }
QRadioButton::indicator, QCheckBox::indicator { width: 26px; height: 26px; }
QCheckBox::indicator { border: 3px solid #000000; background: #ffffff; }
QRadioButton::indicator { border: 3px solid #000000; border-radius: 13px; background: #ffffff; }
QRadioButton::indicator:checked { background: #000000; }
QCheckBox::indicator:checked { background: #000000; }
QCheckBox::indicator:focus { border: 3px solid #0033cc; }
QGroupBox { border: 2px solid #000000; border-radius: 6px; margin-top: 16px; padding: 6px;
            font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; }
QTableView { gridline-color: #000000; font-size: 19px; selection-background-color: #000000;
             selection-color: #ffffff; background: #ffffff; }
QHeaderView::section { background: #000000; color: #ffffff; font-weight: bold; padding: 4px;
                       border: 0; }
QListWidget { border: 2px solid #000000; font-size: 18px; background: #ffffff; }
QListWidget::item { min-height: 44px; }
QListWidget::item:selected { background: #000000; color: #ffffff; }
QLabel#message { font-size: 20px; font-weight: bold; padding: 6px; border: 3px solid #000000; }
QLabel#message[error="true"] { background: #ffe0e0; border: 4px solid #b00000; }
QLabel#banner { font-size: 19px; font-weight: bold; padding: 6px; background: #fff0b3;
                border: 4px solid #000000; }
QLabel#total { font-size: 36px; font-weight: bold; }
QSpinBox#quantity { font-weight: bold; }
QSpinBox::up-button, QSpinBox::down-button { width: 0px; border: 0px; }
QLabel#due { font-size: 32px; font-weight: bold; }
QLabel#headline { font-size: 22px; font-weight: bold; }
QLabel#status { font-size: 16px; font-weight: bold; padding: 3px 8px; border: 2px solid #000000; }
QLabel#status[fault="true"] { background: #000000; color: #ffffff; }
QLabel#note { font-weight: bold; border: 3px solid #000000; background: #fff0b3; padding: 4px; }
QPushButton#suggestion { min-height: 56px; padding: 2px 4px; }
QLabel#suggestion_title { background: transparent; font-size: 16px; font-weight: bold; }
QLabel#suggestion_text { background: transparent; font-size: 16px; }
QLabel#customer { font-size: 16px; }
QLabel#report { font-size: 15px; background: #ffffff; }
QStatusBar { border-top: 2px solid #000000; }
"""

_COLUMNS: Final = ("Qty", "Item", "Unit price", "Line total", "Discount")
_RIGHT: Final = {0, 2, 3}
_RIGHT_ALIGNED: Final = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CELL_FLAGS: Final = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
_KEY_PRESS: Final = QEvent.Type.KeyPress


class BasketModel(QStandardItemModel):
    """The basket table: one row per :class:`~edge_agent.ui.presenters.BasketRow`, updated in
    place (see the module docstring).

    The cells are Qt's own items: painting the table never calls back into Python (asking a
    Python model for seven roles of every visible cell was a third of the table's paint).
    """

    def __init__(self, presenter: TillPresenter, parent: QObject | None = None) -> None:
        super().__init__(0, len(_COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(_COLUMNS))
        self._presenter = presenter
        self._rows: tuple[BasketRow, ...] = ()
        for row in presenter.rows:
            self.appendRow(_cells(row))
        self._rows = presenter.rows

    def refresh(self) -> bool:
        """Follow the presenter's rows; True when rows were appended (scroll to them)."""
        new, old = self._presenter.rows, self._rows
        if new is old or new == old:
            return False
        old_ids = [r.line_no for r in old]
        new_ids = [r.line_no for r in new]
        appended = False
        if new_ids[: len(old_ids)] == old_ids:
            self._changed(new[: len(old)])
            for row in new[len(old) :]:
                self._rows += (row,)  # what row_at answers while the insert is signalled
                self.appendRow(_cells(row))
                appended = True
        else:
            keep = set(new_ids)
            if [i for i in old_ids if i in keep] != new_ids:
                # Reordered or replaced (a resumed sale): start over.
                self.beginResetModel()
                self.blockSignals(True)
                try:
                    self.setRowCount(0)
                    for row in new:
                        self.appendRow(_cells(row))
                finally:
                    self.blockSignals(False)
                self._rows = new
                self.endResetModel()
                return False
            for index in range(len(old) - 1, -1, -1):
                if old_ids[index] not in keep:
                    self.removeRow(index)
                    self._rows = self._rows[:index] + self._rows[index + 1 :]
            self._changed(new)
        self._rows = new
        return appended

    def _changed(self, rows: tuple[BasketRow, ...]) -> None:
        """Replace the first ``len(rows)`` rows, signalling the span that differs once."""
        current = self._rows
        differ = [i for i, row in enumerate(rows) if row != current[i]]
        if not differ:
            return
        self.blockSignals(True)  # one dataChanged for the span, not one per cell
        try:
            for index in differ:
                for column, text in enumerate(_texts(rows[index])):
                    cell = self.item(index, column)
                    if cell is not None and cell.text() != text:
                        cell.setText(text)
        finally:
            self.blockSignals(False)
        self._rows = rows + current[len(rows) :]
        self.dataChanged.emit(
            self.index(differ[0], 0),
            self.index(differ[-1], len(_COLUMNS) - 1),
            [Qt.ItemDataRole.DisplayRole],
        )

    def row_at(self, row: int) -> BasketRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None


def _texts(row: BasketRow) -> tuple[str, str, str, str, str]:
    return (row.quantity, row.name, row.unit_price, row.line_total, row.discount)


def _cells(row: BasketRow) -> list[QStandardItem]:
    cells = []
    for column, text in enumerate(_texts(row)):
        cell = QStandardItem(text)
        cell.setFlags(_CELL_FLAGS)
        if column in _RIGHT:
            cell.setTextAlignment(_RIGHT_ALIGNED)
        cells.append(cell)
    return cells


class WedgeFilter(QObject):
    """Routes scanner bursts typed into ``window`` to ``on_scan``; see the module docstring.

    ``clock_ms`` gives the time of each key (tests pass a
    :class:`~edge_agent.ui.keyboard_wedge.ManualClock` to play scanner or human timing);
    events the filter re-sends itself are let through untouched.
    """

    def __init__(
        self,
        window: QWidget,
        detector: WedgeDetector,
        on_scan: Callable[[str], object],
        *,
        clock_ms: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(window)
        self._window = window
        self.detector = detector
        self._on_scan = on_scan
        self._clock_ms = clock_ms or (lambda: time.monotonic() * 1000.0)
        self._replaying = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._flush)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._replaying or event.type() != _KEY_PRESS:
            return False
        if not isinstance(event, QKeyEvent) or not self._ours(watched):
            return False
        char = self._char_of(event)
        if char is None:
            # A key that is not a character: what was held is typing, and goes first.
            self._deliver(self.detector.release())
            return False
        outcome = self.detector.feed(char, self._clock_ms())
        self._deliver(outcome.deliver)
        if outcome.scan is not None:
            self._timer.stop()
            self._on_scan(outcome.scan)
        else:
            self._arm()
        return True

    def flush_now(self) -> None:
        """Release held characters as typing (tests; the timer does it otherwise)."""
        self._timer.stop()
        self._deliver(self.detector.release())

    def _ours(self, watched: QObject) -> bool:
        # A key event that a child ignores travels up to its parents: handle it once, at the
        # widget that has the focus.
        focus = QApplication.focusWidget()
        target = focus if focus is not None else self._window
        return watched is target and target.window() is self._window

    def _char_of(self, event: QKeyEvent) -> str | None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            return self.detector.terminator
        modifiers = event.modifiers() & ~(
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
        )
        text = event.text()
        if modifiers != Qt.KeyboardModifier.NoModifier or len(text) != 1 or not text.isprintable():
            return None
        return text

    def _arm(self) -> None:
        deadline = self.detector.deadline_ms
        if deadline is None:
            self._timer.stop()
            return
        self._timer.start(max(1, int(deadline - self._clock_ms()) + 1))

    def _flush(self) -> None:
        released = self.detector.flush(self._clock_ms())
        if not released and self.detector.pending:
            self._arm()  # the fake clock of a test has not moved on yet
            return
        self._deliver(released)

    def _deliver(self, text: str) -> None:
        if not text:
            return
        focus = QApplication.focusWidget()
        target = focus if focus is not None and focus.window() is self._window else self._window
        self._replaying = True
        try:
            for char in text:
                for event in key_events(char):
                    QApplication.sendEvent(target, event)
        finally:
            self._replaying = False


class ScannerBridge(QObject):
    """Runs a serial (or other) scanner on a worker thread; its lines arrive on the UI thread
    as ``scanned`` and its failures as ``failed`` (queued signals cross the threads)."""

    scanned = Signal(str)
    failed = Signal(str)

    def __init__(self, scanner: Scanner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scanner = scanner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omnitill-scanner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        try:
            self._scanner.run(self.scanned.emit, self.failed.emit, self._stop)
        except Exception:  # a scanner must not raise; the till keeps selling from the keyboard
            log.exception("the scanner stopped unexpectedly")
            self.failed.emit("the scanner stopped: check its cable and restart the till")


class StatusRelay(QObject):
    """The till's status callbacks (from its sync and printer threads) as a signal on the UI
    thread: ``notify`` may be called from any thread, ``changed`` is delivered queued."""

    changed = Signal()

    def notify(self) -> None:
        self.changed.emit()


class TillWindow(QMainWindow):
    """The cashier's screen. Build it with a presenter; it listens and writes back."""

    def __init__(
        self,
        presenter: TillPresenter,
        *,
        detector: WedgeDetector | None = None,
        clock_ms: Callable[[], float] | None = None,
        status_interval_ms: int = 5000,
    ) -> None:
        super().__init__()
        self.presenter = presenter
        settings = presenter.till.settings
        self.setWindowTitle(f"Omnitill till {settings.till_id} | store {settings.store_id}")
        self.setStyleSheet(STYLE)

        # -- top: scan field, message line, fault banner
        self.scan_field = QLineEdit()
        self.scan_field.setObjectName("scan_field")
        self.scan_field.setPlaceholderText("Scan, or type a barcode and press Enter  [F1]")
        self.scan_field.returnPressed.connect(self._scan_typed)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        # Placed by hand: a new message must not relay the window out (see panels.py).
        self.message_row = TextRow((self.message, 1))
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)

        # -- basket and totals
        self.basket_model = BasketModel(presenter, self)
        self.basket = QTableView()
        self.basket.setObjectName("basket")
        self.basket.setModel(self.basket_model)
        self.basket.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.basket.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.basket.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.basket.verticalHeader().setVisible(False)
        self.basket.verticalHeader().setDefaultSectionSize(44)
        self.basket.setWordWrap(False)
        header = self.basket.horizontalHeader()
        # Fixed widths: sizing columns to their contents would measure every row on each scan.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 84), (2, 120), (3, 120), (4, 250)):
            self.basket.setColumnWidth(column, width)
        self.basket.setColumnHidden(4, True)  # shown while a line has a discount
        self.basket.selectionModel().selectionChanged.connect(self._selection_changed)
        self.total = QLabel()
        self.total.setObjectName("total")
        self.total.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.total_detail = QLabel()
        self.total_detail.setWordWrap(True)
        self.total_detail.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.quantity = QSpinBox()
        self.quantity.setObjectName("quantity")
        self.quantity.setRange(1, 9999)
        self.quantity.setPrefix("Qty ")
        self.quantity.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.quantity.setFixedWidth(110)
        less = button("\u2212", lambda: self.quantity.stepBy(-1), "qty_less")
        more = button("+", lambda: self.quantity.stepBy(1), "qty_more")
        for step in (less, more):
            step.setFixedWidth(56)
        line_buttons = QHBoxLayout()
        line_buttons.addWidget(button("Void line  F4", self._void_selected, "void"))
        line_buttons.addSpacing(12)
        line_buttons.addWidget(less)
        line_buttons.addWidget(self.quantity)
        line_buttons.addWidget(more)
        line_buttons.addWidget(button("Set qty  F5", self._set_quantity, "set_qty"))
        line_buttons.addStretch(1)
        self.totals_row = TextRow((self.total_detail, 1), (self.total, 0))

        # -- the side panels
        self.sale_panel = SalePanel(presenter, self.scan_field.setFocus)
        self.payment_panel = PaymentPanel(presenter)
        self.receipt_panel = ReceiptPanel(presenter)
        self.discount_panel = DiscountPanel(presenter, self._selected_line_text)
        self.open_price_panel = OpenPricePanel(presenter)
        self.parked_panel = ParkedPanel(presenter)
        self.return_panel = ReturnPanel(presenter)
        self.reports_panel = ReportsPanel(presenter)
        self.panels: dict[Page, Panel] = {
            "sale": self.sale_panel,
            "payment": self.payment_panel,
            "receipt": self.receipt_panel,
            "discount": self.discount_panel,
            "open_price": self.open_price_panel,
            "parked": self.parked_panel,
            "return": self.return_panel,
            "reports": self.reports_panel,
        }
        assert set(self.panels) == set(PAGES)
        self.pages = QStackedWidget()
        self.pages.setObjectName("pages")
        for page in PAGES:
            self.pages.addWidget(self.panels[page])
        self._page: Page | None = None
        # Names the tests and screenshots use.
        self.customer_label = self.sale_panel.customer_label
        self.search_field = self.sale_panel.search_field
        self.search_results = self.sale_panel.search_results
        self.amount = self.payment_panel.amount
        self.card_reference = self.payment_panel.reference
        self.receipt_box = self.receipt_panel
        self.receipt_summary = self.receipt_panel.receipt_summary
        self.email_field = self.receipt_panel.email_field
        self.consent = self.receipt_panel.consent

        # -- function keys
        keys = QHBoxLayout()
        keys.setSpacing(4)
        for text, slot, name in (
            ("Pay\nF3", lambda: presenter.show("payment"), "key_pay"),
            ("Discount\nF6", lambda: presenter.show("discount"), "key_discount"),
            ("Open price\nAlt+O", lambda: presenter.show("open_price"), "key_open_price"),
            ("Park\nF9", self._park, "key_park"),
            ("Parked\nF10", lambda: presenter.show("parked"), "key_parked"),
            ("Return\nAlt+R", lambda: presenter.show("return"), "key_return"),
            ("Reprint\nF11", lambda: presenter.command("REPRINT"), "key_reprint"),
            ("Reports\nAlt+X/Z", lambda: presenter.show("reports"), "key_reports"),
            ("Cancel\nF12", lambda: presenter.command("CANCEL"), "key_cancel"),
        ):
            key = button(text, slot, name)
            key.setProperty("fkey", True)
            keys.addWidget(key, 1)

        # -- status bar: four parts, each in words
        self.status_parts: list[QLabel] = []
        for _ in range(4):
            part = QLabel()
            part.setObjectName("status")
            self.status_parts.append(part)
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        bar.addWidget(self.status_parts[0], 3)
        bar.addWidget(self.status_parts[1], 2)
        bar.addWidget(self.status_parts[2], 2)
        bar.addWidget(self.status_parts[3], 4)

        # -- layout
        left_side = QWidget()
        left = QVBoxLayout(left_side)
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.basket, 1)
        left.addLayout(line_buttons)
        left.addWidget(self.totals_row)
        # The basket and the panels keep their share of the width whatever a panel holds.
        for side in (left_side, self.pages):
            side.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        middle = QHBoxLayout()
        middle.addWidget(left_side, 3)
        middle.addWidget(self.pages, 2)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        outer.setSpacing(6)
        outer.addWidget(self.scan_field)
        outer.addWidget(self.message_row)
        outer.addWidget(self.banner)
        outer.addLayout(middle, 1)
        outer.addLayout(keys)
        self.setCentralWidget(central)

        self._shortcuts()
        self.wedge = WedgeFilter(
            self, detector or WedgeDetector(), self.presenter.scan, clock_ms=clock_ms
        )
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.wedge)
        self._remove_listener = presenter.add_listener(self.refresh)
        self.relay = StatusRelay(self)
        self.relay.changed.connect(
            self.presenter.refresh_status, Qt.ConnectionType.QueuedConnection
        )
        self._remove_status = presenter.till.add_status_listener(self.relay.notify)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self.presenter.refresh_status)
        self._status_timer.start(status_interval_ms)
        self._painted: dict[str, object] = {}
        self.refresh()
        self.scan_field.setFocus()

    # -- painting ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Paint from the presenter's view models; only what changed is touched."""
        p = self.presenter
        if self.basket_model.refresh():
            self.basket.scrollToBottom()
        discounted = any(row.discount for row in p.rows)
        if self.basket.isColumnHidden(4) == discounted:
            self.basket.setColumnHidden(4, not discounted)
        self._paint("message", p.message, self._paint_message)
        self._paint("totals", p.totals, self._paint_totals)
        self._paint("status", p.status, self._paint_status)
        if p.page != self._page:
            self._page = p.page
            panel = self.panels[p.page]
            panel.update_view()
            self.pages.setCurrentWidget(panel)
            if p.page == "sale":
                self.scan_field.setFocus()
            else:
                panel.enter()
        else:
            self.panels[p.page].update_view()

    def _paint(self, name: str, view: object, paint: Callable[[], None]) -> None:
        if self._painted.get(name) is not view:
            self._painted[name] = view
            paint()

    def _paint_message(self) -> None:
        view = self.presenter.message
        self.message_row.set_text(self.message, view.text)
        if self._set_flag(self.message, "error", view.is_error):
            self.message_row.restyled()

    def _paint_totals(self) -> None:
        totals = self.presenter.totals
        self.totals_row.set_text(self.total, f"Total {totals.total}")
        self.totals_row.set_text(
            self.total_detail,
            f"{totals.lines} line{'s' if totals.lines != 1 else ''} | {totals.tax_note} | "
            f"paid {totals.paid} | due {totals.due}",
        )

    def _paint_status(self) -> None:
        status = self.presenter.status
        texts = (status.connection, status.waiting, status.last_sync, status.printer)
        flags = (status.offline, False, False, status.printer_fault)
        for part, text, flag in zip(self.status_parts, texts, flags, strict=True):
            if part.text() != text:
                part.setText(text)
            self._set_flag(part, "fault", flag)
        if self.banner.text() != status.alert:
            self.banner.setText(status.alert)
        self.banner.setVisible(bool(status.alert))
        if self._page == "receipt":
            self.receipt_panel.update_view()

    @property
    def suggestion_buttons(self) -> list[SuggestionButton]:
        """The suggestion buttons shown now, best first."""
        return self.sale_panel.suggestion_buttons

    def status_text(self) -> str:
        """The status bar as one line of words (what the cashier reads, left to right)."""
        return " | ".join(part.text() for part in self.status_parts)

    @staticmethod
    def _set_flag(widget: QWidget, name: str, on: bool) -> bool:
        """Set a style flag (a dynamic property the style sheet reads); True when it changed."""
        if widget.property(name) == on:
            return False
        widget.setProperty(name, on)
        widget.style().unpolish(widget)
        widget.style().polish(widget)
        return True

    # -- actions -------------------------------------------------------------------------------

    def _shortcuts(self) -> None:
        p = self.presenter
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("F1", self._focus_scan),
            ("F2", self._focus_search),
            ("F3", lambda: p.show("payment")),
            ("F4", self._void_selected),
            ("Delete", self._void_selected),
            ("F5", self._set_quantity),
            ("F6", lambda: p.show("discount")),
            ("F7", self._pay_card),
            ("F8", self._pay_cash),
            ("F9", self._park),
            ("F10", lambda: p.show("parked")),
            ("F11", lambda: p.command("REPRINT")),
            ("F12", lambda: p.command("CANCEL")),
            ("Escape", self._back),
            ("Alt+O", lambda: p.show("open_price")),
            ("Alt+R", lambda: p.show("return")),
            ("Alt+X", p.x_report),
            ("Alt+Z", p.z_report),
            ("Ctrl+P", lambda: self._receipt("print")),
            ("Ctrl+E", lambda: self._receipt("email")),
            ("Ctrl+B", lambda: self._receipt("both")),
            ("Ctrl+N", lambda: self._receipt("none")),
        ]
        for number in (1, 2, 3):
            bindings.append((f"Alt+{number}", partial(self._accept_suggestion, number)))
        for keys, slot in bindings:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)

    def _focus_scan(self) -> None:
        self.scan_field.setFocus()

    def _focus_search(self) -> None:
        if self.presenter.page != "sale":
            self.presenter.back()
        if self.presenter.page == "sale":
            self.search_field.setFocus()
            self.search_field.selectAll()

    def _back(self) -> None:
        if self.presenter.back() == "sale":
            self.scan_field.setFocus()

    def _scan_typed(self) -> None:
        text = self.scan_field.text()
        self.scan_field.clear()
        if text.strip():
            self.presenter.scan(text)

    def _selected_row(self) -> BasketRow | None:
        rows = self.basket.selectionModel().selectedRows()
        row = self.basket_model.row_at(rows[0].row()) if rows else None
        if row is None and self.presenter.rows:
            row = self.presenter.rows[-1]
        return row

    def _selected_line_text(self) -> tuple[int, str] | None:
        row = self._selected_row()
        return None if row is None else (row.line_no, f"{row.quantity} x {row.name}")

    def _selection_changed(self) -> None:
        row = self._selected_row()
        if row is not None and row.quantity.isdigit():
            self.quantity.setValue(int(row.quantity))
        if self.presenter.page == "discount":
            self.discount_panel.update_view()

    def _void_selected(self) -> None:
        row = self._selected_row()
        if row is None:
            self.presenter.command("VOID")  # the till explains that the basket is empty
        else:
            self.presenter.void(row.line_no)

    def _set_quantity(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.presenter.change_quantity(row.line_no, self.quantity.value())

    def _pay_cash(self) -> None:
        if self.presenter.page == "return":
            self.presenter.pay_cash()
        else:
            self.payment_panel.pay_cash()

    def _pay_card(self) -> None:
        if self.presenter.page == "return":
            self.presenter.pay_card()
        else:
            self.payment_panel.pay_card()

    def _park(self) -> None:
        self.parked_panel.park()

    def _receipt(self, choice: str) -> None:
        self.receipt_panel.choose(choice)

    def _accept_suggestion(self, number: int) -> None:
        views = self.presenter.suggestions
        if 0 < number <= len(views):
            self.presenter.accept_suggestion(views[number - 1].sku)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._status_timer.stop()
        self._remove_status()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.wedge)
        self._remove_listener()
        super().closeEvent(event)
