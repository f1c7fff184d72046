"""What the cashier's screen shows and does, in plain Python: the widgets only render it.

:class:`TillPresenter` wraps a :class:`~edge_agent.till.Till` and keeps *view models*: frozen
dataclasses of ready-to-paint text (money already formatted for the store's locale with
``shared.money.Money.format``). Every action (a scan, one touch on a suggestion, a payment, the
receipt choice...) goes through the till, which never raises; the presenter then rebuilds the
view models and tells its listeners (plain callables, no Qt signals), so the Qt widgets stay a
thin skin and these rules are tested without a display.

Rules the screen keeps
----------------------
- **Nothing told by colour alone.** Every state has words: ``OFFLINE``, ``PAPER OUT``, an error
  message starting with what went wrong. The ``is_error`` / ``fault`` flags only add emphasis.
- **The status bar never lies.** It is rebuilt from :meth:`Till.status` on every action and on
  :meth:`TillPresenter.refresh_status` (the window calls it on a timer and when the sync worker
  or the printer report): online or offline, how many ops wait for HQ, when the till last heard
  from HQ (in the store's time zone), and the printer's own words.
- **No modal blocks the next sale.** Errors and faults are a message on the screen; after a
  sale the receipt choice is offered, but a scan starts the next sale regardless (the paper
  receipt was already queued by the till when the sale completed).
- **The last sale stays on screen** (its total, what was paid and the change) until the next
  item is scanned, so the cashier can count the change out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.till import Till, TillEvent, TillStatus
from shared.customer import CardItem, CustomerCard
from shared.errors import OmnitillError
from shared.money import Money

__all__ = [
    "BasketRow",
    "CustomerView",
    "MessageView",
    "ReceiptChoice",
    "ReceiptPrompt",
    "SearchRow",
    "StatusView",
    "SuggestionView",
    "TillPresenter",
    "TotalsView",
    "amount_minor_from_text",
]

log = logging.getLogger(__name__)

ReceiptChoice = Literal["print", "email", "both", "none"]

#: How the consent channels read on the customer panel.
CONSENT_LABELS: Final[dict[str, str]] = {
    "marketing_email": "Offers by email",
    "marketing_sms": "Offers by SMS",
    "email": "Email",
    "sms": "SMS",
    "profiling": "Personal suggestions",
}

#: Items shown per customer highlight (recently viewed, cart, purchases).
HIGHLIGHT_ITEMS: Final = 3
SEARCH_LIMIT: Final = 20

_AMOUNT = re.compile(r"(\d{1,9})(?:[.,](\d{1,2}))?")


def amount_minor_from_text(text: str, decimals: int = 2) -> int | None:
    """Minor units from what a cashier keys for an amount (``20``, ``20.5``, ``20,50``); None
    for anything else."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        return None
    whole, part = str(match[1]), str(match[2] or "")
    fraction = part.ljust(decimals, "0")[:decimals] if decimals else ""
    scale: int = 10**decimals
    return int(whole) * scale + (int(fraction) if fraction else 0)


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
class StatusView:
    """The status bar: four labelled parts, each in words."""

    connection: str
    waiting: str
    last_sync: str
    printer: str
    offline: bool
    printer_fault: bool

    @property
    def text(self) -> str:
        return " | ".join((self.connection, self.waiting, self.last_sync, self.printer))


@dataclass(frozen=True, slots=True)
class MessageView:
    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptPrompt:
    """After a sale: how the customer wants the receipt (paper is already queued)."""

    sale_id: str
    receipt_number: str
    email: str
    summary: str


Listener = Callable[[], None]


class TillPresenter:
    """The cashier's screen over ``till``; see the module docstring."""

    def __init__(self, till: Till) -> None:
        self.till = till
        self._listeners: list[Listener] = []
        self.rows: tuple[BasketRow, ...] = ()
        self.totals: TotalsView = self._totals_view()
        self.customer: CustomerView | None = None
        self.suggestions: tuple[SuggestionView, ...] = ()
        self.search_results: tuple[SearchRow, ...] = ()
        self.message = MessageView("Ready for the first scan")
        self.receipt_prompt: ReceiptPrompt | None = None
        self.last_event: TillEvent | None = None
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

    # -- actions -------------------------------------------------------------------------------

    def scan(self, text: str) -> TillEvent:
        """A scan from the scan field, the keyboard wedge or the serial scanner."""
        if not text.strip():
            return self._show(TillEvent("refused", "refused: the scan was empty"))
        return self._sale_action(lambda: self.till.handle_scan(text))

    def scan_failed(self, message: str) -> TillEvent:
        return self._show(self.till.scan_failed(message))

    def accept_suggestion(self, sku: str) -> TillEvent:
        return self._show(self.till.accept_suggestion(sku))

    def add_product(self, sku: str) -> TillEvent:
        """Add a product picked from the search results."""
        event = self._show(self.till.add_sku(sku))
        if not event.is_error:
            self.search_results = ()
            self._changed()
        return event

    def void(self, line_no: int) -> TillEvent:
        return self._show(self.till.void_line(line_no))

    def change_quantity(self, line_no: int, quantity: int) -> TillEvent:
        return self._show(self.till.set_line_quantity(line_no, quantity))

    def pay_cash(self, tendered_minor: int | None = None) -> TillEvent:
        """Cash: ``tendered_minor`` is what the customer handed over (None: exactly what is
        due); more than due gives change, less leaves the rest due (a split payment)."""
        suffix = "" if tendered_minor is None else f"-{tendered_minor}"
        return self._sale_action(lambda: self.till.handle_scan(f"CMD-PAY-CASH{suffix}"))

    def pay_card(self, amount_minor: int | None = None) -> TillEvent:
        """Card at the terminal: what is due (None) or part of it (a split payment)."""
        suffix = "" if amount_minor is None else f"-{amount_minor}"
        return self._sale_action(lambda: self.till.handle_scan(f"CMD-PAY-CARD{suffix}"))

    def command(self, name: str) -> TillEvent:
        """A till command by name (``CANCEL``, ``PARK``, ``RESUME``, ``REPRINT``, ``X``...)."""
        return self._sale_action(lambda: self.till.handle_scan(f"CMD-{name}"))

    def choose_receipt(
        self, choice: ReceiptChoice, *, address: str = "", consent_marketing: bool = False
    ) -> TillEvent:
        """The customer's receipt choice for the last sale.

        The paper receipt is queued by the till when the sale completes, so ``print`` and
        ``none`` only close the prompt; ``email`` and ``both`` queue the email through HQ.
        """
        prompt = self.receipt_prompt
        if prompt is None:
            return self._show(
                TillEvent("refused", "refused: there is no sale waiting for a receipt")
            )
        if choice in ("email", "both"):
            event = self.till.email_receipt(
                address, consent_marketing=consent_marketing, sale_id=prompt.sale_id
            )
            if event.is_error:
                return self._show(event)  # the prompt stays: fix the address and try again
        elif choice == "print":
            event = TillEvent("sale_complete", f"receipt {prompt.receipt_number} is printing")
        else:
            event = TillEvent("sale_complete", f"no receipt for {prompt.receipt_number}")
        self.receipt_prompt = None
        return self._show(event)

    def search(self, text: str) -> tuple[SearchRow, ...]:
        """Products by name, brand or code from the local catalogue (results as you type)."""
        text = text.strip()
        items = self.till.catalogue.search(text, limit=SEARCH_LIMIT) if text else []
        self.search_results = tuple(
            SearchRow(
                sku=item.sku,
                name=item.name,
                brand=item.brand,
                price=self._money(item.price_minor)
                + (" / kg" if item.variable_measure == "weight" else ""),
            )
            for item in items
        )
        self._changed()
        return self.search_results

    def refresh_status(self) -> StatusView:
        """Re-read the till's status (sync and printer); listeners hear only of a change."""
        status = self._status_view(self.till.status())
        if status != self.status:
            self.status = status
            self._changed()
        return self.status

    # -- building the view models --------------------------------------------------------------

    def _sale_action(self, action: Callable[[], TillEvent]) -> TillEvent:
        # The customer leaves the basket when the sale completes: keep their address for the
        # receipt prompt.
        card = self.till.engine.basket.customer
        event = action()
        if event.kind == "sale_complete":
            self.receipt_prompt = ReceiptPrompt(
                sale_id=str(event.data["sale_id"]),
                receipt_number=str(event.data["receipt_number"]),
                email=_email_of(card),
                summary=(
                    f"Sale {event.data['receipt_number']}: total "
                    f"{self._money(int(event.data['total_minor']))}, change "
                    f"{self._money(int(event.data['change_minor']))}"
                ),
            )
        elif event.kind in ("item_added", "customer", "cancelled", "resumed", "return_started"):
            self.receipt_prompt = None
        return self._show(event)

    def _show(self, event: TillEvent) -> TillEvent:
        self.last_event = event
        self.message = MessageView(_sentence(event.message), event.is_error)
        self._rebuild()
        self._changed()
        return event

    def _rebuild(self) -> None:
        engine = self.till.engine
        self.rows = self._rows()
        self.totals = self._totals_view()
        card = engine.basket.customer
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
        self.status = self._status_view(self.till.status())

    def _rows(self) -> tuple[BasketRow, ...]:
        engine = self.till.engine
        if not engine.basket.lines:
            return ()
        priced = engine.totals().lines
        rows = []
        for p in priced:
            line = p.line
            if line.weight_g is not None:
                quantity = f"{line.weight_g / 1000:.3f} kg"
                unit = f"{self._money(line.unit_price_minor)} / kg"
            else:
                quantity, unit = str(line.quantity), self._money(line.unit_price_minor)
            discount = "; ".join(f"{d.reason} -{self._money(d.amount_minor)}" for d in p.discounts)
            rows.append(
                BasketRow(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=quantity,
                    name=line.name,
                    unit_price=unit,
                    line_total=self._money(p.amount_minor),
                    discount=discount,
                )
            )
        return tuple(rows)

    def _totals_view(self) -> TotalsView:
        engine = self.till.engine
        t = engine.totals()
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

    def _customer_view(self, card: CustomerCard) -> CustomerView:
        names = self._names(card)
        consents = ", ".join(
            f"{CONSENT_LABELS.get(channel, channel)}: {'yes' if granted else 'no'}"
            for channel, granted in sorted(card.consents.items())
        )
        return CustomerView(
            name=card.display_name + (" (new, provisional)" if card.provisional else ""),
            points=f"{card.loyalty_points:,} points",
            consents=consents or "No consents recorded",
            recently_viewed=tuple(self._item_text(i, names) for i in card.recently_viewed[:3]),
            left_in_cart=tuple(self._item_text(i, names) for i in card.cart_items[:3]),
            last_purchases=tuple(self._item_text(i, names) for i in card.recent_purchases[:3]),
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
        if sync.online:
            connection = "ONLINE with HQ"
        elif sync.server_url is None and self.till.settings.token is None:
            connection = "OFFLINE: no HQ configured, sales are kept here"
        else:
            connection = "OFFLINE: sales are kept and sent when HQ is back"
        waiting = (
            "all sent"
            if sync.pending_ops == 0
            else f"{sync.pending_ops} op{'s' if sync.pending_ops != 1 else ''} waiting to sync"
        )
        if sync.dead_letters:
            waiting += f", {sync.dead_letters} REFUSED by HQ (call support)"
        heard = max((t for t in (sync.last_push_at, sync.last_pull_at) if t), default=None)
        last = "never synced" if heard is None else f"last sync {self._local(heard):%H:%M:%S}"
        printer = status.printer
        if printer is None:
            printer_text, fault = "Printer: none configured", False
        else:
            fault = printer.fault is not None
            label = "Printer: "
            if printer.fault is not None:
                label = f"PRINTER {printer.fault.replace('_', ' ').upper()}: "
            printer_text = label + printer.message
        return StatusView(
            connection=connection,
            waiting=waiting,
            last_sync=last,
            printer=printer_text,
            offline=not sync.online,
            printer_fault=fault,
        )

    # -- formatting ----------------------------------------------------------------------------

    def _money(self, amount: int) -> str:
        shop = self.till.engine.shop
        try:
            return Money(amount, shop.currency).format(shop.locale)
        except OmnitillError:
            return f"{amount} {shop.currency} minor units"

    def _local(self, moment: datetime) -> datetime:
        try:
            return moment.astimezone(ZoneInfo(self.till.engine.shop.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            return moment


def _email_of(card: CustomerCard | None) -> str:
    if card is None:
        return ""
    return next((i.value for i in card.identifiers if i.kind == "email"), "")


def _sentence(message: str) -> str:
    """The till's one-line message, capitalised for the screen."""
    return message[:1].upper() + message[1:] if message else message
