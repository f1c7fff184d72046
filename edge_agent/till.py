"""The till: one object the headless loop, the store simulator and the cashier's screen drive.

:class:`Till` puts the parts together (local store, catalogue, sale engine, customer desk, sync
worker) and turns every scan into a :class:`TillEvent`: what happened, in words the cashier can
read, plus data for a screen. It holds no Qt and never raises for what was scanned.

What a scan does
----------------
``handle_scan(text)`` reads the line with ``shared.barcodes.classify_scan`` (the till's loyalty
format and scale-label rules) and routes it:

- a product barcode or a scale label -> the sale engine adds it (after ``CMD-QTY-<n>``, that
  many); the basket's suggestions are refreshed;
- a loyalty card, or ``kind:value`` (the QR code on a digital receipt, e.g.
  ``email:maria@example.com``) -> the customer desk identifies the customer (cached card at
  once; HQ briefly when online; a provisional customer otherwise) and the customer is attached
  to the sale, at any point of it;
- a receipt barcode (``R`` + receipt number) -> a return of everything not yet returned on that
  receipt, refunded with ``CMD-PAY-CASH`` or ``CMD-PAY-CARD`` (works offline for this till's own
  sales);
- a command barcode (``CMD-<NAME>``), see :data:`COMMANDS`.

Command barcodes
----------------
=====================  ==============================================================
``CMD-TOTAL``          show the total, what was paid and what is due
``CMD-PAY-CASH``       pay what is due in cash and complete the sale;
                       ``CMD-PAY-CASH-<minor>`` tenders that amount (more gives change,
                       less leaves the rest due)
``CMD-PAY-CARD``       pay what is due by card (the external terminal's reference,
                       simulated as ``SIM-<n>``) and complete; ``CMD-PAY-CARD-<minor>``
                       pays part of it by card
``CMD-CANCEL``         throw the current sale (or return) away
``CMD-REPRINT``        queue a copy of the last receipt (a print job marked as a copy)
``CMD-VOID``           remove the last line
``CMD-QTY-<n>``        sell the next item ``n`` times
``CMD-PARK``           put the sale aside; ``CMD-RESUME`` brings back the oldest parked
``CMD-X`` / ``CMD-Z``  X report (totals so far) / Z report (closes the day)
=====================  ==============================================================

A payment command when nothing is due (the sale was paid but could not be saved, e.g. on a full
disk) saves the sale without taking another payment, so a card is never charged twice.

Errors the cashier sees
-----------------------
Events whose :attr:`TillEvent.is_error` is true say what went wrong and what to do; the sale on
the counter is unchanged by them:

- ``scan_failed``: the scan is not a valid code (bad check digit, wrong length, letters, a bad
  loyalty number, garbled bytes from the scanner);
- ``unknown_product``: a valid barcode this till does not sell (key it as an open-price item or
  search by name);
- ``refused``: the sale engine refused (nothing to pay for, a return without its receipt...);
- ``not_saved``: the local database could not write (a full disk): nothing was half-written,
  the basket and any payment taken stay on the counter, and the same command saves it once
  space is freed;
- ``error``: a bug; logged with its traceback, the sale stays as it was.

Completing a sale or a return, and creating a provisional customer, kick the sync worker so the
op leaves for HQ at once (the worker still retries on its own schedule when HQ is away).

Screen actions
--------------
The cashier's screen (``edge_agent.ui``) also calls :meth:`Till.add_sku` (a product picked from
the search), :meth:`Till.accept_suggestion` (one touch on a suggestion: the product is added and
a ``suggestion_accepted`` event, with the suggestion's reason, goes to the outbox for HQ),
:meth:`Till.void_line` and :meth:`Till.set_line_quantity` (any line, not only the last),
:meth:`Till.discount_line`, :meth:`Till.discount_basket` and :meth:`Till.remove_discounts` (an
amount or a percent, always with a reason), :meth:`Till.add_open_price` (an item keyed with its
price), :meth:`Till.pay` (a tender with the card terminal's own reference when the cashier keys
it), :meth:`Till.park` with a label and :meth:`Till.resume` of any parked sale
(:meth:`Till.parked_sales` lists them), and :meth:`Till.release_receipt` (see below). Like a
scan, each returns a :class:`TillEvent` and never raises.

The receipt choice
------------------
With ``hold_receipts`` (the cashier's screen sets it; the headless till prints at once), a
completed sale's paper receipt is **held**: the sale, its outbox op and its receipt are committed
as always, in the same transaction the receipt's print job is marked ``held``, so nothing prints
until :meth:`Till.release_receipt` says whether the customer wants paper (``pending``: it prints)
or not (``declined``). A till that stops before the answer prints nothing and keeps the sale; a
reprint of a receipt that was never printed prints the original, not a copy. A cash sale opens the
drawer at once all the same (a ``drawer`` job), so the change is counted out while the customer
answers; the receipt printed later does not kick the drawer again. Returns always print.

X and Z reports are printed too (a ``report`` print job laid out by
:mod:`edge_agent.printing.slips`), with every amount in the store's locale.

Status notifications
--------------------
:meth:`Till.add_status_listener` registers a callable run whenever the sync worker finishes a
cycle or the printer's state changes, on *their* threads: a screen marshals it to its own thread
and then reads :meth:`Till.status`.

Receipts by email
-----------------
:meth:`Till.email_receipt` (``EMAIL <address> [consent]`` in the headless till) sends the
receipt of a sale (the last one by default) to an address, relayed through HQ: one local
transaction queues a ``customer_patch`` (the address becomes the customer's email identifier,
with the answer to "may we send you offers by email?" as a ``marketing_email`` consent event)
and a ``receipt_email`` op carrying the same receipt document as the paper one, suggestions
included. The customer is the sale's, else the one the address names in the cache, else a new
provisional customer. HQ sends the mail when the op arrives (see docs/hardware.md), so a till
without a mail route, or offline, loses nothing.

The store's settings (currency, tax mode, time zone, receipt header) come from HQ's feed
(``store_config``, key ``store:<store_id>``); until the first pull, the till's own settings
stand in. A new store configuration is taken up between sales, never during one.
"""

from __future__ import annotations

import gc
import itertools
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils
from pydantic import ValidationError

from edge_agent import outbox, reports
from edge_agent.catalogue import Catalogue
from edge_agent.config import TillSettings
from edge_agent.customers import CustomerDesk, Identification, Lookup, load_clock
from edge_agent.discovery import discovering_client
from edge_agent.hq_client import HQClient
from edge_agent.printing.connections import (
    PrinterConnection,
    connection_factory,
    parse_printer_url,
)
from edge_agent.printing.jobs import PrinterState, PrintWorker
from edge_agent.printing.slips import ReportSlip
from edge_agent.sale_engine import ParkedBasket, ReturnDraft, SaleEngine, UnknownBarcode
from edge_agent.store import LocalStore
from edge_agent.suggestions import Suggestion
from edge_agent.sync_worker import ClientSource, SyncStatus, SyncWorker
from shared.barcodes import (
    DEFAULT_RULES,
    CommandScan,
    LoyaltyFormat,
    LoyaltyScan,
    ProductScan,
    ReceiptScan,
    VariableMeasureRule,
    VariableMeasureScan,
    classify_scan,
)
from shared.catalogue import Store
from shared.customer import ConsentEvent, CustomerCard, CustomerIdentifierModel
from shared.errors import (
    BarcodeError,
    BarcodeFormatError,
    IdentifierError,
    InvalidInput,
    NotFound,
    OmnitillError,
    ServerUnavailable,
    StorageError,
)
from shared.identifiers import IDENTIFIER_KINDS, new_till_local_id, normalize_identifier
from shared.money import format_amount
from shared.protocol import CustomerPatch, InStoreEvent, ReceiptEmail
from shared.receipt import Receipt, receipt_from_return, receipt_from_sale
from shared.sale import Return, Sale
from shared.wire import utc_now

__all__ = [
    "COMMANDS",
    "ERROR_KINDS",
    "MAX_SCAN_LENGTH",
    "EventKind",
    "Till",
    "TillEvent",
    "TillStatus",
]

log = logging.getLogger(__name__)

EventKind = Literal[
    "item_added",
    "customer",
    "total",
    "payment",
    "sale_complete",
    "cancelled",
    "line_voided",
    "quantity",
    "parked",
    "resumed",
    "return_started",
    "return_complete",
    "reprint_queued",
    "email_queued",
    "receipt",
    "discount",
    "report",
    "scan_failed",
    "unknown_product",
    "refused",
    "not_saved",
    "error",
]

#: Event kinds that tell the cashier something went wrong.
ERROR_KINDS: Final[frozenset[str]] = frozenset(
    {"scan_failed", "unknown_product", "refused", "not_saved", "error"}
)

#: The documented command barcodes (``CMD-`` + name); ``<...>`` marks a number that follows.
COMMANDS: Final[dict[str, str]] = {
    "TOTAL": "show the total, what was paid and what is due",
    "PAY-CASH": "pay what is due in cash and complete the sale",
    "PAY-CASH-<minor>": "tender this much cash (minor units); more than due gives change",
    "PAY-CARD": "pay what is due by card (terminal reference SIM-<n>) and complete the sale",
    "PAY-CARD-<minor>": "pay this much of what is due by card (a split payment)",
    "CANCEL": "throw the current sale or return away",
    "REPRINT": "queue a copy of the last receipt",
    "VOID": "remove the last line",
    "QTY-<n>": "sell the next item n times",
    "PARK": "put the sale aside",
    "RESUME": "bring back the oldest parked sale",
    "X": "X report: totals since the last Z report",
    "Z": "Z report: close the day",
}

#: Longest scan read: an email in a receipt's QR code (320 characters) and its kind fit.
MAX_SCAN_LENGTH: Final = 400

_AMOUNT_COMMAND = re.compile(r"(PAY-CASH|PAY-CARD|QTY)(?:-(\d{1,12}))?")
_IN_RETURN = (
    "A return is in progress: refund it with CMD-PAY-CASH or CMD-PAY-CARD, or stop it with "
    "CMD-CANCEL"
)


@dataclass(frozen=True, slots=True)
class TillEvent:
    """What one scan (or a scanner failure) did: for the log line and for a screen's presenter.

    ``message`` is one line for the cashier; ``data`` holds the details (amounts in minor
    units, the sale id, the suggestions...).
    """

    kind: EventKind
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class TillStatus:
    """What the status bar shows: the link to HQ and the work waiting at this till.

    ``printer`` is the receipt printer's state (None when no printer is configured).
    """

    sync: SyncStatus
    pending_print_jobs: int
    parked_sales: int
    basket_lines: int
    return_in_progress: bool
    printer: PrinterState | None = None


class _SimulatedTerminal:
    """Card terminal references for the headless till (a real terminal prints its own)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)

    def __call__(self) -> str:
        return f"SIM-{next(self._numbers):06d}"


class _TrackingFactory:
    """Wraps a discovering client factory and remembers the client it made last, so that
    customer lookups go to the server the sync worker found."""

    def __init__(self, factory: Callable[[], HQClient | None]) -> None:
        self._factory = factory
        self.current: HQClient | None = None

    def __call__(self) -> HQClient | None:
        self.current = self._factory()
        return self.current

    def lookup(self, identifier: str, timeout: float) -> CustomerCard | None:
        client = self.current
        if client is None:
            raise ServerUnavailable("No HQ server found yet")
        try:
            return client.lookup(identifier, timeout)
        except RuntimeError as exc:  # the worker closed it to look for HQ again
            raise ServerUnavailable(f"The connection to HQ was closed: {exc}") from exc


class Till:
    """A till with every part wired; :meth:`start` runs its sync worker.

    Build one from settings with :meth:`from_settings`; tests pass the parts they want
    (``client=None`` works offline). The till is thread-safe: a scanner thread and a screen may
    both call :meth:`handle_scan`, one scan at a time.
    """

    def __init__(
        self,
        *,
        settings: TillSettings,
        store: LocalStore,
        client: ClientSource,
        own_store: bool = False,
        own_client: bool = False,
        clock: Callable[[], datetime] = utc_now,
        variable_rules: Sequence[VariableMeasureRule] = DEFAULT_RULES,
        card_reference: Callable[[], str] | None = None,
        on_sync_status: Callable[[SyncStatus], None] | None = None,
        printer_connection: Callable[[], PrinterConnection] | None = None,
        on_printer_status: Callable[[PrinterState], None] | None = None,
        hold_receipts: bool = False,
    ) -> None:
        # A bad printer URL is refused now, not at the first receipt.
        printer_url = parse_printer_url(settings.printer)
        if printer_connection is None and printer_url.scheme != "none":
            printer_connection = connection_factory(printer_url)
        self.settings = settings
        self.store = store
        self._own_store = own_store
        self._own_client = own_client
        self._client = client if isinstance(client, HQClient) else None
        self._clock = clock
        self._rules = tuple(variable_rules)
        self._loyalty = settings.loyalty_format
        self._card_reference = card_reference or _SimulatedTerminal()
        self._lock = threading.RLock()
        self._closed = False
        #: Hold each sale's paper receipt until :meth:`release_receipt` (the receipt choice).
        self.hold_receipts = hold_receipts
        self._status_listeners: list[Callable[[], None]] = []
        self._on_sync_status = on_sync_status
        self._on_printer_status = on_printer_status

        lookup: Lookup | None = None
        source: ClientSource = client
        if isinstance(client, HQClient):
            lookup = client.lookup
        elif client is not None:
            tracking = _TrackingFactory(client)
            source, lookup = tracking, tracking.lookup

        self.catalogue = Catalogue(store, store_id=settings.store_id, clock=clock)
        self.customers = CustomerDesk(
            store,
            till_id=settings.till_id,
            store_id=settings.store_id,
            default_region=settings.default_region,
            loyalty_format=settings.loyalty_format,
            clock=load_clock(store, settings.till_id),
            lookup=lookup,
            lookup_timeout_s=settings.lookup_timeout_s,
        )
        self.sync = SyncWorker(
            store,
            source,
            push_interval_s=settings.push_interval_s,
            pull_interval_s=settings.pull_interval_s,
            pull_limit=settings.pull_limit,
            on_status=self._sync_status_changed,
        )
        self.printer: PrintWorker | None = None
        if printer_connection is not None:
            self.printer = PrintWorker(
                store,
                printer_connection,
                profile=printer_url.profile,
                clock=clock,
                on_status=self._printer_status_changed,
            )
        self._shop_text: str | None = None
        self.engine = self._new_engine(self._load_shop())
        self.suggestions: list[Suggestion] = []
        self.return_draft: ReturnDraft | None = None

    @classmethod
    def from_settings(cls, settings: TillSettings, **parts: Any) -> Till:
        """Open the local store and connect to HQ as the settings say (URL, else zeroconf)."""
        store = LocalStore.open(settings.db_path)
        try:
            client: ClientSource = None
            token = settings.token.get_secret_value() if settings.token is not None else None
            if token is None:
                log.warning("no till token: selling works, but nothing reaches HQ until one is set")
            elif settings.server_url is not None:
                client = HQClient(
                    settings.server_url,
                    token,
                    till_id=settings.till_id,
                    timeout=settings.request_timeout_s,
                )
            else:
                client = discovering_client(
                    token, till_id=settings.till_id, timeout=settings.request_timeout_s
                )
            return cls(
                settings=settings,
                store=store,
                client=client,
                own_store=True,
                own_client=isinstance(client, HQClient),
                **parts,
            )
        except BaseException:
            store.close()
            raise

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start syncing with HQ and printing receipts in the background."""
        # Everything loaded so far (modules, settings, caches) lives as long as the till: keep
        # it out of the garbage collector's full passes, which otherwise stall a scan now and
        # then for tens of milliseconds.
        gc.collect()
        gc.freeze()
        self.sync.start()
        if self.printer is not None:
            self.printer.start()

    def close(self) -> None:
        """Stop the sync worker (after the request in flight) and close what the till opened."""
        if self._closed:
            return
        self._closed = True
        self.sync.stop()
        if self.printer is not None:
            self.printer.stop()
        self.customers.close()
        if self._own_client and self._client is not None:
            self._client.close()
        if self._own_store:
            with self._lock:
                self.store.close()

    def __enter__(self) -> Till:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def status(self) -> TillStatus:
        row = self.store.query_one("SELECT COUNT(*) FROM print_jobs WHERE status = 'pending'")
        parked = self.store.query_one("SELECT COUNT(*) FROM parked")
        with self._lock:
            lines = len(self.engine.basket.lines)
            returning = self.return_draft is not None
        return TillStatus(
            sync=self.sync.status,
            pending_print_jobs=int(row[0]) if row else 0,
            parked_sales=int(parked[0]) if parked else 0,
            basket_lines=lines,
            return_in_progress=returning,
            printer=self.printer.state if self.printer is not None else None,
        )

    def add_status_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when the sync or printer status changes (from the worker's
        thread); returns the function that removes it."""
        self._status_listeners.append(listener)

        def remove() -> None:
            if listener in self._status_listeners:
                self._status_listeners.remove(listener)

        return remove

    def _sync_status_changed(self, status: SyncStatus) -> None:
        if self._on_sync_status is not None:
            self._on_sync_status(status)
        self._status_changed()

    def _printer_status_changed(self, state: PrinterState) -> None:
        if self._on_printer_status is not None:
            self._on_printer_status(state)
        self._status_changed()

    def _status_changed(self) -> None:
        for listener in list(self._status_listeners):
            try:
                listener()
            except Exception:  # a screen's problem must not stop syncing or printing
                log.exception("a till status listener failed")

    # -- scans ---------------------------------------------------------------------------------

    def handle_scan(self, text: str) -> TillEvent:
        """Do what a scanned (or typed) line says; never raises (see the module docstring)."""
        with self._lock:
            try:
                return self._route(text)
            except UnknownBarcode as exc:
                return TillEvent(
                    "unknown_product", f"unknown product: {exc.message}", {"code": exc.code}
                )
            except BarcodeError as exc:
                return TillEvent("scan_failed", f"failed scan: {exc.message}", {"code": exc.code})
            except IdentifierError as exc:
                return TillEvent("scan_failed", f"failed scan: {exc.message}", {"code": text})
            except StorageError as exc:
                return TillEvent("not_saved", f"not saved: {exc.message}")
            except OmnitillError as exc:
                return TillEvent("refused", f"refused: {exc.message}")
            except Exception as exc:
                log.exception("handling the scan %r failed", text[:200])
                return TillEvent(
                    "error",
                    f"error: the till failed on this scan ({type(exc).__name__}); the sale is "
                    "kept as it was: scan again or call support",
                )

    def scan_failed(self, message: str) -> TillEvent:
        """The event for a scanner's failed read (garbage, a cut-off code, a lost device)."""
        return TillEvent("scan_failed", f"failed scan: {message}")

    # -- screen actions ------------------------------------------------------------------------
    # What the cashier's screen does besides scans: each never raises, like handle_scan.

    def add_sku(self, sku: str) -> TillEvent:
        """Add one of a product chosen on screen (product search), by SKU."""
        return self._screen_action("adding a product", lambda: self._add_sku(sku))

    def accept_suggestion(self, sku: str) -> TillEvent:
        """Add a suggested product with one touch and record a ``suggestion_accepted`` event
        for HQ (with the suggestion's reason), so HQ learns which suggestions sell."""
        return self._screen_action(
            "accepting a suggestion", lambda: self._add_sku(sku, accepted=True)
        )

    def void_line(self, line_no: int) -> TillEvent:
        """Remove basket line ``line_no``."""
        return self._screen_action("voiding a line", lambda: self._void(line_no))

    def set_line_quantity(self, line_no: int, quantity: int) -> TillEvent:
        """Change how many of basket line ``line_no`` are sold."""
        return self._screen_action(
            "changing a quantity", lambda: self._set_line_quantity(line_no, quantity)
        )

    def discount_line(
        self, line_no: int, *, kind: Literal["amount", "percent"], value: Decimal | int, reason: str
    ) -> TillEvent:
        """Take ``value`` (minor units, or a percent) off basket line ``line_no``, with a reason."""
        return self._screen_action(
            "discounting a line", lambda: self._discount(line_no, kind, value, reason)
        )

    def discount_basket(
        self, *, kind: Literal["amount", "percent"], value: Decimal | int, reason: str
    ) -> TillEvent:
        """Take ``value`` off the whole basket (spread over its lines), with a reason."""
        return self._screen_action(
            "discounting the basket", lambda: self._discount(None, kind, value, reason)
        )

    def remove_discounts(self, line_no: int | None = None) -> TillEvent:
        """Remove line ``line_no``'s discounts, or the basket discounts when it is None."""
        return self._screen_action("removing discounts", lambda: self._undiscount(line_no))

    def add_open_price(
        self, name: str, price_minor: int, tax_rate: Decimal, quantity: int = 1
    ) -> TillEvent:
        """Add an item the till does not know, keyed with its name, price and tax rate."""
        return self._screen_action(
            "adding an open-price item",
            lambda: self._add_open_price(name, price_minor, tax_rate, quantity),
        )

    def pay(
        self,
        kind: Literal["cash", "card"],
        amount_minor: int | None = None,
        *,
        reference: str | None = None,
    ) -> TillEvent:
        """A tender from the payment screen: cash handed over, or a card payment with the
        terminal's ``reference`` (None: the till's own terminal link gives it). During a return
        it is the refund (always its total). Completes the sale once nothing is due."""

        def action() -> TillEvent:
            if self.return_draft is not None:
                name = "PAY-CASH" if kind == "cash" else "PAY-CARD"
                return self._return_command(name, amount_minor, name)
            return self._pay(kind, amount_minor, reference)

        return self._screen_action("taking a payment", action)

    def park(self, label: str = "") -> TillEvent:
        """Put the sale aside under ``label`` (the customer's name, "trolley 3"...)."""
        return self._screen_action("parking the sale", lambda: self._park(label))

    def resume(self, park_id: str | None = None) -> TillEvent:
        """Bring back parked sale ``park_id`` (None: the oldest)."""
        return self._screen_action("resuming a sale", lambda: self._resume(park_id))

    def parked_sales(self) -> list[ParkedBasket]:
        """The parked sales, oldest first (empty when the database cannot be read)."""
        with self._lock:
            try:
                return self.engine.parked_list()
            except OmnitillError as exc:
                log.warning("the parked sales cannot be read: %s", exc.message)
                return []

    def tax_rates(self) -> tuple[Decimal, ...]:
        """The tax rates of the catalogue, highest first (for keying an open-price item)."""
        try:
            rows = self.store.query("SELECT DISTINCT tax_rate FROM products")
        except OmnitillError:
            return ()
        rates = set()
        for row in rows:
            try:
                rates.add(Decimal(str(row[0])).normalize())
            except ArithmeticError:
                continue
        return tuple(sorted(rates, reverse=True))

    def release_receipt(self, sale_id: str | uuid.UUID, *, paper: bool) -> TillEvent:
        """The customer's receipt choice for a sale whose receipt is held (``hold_receipts``):
        ``paper`` prints it now, otherwise it is never printed (a reprint still can)."""
        return self._screen_action(
            "releasing the receipt", lambda: self._release_receipt(str(sale_id), paper)
        )

    def _screen_action(self, what: str, action: Callable[[], TillEvent]) -> TillEvent:
        with self._lock:
            try:
                return action()
            except StorageError as exc:
                return TillEvent("not_saved", f"not saved: {exc.message}")
            except OmnitillError as exc:
                return TillEvent("refused", f"refused: {exc.message}")
            except Exception as exc:
                log.exception("%s failed", what)
                return TillEvent(
                    "error",
                    f"error: the till failed {what} ({type(exc).__name__}); the sale is kept "
                    "as it was: try again or call support",
                )

    def _add_sku(self, sku: str, *, accepted: bool = False) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if self.engine.basket.is_empty:
            self._take_up_shop()
        engine = self.engine
        suggestion = next((s for s in self.suggestions if s.sku == sku), None)
        before = {line.line_no: line.quantity for line in engine.basket.lines}
        line = engine.add_sku(sku)
        added = line.quantity - before.get(line.line_no, 0)
        amount = added * line.unit_price_minor
        if accepted:
            self._record_acceptance(sku, suggestion)
        total = engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "item_added",
            f"added {added} x {line.name} {self._money(amount)} | total {self._money(total)}",
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "name": line.name,
                "quantity": added,
                "line_quantity": line.quantity,
                "weight_g": line.weight_g,
                "amount_minor": amount,
                "total_minor": total,
                "suggestion_accepted": accepted,
                "suggestions": self._suggestion_data(),
            },
        )

    def _record_acceptance(self, sku: str, suggestion: Suggestion | None) -> None:
        customer = self.engine.basket.customer
        event = InStoreEvent(
            event_id=uuid.uuid4(),
            kind="suggestion_accepted",
            at=self._clock(),
            customer_id=None if customer is None else customer.customer_id,
            sku=sku,
            data={}
            if suggestion is None
            else {
                "reason": suggestion.reason,
                "score": suggestion.score,
                "because_of": suggestion.because_of,
            },
        )
        try:
            with self.store.transaction() as db:
                outbox.enqueue(db, "event", event.model_dump(mode="json"))
        except StorageError:
            # The item is in the basket; losing one analytics event must not refuse the sale.
            log.warning("the suggestion_accepted event for %s was not saved", sku)
            return
        self.sync.kick()

    def _discount(
        self,
        line_no: int | None,
        kind: Literal["amount", "percent"],
        value: Decimal | int,
        reason: str,
    ) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if line_no is None:
            self.engine.discount_basket(kind=kind, value=value, reason=reason)
            where = "the basket"
        else:
            line = self.engine.discount_line(line_no, kind=kind, value=value, reason=reason)
            where = f"line {line.line_no} ({line.name})"
        off = f"{Decimal(value):f}%" if kind == "percent" else self._money(int(value))
        totals = self.engine.totals()
        return TillEvent(
            "discount",
            f"discount {off} on {where}: {reason.strip()} | "
            f"total {self._money(totals.total_minor)}",
            {
                "line_no": line_no,
                "kind": kind,
                "value": str(value),
                "reason": reason.strip(),
                "discount_minor": totals.discount_minor,
                "total_minor": totals.total_minor,
            },
        )

    def _undiscount(self, line_no: int | None) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        self.engine.remove_discounts(line_no)
        where = "the basket" if line_no is None else f"line {line_no}"
        total = self.engine.totals().total_minor
        return TillEvent(
            "discount",
            f"discounts removed from {where} | total {self._money(total)}",
            {"line_no": line_no, "total_minor": total},
        )

    def _add_open_price(
        self, name: str, price_minor: int, tax_rate: Decimal, quantity: int
    ) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if self.engine.basket.is_empty:
            self._take_up_shop()
        line = self.engine.add_open_price(name, price_minor, tax_rate, quantity)
        amount = line.quantity * line.unit_price_minor
        total = self.engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "item_added",
            f"added {line.quantity} x {line.name} (open price) {self._money(amount)} | "
            f"total {self._money(total)}",
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "line_quantity": line.quantity,
                "weight_g": None,
                "amount_minor": amount,
                "total_minor": total,
                "open_price": True,
                "suggestions": self._suggestion_data(),
            },
        )

    def _release_receipt(self, sale_id: str, paper: bool) -> TillEvent:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT receipt_number FROM sales WHERE sale_id = ?", [sale_id]
            ).fetchone()
            if row is None:
                raise NotFound(f"There is no sale {sale_id} at this till")
            released = db.execute(
                "UPDATE print_jobs SET status = ? WHERE sale_id = ? AND status = 'held'",
                ["pending" if paper else "declined", sale_id],
            ).rowcount
        number = str(row[0])
        if paper and self.printer is not None:
            self.printer.kick()
        if paper:
            message = f"receipt {number} is printing"
            if self.printer is None:
                message = f"receipt {number} queued, but no printer is configured at this till"
        else:
            message = f"no paper receipt for {number}"
        return TillEvent(
            "receipt",
            message,
            {"sale_id": sale_id, "receipt_number": number, "paper": paper, "released": released},
        )

    def _set_line_quantity(self, line_no: int, quantity: int) -> TillEvent:
        line = self.engine.set_quantity(line_no, quantity)
        total = self.engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "quantity",
            f"line {line.line_no}: {line.quantity} x {line.name} | total {self._money(total)}",
            {"line_no": line.line_no, "line_quantity": line.quantity, "total_minor": total},
        )

    def _route(self, text: str) -> TillEvent:
        stripped = text.strip()
        if len(stripped) > MAX_SCAN_LENGTH:
            raise BarcodeFormatError(
                f"{len(stripped)} characters is longer than any code the till reads (at most "
                f"{MAX_SCAN_LENGTH}): scan again",
                code=stripped[:40],
            )
        kind, sep, rest = stripped.partition(":")
        if sep and kind.lower() in IDENTIFIER_KINDS:
            return self._identify(f"{kind.lower()}:{rest}")
        # ``stripped``: classify_scan strips whitespace too, and a bare code takes its fast path.
        scan = classify_scan(stripped, loyalty=self._loyalty_format(), rules=self._rules)
        if isinstance(scan, CommandScan):
            return self._command(scan.command)
        if isinstance(scan, LoyaltyScan):
            return self._identify(f"loyalty:{scan.number}")
        if isinstance(scan, ReceiptScan):
            return self._start_return(scan.receipt_number)
        return self._add(scan)

    # -- sale ----------------------------------------------------------------------------------

    def _add(self, scan: ProductScan | VariableMeasureScan) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if self.engine.basket.is_empty:
            self._take_up_shop()
        engine = self.engine
        before = {line.line_no: line.quantity for line in engine.basket.lines}
        line = engine.add_scanned_product(scan)
        added = line.quantity - before.get(line.line_no, 0)
        if line.weight_g is not None:
            what, amount = f"{line.weight_g} g {line.name}", line.base_minor
        else:
            what, amount = f"{added} x {line.name}", added * line.unit_price_minor
        total = engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "item_added",
            f"added {what} {self._money(amount)} | total {self._money(total)}",
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "name": line.name,
                "quantity": added,
                "line_quantity": line.quantity,
                "weight_g": line.weight_g,
                "amount_minor": amount,
                "total_minor": total,
                "suggestions": self._suggestion_data(),
            },
        )

    def _identify(self, text: str) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        found: Identification = self.customers.identify(text)
        self.engine.attach_customer(found.card)
        if found.source == "provisional":
            self.sync.kick()
        self._refresh_suggestions()
        card = found.card
        who = "new customer (provisional)" if card.provisional else card.display_name
        where = {"cache": "from cache", "server": "from HQ", "provisional": "new"}[found.source]
        total = self.engine.totals().total_minor
        return TillEvent(
            "customer",
            f"customer {who} ({found.identifier.kind}, {where}) | total {self._money(total)}",
            {
                "customer_id": str(card.customer_id),
                "name": card.display_name,
                "provisional": card.provisional,
                "source": found.source,
                "identifier_kind": found.identifier.kind,
                "loyalty_points": card.loyalty_points,
                "total_minor": total,
                "suggestions": self._suggestion_data(),
            },
        )

    def _command(self, command: str) -> TillEvent:
        match = _AMOUNT_COMMAND.fullmatch(command)
        name, number = (match[1], match[2]) if match else (command, None)
        amount = int(number) if number is not None else None
        if self.return_draft is not None:
            return self._return_command(name, amount, command)
        if name == "TOTAL":
            return self._total()
        if name in ("PAY-CASH", "PAY-CARD"):
            return self._pay("cash" if name == "PAY-CASH" else "card", amount, None)
        if name == "CANCEL":
            return self._cancel()
        if name == "REPRINT":
            return self._reprint()
        if name == "VOID":
            return self._void()
        if name == "QTY":
            return self._quantity(amount)
        if name == "PARK":
            return self._park()
        if name == "RESUME":
            return self._resume()
        if name in ("X", "Z"):
            return self._report(name)
        raise InvalidInput(
            f"CMD-{command} is not a till command; the till knows "
            + ", ".join(f"CMD-{c}" for c in COMMANDS)
        )

    def _total(self) -> TillEvent:
        totals = self.engine.totals()
        lines = len(self.engine.basket.lines)
        return TillEvent(
            "total",
            f"total {self._money(totals.total_minor)} | paid {self._money(totals.paid_minor)} "
            f"| due {self._money(totals.due_minor)} | {lines} line{'s' if lines != 1 else ''}",
            {
                "total_minor": totals.total_minor,
                "tax_minor": totals.tax_minor,
                "paid_minor": totals.paid_minor,
                "due_minor": totals.due_minor,
                "lines": lines,
            },
        )

    def _pay(
        self, kind: Literal["cash", "card"], amount: int | None, reference: str | None
    ) -> TillEvent:
        engine = self.engine
        if not engine.basket.lines:
            raise InvalidInput("The basket is empty: scan the items before taking a payment")
        totals = engine.totals()
        if totals.due_minor > 0:
            give = totals.due_minor if amount is None else amount
            if kind == "cash":
                engine.add_tender_cash(give)
            else:
                engine.add_tender_card(give, reference or self._card_reference())
            totals = engine.totals()
            if totals.due_minor > 0:
                return TillEvent(
                    "payment",
                    f"paid {kind} {self._money(give)} | due {self._money(totals.due_minor)}",
                    {"kind": kind, "amount_minor": give, "due_minor": totals.due_minor},
                )
        return self._complete()

    def _complete(self) -> TillEvent:
        engine = self.engine
        basket, last_sale = engine.basket, engine.last_sale
        try:
            if self.hold_receipts:
                # One transaction: the sale is never committed with its receipt printable.
                with self.store.transaction() as db:
                    sale = engine.complete(suggestions=self.suggestions)
                    self._hold_receipt(db, sale)
            else:
                sale = engine.complete(suggestions=self.suggestions)
        except StorageError as exc:
            # The engine forgets the basket when its own block ends; the commit came later.
            engine.basket, engine.last_sale = basket, last_sale
            return TillEvent(
                "not_saved",
                f"not saved: {exc.message} The payment taken is kept: once space is freed, scan "
                "CMD-PAY-CASH or CMD-PAY-CARD again to save the sale (nothing is charged twice)",
                {"due_minor": self.engine.totals().due_minor},
            )
        self.suggestions = []
        self.sync.kick()
        if self.printer is not None:
            self.printer.kick()
        change = sum(t.change_minor for t in sale.tenders)
        paid = ", ".join(f"{t.kind} {self._money(t.amount_minor)}" for t in sale.tenders)
        return TillEvent(
            "sale_complete",
            f"sale complete {sale.receipt_number} | total {self._money(sale.total_minor)} | "
            f"paid {paid} | change {self._money(change)}",
            {
                "sale_id": str(sale.sale_id),
                "receipt_number": sale.receipt_number,
                "total_minor": sale.total_minor,
                "change_minor": change,
                "customer_id": None if sale.customer_id is None else str(sale.customer_id),
            },
        )

    def _hold_receipt(self, db: sqlite_utils.Database, sale: Sale) -> None:
        sale_id = str(sale.sale_id)
        db.execute(
            "UPDATE print_jobs SET status = 'held' "
            "WHERE sale_id = ? AND copy = 0 AND status = 'pending'",
            [sale_id],
        )
        if any(t.kind == "cash" for t in sale.tenders):
            db.execute(
                "INSERT INTO print_jobs(job_id, sale_id, kind, copy, status, created_at) "
                "VALUES (?, ?, 'drawer', 0, 'pending', ?)",
                [str(uuid.uuid4()), sale_id, self._clock().isoformat()],
            )

    def _cancel(self) -> TillEvent:
        basket = self.engine.basket
        if basket.is_empty and basket.customer is None:
            raise InvalidInput("There is no sale to cancel")
        card_paid = any(t.kind == "card" for t in basket.tenders)
        lines = len(basket.lines)
        self.engine.cancel()
        self.suggestions = []
        note = ": refund the card payment at the terminal" if card_paid else ""
        return TillEvent(
            "cancelled",
            f"sale cancelled ({lines} line{'s' if lines != 1 else ''}){note}",
            {"lines": lines, "card_refund_needed": card_paid},
        )

    def _void(self, line_no: int | None = None) -> TillEvent:
        lines = self.engine.basket.lines
        if not lines:
            raise InvalidInput("There is no line to void: the basket is empty")
        line = self.engine.void_line(lines[-1].line_no if line_no is None else line_no)
        total = self.engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "line_voided",
            f"voided line {line.line_no}: {line.quantity} x {line.name} | "
            f"total {self._money(total)}",
            {"line_no": line.line_no, "sku": line.sku, "total_minor": total},
        )

    def _quantity(self, amount: int | None) -> TillEvent:
        if amount is None:
            raise InvalidInput("CMD-QTY needs a quantity after it, for example CMD-QTY-3")
        self.engine.set_pending_quantity(amount)
        return TillEvent("quantity", f"next item x {amount}", {"quantity": amount})

    def _park(self, label: str = "") -> TillEvent:
        lines = len(self.engine.basket.lines)
        park_id = self.engine.park(label)
        self.suggestions = []
        waiting = len(self.engine.parked_list())
        return TillEvent(
            "parked",
            f"sale parked ({lines} line{'s' if lines != 1 else ''}; {waiting} parked): "
            "CMD-RESUME brings it back",
            {"park_id": park_id, "lines": lines, "parked": waiting},
        )

    def _resume(self, park_id: str | None = None) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if park_id is None:
            parked = self.engine.parked_list()
            if not parked:
                raise NotFound("There is no parked sale to resume")
            park_id = parked[0].park_id
        basket = self.engine.resume(park_id)
        total = self.engine.totals().total_minor
        self._refresh_suggestions()
        return TillEvent(
            "resumed",
            f"sale resumed ({len(basket.lines)} lines) | total {self._money(total)}",
            {"park_id": park_id, "lines": len(basket.lines), "total_minor": total},
        )

    def _report(self, which: str) -> TillEvent:
        if which == "Z":
            if not self.engine.basket.is_empty:
                raise InvalidInput("Complete or cancel the sale on the counter before the Z report")
            totals = reports.z_report(self.store, clock=self._clock)
            title = f"Z report {totals.number}"
        else:
            totals = reports.x_report(self.store, clock=self._clock)
            title = "X report"
        printing = self._print_report(title, totals)
        return TillEvent(
            "report",
            f"{title} | {totals.sales_count} sales, {totals.returns_count} returns | "
            f"net {self._money(totals.net_minor)} | tax {self._money(totals.tax_minor)} | "
            f"cash expected {self._money(totals.cash_expected_minor)}",
            {
                **totals.to_json(),
                "title": title,
                "printing": printing,
                "lines": [list(r) for r in self._report_rows(totals)],
            },
        )

    def _print_report(self, title: str, totals: reports.ReportTotals) -> str:
        """Queue the report for the printer; says what became of it."""
        if self.printer is None:
            return "not printed: no printer is configured"
        shop = self.engine.shop
        slip = ReportSlip(
            store_name=shop.name,
            title=title,
            created_at=f"{self._local(totals.created_at):%Y-%m-%d %H:%M}",
            till_id=self.settings.till_id,
            rows=self._report_rows(totals),
        )
        try:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO print_jobs(job_id, kind, copy, status, created_at, document) "
                    "VALUES (?, 'report', 0, 'pending', ?, ?)",
                    [str(uuid.uuid4()), self._clock().isoformat(), slip.model_dump_json()],
                )
        except StorageError as exc:
            # The report itself is done (a Z is committed); only its paper copy is missing.
            log.warning("the %s was not queued for printing: %s", title, exc.message)
            return f"NOT printed ({exc.message})"
        self.printer.kick()
        return "printing"

    def _report_rows(self, totals: reports.ReportTotals) -> tuple[tuple[str, str], ...]:
        money = self._money
        start = (
            "the first sale"
            if totals.period_start is None
            else f"{self._local(totals.period_start):%Y-%m-%d %H:%M}"
        )
        rows: list[tuple[str, str]] = [
            ("Since", start),
            ("Receipts", f"{totals.first_receipt or '-'} to {totals.last_receipt or '-'}"),
            ("Sales", str(totals.sales_count)),
            ("Returns", str(totals.returns_count)),
            ("", ""),
            ("Gross sales", money(totals.gross_minor)),
            ("Refunds", money(-totals.returns_minor)),
            ("Net", money(totals.net_minor)),
            ("Discounts given", money(totals.discount_minor)),
            ("Tax", money(totals.tax_minor)),
        ]
        for rate, amount in sorted(totals.tax_by_rate.items(), reverse=True):
            rows.append((f"  tax {rate.normalize():f}%", money(amount)))
        rows.append(("", ""))
        for kind, amount in sorted(totals.tenders_by_kind.items()):
            rows.append((f"Paid by {kind}", money(amount)))
        rows.append(("Cash expected in drawer", money(totals.cash_expected_minor)))
        return tuple(rows)

    def _local(self, moment: datetime) -> datetime:
        try:
            return moment.astimezone(ZoneInfo(self.engine.shop.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            return moment

    def _reprint(self) -> TillEvent:
        row = self.store.query_one(
            "SELECT sale_id, receipt_number, kind, payload FROM sales ORDER BY rowid DESC LIMIT 1"
        )
        if row is None:
            raise NotFound("There is no receipt to reprint: no sale was made at this till yet")
        sale_id, number, kind, payload = str(row[0]), str(row[1]), str(row[2]), str(row[3])
        with self.store.transaction() as db:
            # A receipt held for the customer's choice, or declined, was never printed: print
            # the original rather than a copy.
            unprinted = db.execute(
                "UPDATE print_jobs SET status = 'pending' WHERE sale_id = ? AND copy = 0 "
                "AND kind != 'drawer' AND status IN ('held', 'declined')",
                [sale_id],
            ).rowcount
        if unprinted:
            if self.printer is not None:
                self.printer.kick()
            return TillEvent(
                "reprint_queued",
                f"receipt {number} is printing (it was not printed before)",
                {"sale_id": sale_id, "receipt_number": number, "copy": False},
            )
        job = self.store.query_one(
            "SELECT document FROM print_jobs WHERE sale_id = ? AND copy = 0 AND document IS NOT "
            "NULL ORDER BY created_at LIMIT 1",
            (sale_id,),
        )
        document = self._copy_document(None if job is None else str(job[0]), kind, payload)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO print_jobs(job_id, sale_id, kind, copy, status, created_at, document)"
                " VALUES (?, ?, ?, 1, 'pending', ?, ?)",
                [str(uuid.uuid4()), sale_id, kind, self._clock().isoformat(), document],
            )
        if self.printer is not None:
            self.printer.kick()
        return TillEvent(
            "reprint_queued",
            f"reprint of receipt {number} queued",
            {"sale_id": sale_id, "receipt_number": number, "copy": True},
        )

    def _copy_document(self, original: str | None, kind: str, payload: str) -> str:
        """The receipt to print again, marked as a copy."""
        if original is not None:
            try:
                receipt = Receipt.model_validate_json(original)
                return receipt.model_copy(update={"copy_": True}).model_dump_json(by_alias=True)
            except ValidationError:
                log.warning("the stored receipt is unreadable; rebuilding it from the sale")
        shop = self.engine.shop
        if kind == "return":
            ret = Return.model_validate_json(payload)
            rebuilt = receipt_from_return(ret, shop, copy=True)
        else:
            rebuilt = receipt_from_sale(Sale.model_validate_json(payload), shop, copy=True)
        return rebuilt.model_dump_json(by_alias=True)

    # -- receipts by email ---------------------------------------------------------------------

    def email_receipt(
        self,
        address: str,
        *,
        consent_marketing: bool,
        sale_id: str | uuid.UUID | None = None,
    ) -> TillEvent:
        """Queue the receipt of ``sale_id`` (default: the last sale) for email to ``address``.

        ``consent_marketing`` is the customer's answer to "may we send you offers by email?".
        Never raises: like a scan, a problem comes back as an event (see the module docstring).
        """
        with self._lock:
            try:
                return self._email_receipt(address, consent_marketing, sale_id)
            except StorageError as exc:
                return TillEvent(
                    "not_saved",
                    f"not saved: {exc.message} Free space, then ask for the email again",
                )
            except OmnitillError as exc:
                return TillEvent("refused", f"refused: {exc.message}")
            except Exception as exc:
                log.exception("queueing a receipt email failed")
                return TillEvent(
                    "error",
                    f"error: the receipt email was not queued ({type(exc).__name__}); "
                    "try again or call support",
                )

    def _email_receipt(
        self, address: str, consent: bool, sale_id: str | uuid.UUID | None
    ) -> TillEvent:
        try:
            email = normalize_identifier("email", address)
        except IdentifierError as exc:
            raise InvalidInput(f"The receipt cannot be emailed: {exc.message}") from exc
        if sale_id is None:
            row = self.store.query_one(
                "SELECT sale_id, receipt_number, kind, payload FROM sales "
                "ORDER BY rowid DESC LIMIT 1"
            )
            if row is None:
                raise NotFound("There is no receipt to email: no sale was made at this till yet")
        else:
            row = self.store.query_one(
                "SELECT sale_id, receipt_number, kind, payload FROM sales WHERE sale_id = ?",
                (str(sale_id),),
            )
            if row is None:
                raise NotFound(f"There is no sale {sale_id} at this till")
        sid, number, kind, payload = str(row[0]), str(row[1]), str(row[2]), str(row[3])
        receipt = self._receipt_document(sid, kind, payload)
        known = (Return if kind == "return" else Sale).model_validate_json(payload).customer_id
        card = (
            self.customers.card_for(known)
            if known is not None
            else self.customers.cached_card(email)
        )
        mail_id = CustomerIdentifierModel(kind="email", value=email.value)
        if card is not None and card.provisional:
            local = [i for i in card.identifiers if i.kind == "till_local"] or [
                CustomerIdentifierModel(kind="till_local", value=f"TL-{card.customer_id}")
            ]
            customer_id: uuid.UUID | None = card.customer_id
            patch_target: dict[str, Any] = {"identifiers": (local[0], mail_id)}
        elif card is not None or known is not None:
            customer_id = card.customer_id if card is not None else known
            patch_target = {"customer_id": customer_id, "identifiers": (mail_id,)}
        else:
            # Nobody known: the address makes a provisional customer; HQ merges it with any
            # customer who already has this address.
            fresh = new_till_local_id()
            customer_id = uuid.UUID(fresh.value[3:])
            patch_target = {
                "identifiers": (
                    CustomerIdentifierModel(kind="till_local", value=fresh.value),
                    mail_id,
                )
            }
        now = self._clock()
        patch = CustomerPatch(
            **patch_target,
            consent_events=(
                ConsentEvent(channel="marketing_email", granted=consent, at=now, source="till"),
            ),
        )
        request = ReceiptEmail(
            email_id=uuid.uuid4(),
            sale_id=uuid.UUID(sid),
            address=email.value,
            consent_marketing=consent,
            receipt=receipt,
            customer_id=customer_id,
            at=now,
        )
        with self.store.transaction() as db:
            # The patch first: HQ has the consent before it renders the mail.
            outbox.enqueue(db, "customer_patch", patch.model_dump(mode="json"))
            outbox.enqueue(db, "receipt_email", request.model_dump(mode="json", by_alias=True))
        self.sync.kick()
        offers = "with offers" if consent else "no offers"
        return TillEvent(
            "email_queued",
            f"email of receipt {number} queued for {email.value} ({offers})",
            {
                "sale_id": sid,
                "receipt_number": number,
                "address": email.value,
                "email_id": str(request.email_id),
                "customer_id": None if customer_id is None else str(customer_id),
                "consent_marketing": consent,
            },
        )

    def _receipt_document(self, sale_id: str, kind: str, payload: str) -> Receipt:
        """The receipt as it was printed (suggestions included), else rebuilt from the sale."""
        job = self.store.query_one(
            "SELECT document FROM print_jobs WHERE sale_id = ? AND copy = 0 AND document IS NOT "
            "NULL ORDER BY created_at LIMIT 1",
            (sale_id,),
        )
        if job is not None:
            try:
                return Receipt.model_validate_json(str(job[0])).model_copy(update={"copy_": False})
            except ValidationError:
                log.warning("the stored receipt is unreadable; rebuilding it from the sale")
        shop = self.engine.shop
        if kind == "return":
            return receipt_from_return(Return.model_validate_json(payload), shop)
        return receipt_from_sale(Sale.model_validate_json(payload), shop)

    # -- returns -------------------------------------------------------------------------------

    def _start_return(self, receipt_number: str) -> TillEvent:
        if self.return_draft is not None:
            raise InvalidInput(_IN_RETURN)
        if not self.engine.basket.is_empty:
            raise InvalidInput("Complete or cancel the sale on the counter before taking a return")
        draft = self.engine.start_return(receipt_number)
        draft.select_all()
        if not draft.selected:
            raise InvalidInput(
                f"Everything on receipt {draft.sale.receipt_number} was already returned"
            )
        self.return_draft = draft
        count = sum(draft.selected.values())
        total = draft.total_minor
        return TillEvent(
            "return_started",
            f"return of receipt {draft.sale.receipt_number}: {count} item"
            f"{'s' if count != 1 else ''}, refund {self._money(total)} | CMD-PAY-CASH or "
            "CMD-PAY-CARD refunds, CMD-CANCEL stops",
            {
                "receipt_number": draft.sale.receipt_number,
                "sale_id": str(draft.sale.sale_id),
                "items": count,
                "refund_minor": total,
            },
        )

    def _return_command(self, name: str, amount: int | None, command: str) -> TillEvent:
        draft = self.return_draft
        assert draft is not None
        if name == "TOTAL":
            return TillEvent(
                "total",
                f"refund {self._money(draft.total_minor)} for receipt {draft.sale.receipt_number}",
                {"refund_minor": draft.total_minor},
            )
        if name == "CANCEL":
            self.return_draft = None
            return TillEvent(
                "cancelled",
                f"return of receipt {draft.sale.receipt_number} cancelled",
                {"receipt_number": draft.sale.receipt_number},
            )
        if name == "X":
            return self._report("X")
        if name == "REPRINT":
            return self._reprint()
        if name not in ("PAY-CASH", "PAY-CARD"):
            raise InvalidInput(_IN_RETURN)
        if amount is not None:
            raise InvalidInput(
                f"CMD-{command}: a refund is always the return's total; scan CMD-{name}"
            )
        kind: Literal["cash", "card"] = "cash" if name == "PAY-CASH" else "card"
        reference = self._card_reference() if kind == "card" else None
        try:
            ret = self.engine.complete_return(draft, tender_kind=kind, reference=reference)
        except StorageError as exc:
            return TillEvent(
                "not_saved",
                f"not saved: {exc.message} The return is kept: once space is freed, scan "
                f"CMD-{name} again",
            )
        self.return_draft = None
        self.sync.kick()
        if self.printer is not None:
            self.printer.kick()
        return TillEvent(
            "return_complete",
            f"return complete {ret.receipt_number} | refund {kind} "
            f"{self._money(ret.total_minor)} | original {draft.sale.receipt_number}",
            {
                "return_id": str(ret.return_id),
                "receipt_number": ret.receipt_number,
                "original_receipt_number": draft.sale.receipt_number,
                "refund_minor": ret.total_minor,
            },
        )

    # -- helpers -------------------------------------------------------------------------------

    def _loyalty_format(self) -> LoyaltyFormat:
        """``settings.loyalty_format``, made again only when the settings change."""
        settings, fmt = self.settings, self._loyalty
        if fmt.prefix != settings.loyalty_prefix or fmt.length != settings.loyalty_length:
            fmt = self._loyalty = settings.loyalty_format
        return fmt

    def _money(self, amount: int) -> str:
        shop = self.engine.shop
        try:
            return format_amount(amount, shop.currency, shop.locale)
        except OmnitillError:
            return f"{amount} {shop.currency} minor units"

    def _refresh_suggestions(self) -> None:
        n = self.settings.suggestions
        if n <= 0 or not self.engine.basket.lines:
            self.suggestions = []
            return
        try:
            self.suggestions = self.engine.suggestions(n)
        except Exception:  # suggestions are a nicety: they must never fail a scan
            log.exception("suggestions for the basket failed")
            self.suggestions = []

    def _suggestion_data(self) -> list[dict[str, Any]]:
        return [
            {"sku": s.sku, "name": s.name, "reason": s.reason, "price_minor": s.price_minor}
            for s in self.suggestions
        ]

    def _load_shop(self) -> Store:
        """The store's settings from HQ's feed, or from this till's settings until then."""
        row = self.store.query_one(
            "SELECT data FROM store_config WHERE key = ?", (f"store:{self.settings.store_id}",)
        )
        text = None if row is None else str(row[0])
        self._shop_text = text
        if text is not None:
            try:
                return Store.model_validate_json(text)
            except ValidationError as exc:
                log.warning("the store configuration from HQ is unreadable (%s)", exc)
        s = self.settings
        return Store(
            store_id=s.store_id,
            name=s.store_id,
            currency=s.currency,
            tax_mode=s.tax_mode,
            default_region=s.default_region,
        )

    def _take_up_shop(self) -> None:
        """Use a store configuration HQ sent since the last sale."""
        row = self.store.query_one(
            "SELECT data FROM store_config WHERE key = ?", (f"store:{self.settings.store_id}",)
        )
        if (None if row is None else str(row[0])) == self._shop_text:
            return
        old = self.engine
        self.engine = self._new_engine(self._load_shop())
        self.engine.last_sale, self.engine.last_return = old.last_sale, old.last_return
        # The basket has no lines yet, but may have its customer (a card scanned first) and a
        # quantity keyed for the first item.
        self.engine.basket = old.basket
        self.engine.set_pending_quantity(old.pending_quantity)
        log.info("store configuration updated from HQ")

    def _new_engine(self, shop: Store) -> SaleEngine:
        return SaleEngine(
            store=self.store,
            catalogue=self.catalogue,
            shop=shop,
            till_id=self.settings.till_id,
            cashier_id=self.settings.cashier_id,
            clock=self._clock,
            variable_rules=self._rules,
            receipt_base_url=self.settings.receipt_base_url or self.settings.server_url,
        )
