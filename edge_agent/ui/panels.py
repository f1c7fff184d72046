"""The side panels of the cashier's window, one per :data:`~edge_agent.ui.presenters.PAGES`.

Each panel is a thin widget over the :class:`~edge_agent.ui.presenters.TillPresenter`: buttons
call one presenter action, :meth:`Panel.update_view` paints the presenter's view models and
touches a widget only when its text changed (a scan repaints what it changed, nothing more), and
:meth:`Panel.enter` puts the keyboard focus where the cashier types next. None of them is a
dialog: the window shows one at a time beside the basket, and a scan works whichever is shown.

Text that changes on every scan (the suggestions here; the message line and the totals in the
window) sits in widgets placed by hand (:class:`TextRow`, :class:`SuggestionButton`), not in a
Qt layout. A label's new text makes Qt invalidate every layout from the label up to the window
and lay them out again, one level per pass of the event loop, repainting as it goes: on a
100-line basket that cascade (the side panel's eight stacked pages measured at several widths,
rich text laid out each time) cost more than the scan itself and came back two or three times
per scan. Placed by hand, a new text repaints its label and nothing else; the window is laid out
again only when a text needs more or fewer lines than the space it has.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from edge_agent.ui.presenters import (
    DISCOUNT_REASONS,
    CustomerView,
    ParkedRow,
    ReceiptPrompt,
    SearchRow,
    TillPresenter,
    amount_minor_from_text,
)

__all__ = [
    "DiscountPanel",
    "OpenPricePanel",
    "Panel",
    "ParkedPanel",
    "PaymentPanel",
    "ReceiptPanel",
    "ReportsPanel",
    "ReturnPanel",
    "SalePanel",
    "SuggestionButton",
    "TextRow",
    "button",
    "escape",
]

#: The line the discount panel applies to (None: nothing selected and the basket is empty).
SelectedLine = Callable[[], tuple[int, str] | None]

_RECEIPT_BUTTONS: Final = (
    ("Print\nCtrl+P", "print"),
    ("Email\nCtrl+E", "email"),
    ("Both\nCtrl+B", "both"),
    ("None\nCtrl+N", "none"),
)


def button(text: str, slot: Callable[[], object], name: str) -> QPushButton:
    """A touch-sized button named ``name`` (tests find it by name)."""
    widget = QPushButton(text)
    widget.setObjectName(name)
    widget.clicked.connect(lambda _checked=False: slot())
    return widget


def escape(text: str) -> str:
    """``text`` safe inside a rich-text label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _set_text(label: QLabel | QLineEdit | QAbstractButton, text: str) -> None:
    if label.text() != text:
        label.setText(text)


def _heading(text: str, name: str = "heading") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    return label


class TextRow(QWidget):
    """Labels side by side, placed by hand (see the module docstring), as tall as their text.

    Each label gets a share of the width by its ``stretch``; a stretch of 0 gives a label its
    natural width (a total that must never be cut). Set texts with :meth:`set_text`; the row's
    fixed height follows the tallest label, so the window is laid out again only when that
    height changes.
    """

    def __init__(self, *labels: tuple[QLabel, int], spacing: int = 6) -> None:
        super().__init__()
        self._labels = labels
        self._spacing = spacing
        for label, _stretch in labels:
            label.setParent(self)
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._place()

    def set_text(self, label: QLabel, text: str) -> None:
        """Show ``text`` in ``label`` (one of this row's)."""
        if label.text() != text:
            label.setText(text)
            self._place()

    def restyled(self) -> None:
        """A label's style changed (a dynamic property): its height may have too."""
        self._place()

    def sizeHint(self) -> QSize:
        width = sum(label.sizeHint().width() for label, _ in self._labels)
        return QSize(width, self.maximumHeight())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.maximumHeight())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        gaps = self._spacing * (len(self._labels) - 1)
        natural = {
            id(label): label.sizeHint().width() for label, stretch in self._labels if not stretch
        }
        shares = sum(stretch for _, stretch in self._labels)
        spare = max(0, self.width() - gaps - sum(natural.values()))
        widths = [
            natural[id(label)] if not stretch else spare * stretch // shares
            for label, stretch in self._labels
        ]
        height = max(
            _height_for(label, width)
            for (label, _), width in zip(self._labels, widths, strict=True)
        )
        x = 0
        for (label, _), width in zip(self._labels, widths, strict=True):
            label.setGeometry(x, 0, width, height)
            x += width + self._spacing
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)


def _height_for(label: QLabel, width: int) -> int:
    """The height ``label`` needs at ``width`` (its whole text, wrapped when it wraps)."""
    label.ensurePolished()
    height = label.heightForWidth(width) if label.wordWrap() and width > 0 else -1
    return height if height >= 0 else label.sizeHint().height()  # -1: no text to wrap


class SuggestionButton(QPushButton):
    """One touch adds the suggestion: its name and price in bold, its reason under them, both
    wrapped (a push button's own text never wraps).

    The two labels are plain text placed by hand (see the module docstring), and the button is
    at least three lines tall, so a suggestion's text relays the panel out only when it needs a
    fourth line.
    """

    #: Space around the text inside the button's border.
    MARGIN: Final = 8
    #: Lines of text every suggestion button has room for.
    LINES: Final = 3

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("suggestion")
        self.title = self._label("suggestion_title")
        self.reason = self._label("suggestion_text")
        self._fit()

    def _label(self, name: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    def show_suggestion(self, name: str, price: str, reason: str) -> None:
        title = f"+ {name}\u00a0\u00a0{price}"
        if self.title.text() != title or self.reason.text() != reason:
            self.title.setText(title)
            self.reason.setText(reason)
            self._fit()
        # What a screen reader says, and what tests read.
        self.setAccessibleName(f"Add {name} {price}: {reason}")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        width = max(1, self.width() - 2 * self.MARGIN)
        title = _height_for(self.title, width)
        reason = _height_for(self.reason, width) if self.reason.text() else 0
        text = max(self.LINES * self.reason.fontMetrics().height(), title + reason)
        top = self.MARGIN // 2 + (text - title - reason) // 2  # centred, as a button's text is
        self.title.setGeometry(self.MARGIN, top, width, title)
        self.reason.setGeometry(self.MARGIN, top + title, width, reason)
        total = text + self.MARGIN
        if self.minimumHeight() != total or self.maximumHeight() != total:
            self.setFixedHeight(total)


class Panel(QWidget):
    """A side panel; subclasses paint in :meth:`update_view` and focus in :meth:`enter`."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__()
        self.presenter = presenter

    def update_view(self) -> None:
        """Paint from the presenter's view models."""

    def enter(self) -> None:
        """The panel was just shown: put the focus where the cashier types next."""


class SalePanel(Panel):
    """The customer, the basket's suggestions and the product search."""

    def __init__(self, presenter: TillPresenter, on_added: Callable[[], None]) -> None:
        super().__init__(presenter)
        self._on_added = on_added
        self.customer_box = QGroupBox("Customer")
        self.customer_label = QLabel()
        self.customer_label.setObjectName("customer")
        self.customer_label.setWordWrap(True)
        self.customer_label.setTextFormat(Qt.TextFormat.RichText)
        QVBoxLayout(self.customer_box).addWidget(self.customer_label)
        self._customer: CustomerView | bool | None = False

        self.suggestion_box = QGroupBox("Suggestions")
        self.suggestion_layout = QVBoxLayout(self.suggestion_box)
        self.suggestion_layout.setSpacing(6)
        self.no_suggestions = QLabel("None yet: they appear as items are scanned")
        self.suggestion_layout.addWidget(self.no_suggestions)
        self._pool: list[SuggestionButton] = []
        self.suggestion_buttons: list[SuggestionButton] = []
        self._suggestion_texts: list[str] | None = None

        search_box = QGroupBox("Product search: name, brand or code")
        self.search_field = QLineEdit()
        self.search_field.setObjectName("search_field")
        self.search_field.setPlaceholderText("Type to search  [F2]")
        self.search_field.textEdited.connect(presenter.search)
        self.search_field.returnPressed.connect(self._add_first)
        self.search_results = QListWidget()
        self.search_results.setObjectName("search_results")
        self.search_results.itemActivated.connect(self.add_found)
        self.search_results.itemClicked.connect(self.add_found)
        self.search_results.setMinimumHeight(120)
        self.search_results.setVisible(False)
        self._results: tuple[SearchRow, ...] = ()
        search_layout = QVBoxLayout(search_box)
        search_layout.addWidget(self.search_field)
        search_layout.addWidget(self.search_results, 100)
        search_layout.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.customer_box)
        layout.addWidget(self.suggestion_box)
        layout.addWidget(search_box, 1)

    def update_view(self) -> None:
        self._render_customer()
        self._render_suggestions()
        self._render_search()

    def _render_customer(self) -> None:
        view = self.presenter.customer
        if view == self._customer:
            return
        self._customer = view
        if view is None:
            self.customer_box.setTitle("Customer")
            self.customer_label.setText("No customer: scan a loyalty card or a receipt QR code")
            return
        self.customer_box.setTitle(f"Customer: {view.name}")
        parts = [f"<b>{escape(view.points)}</b> | {escape(view.consents)}"]
        for title, items in (
            ("Viewed online", view.recently_viewed),
            ("Left in online cart", view.left_in_cart),
            ("Last bought in store", view.last_purchases),
        ):
            if items:
                parts.append(f"<b>{title}:</b> " + "; ".join(escape(i) for i in items))
        self.customer_label.setText("<br>".join(parts))

    def _render_suggestions(self) -> None:
        views = self.presenter.suggestions
        texts = [f"{s.name}|{s.price}|{s.reason}" for s in views]
        if self._suggestion_texts == texts:
            return
        self._suggestion_texts = texts
        self.no_suggestions.setVisible(not texts)
        while len(self._pool) < len(texts):
            widget = SuggestionButton()
            widget.clicked.connect(partial(self._accept, len(self._pool)))
            self.suggestion_layout.addWidget(widget)
            self._pool.append(widget)
        for number, widget in enumerate(self._pool):
            if number < len(texts):
                view = views[number]
                widget.show_suggestion(view.name, view.price, view.reason)
                widget.setProperty("sku", view.sku)
                widget.setToolTip(f"Alt+{number + 1}" if number < 3 else "")
                widget.setVisible(True)
            else:
                widget.setVisible(False)
                widget.setProperty("sku", None)
        self.suggestion_buttons = self._pool[: len(texts)]
        self.suggestion_box.setTitle(
            "Suggestions: one touch adds  [Alt+1..3]" if views else "Suggestions"
        )

    def _accept(self, number: int) -> None:
        views = self.presenter.suggestions
        if number < len(views):
            self.presenter.accept_suggestion(views[number].sku)

    def _render_search(self) -> None:
        results = self.presenter.search_results
        if results is self._results:
            return
        self._results = results
        self.search_results.setVisible(bool(results))
        self.search_results.clear()
        for row in results:
            item = QListWidgetItem(f"{row.name}   {row.price}   ({row.brand or row.sku})")
            item.setData(Qt.ItemDataRole.UserRole, row.sku)
            self.search_results.addItem(item)
        if results:
            self.search_results.setCurrentRow(0)

    def add_found(self, item: QListWidgetItem) -> None:
        sku = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(sku, str) and not self.presenter.add_product(sku).is_error:
            self.search_field.clear()
            self._on_added()

    def _add_first(self) -> None:
        item = self.search_results.currentItem() or self.search_results.item(0)
        if item is not None:
            self.add_found(item)

    def enter(self) -> None:
        pass  # the window focuses its scan field


class PaymentPanel(Panel):
    """What is due, the tenders taken so far, and cash or card (several make a split)."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.due = _heading("", "due")
        self.summary = QLabel()
        self.summary.setObjectName("summary")
        self.tenders = QLabel()
        self.tenders.setWordWrap(True)
        self.amount = QLineEdit()
        self.amount.setObjectName("amount")
        self.amount.setPlaceholderText("Amount given (empty: what is due)")
        self.amount.returnPressed.connect(self.pay_cash)
        self.reference = QLineEdit()
        self.reference.setObjectName("card_reference")
        self.reference.setPlaceholderText("Card terminal reference (optional)")
        self.quick_row = QHBoxLayout()
        self._quick: list[QPushButton] = []
        self._quick_values: tuple[tuple[str, int], ...] | None = None

        pay = QHBoxLayout()
        pay.addWidget(button("Cash\nF8", self.pay_cash, "pay_cash"))
        pay.addWidget(button("Card\nF7", self.pay_card, "pay_card"))
        pay.addWidget(button("Back\nEsc", presenter.back, "payment_back"))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox("Payment: cash, card, or both (split)")
        inner = QVBoxLayout(box)
        inner.addWidget(self.due)
        inner.addWidget(self.summary)
        inner.addWidget(self.tenders)
        inner.addWidget(QLabel("Cash given, or the card part of a split:"))
        inner.addWidget(self.amount)
        inner.addLayout(self.quick_row)
        inner.addWidget(self.reference)
        inner.addLayout(pay)
        layout.addWidget(box)
        layout.addStretch(1)

    def update_view(self) -> None:
        view = self.presenter.payment
        _set_text(self.due, f"Due {view.due}")
        _set_text(self.summary, f"Total {view.total}  |  paid {view.paid}")
        taken = "\n".join(view.tenders) if view.tenders else "No payment taken yet"
        _set_text(self.tenders, taken)
        if view.quick_cash != self._quick_values:
            self._quick_values = view.quick_cash
            while len(self._quick) < len(view.quick_cash):
                widget = QPushButton()
                widget.setObjectName("quick_cash")
                widget.clicked.connect(partial(self._quick_cash, len(self._quick)))
                self.quick_row.addWidget(widget)
                self._quick.append(widget)
            for number, widget in enumerate(self._quick):
                visible = number < len(view.quick_cash)
                widget.setVisible(visible)
                if visible:
                    widget.setText(f"Cash\n{view.quick_cash[number][0]}")

    def _quick_cash(self, number: int) -> None:
        values = self.presenter.payment.quick_cash
        if number < len(values):
            self.presenter.pay_cash(values[number][1])

    def _amount(self) -> tuple[bool, int | None]:
        text = self.amount.text().strip()
        if not text:
            return True, None
        minor = amount_minor_from_text(text, self.presenter.decimals)
        if minor is None:
            self.presenter.scan_failed(f"the amount {text!r} is not a number like 20 or 20.50")
            return False, None
        return True, minor

    def pay_cash(self) -> None:
        ok, minor = self._amount()
        if ok:
            self.amount.clear()
            self.presenter.pay_cash(minor)

    def pay_card(self) -> None:
        ok, minor = self._amount()
        if ok:
            reference = self.reference.text()
            self.amount.clear()
            self.reference.clear()
            self.presenter.pay_card(minor, reference)

    def enter(self) -> None:
        self.amount.setFocus()


class ReceiptPanel(Panel):
    """After the sale: the change to count out, then print, email, both or none."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.setObjectName("receipt_box")
        self.headline = _heading("", "headline")
        self.change = _heading("", "due")
        self.receipt_summary = QLabel()
        self.receipt_summary.setWordWrap(True)
        self.email_field = QLineEdit()
        self.email_field.setObjectName("email_field")
        self.email_field.setPlaceholderText("Customer's email address")
        self.consent = QCheckBox("Customer agrees to offers by email")
        self.consent.setObjectName("consent")
        self.printer_note = QLabel()
        self.printer_note.setObjectName("note")
        self.printer_note.setWordWrap(True)
        self._prompt: ReceiptPrompt | None = None
        choices = QGridLayout()
        for number, (label, choice) in enumerate(_RECEIPT_BUTTONS):
            choices.addWidget(
                button(label, partial(self.choose, choice), f"receipt_{choice}"),
                number // 2,
                number % 2,
            )
        box = QGroupBox("Receipt: how does the customer want it?")
        inner = QVBoxLayout(box)
        inner.addWidget(self.headline)
        inner.addWidget(self.change)
        inner.addWidget(self.receipt_summary)
        inner.addWidget(QLabel("Email address:"))
        inner.addWidget(self.email_field)
        inner.addWidget(self.consent)
        inner.addLayout(choices)
        inner.addWidget(self.printer_note)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addStretch(1)

    def update_view(self) -> None:
        prompt = self.presenter.receipt_prompt
        if prompt is not None and (self._prompt is None or prompt.sale_id != self._prompt.sale_id):
            self.headline.setText(f"Sale {prompt.receipt_number} complete")
            self.change.setText(f"Change {prompt.change}")
            self.receipt_summary.setText(prompt.summary)
            self.email_field.setText(prompt.email)
            self.consent.setChecked(False)
        self._prompt = prompt
        status = self.presenter.status
        note = (
            f"{status.printer}: a printed receipt comes out once the printer is fixed"
            if status.printer_fault
            else ""
        )
        _set_text(self.printer_note, note)
        self.printer_note.setVisible(bool(note))

    def choose(self, choice: str) -> None:
        if choice not in ("print", "email", "both", "none"):
            return
        self.presenter.choose_receipt(
            choice,  # type: ignore[arg-type]
            address=self.email_field.text(),
            consent_marketing=self.consent.isChecked(),
        )

    def enter(self) -> None:
        self.email_field.setFocus()


class DiscountPanel(Panel):
    """A discount on the selected line or the whole basket: an amount or a percent, a reason."""

    def __init__(self, presenter: TillPresenter, selected_line: SelectedLine) -> None:
        super().__init__(presenter)
        self._selected_line = selected_line
        self.on_line = QRadioButton()
        self.on_basket = QRadioButton("Whole basket")
        self.on_line.setChecked(True)
        self.percent = QRadioButton("Percent off (%)")
        self.amount_off = QRadioButton("Amount off")
        self.percent.setChecked(True)
        targets, kinds = QButtonGroup(self), QButtonGroup(self)
        targets.addButton(self.on_line)
        targets.addButton(self.on_basket)
        kinds.addButton(self.percent)
        kinds.addButton(self.amount_off)
        self.value = QLineEdit()
        self.value.setObjectName("discount_value")
        self.value.setPlaceholderText("10 (percent) or 2.50 (amount)")
        self.value.returnPressed.connect(self.apply)
        self.reason = QComboBox()
        self.reason.setObjectName("discount_reason")
        self.reason.setEditable(True)
        self.reason.addItems(DISCOUNT_REASONS)
        self.reason.setCurrentIndex(-1)
        line_edit = self.reason.lineEdit()
        if line_edit is not None:
            line_edit.setPlaceholderText("Reason (required)")
        actions = QHBoxLayout()
        actions.addWidget(button("Apply\nEnter", self.apply, "discount_apply"))
        actions.addWidget(button("Remove\ndiscounts", self.remove, "discount_remove"))
        actions.addWidget(button("Back\nEsc", presenter.back, "discount_back"))
        box = QGroupBox("Discount, with a reason")
        grid = QGridLayout(box)
        grid.addWidget(self.on_line, 0, 0, 1, 2)
        grid.addWidget(self.on_basket, 1, 0, 1, 2)
        grid.addWidget(self.percent, 2, 0)
        grid.addWidget(self.amount_off, 2, 1)
        grid.addWidget(self.value, 3, 0, 1, 2)
        grid.addWidget(self.reason, 4, 0, 1, 2)
        grid.addLayout(actions, 5, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addStretch(1)

    def update_view(self) -> None:
        line = self._selected_line()
        text = "Selected line: none" if line is None else f"Line: {line[1]}"
        _set_text(self.on_line, text)
        self.on_line.setEnabled(line is not None)
        if line is None:
            self.on_basket.setChecked(True)

    def apply(self) -> None:
        line = self._selected_line()
        target = line[0] if line is not None and self.on_line.isChecked() else None
        event = self.presenter.discount(
            line_no=target,
            kind="percent" if self.percent.isChecked() else "amount",
            value=self.value.text(),
            reason=self.reason.currentText(),
        )
        if not event.is_error:
            self.value.clear()
            self.reason.setCurrentIndex(-1)

    def remove(self) -> None:
        line = self._selected_line()
        target = line[0] if line is not None and self.on_line.isChecked() else None
        self.presenter.remove_discounts(target)

    def enter(self) -> None:
        self.update_view()
        self.value.setFocus()


class OpenPricePanel(Panel):
    """An item the till does not know: its name, price, tax rate and quantity."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.name = QLineEdit()
        self.name.setObjectName("open_name")
        self.name.setPlaceholderText("What is it? (printed on the receipt)")
        self.price = QLineEdit()
        self.price.setObjectName("open_price")
        self.price.setPlaceholderText("Price, e.g. 4.99")
        self.price.returnPressed.connect(self.add)
        self.rate = QComboBox()
        self.rate.setObjectName("open_rate")
        self.rate.setEditable(True)
        self._rates: tuple[str, ...] = ()
        self.quantity = QSpinBox()
        self.quantity.setRange(1, 999)
        self.quantity.setPrefix("Qty ")
        actions = QHBoxLayout()
        actions.addWidget(button("Add item\nEnter", self.add, "open_add"))
        actions.addWidget(button("Back\nEsc", presenter.back, "open_back"))
        box = QGroupBox("Open-price item")
        grid = QGridLayout(box)
        grid.addWidget(QLabel("Name"), 0, 0)
        grid.addWidget(self.name, 0, 1)
        grid.addWidget(QLabel("Price"), 1, 0)
        grid.addWidget(self.price, 1, 1)
        grid.addWidget(QLabel("Tax %"), 2, 0)
        grid.addWidget(self.rate, 2, 1)
        grid.addWidget(self.quantity, 3, 1)
        grid.addLayout(actions, 4, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addStretch(1)

    def update_view(self) -> None:
        rates = self.presenter.tax_rates
        if rates != self._rates:
            self._rates = rates
            self.rate.clear()
            self.rate.addItems([f"{r}" for r in rates])

    def add(self) -> None:
        event = self.presenter.add_open_price(
            self.name.text(), self.price.text(), self.rate.currentText(), self.quantity.value()
        )
        if not event.is_error:
            self.name.clear()
            self.price.clear()
            self.quantity.setValue(1)

    def enter(self) -> None:
        self.name.setFocus()


class ParkedPanel(Panel):
    """Park the sale under a label; resume any parked sale."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.label = QLineEdit()
        self.label.setObjectName("park_label")
        self.label.setPlaceholderText("Label, e.g. the customer's name")
        self.label.returnPressed.connect(self.park)
        self.parked = QListWidget()
        self.parked.setObjectName("parked_list")
        self.parked.itemActivated.connect(lambda _item: self.resume())
        self._rows: tuple[ParkedRow, ...] | None = None
        self.empty = QLabel("No parked sales")
        park_box = QGroupBox("Park this sale")
        park_layout = QHBoxLayout(park_box)
        park_layout.addWidget(self.label, 1)
        park_layout.addWidget(button("Park\nF9", self.park, "park_now"))
        list_box = QGroupBox("Parked sales: pick one to resume")
        list_layout = QVBoxLayout(list_box)
        list_layout.addWidget(self.empty)
        list_layout.addWidget(self.parked, 1)
        actions = QHBoxLayout()
        actions.addWidget(button("Resume selected\nEnter", self.resume, "resume_selected"))
        actions.addWidget(button("Back\nEsc", presenter.back, "parked_back"))
        list_layout.addLayout(actions)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(park_box)
        layout.addWidget(list_box, 1)

    def update_view(self) -> None:
        rows = self.presenter.parked
        if rows == self._rows:
            return
        self._rows = rows
        self.parked.clear()
        for row in rows:
            item = QListWidgetItem(row.text)
            item.setData(Qt.ItemDataRole.UserRole, row.park_id)
            self.parked.addItem(item)
        self.empty.setVisible(not rows)
        if rows:
            self.parked.setCurrentRow(0)

    def park(self) -> None:
        if not self.presenter.park(self.label.text()).is_error:
            self.label.clear()

    def resume(self) -> None:
        item = self.parked.currentItem()
        park_id = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        if isinstance(park_id, str):
            self.presenter.resume(park_id)
        else:
            self.presenter.resume(None)

    def enter(self) -> None:
        if self.presenter.parked and not self.presenter.till.engine.basket.lines:
            self.parked.setFocus()
        else:
            self.label.setFocus()


class ReturnPanel(Panel):
    """A return: scan the receipt's barcode or type its number; refund in cash or to the card."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.number = QLineEdit()
        self.number.setObjectName("return_number")
        self.number.setPlaceholderText("Receipt number, e.g. S001-T1-000123")
        self.number.returnPressed.connect(self.find_receipt)
        self.lines = QLabel()
        self.lines.setWordWrap(True)
        self.refund = _heading("", "due")
        find = QHBoxLayout()
        find.addWidget(self.number, 1)
        find.addWidget(button("Find\nEnter", self.find_receipt, "return_find"))
        refund = QHBoxLayout()
        refund.addWidget(button("Refund cash\nF8", lambda: presenter.pay_cash(), "refund_cash"))
        refund.addWidget(button("Refund card\nF7", lambda: presenter.pay_card(), "refund_card"))
        refund.addWidget(
            button("Cancel return\nF12", lambda: presenter.command("CANCEL"), "return_cancel")
        )
        box = QGroupBox("Return: scan the receipt, or type its number")
        inner = QVBoxLayout(box)
        inner.addLayout(find)
        inner.addWidget(self.lines)
        inner.addWidget(self.refund)
        inner.addLayout(refund)
        inner.addWidget(button("Back\nEsc", presenter.back, "return_back"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addStretch(1)

    def update_view(self) -> None:
        view = self.presenter.return_view
        if view is None:
            _set_text(self.lines, "No return yet.")
            _set_text(self.refund, "")
            return
        _set_text(
            self.lines, f"Receipt {view.receipt_number}, coming back:\n" + "\n".join(view.lines)
        )
        _set_text(self.refund, f"Refund {view.refund}")

    def find_receipt(self) -> None:
        if not self.presenter.start_return(self.number.text()).is_error:
            self.number.clear()

    def enter(self) -> None:
        if self.presenter.return_view is None:
            self.number.setFocus()


class ReportsPanel(Panel):
    """The X report (a look, changes nothing) and the Z report (closes the day), printed."""

    def __init__(self, presenter: TillPresenter) -> None:
        super().__init__(presenter)
        self.x_button = button("X report (print)\nAlt+X", presenter.x_report, "x_report")
        self.z_button = button("Z report: close the day\nAlt+Z", presenter.z_report, "z_report")
        self.report = QLabel()
        self.report.setObjectName("report")
        self.report.setTextFormat(Qt.TextFormat.RichText)
        self.report.setWordWrap(True)
        self._shown: object = None
        actions = QHBoxLayout()
        actions.addWidget(self.x_button)
        actions.addWidget(self.z_button)
        self.report.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.report)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        box = QGroupBox("Reports")
        inner = QVBoxLayout(box)
        inner.addLayout(actions)
        inner.addWidget(scroll, 1)
        inner.addWidget(button("Back\nEsc", presenter.back, "reports_back"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)

    def update_view(self) -> None:
        armed = self.presenter.z_armed
        _set_text(
            self.z_button,
            "CONFIRM: close the day\nAlt+Z again" if armed else "Z report: close the day\nAlt+Z",
        )
        report = self.presenter.report
        if report is self._shown:
            return
        self._shown = report
        if report is None:
            self.report.setText("No report printed yet.")
            return
        rows = "".join(
            "<tr><td colspan=2><hr></td></tr>"
            if not label and not value
            else f"<tr><td>{escape(label)}</td><td align=right>{escape(value)}</td></tr>"
            for label, value in report.rows
        )
        self.report.setText(
            f"<b>{escape(report.title)}</b> ({escape(report.printing)})"
            f"<table width=100% cellspacing=0 cellpadding=2>{rows}</table>"
        )

    def enter(self) -> None:
        self.x_button.setFocus()
