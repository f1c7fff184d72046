"""The cashier's main window: thin Qt widgets over :class:`~edge_agent.ui.presenters.TillPresenter`.

The widgets hold no sale logic: every button calls one presenter action, and one presenter
listener repaints everything from the view models. What lives here is what only Qt can do:

- **Keyboard-wedge scans anywhere in the window.** :class:`WedgeFilter`, an event filter on the
  application, feeds every character typed into this window to a
  :class:`~edge_agent.ui.wedge.WedgeDetector`. A scanner's burst goes to the presenter's
  ``scan`` whichever field has the focus (the product search, the email address...); a
  person's typing is handed back to the focused field, at most ``max_interval_ms`` later.
- **The serial scanner off the UI thread.** :class:`ScannerBridge` runs a
  :class:`~edge_agent.scanner.Scanner` on a worker thread and hands each line to the UI thread
  through a queued Qt signal.
- **Touch, keyboard, contrast.** Buttons are at least 56 px high; everything has an F-key (the
  list is :data:`SHORTCUTS`); black on white with bold borders, and every state is written out
  (the status bar says ``OFFLINE``, ``PRINTER PAPER OUT``), never shown by colour alone. Faults
  appear in the message line and the status bar; no dialog ever blocks the next scan.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Final

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from edge_agent.scanner import Scanner
from edge_agent.ui.presenters import BasketRow, TillPresenter, amount_minor_from_text
from edge_agent.ui.wedge import WedgeDetector

__all__ = ["SHORTCUTS", "BasketModel", "ScannerBridge", "TillWindow", "WedgeFilter"]

log = logging.getLogger(__name__)

#: Every keyboard shortcut of the window, as shown on its buttons and in docs/till.md.
SHORTCUTS: Final[dict[str, str]] = {
    "F1": "scan field",
    "F2": "product search",
    "F4": "void the selected line",
    "F5": "set the quantity of the selected line",
    "F6": "amount field (cash given, or the card part of a split payment)",
    "F7": "pay by card",
    "F8": "pay cash",
    "F9": "park the sale",
    "F10": "resume a parked sale",
    "F11": "reprint the last receipt",
    "F12": "cancel the sale",
    "Alt+1..3": "add suggestion 1 to 3",
    "Ctrl+P / Ctrl+E / Ctrl+B / Ctrl+N": "receipt: print / email / both / none",
}

STYLE: Final = """
QWidget { background: #ffffff; color: #000000; font-size: 18px; }
QPushButton { min-height: 56px; padding: 4px 14px; border: 3px solid #000000;
              border-radius: 6px; font-weight: bold; background: #f2f2f2; }
QPushButton:focus { border: 4px solid #0033cc; }
QPushButton:pressed { background: #000000; color: #ffffff; }
QLineEdit, QSpinBox { min-height: 48px; border: 3px solid #000000; padding: 2px 8px;
                      font-size: 22px; }
QLineEdit:focus, QSpinBox:focus { border: 4px solid #0033cc; }
QGroupBox { border: 2px solid #000000; border-radius: 6px; margin-top: 18px; padding: 8px;
            font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; }
QTableView { gridline-color: #000000; font-size: 20px; selection-background-color: #000000;
             selection-color: #ffffff; }
QHeaderView::section { background: #000000; color: #ffffff; font-weight: bold; padding: 6px;
                       border: 0; }
QLabel#message { font-size: 22px; font-weight: bold; padding: 8px; border: 3px solid #000000; }
QLabel#message[error="true"] { background: #ffe0e0; border: 4px solid #b00000; }
QLabel#total { font-size: 40px; font-weight: bold; }
QLabel#status { font-size: 18px; font-weight: bold; padding: 6px; }
QLabel#status[fault="true"] { background: #fff0b3; border: 3px solid #000000; }
QPushButton#suggestion { min-height: 56px; text-align: left; padding: 2px 12px;
                         font-size: 16px; }
QLabel#customer { font-size: 16px; }
"""

_COLUMNS: Final = ("Qty", "Item", "Unit price", "Line total", "Discount")
_RIGHT: Final = {0, 2, 3}


class BasketModel(QAbstractTableModel):
    """The basket table: one row per :class:`~edge_agent.ui.presenters.BasketRow`."""

    def __init__(self, presenter: TillPresenter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._presenter = presenter
        self._rows: tuple[BasketRow, ...] = presenter.rows

    def refresh(self) -> None:
        if self._rows == self._presenter.rows:
            return
        self.beginResetModel()
        self._rows = self._presenter.rows
        self.endResetModel()

    def row_at(self, row: int) -> BasketRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_COLUMNS)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        row = self.row_at(index.row())
        if row is None or not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            values = (row.quantity, row.name, row.unit_price, row.line_total, row.discount)
            return values[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in _RIGHT:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return _COLUMNS[section]
        return None


class WedgeFilter(QObject):
    """Routes scanner bursts typed into ``window`` to ``on_scan``; see the module docstring.

    ``clock_ms`` gives the time of each key (tests pass a fake one to play scanner or human
    timing); events the filter re-sends itself are let through untouched.
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
        if self._replaying or event.type() != QEvent.Type.KeyPress:
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
                if char in "\r\n":
                    key, typed = Qt.Key.Key_Return, "\r"
                elif char == "\t":
                    key, typed = Qt.Key.Key_Tab, "\t"
                else:
                    key = Qt.Key(ord(char.upper())) if ord(char) < 0x7F else Qt.Key.Key_unknown
                    typed = char
                for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
                    QApplication.sendEvent(
                        target, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, typed)
                    )
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


def _button(text: str, slot: Callable[[], object], name: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.clicked.connect(slot)
    return button


class TillWindow(QMainWindow):
    """The cashier's screen. Build it with a presenter; it listens and writes back."""

    def __init__(
        self,
        presenter: TillPresenter,
        *,
        detector: WedgeDetector | None = None,
        clock_ms: Callable[[], float] | None = None,
        status_interval_ms: int = 1000,
    ) -> None:
        super().__init__()
        self.presenter = presenter
        settings = presenter.till.settings
        self.setWindowTitle(f"Omnitill till {settings.till_id} | store {settings.store_id}")
        self.setStyleSheet(STYLE)

        # -- top: scan field and the message line
        self.scan_field = QLineEdit()
        self.scan_field.setObjectName("scan_field")
        self.scan_field.setPlaceholderText("Scan or type a barcode, then Enter  [F1]")
        self.scan_field.returnPressed.connect(self._scan_typed)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)

        # -- basket and totals
        self.basket_model = BasketModel(presenter, self)
        self.basket = QTableView()
        self.basket.setObjectName("basket")
        self.basket.setModel(self.basket_model)
        self.basket.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.basket.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.basket.verticalHeader().setVisible(False)
        self.basket.verticalHeader().setDefaultSectionSize(44)
        header = self.basket.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.total = QLabel()
        self.total.setObjectName("total")
        self.total.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.total_detail = QLabel()
        self.total_detail.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.quantity = QSpinBox()
        self.quantity.setRange(1, 9999)
        self.quantity.setPrefix("Qty ")
        line_buttons = QHBoxLayout()
        line_buttons.addWidget(_button("Void line  [F4]", self._void_selected, "void"))
        line_buttons.addWidget(self.quantity)
        line_buttons.addWidget(_button("Set qty  [F5]", self._set_quantity, "set_qty"))
        line_buttons.addStretch(1)

        # -- customer panel
        self.customer_box = QGroupBox("Customer")
        self.customer_label = QLabel()
        self.customer_label.setObjectName("customer")
        self.customer_label.setWordWrap(True)
        QVBoxLayout(self.customer_box).addWidget(self.customer_label)

        # -- suggestions
        self.suggestion_box = QGroupBox("Suggestions: one touch adds")
        self.suggestion_layout = QVBoxLayout(self.suggestion_box)
        self.suggestion_layout.setSpacing(6)
        self.suggestion_buttons: list[QPushButton] = []
        self._suggestion_texts: list[str] | None = None
        self.no_suggestions = QLabel("None yet: they appear as items are scanned")
        self.suggestion_layout.addWidget(self.no_suggestions)

        # -- product search
        search_box = QGroupBox("Product search")
        self.search_field = QLineEdit()
        self.search_field.setObjectName("search_field")
        self.search_field.setPlaceholderText("Name, brand or code  [F2]")
        self.search_field.textEdited.connect(self.presenter.search)
        self.search_results = QListWidget()
        self.search_results.setObjectName("search_results")
        self.search_results.itemActivated.connect(self._add_found)
        self.search_results.setMinimumHeight(90)
        self.search_results.setVisible(False)
        search_layout = QVBoxLayout(search_box)
        search_layout.addWidget(self.search_field)
        search_layout.addWidget(self.search_results)

        # -- payment
        pay_box = QGroupBox("Payment")
        self.amount = QLineEdit()
        self.amount.setObjectName("amount")
        self.amount.setPlaceholderText("Amount  [F6]")
        self.amount.setToolTip("Cash given, or the card part of a split; empty: what is due")
        pay = QHBoxLayout(pay_box)
        pay.addWidget(self.amount, 2)
        pay.addWidget(_button("Card  [F7]", self._pay_card, "pay_card"), 1)
        pay.addWidget(_button("Cash  [F8]", self._pay_cash, "pay_cash"), 1)
        pay.addWidget(_button("Park  [F9]", lambda: self.presenter.command("PARK"), "park"))
        pay.addWidget(_button("Resume  [F10]", lambda: self.presenter.command("RESUME"), "resume"))
        pay.addWidget(
            _button("Reprint  [F11]", lambda: self.presenter.command("REPRINT"), "reprint")
        )
        pay.addWidget(_button("Cancel  [F12]", lambda: self.presenter.command("CANCEL"), "cancel"))

        # -- receipt choice (shown after a sale; never modal)
        self.receipt_box = QGroupBox("Receipt")
        self.receipt_summary = QLabel()
        self.email_field = QLineEdit()
        self.email_field.setObjectName("email_field")
        self.email_field.setPlaceholderText("Customer's email address")
        self.consent = QCheckBox("Customer agrees to offers by email")
        receipt = QGridLayout(self.receipt_box)
        receipt.addWidget(self.receipt_summary, 0, 0, 1, 4)
        receipt.addWidget(self.email_field, 1, 0, 1, 3)
        receipt.addWidget(self.consent, 1, 3)
        for column, (label, choice) in enumerate(
            (
                ("Print  [Ctrl+P]", "print"),
                ("Email  [Ctrl+E]", "email"),
                ("Both  [Ctrl+B]", "both"),
                ("None  [Ctrl+N]", "none"),
            )
        ):
            receipt.addWidget(
                _button(label, partial(self._receipt, choice), f"receipt_{choice}"), 2, column
            )

        # -- status bar
        self.status_label = QLabel()
        self.status_label.setObjectName("status")
        self.statusBar().addWidget(self.status_label, 1)

        # -- layout
        left = QVBoxLayout()
        left.addWidget(self.scan_field)
        left.addWidget(self.message)
        left.addWidget(self.basket, 1)
        left.addLayout(line_buttons)
        left.addWidget(self.total_detail)
        left.addWidget(self.total)
        right = QVBoxLayout()
        right.addWidget(self.customer_box)
        right.addWidget(self.suggestion_box)
        right.addWidget(search_box)
        right.addStretch(1)
        top = QHBoxLayout()
        top.addLayout(left, 3)
        top.addLayout(right, 2)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.addLayout(top, 1)
        outer.addWidget(self.receipt_box)
        outer.addWidget(pay_box)
        self.setCentralWidget(central)

        self._shortcuts()
        self.wedge = WedgeFilter(
            self, detector or WedgeDetector(), self.presenter.scan, clock_ms=clock_ms
        )
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.wedge)
        self._remove_listener = presenter.add_listener(self.refresh)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self.presenter.refresh_status)
        self._status_timer.start(status_interval_ms)
        self.refresh()
        self.scan_field.setFocus()

    # -- painting ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Paint every part from the presenter's view models."""
        p = self.presenter
        self.basket_model.refresh()
        if p.rows:
            self.basket.scrollToBottom()
        self.message.setText(p.message.text)
        self._set_flag(self.message, "error", p.message.is_error)
        totals = p.totals
        self.total.setText(f"Total {totals.total}")
        self.total_detail.setText(
            f"{totals.lines} line{'s' if totals.lines != 1 else ''} | {totals.tax_note} | "
            f"paid {totals.paid} | due {totals.due}"
        )
        self._render_customer()
        self._render_suggestions()
        self._render_search()
        prompt = p.receipt_prompt
        self.receipt_box.setVisible(prompt is not None)
        if prompt is not None and self.receipt_summary.text() != prompt.summary:
            self.receipt_summary.setText(prompt.summary)
            self.email_field.setText(prompt.email)
            self.consent.setChecked(False)
        self._render_status()

    def _render_customer(self) -> None:
        view = self.presenter.customer
        if view is None:
            self.customer_label.setText("No customer: scan a loyalty card or a receipt QR code")
            return
        parts = [f"<b>{_esc(view.name)}</b> | {_esc(view.points)}", _esc(view.consents)]
        for title, items in (
            ("Recently viewed online", view.recently_viewed),
            ("Left in online cart", view.left_in_cart),
            ("Last in-store purchases", view.last_purchases),
        ):
            if items:
                parts.append(f"<b>{title}:</b> " + "; ".join(_esc(i) for i in items))
        self.customer_label.setText("<br>".join(parts))

    def _render_suggestions(self) -> None:
        views = self.presenter.suggestions
        texts = [f"Add {s.name}  {s.price}\n{s.reason}" for s in views]
        if self._suggestion_texts == texts:
            return
        self._suggestion_texts = texts
        self.no_suggestions.setVisible(not texts)
        for button in self.suggestion_buttons:
            # Hidden at once: deleteLater waits for the event loop, and a stale button must
            # never be painted (or touched).
            button.hide()
            self.suggestion_layout.removeWidget(button)
            button.deleteLater()
        self.suggestion_buttons = []
        for number, (view, text) in enumerate(zip(views, texts, strict=True), start=1):
            button = _button(
                text, partial(self.presenter.accept_suggestion, view.sku), "suggestion"
            )
            button.setProperty("sku", view.sku)
            button.setToolTip(f"Alt+{number}")
            self.suggestion_layout.addWidget(button)
            self.suggestion_buttons.append(button)
        self.suggestion_box.setTitle(
            "Suggestions: one touch adds [Alt+1..3]" if views else "Suggestions"
        )

    def _render_search(self) -> None:
        results = self.presenter.search_results
        self.search_results.setVisible(bool(results))
        self.search_results.clear()
        for row in results:
            item = QListWidgetItem(f"{row.name}  {row.price}  ({row.brand or row.sku})")
            item.setData(Qt.ItemDataRole.UserRole, row.sku)
            self.search_results.addItem(item)

    def _render_status(self) -> None:
        status = self.presenter.status
        self.status_label.setText(status.text)
        self._set_flag(self.status_label, "fault", status.offline or status.printer_fault)

    @staticmethod
    def _set_flag(widget: QWidget, name: str, on: bool) -> None:
        if widget.property(name) != on:
            widget.setProperty(name, on)
            widget.style().unpolish(widget)
            widget.style().polish(widget)

    # -- actions -------------------------------------------------------------------------------

    def _shortcuts(self) -> None:
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("F1", self.scan_field.setFocus),
            ("F2", self.search_field.setFocus),
            ("F4", self._void_selected),
            ("Delete", self._void_selected),
            ("F5", self._set_quantity),
            ("F6", self.amount.setFocus),
            ("F7", self._pay_card),
            ("F8", self._pay_cash),
            ("F9", lambda: self.presenter.command("PARK")),
            ("F10", lambda: self.presenter.command("RESUME")),
            ("F11", lambda: self.presenter.command("REPRINT")),
            ("F12", lambda: self.presenter.command("CANCEL")),
            ("Ctrl+P", lambda: self._receipt("print")),
            ("Ctrl+E", lambda: self._receipt("email")),
            ("Ctrl+B", lambda: self._receipt("both")),
            ("Ctrl+N", lambda: self._receipt("none")),
        ]
        for number in (1, 2, 3):
            bindings.append((f"Alt+{number}", partial(self._accept_suggestion, number)))
        for keys, slot in bindings:
            QShortcut(QKeySequence(keys), self).activated.connect(slot)

    def _scan_typed(self) -> None:
        text = self.scan_field.text()
        self.scan_field.clear()
        if text.strip():
            self.presenter.scan(text)

    def _selected_line(self) -> int | None:
        rows = self.basket.selectionModel().selectedRows()
        row = self.basket_model.row_at(rows[0].row()) if rows else None
        if row is None:
            last = self.presenter.rows[-1:] if self.presenter.rows else ()
            row = last[0] if last else None
        return None if row is None else row.line_no

    def _void_selected(self) -> None:
        line = self._selected_line()
        if line is None:
            self.presenter.command("VOID")  # the till explains that the basket is empty
        else:
            self.presenter.void(line)

    def _set_quantity(self) -> None:
        line = self._selected_line()
        if line is not None:
            self.presenter.change_quantity(line, self.quantity.value())

    def _amount(self) -> tuple[bool, int | None]:
        text = self.amount.text().strip()
        if not text:
            return True, None
        minor = amount_minor_from_text(text)
        if minor is None:
            self.presenter.scan_failed(f"the amount {text!r} is not a number like 20 or 20.50")
            return False, None
        return True, minor

    def _pay_cash(self) -> None:
        ok, minor = self._amount()
        if ok:
            self.amount.clear()
            self.presenter.pay_cash(minor)
            self.scan_field.setFocus()

    def _pay_card(self) -> None:
        ok, minor = self._amount()
        if ok:
            self.amount.clear()
            self.presenter.pay_card(minor)
            self.scan_field.setFocus()

    def _receipt(self, choice: str) -> None:
        if choice not in ("print", "email", "both", "none"):
            return
        event = self.presenter.choose_receipt(
            choice,  # type: ignore[arg-type]
            address=self.email_field.text(),
            consent_marketing=self.consent.isChecked(),
        )
        if not event.is_error:
            self.scan_field.setFocus()

    def _accept_suggestion(self, number: int) -> None:
        views = self.presenter.suggestions
        if 0 < number <= len(views):
            self.presenter.accept_suggestion(views[number - 1].sku)

    def _add_found(self, item: QListWidgetItem) -> None:
        sku = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(sku, str):
            self.presenter.add_product(sku)
            self.search_field.clear()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._status_timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.wedge)
        self._remove_listener()
        super().closeEvent(event)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
