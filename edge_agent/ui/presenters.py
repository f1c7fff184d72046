"""What the cashier's screen shows and does, in plain Python: the widgets only render it.

:class:`TillPresenter` wraps a :class:`~edge_agent.till.Till` and keeps *view models*: frozen
dataclasses of ready-to-paint text (money already formatted for the store's locale with
``shared.money.Money.format``). Every action (a scan, one touch on a suggestion, a payment, the
receipt choice...) goes through the till, which never raises; the presenter then rebuilds the
view models and tells its listeners (plain callables, no Qt signals), so the Qt widgets stay a
thin skin and these rules are tested without a display.

The side panel
--------------
Next to the basket, one panel at a time (:attr:`TillPresenter.page`), never a dialog:

=============  ==========================================================================
``sale``       customer, suggestions and product search (the default)
``payment``    what is due, the tenders taken, cash / card / split
``receipt``    after a sale: print, email, both or none
``discount``   a discount on the selected line or the basket, with a reason
``open_price`` an item the till does not know, keyed with its name, price and tax rate
``parked``     park the sale with a label; the parked sales, to resume any of them
``return``     a return from a receipt's barcode or number, refunded in cash or to the card
``reports``    X report, and the Z report (closing the day) after a second press
=============  ==========================================================================

The presenter moves between them as the sale goes: a completed sale opens ``receipt``, a
receipt barcode opens ``return``, the next item brings ``sale`` back. An error leaves the panel
where it was, so the cashier can correct what they typed.

Rules the screen keeps
----------------------
- **Nothing told by colour alone.** Every state has words: ``OFFLINE``, ``PAPER OUT``, an error
  message starting with what went wrong. The ``is_error`` / ``fault`` flags only add emphasis.
- **The status bar never lies.** It is rebuilt from :meth:`Till.status` on every action and on
  :meth:`TillPresenter.refresh_status`, which the window calls when the till's sync worker or
  printer report a change: online, offline or still connecting; how many ops wait for HQ; when
  the till last heard from HQ (in the store's time zone); the printer in its own words.
- **No modal blocks the next sale.** Errors and faults are a message on the screen; the receipt
  choice is a panel, and a scan starts the next sale regardless.
- **The receipt prints only when the customer wants it.** The presenter sets the till's
  ``hold_receipts``: the sale is saved at once, its paper receipt waits for the choice (the cash
  drawer opens at once all the same). A receipt the customer never chose (the next scan came
  first) is not printed; F11 prints it while it is the last sale.
- **The last sale stays on screen** (the receipt panel: its total and, in large type, the
  change) until the next item is scanned, so the cashier can count the change out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.sale_engine import BasketTotals
from edge_agent.till import Till, TillEvent, TillStatus
from shared.customer import CardItem, CustomerCard
from shared.errors import OmnitillError
from shared.money import Money, minor_units

__all__ = [
    "DISCOUNT_REASONS",
    "PAGES",
    "BasketRow",
    "CustomerView",
    "MessageView",
    "Page",
    "ParkedRow",
    "PaymentView",
    "ReceiptChoice",
    "ReceiptPrompt",
    "ReportView",
    "ReturnView",
    "SearchRow",
    "StatusView",
    "SuggestionView",
    "TillPresenter",
    "TotalsView",
    "amount_minor_from_text",
    "percent_from_text",
]

log = logging.getLogger(__name__)

ReceiptChoice = Literal["print", "email", "both", "none"]
Page = Literal[
    "sale", "payment", "receipt", "discount", "open_price", "parked", "return", "reports"
]
PAGES: Final[tuple[Page, ...]] = (
    "sale",
    "payment",
    "receipt",
    "discount",
    "open_price",
    "parked",
    "return",
    "reports",
)

#: How the consent channels read on the customer panel.
CONSENT_LABELS: Final[dict[str, str]] = {
    "marketing_email": "Offers by email",
    "marketing_sms": "Offers by SMS",
    "email": "Email",
    "sms": "SMS",
    "profiling": "Personal suggestions",
}

#: The reasons offered for a discount (the cashier may type another).
DISCOUNT_REASONS: Final = (
    "Damaged packaging",
    "Price match",
    "Staff discount",
    "Loyalty goodwill",
    "Manager approval",
)

#: Items shown per customer highlight (recently viewed, cart, purchases).
HIGHLIGHT_ITEMS: Final = 3
SEARCH_LIMIT: Final = 20
#: Banknotes offered as one-touch cash amounts, in major units.
_NOTES: Final = (5, 10, 20, 50, 100, 200)

#: What a basket row's text depends on: line number, SKU, name, quantity, weight, unit price,
#: amount and (reason, amount) of each discount.
_RowKey = tuple[int, str, str, int, int | None, int, int, tuple[tuple[str, int], ...]]

_AMOUNT = re.compile(r"(\d{1,9})(?:[.,](\d{1,2}))?")
_PERCENT = re.compile(r"(\d{1,3})(?:[.,](\d{1,2}))?\s*%?")


def amount_minor_from_text(text: str, decimals: int = 2) -> int | None:
    """Minor units from what a cashier keys for an amount (``20``, ``20.5``, ``20,50``); None
    for anything else."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        return None
    whole, part = str(match[1]), str(match[2] or "")
    if part and not decimals:
        return None
    fraction = part.ljust(decimals, "0")[:decimals] if decimals else ""
    scale: int = 10**decimals
    return int(whole) * scale + (int(fraction) if fraction else 0)


def percent_from_text(text: str) -> Decimal | None:
    """A percent keyed by the cashier (``10``, ``12.5``, ``15 %``): more than 0, at most 100."""
    match = _PERCENT.fullmatch(text.strip())
    if match is None:
        return None
    value = Decimal(f"{match[1]}.{match[2] or '0'}")
    # 10, not 10.0 nor 1E+1: the value is shown and printed as keyed.
    value = value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
    return value if 0 < value <= 100 else None


@dataclass(frozen=True, slots=True)
class BasketRow:
    """One basket line as the table shows it."""

    line_no: int
    sku: str
    quantity: str
    name: str
    unit_price: str
    line_total: str
    discount: str = ""


@dataclass(frozen=True, slots=True)
class TotalsView:
    subtotal: str
    discount: str
    tax: str
    total: str
    paid: str
    due: str
    change: str
    due_minor: int
    lines: int
    tax_note: str

    @property
    def text(self) -> str:
        return f"Total {self.total} | {self.tax_note} | Paid {self.paid} | Due {self.due}"


@dataclass(frozen=True, slots=True)
class CustomerView:
    name: str
    points: str
    consents: str
    recently_viewed: tuple[str, ...]
    left_in_cart: tuple[str, ...]
    last_purchases: tuple[str, ...]
    provisional: bool
    email: str = ""


@dataclass(frozen=True, slots=True)
class SuggestionView:
    sku: str
    name: str
    price: str
    reason: str


@dataclass(frozen=True, slots=True)
class SearchRow:
    sku: str
    name: str
    brand: str
    price: str


@dataclass(frozen=True, slots=True)
class PaymentView:
    """The payment panel: what is due and what was taken so far."""

    total: str
    paid: str
    due: str
    due_minor: int
    tenders: tuple[str, ...]
    #: One-touch cash amounts (label, minor units): exactly what is due, then banknotes above it.
    quick_cash: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class StatusView:
    """The status bar: four labelled parts, each in words."""

    connection: str
    waiting: str
    last_sync: str
    printer: str
    offline: bool
    printer_fault: bool
    #: A fault the cashier must act on, shown as a banner above the basket ("" when none).
    alert: str = ""

    @property
    def text(self) -> str:
        return " | ".join((self.connection, self.waiting, self.last_sync, self.printer))


@dataclass(frozen=True, slots=True)
class MessageView:
    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptPrompt:
    """After a sale: how the customer wants the receipt (the paper one waits for the answer)."""

    sale_id: str
    receipt_number: str
    email: str
    summary: str
    total: str = ""
    change: str = ""
    #: The email was queued already (a retry after a failed release must not send it twice).
    emailed: bool = False


@dataclass(frozen=True, slots=True)
class ReturnView:
    """A return on the counter: the receipt it refunds and what comes back."""

    receipt_number: str
    lines: tuple[str, ...]
    refund: str


@dataclass(frozen=True, slots=True)
class ParkedRow:
    park_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReportView:
    title: str
    rows: tuple[tuple[str, str], ...]
    printing: str


Listener = Callable[[], None]


class TillPresenter:
    """The cashier's screen over ``till``; see the module docstring.

    ``ask_receipt`` (default) makes the till hold each paper receipt for the receipt choice.
    """

    def __init__(self, till: Till, *, ask_receipt: bool = True) -> None:
        self.till = till
        till.hold_receipts = ask_receipt
        self._listeners: list[Listener] = []
        self._money_cache: dict[int, str] = {}
        self._money_shop: tuple[str, str] | None = None
        self._row_cache: dict[_RowKey, BasketRow] = {}
        self.page: Page = "sale"
        self.rows: tuple[BasketRow, ...] = ()
        self.customer: CustomerView | None = None
        self._card: CustomerCard | None = None
        self.suggestions: tuple[SuggestionView, ...] = ()
        self.search_results: tuple[SearchRow, ...] = ()
        self.message = MessageView("Ready for the first scan")
        self.receipt_prompt: ReceiptPrompt | None = None
        self.return_view: ReturnView | None = None
        self.parked: tuple[ParkedRow, ...] = ()
        self.report: ReportView | None = None
        self.tax_rates: tuple[str, ...] = ()
        self.z_armed = False
        self.last_event: TillEvent | None = None
        totals = till.engine.totals()
        self.totals: TotalsView = self._totals_view(totals)
        self.payment: PaymentView = self._payment_view(totals)
        self.status: StatusView = self._status_view(till.status())
        self._rebuild()

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns the function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # one broken view must not stop the sale or the other views
                log.exception("a till screen listener failed")

    # -- scanning and the basket ---------------------------------------------------------------

    def scan(self, text: str) -> TillEvent:
        """A scan from the scan field, the keyboard wedge or the serial scanner."""
        if not text.strip():
            return self._show(TillEvent("refused", "refused: the scan was empty"))
        return self._sale_action(lambda: self.till.handle_scan(text))

    def scan_failed(self, message: str) -> TillEvent:
        return self._show(self.till.scan_failed(message))

    def accept_suggestion(self, sku: str) -> TillEvent:
        return self._sale_action(lambda: self.till.accept_suggestion(sku))

    def add_product(self, sku: str) -> TillEvent:
        """Add a product picked from the search results."""
        event = self._sale_action(lambda: self.till.add_sku(sku))
        if not event.is_error:
            self.search_results = ()
            self._changed()
        return event

    def void(self, line_no: int) -> TillEvent:
        return self._sale_action(lambda: self.till.void_line(line_no))

    def change_quantity(self, line_no: int, quantity: int) -> TillEvent:
        return self._sale_action(lambda: self.till.set_line_quantity(line_no, quantity))

    def search(self, text: str) -> tuple[SearchRow, ...]:
        """Products by name, brand or code from the local catalogue (results as you type)."""
        text = text.strip()
        items = self.till.catalogue.search(text, limit=SEARCH_LIMIT) if text else []
        results = tuple(
            SearchRow(
                sku=item.sku,
                name=item.name,
                brand=item.brand,
                price=self._money(item.price_minor)
                + (" / kg" if item.variable_measure == "weight" else ""),
            )
            for item in items
        )
        if results != self.search_results:
            self.search_results = results
            self._changed()
        return self.search_results

    # -- panels --------------------------------------------------------------------------------

    def show(self, page: Page) -> Page:
        """Open a side panel (refused with a message when it makes no sense now)."""
        refusal = self._refusal(page)
        if refusal is not None:
            self._show(TillEvent("refused", f"refused: {refusal}"))
            return self.page
        if page == "parked":
            self._load_parked()
        elif page == "open_price" and not self.tax_rates:
            self.tax_rates = tuple(f"{rate:f}" for rate in self.till.tax_rates()) or ("0",)
        if page != "reports":
            self.z_armed = False
        self.page = page
        self._changed()
        return self.page

    def back(self) -> Page:
        """Close the panel (Esc): the sale panel, or the return while one is on the counter.
        The receipt panel closes only with a choice or the next scan."""
        if self.page == "receipt":
            self.message = MessageView(
                "Choose the receipt: print, email, both or none (or scan the next item)"
            )
            self._changed()
            return self.page
        self.page = "return" if self.till.return_draft is not None else "sale"
        self.z_armed = False
        self._changed()
        return self.page

    def _refusal(self, page: Page) -> str | None:
        engine = self.till.engine
        returning = self.till.return_draft is not None
        if returning and page not in ("return", "reports"):
            return "a return is in progress: refund it or cancel it (F12) first"
        if page == "payment" and not engine.basket.lines:
            return "the basket is empty: scan the items before paying"
        if page == "discount" and not engine.basket.lines:
            return "the basket is empty: scan the items before discounting them"
        if page in ("discount", "open_price") and engine.basket.tenders:
            return "payment has started: the items cannot change now; pay the rest or cancel"
        if page == "receipt" and self.receipt_prompt is None:
            return "there is no sale waiting for a receipt"
        return None

    # -- payment and the receipt ---------------------------------------------------------------

    def pay_cash(self, tendered_minor: int | None = None) -> TillEvent:
        """Cash: ``tendered_minor`` is what the customer handed over (None: exactly what is
        due); more than due gives change, less leaves the rest due (a split payment). During a
        return it refunds in cash."""
        return self._sale_action(lambda: self.till.pay("cash", tendered_minor))

    def pay_card(self, amount_minor: int | None = None, reference: str = "") -> TillEvent:
        """Card at the terminal: what is due (None) or part of it (a split payment), with the
        terminal's reference when the cashier keys it. During a return it refunds to the card."""
        ref = reference.strip() or None
        return self._sale_action(lambda: self.till.pay("card", amount_minor, reference=ref))

    def choose_receipt(
        self, choice: ReceiptChoice, *, address: str = "", consent_marketing: bool = False
    ) -> TillEvent:
        """The customer's receipt choice for the last sale: ``email`` and ``both`` queue the
        email through HQ; ``print`` and ``both`` print the held paper receipt; ``email`` and
        ``none`` never print it."""
        prompt = self.receipt_prompt
        if prompt is None:
            return self._show(
                TillEvent("refused", "refused: there is no sale waiting for a receipt")
            )
        notes: list[str] = []
        if choice in ("email", "both") and not prompt.emailed:
            mailed = self.till.email_receipt(
                address, consent_marketing=consent_marketing, sale_id=prompt.sale_id
            )
            if mailed.is_error:
                return self._show(mailed)  # the prompt stays: fix the address and try again
            prompt = self.receipt_prompt = replace(prompt, emailed=True)
            notes.append(mailed.message)
        released = self.till.release_receipt(prompt.sale_id, paper=choice in ("print", "both"))
        if released.is_error:
            return self._show(released)
        notes.append(released.message)
        self.receipt_prompt = None
        self.page = "sale"
        event = TillEvent(released.kind, "; ".join(notes), {**released.data, "choice": choice})
        return self._show(event)

    # -- discounts and open-price items --------------------------------------------------------

    def discount(
        self,
        *,
        line_no: int | None,
        kind: Literal["amount", "percent"],
        value: str,
        reason: str,
    ) -> TillEvent:
        """A discount typed on the discount panel: ``value`` as keyed (``2.50`` or ``10``),
        on line ``line_no`` or the whole basket (None), always with a reason."""
        reason = reason.strip()
        if not reason:
            return self._refuse("a discount needs a reason: pick one or type it")
        number: Decimal | int | None
        if kind == "percent":
            number = percent_from_text(value)
            problem = f"{value.strip()!r} is not a percent from 0.01 to 100"
        else:
            number = amount_minor_from_text(value, self.decimals)
            problem = f"{value.strip()!r} is not an amount like 2 or 2.50"
        if number is None or number == 0:
            return self._refuse(problem)
        checked = number
        if line_no is None:
            return self._sale_action(
                lambda: self.till.discount_basket(kind=kind, value=checked, reason=reason)
            )
        return self._sale_action(
            lambda: self.till.discount_line(line_no, kind=kind, value=checked, reason=reason)
        )

    def remove_discounts(self, line_no: int | None) -> TillEvent:
        return self._sale_action(lambda: self.till.remove_discounts(line_no))

    def add_open_price(self, name: str, price: str, tax_rate: str, quantity: int = 1) -> TillEvent:
        """An item keyed by hand: its name, price as keyed and tax rate (percent)."""
        minor = amount_minor_from_text(price, self.decimals)
        if minor is None:
            return self._refuse(f"the price {price.strip()!r} is not an amount like 4.99")
        try:
            rate = Decimal(tax_rate.strip().rstrip("%").strip().replace(",", "."))
        except InvalidOperation:
            return self._refuse(f"the tax rate {tax_rate!r} is not a percent like 19 or 7")
        return self._sale_action(lambda: self.till.add_open_price(name, minor, rate, quantity))

    # -- parking, returns, reports, commands ---------------------------------------------------

    def park(self, label: str = "") -> TillEvent:
        event = self._sale_action(lambda: self.till.park(label))
        self._load_parked()
        self._changed()
        return event

    def resume(self, park_id: str | None = None) -> TillEvent:
        event = self._sale_action(lambda: self.till.resume(park_id))
        self._load_parked()
        self._changed()
        return event

    def start_return(self, receipt_number: str) -> TillEvent:
        """A return by the receipt's number as printed (when its barcode does not scan)."""
        number = receipt_number.strip().upper()
        if not number:
            return self._refuse("type the receipt number printed on the receipt")
        return self.scan(f"R{number}")

    def x_report(self) -> TillEvent:
        return self._sale_action(lambda: self.till.handle_scan("CMD-X"))

    def z_report(self) -> TillEvent | None:
        """Close the day: the first call asks for a second one (nothing happens yet)."""
        if not self.z_armed:
            self.z_armed = True
            self.page = "reports"
            self.message = MessageView(
                "Z report closes the day: press Z report again to confirm, Esc to stop"
            )
            self._changed()
            return None
        self.z_armed = False
        return self._sale_action(lambda: self.till.handle_scan("CMD-Z"))

    def command(self, name: str) -> TillEvent:
        """A till command by name (``CANCEL``, ``PARK``, ``RESUME``, ``REPRINT``, ``X``...)."""
        return self._sale_action(lambda: self.till.handle_scan(f"CMD-{name}"))

    def refresh_status(self) -> StatusView:
        """Re-read the till's status (sync and printer); listeners hear only of a change."""
        status = self._status_view(self.till.status())
        if status != self.status:
            self.status = status
            self._changed()
        return self.status

    # -- building the view models --------------------------------------------------------------

    def _refuse(self, reason: str) -> TillEvent:
        return self._show(TillEvent("refused", f"refused: {reason}"))

    def _sale_action(self, action: Callable[[], TillEvent]) -> TillEvent:
        # The customer leaves the basket when the sale completes: keep their address for the
        # receipt prompt.
        card = self.till.engine.basket.customer
        event = action()
        kind = event.kind
        if kind == "sale_complete":
            total = self._money(int(event.data["total_minor"]))
            change = self._money(int(event.data["change_minor"]))
            self.receipt_prompt = ReceiptPrompt(
                sale_id=str(event.data["sale_id"]),
                receipt_number=str(event.data["receipt_number"]),
                email=_email_of(card),
                summary=f"Sale {event.data['receipt_number']}: total {total}, change {change}",
                total=total,
                change=change,
            )
            self.page = "receipt"
        elif kind in ("item_added", "customer", "cancelled", "resumed", "return_started"):
            self.receipt_prompt = None
            self.page = "return" if kind == "return_started" else "sale"
        elif kind in ("return_complete", "parked", "discount"):
            self.page = "sale"
        elif kind == "payment":
            self.page = "payment"
        elif kind == "report":
            self.report = ReportView(
                title=str(event.data.get("title", "Report")),
                rows=tuple((str(a), str(b)) for a, b in event.data.get("lines", ())),
                printing=str(event.data.get("printing", "")),
            )
            self.page = "reports"
        return self._show(event)

    def _show(self, event: TillEvent) -> TillEvent:
        self.last_event = event
        text = _sentence(event.message)
        if event.kind == "report" and event.data.get("printing"):
            text += f" | {event.data['printing']}"
        self.message = MessageView(text, event.is_error)
        self._rebuild()
        self._changed()
        return event

    def _rebuild(self) -> None:
        engine = self.till.engine
        totals = engine.totals()
        self.rows = self._rows(totals)
        self.totals = self._totals_view(totals)
        self.payment = self._payment_view(totals)
        card = engine.basket.customer
        if card is not self._card:
            # The same card object stays on the basket for the whole sale: build its view once.
            self._card = card
            self.customer = None if card is None else self._customer_view(card)
        self.suggestions = tuple(
            SuggestionView(
                sku=s.sku,
                name=s.name,
                price="" if s.price_minor is None else self._money(s.price_minor),
                reason=s.reason,
            )
            for s in self.till.suggestions
        )
        self.return_view = self._return_view()
        self.status = self._status_view(self.till.status())

    def _rows(self, totals: BasketTotals) -> tuple[BasketRow, ...]:
        priced = totals.lines
        if not priced:
            self._row_cache = {}
            return ()
        cache: dict[_RowKey, BasketRow] = self._row_cache
        fresh: dict[_RowKey, BasketRow] = {}
        rows = []
        for p in priced:
            line = p.line
            key: _RowKey = (
                line.line_no,
                line.sku,
                line.name,
                line.quantity,
                line.weight_g,
                line.unit_price_minor,
                p.amount_minor,
                tuple((d.reason, d.amount_minor) for d in p.discounts),
            )
            row = cache.get(key)
            if row is None:
                row = self._row(key)
            fresh[key] = row
            rows.append(row)
        self._row_cache = fresh
        return tuple(rows)

    def _row(self, key: _RowKey) -> BasketRow:
        """Format one line (rows are cached by ``key``: a scan formats only what changed)."""
        line_no, sku, name, quantity, weight_g, unit_price, amount, discounts = key
        if weight_g is not None:
            quantity_text = f"{weight_g / 1000:.3f} kg"
            unit = f"{self._money(unit_price)} / kg"
        else:
            quantity_text, unit = str(quantity), self._money(unit_price)
        # The amount first: it stays readable when a long reason is cut off.
        discount = "; ".join(f"-{self._money(minor)} {reason}" for reason, minor in discounts)
        return BasketRow(
            line_no=line_no,
            sku=sku,
            quantity=quantity_text,
            name=name,
            unit_price=unit,
            line_total=self._money(amount),
            discount=discount,
        )

    def _totals_view(self, t: BasketTotals) -> TotalsView:
        engine = self.till.engine
        mode = engine.shop.tax_mode
        tax = self._money(t.tax_minor)
        note = f"incl. tax {tax}" if mode == "inclusive" else f"plus tax {tax}"
        return TotalsView(
            subtotal=self._money(t.subtotal_minor),
            discount=self._money(t.discount_minor),
            tax=tax,
            total=self._money(t.total_minor),
            paid=self._money(t.paid_minor),
            due=self._money(t.due_minor),
            change=self._money(t.change_minor),
            due_minor=t.due_minor,
            lines=len(engine.basket.lines),
            tax_note=note,
        )

    def _payment_view(self, t: BasketTotals) -> PaymentView:
        tenders = []
        for tender in self.till.engine.basket.tenders:
            text = f"{tender.kind.capitalize()} {self._money(tender.amount_minor)}"
            if tender.reference:
                text += f" (terminal ref. {tender.reference})"
            tenders.append(text)
        quick: list[tuple[str, int]] = []
        if t.due_minor > 0:
            quick.append((f"Exact {self._money(t.due_minor)}", t.due_minor))
            scale = 10**self.decimals
            for note in _NOTES:
                minor = note * scale
                if minor > t.due_minor and len(quick) < 4:
                    quick.append((self._money(minor), minor))
        return PaymentView(
            total=self._money(t.total_minor),
            paid=self._money(t.paid_minor),
            due=self._money(t.due_minor),
            due_minor=t.due_minor,
            tenders=tuple(tenders),
            quick_cash=tuple(quick),
        )

    def _return_view(self) -> ReturnView | None:
        draft = self.till.return_draft
        if draft is None:
            return None
        try:
            lines = tuple(
                f"{line.quantity} x {line.name}  {self._money(line.amount_minor)}"
                for line in draft.lines()
            )
            refund = self._money(draft.total_minor)
        except OmnitillError as exc:  # a stored sale the engine cannot read back
            return ReturnView(draft.sale.receipt_number, (exc.message,), "")
        return ReturnView(receipt_number=draft.sale.receipt_number, lines=lines, refund=refund)

    def _load_parked(self) -> None:
        rows = []
        for parked in self.till.parked_sales():
            label = parked.label or "no label"
            when = f"{self._local(parked.created_at):%H:%M}"
            lines = f"{parked.line_count} line{'s' if parked.line_count != 1 else ''}"
            rows.append(
                ParkedRow(
                    park_id=parked.park_id,
                    text=f"{when}  {label}  |  {lines}  |  {self._money(parked.total_minor)}",
                )
            )
        self.parked = tuple(rows)

    def _customer_view(self, card: CustomerCard) -> CustomerView:
        names = self._names(card)
        consents = ", ".join(
            f"{CONSENT_LABELS.get(channel, channel)}: {'yes' if granted else 'no'}"
            for channel, granted in sorted(card.consents.items())
        )
        n = HIGHLIGHT_ITEMS
        return CustomerView(
            name=card.display_name + (" (new, provisional)" if card.provisional else ""),
            points=f"{card.loyalty_points:,} points",
            consents=consents or "No consents recorded",
            recently_viewed=tuple(self._item_text(i, names) for i in card.recently_viewed[:n]),
            left_in_cart=tuple(self._item_text(i, names) for i in card.cart_items[:n]),
            last_purchases=tuple(self._item_text(i, names) for i in card.recent_purchases[:n]),
            provisional=card.provisional,
            email=_email_of(card),
        )

    def _names(self, card: CustomerCard) -> dict[str, str]:
        items: Sequence[CardItem] = (
            card.recently_viewed[:HIGHLIGHT_ITEMS]
            + card.cart_items[:HIGHLIGHT_ITEMS]
            + card.recent_purchases[:HIGHLIGHT_ITEMS]
        )
        missing = {i.sku for i in items if not i.name}
        try:
            return self.till.catalogue.names(missing) if missing else {}
        except OmnitillError:
            return {}

    def _item_text(self, item: CardItem, names: dict[str, str]) -> str:
        text = item.name or names.get(item.sku, item.sku)
        if item.price_minor is not None:
            text += f" ({self._money(item.price_minor)})"
        if item.at is not None:
            text += f", {self._local(item.at):%d %b}"
        return text

    def _status_view(self, status: TillStatus) -> StatusView:
        sync = status.sync
        heard = max((t for t in (sync.last_push_at, sync.last_pull_at) if t), default=None)
        configured = sync.server_url is not None or self.till.settings.token is not None
        if sync.online:
            connection = "ONLINE with HQ"
        elif not configured:
            connection = "OFFLINE: no HQ configured, sales are kept here"
        elif heard is None and sync.last_error is None:
            connection = "CONNECTING to HQ: sales are kept here meanwhile"
        else:
            connection = "OFFLINE: sales are kept and sent when HQ is back"
        waiting = (
            "all sent"
            if sync.pending_ops == 0
            else f"{sync.pending_ops} op{'s' if sync.pending_ops != 1 else ''} waiting to sync"
        )
        alerts = []
        if sync.dead_letters:
            waiting += f", {sync.dead_letters} REFUSED by HQ (call support)"
            alerts.append(
                f"HQ REFUSED {sync.dead_letters} op{'s' if sync.dead_letters != 1 else ''}: "
                "they are kept at this till; call support"
            )
        last = "never synced" if heard is None else f"last sync {self._local(heard):%H:%M:%S}"
        printer = status.printer
        fault = printer is not None and printer.fault is not None
        if printer is None:
            printer_text = "Printer: none configured"
        elif printer.fault is not None:
            # The bar names the fault; the banner carries the printer's own words.
            kind = printer.fault.replace("_", " ").upper()
            printer_text = f"PRINTER {kind}"
            if printer.pending_jobs:
                printer_text += f", {printer.pending_jobs} waiting"
            alerts.insert(0, f"PRINTER {kind}: {printer.message}")
        elif printer.uncertain_jobs:
            printer_text = f"Printer: CHECK {printer.uncertain_jobs} receipt(s)"
            alerts.insert(0, f"PRINTER: {printer.message}")
        elif printer.paper_low:
            printer_text = "Printer ready, PAPER LOW"
        elif printer.ready:
            printer_text = "Printer ready"
        else:
            printer_text = f"Printer: {printer.message}"
        return StatusView(
            connection=connection,
            waiting=waiting,
            last_sync=last,
            printer=printer_text,
            offline=not sync.online,
            printer_fault=fault,
            alert=" | ".join(alerts),
        )

    # -- formatting ----------------------------------------------------------------------------

    def _money(self, amount: int) -> str:
        shop = self.till.engine.shop
        key = (shop.currency, shop.locale)
        if key != self._money_shop:
            self._money_cache, self._money_shop = {}, key
        text = self._money_cache.get(amount)
        if text is None:
            try:
                text = Money(amount, shop.currency).format(shop.locale)
            except OmnitillError:
                text = f"{amount} {shop.currency} minor units"
            if len(self._money_cache) < 10_000:
                self._money_cache[amount] = text
        return text

    @property
    def decimals(self) -> int:
        """Digits after the decimal point in the store's currency (2 for EUR, 0 for JPY)."""
        try:
            return minor_units(self.till.engine.shop.currency)
        except OmnitillError:
            return 2

    def _local(self, moment: datetime) -> datetime:
        try:
            return moment.astimezone(ZoneInfo(self.till.engine.shop.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            return moment


def _email_of(card: CustomerCard | None) -> str:
    if card is None:
        return ""
    return next((i.value for i in card.identifiers if i.kind == "email"), "")


#: The till's messages name command barcodes (for the headless till); the screen names its keys.
_SCREEN_KEYS: Final = (
    ("CMD-PAY-CASH", "Cash (F8)"),
    ("CMD-PAY-CARD", "Card (F7)"),
    ("CMD-CANCEL", "Cancel (F12)"),
    ("CMD-RESUME", "Parked (F10)"),
)


def _sentence(message: str) -> str:
    """The till's one-line message for the screen: capitalised, with keys for barcodes."""
    if "CMD-" in message:
        for barcode, key in _SCREEN_KEYS:
            message = re.sub(rf"{barcode}(?![-\w])", key, message)
    return message[:1].upper() + message[1:] if message else message
