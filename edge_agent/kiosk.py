"""The in-store kiosk: price check, bestsellers and personal picks on a public screen.

:class:`KioskPresenter` is the kiosk's state machine in plain Python; the Qt window
(``edge_agent.ui.kiosk``) only paints its view models and calls its actions. It reads the till's
local cache (``Till.catalogue``, ``Till.customers``, the store's configuration), which the till's
sync worker keeps current from HQ's feed, so everything it shows works offline. The kiosk never
writes to the local database and never sells.

Screens
-------
::

    idle --scan product / tap--> product --Done--> idle (or personal, when a card was scanned)
    idle --scan loyalty card---> personal --Done--> idle (the customer is forgotten)
    any  --Search--------------> search --Back--> the screen before
    any  --bad code / unknown--> notice --after notice_s--> the screen before
    any  --Staff (or Ctrl+Shift+Q)--> pin --right PIN--> exit; wrong PIN: stays, short message
    any  --idle_timeout_s without a touch or scan--> idle (the customer is forgotten)

- **Idle** rotates slides every ``slide_interval_s``: the store's bestsellers overall and per
  category (HQ's ``bestsellers`` lists, keys ``<store>/*`` and ``<store>/<category>``), and
  "Trending now" second (HQ's ``trending`` list ``<store>/*``, else the chain's ``*/*``;
  no slide when neither lists a product the store sells).
- **Product** (a scanned barcode, a scale label or a touched item): name, description (the
  product's ``description`` attribute, else brand and category), price in the store's locale
  ("12,99 EUR" for German, "€12.99" for English; per kg for items sold by weight), and what
  customers who bought it also bought (else the bestsellers of its category).
- **Personal** (a loyalty card, or the ``kind:value`` QR code of a digital receipt): "Hello,
  <first name>" and the customer's personal list (else the store's bestsellers). A kiosk is
  public: the first name is the only personal data ever on screen, never a last name, points,
  consents, what was viewed online or left in a cart. A card not in the cache is asked of HQ on
  a worker thread, when the kiosk has an HQ lookup (``lookup``), while the screen says "One
  moment"; the answer is taken up at the next :meth:`KioskPresenter.tick` (the UI calls it on
  a timer), and after ``lookup_timeout_s`` the kiosk stops waiting.
- **Search**: an on-screen keyboard; results as you type from the local full-text index,
  products on the customer's personal list first when a card was scanned
  (:func:`rank_by_personal`).
- **Notice**: a friendly message for a code that cannot be read, a product or card not found,
  or a receipt or command barcode (which only a till takes); it goes back by itself.
- **PIN**: the only way out of the full-screen kiosk. The PIN is stored as a PBKDF2-SHA256 hash
  (:func:`hash_pin`, ``omnitill kiosk --hash-pin``) and checked with a constant-time
  comparison; a wrong PIN shows "Wrong PIN" and nothing else. After ``pin_attempts`` wrong
  PINs in a row the pad is locked for ``pin_lockout_s`` seconds, so a shopper cannot try every
  four-digit PIN.

Every touch or scan restarts the inactivity clock; the clock is injectable (``clock``), so
tests drive timeouts without waiting.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge_agent.catalogue import CatalogueItem
from edge_agent.till import MAX_SCAN_LENGTH, Till
from shared.barcodes import (
    CommandScan,
    LoyaltyScan,
    ProductScan,
    ReceiptScan,
    VariableMeasureScan,
    classify_scan,
)
from shared.catalogue import Store
from shared.customer import CustomerCard
from shared.errors import (
    BarcodeError,
    BarcodeFormatError,
    IdentifierError,
    InvalidInput,
    OmnitillError,
)
from shared.identifiers import IDENTIFIER_KINDS
from shared.money import Money

__all__ = [
    "ALSO_BOUGHT_SHOWN",
    "PERSONAL_SHOWN",
    "PIN_ITERATIONS",
    "SEARCH_SHOWN",
    "SLIDE_ITEMS",
    "CardLookup",
    "ItemView",
    "KioskPresenter",
    "KioskSettings",
    "NoticeView",
    "PersonalView",
    "PinView",
    "ProductView",
    "Screen",
    "SearchView",
    "SlideView",
    "check_pin_format",
    "hash_pin",
    "load_kiosk_settings",
    "rank_by_personal",
    "verify_pin",
]

log = logging.getLogger(__name__)

Screen = Literal["idle", "product", "personal", "search", "notice", "pin"]

#: Asks HQ for a card: identifier as ``kind:value`` -> card, or None when HQ does not know it.
CardLookup = Callable[[str], CustomerCard | None]

#: Items per idle slide, also-bought items on a product, personal picks, search results shown.
SLIDE_ITEMS: Final = 5
ALSO_BOUGHT_SHOWN: Final = 4
PERSONAL_SHOWN: Final = 6
SEARCH_SHOWN: Final = 4
#: Results read from the index before the personal ranking picks the ones shown.
SEARCH_FETCH: Final = 60
MAX_QUERY: Final = 40
#: Slides at most (the overall list first, "Trending now", then categories in alphabetical order).
MAX_SLIDES: Final = 12
#: A first name longer than this is cut (a kiosk screen has room for one line).
MAX_FIRST_NAME: Final = 24

#: PBKDF2-SHA256 iterations for a new PIN hash (OWASP's figure for 2023); stored in the hash.
PIN_ITERATIONS: Final = 600_000
PIN_SCHEME: Final = "pbkdf2_sha256"
PIN_LENGTH: Final = (4, 12)
_PIN = re.compile(r"[0-9]+")


# -- the admin PIN -----------------------------------------------------------------------------


def check_pin_format(pin: str) -> str:
    """``pin`` if it is 4 to 12 digits (what the kiosk's PIN pad can type); else InvalidInput."""
    low, high = PIN_LENGTH
    if not _PIN.fullmatch(pin) or not low <= len(pin) <= high:
        raise InvalidInput(f"The kiosk PIN must be {low} to {high} digits (the PIN pad has digits)")
    return pin


def hash_pin(pin: str, *, iterations: int = PIN_ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64) for ``pin``: what IT puts in the
    kiosk's ``pin_hash`` setting. Raises InvalidInput for a PIN that is not 4 to 12 digits."""
    check_pin_format(pin)
    if iterations < 1:
        raise InvalidInput(f"PIN hash iterations must be positive, not {iterations}")
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations)
    return "$".join((PIN_SCHEME, str(iterations), _b64(salt), _b64(digest)))


def parse_pin_hash(text: str) -> tuple[int, bytes, bytes]:
    """The iterations, salt and digest of a PIN hash; InvalidInput says what is wrong."""
    parts = text.strip().split("$")
    example = "pbkdf2_sha256$600000$<salt>$<hash>, as `omnitill kiosk --hash-pin` prints it"
    if len(parts) != 4 or parts[0] != PIN_SCHEME:
        raise InvalidInput(f"The kiosk pin_hash is not a PIN hash: expected {example}")
    try:
        iterations = int(parts[1])
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except ValueError as exc:
        raise InvalidInput(f"The kiosk pin_hash is damaged ({exc}): expected {example}") from exc
    if iterations < 1 or not salt or len(digest) != hashlib.sha256().digest_size:
        raise InvalidInput(f"The kiosk pin_hash is damaged: expected {example}")
    return iterations, salt, digest


def verify_pin(pin: str, pin_hash: str) -> bool:
    """Whether ``pin`` is the PIN ``pin_hash`` was made from (constant-time comparison)."""
    iterations, salt, digest = parse_pin_hash(pin_hash)
    # Any text is hashed, even one that is not a PIN: the time taken never tells which.
    candidate = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- settings ----------------------------------------------------------------------------------


def _config_file() -> Path:
    # The till's own file (edge_agent.config): a kiosk's settings live in its [kiosk] table.
    return Path(os.environ.get("OMNITILL_TILL_CONFIG", "omnitill-till.toml"))


class KioskSettings(BaseSettings):
    """The kiosk's own settings (docs/kiosk.md): the ``[kiosk]`` table of the till's TOML file
    and ``OMNITILL_KIOSK_*`` environment variables (environment wins; options win over both).
    The kiosk also reads the till's settings (database, HQ, store, scanner)."""

    model_config = SettingsConfigDict(env_prefix="OMNITILL_KIOSK_", extra="ignore")

    pin_hash: SecretStr | None = Field(
        default=None,
        description="Hash of the admin PIN that leaves the kiosk (`omnitill kiosk --hash-pin`).",
    )
    idle_timeout_s: float = Field(
        default=45.0, gt=0, le=3600, description="Seconds without a touch or scan before idle."
    )
    slide_interval_s: float = Field(
        default=8.0, gt=0, le=600, description="Seconds each idle slide stays."
    )
    notice_s: float = Field(
        default=5.0, gt=0, le=120, description="Seconds a message (bad code, not found) stays."
    )
    lookup_timeout_s: float = Field(
        default=2.0, gt=0, le=30, description="How long to wait for HQ about an unknown card."
    )
    pin_attempts: int = Field(
        default=5, ge=1, le=100, description="Wrong PINs in a row before the pad locks."
    )
    pin_lockout_s: float = Field(
        default=60.0, ge=0, le=3600, description="Seconds the PIN pad stays locked."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(
            settings_cls, toml_file=_config_file(), toml_table_header=("kiosk",)
        )
        return (init_settings, env_settings, toml)

    @field_validator("pin_hash")
    @classmethod
    def _check_pin_hash(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parse_pin_hash(value.get_secret_value())
        except InvalidInput as exc:
            # Refused at start-up, not when IT first tries to leave the kiosk.
            raise ValueError(exc.message) from exc
        return SecretStr(value.get_secret_value().strip())


def load_kiosk_settings(**overrides: Any) -> KioskSettings:
    """Kiosk settings from the TOML file and environment, with explicit overrides on top;
    raises ``pydantic.ValidationError``."""
    return KioskSettings(**{k: v for k, v in overrides.items() if v is not None})


# -- view models -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemView:
    """A product as a kiosk list shows it: touch it to see its price check."""

    sku: str
    name: str
    price: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class SlideView:
    title: str
    items: tuple[ItemView, ...]
    position: str


@dataclass(frozen=True, slots=True)
class ProductView:
    sku: str
    name: str
    description: str
    price: str
    unit: str
    note: str
    related_title: str
    related: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class PersonalView:
    first_name: str
    greeting: str
    title: str
    items: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class SearchView:
    query: str
    hint: str
    results: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class NoticeView:
    title: str
    text: str
    waiting: bool = False


@dataclass(frozen=True, slots=True)
class PinView:
    masked: str
    message: str
    locked: bool


_NO_SEARCH: Final = SearchView("", "Type a product name, brand or code", ())
_NO_PIN: Final = PinView("", "Staff only: enter the admin PIN", False)

_UNREADABLE: Final = NoticeView(
    "Sorry, we could not read that code", "Please scan it again, or ask a member of staff."
)
_SCANNER_FAULT: Final = NoticeView(
    "Sorry, the scanner could not read that",
    "Please scan again. If it keeps happening, ask a member of staff.",
)
_UNKNOWN_PRODUCT: Final = NoticeView(
    "Sorry, we could not find this product", "Please ask a member of staff for its price."
)
_NOT_HERE: Final = NoticeView(
    "This screen checks prices",
    "Scan a product's barcode, or your loyalty card for your own picks.",
)
_UNKNOWN_CARD: Final = NoticeView(
    "We could not find your card here",
    "You can still scan products to check their prices; staff at the till can help with your card.",
)
_LOOKING_UP: Final = NoticeView("One moment", "Looking up your card...", waiting=True)


class _HasSku(Protocol):
    @property
    def sku(self) -> str: ...


_T = TypeVar("_T", bound=_HasSku)


def rank_by_personal(items: Sequence[_T], personal: Sequence[str]) -> list[_T]:
    """``items`` (search results, best first) with those on the personal list first, in the
    list's order; the others keep their order after them."""
    rank = {sku: i for i, sku in reversed(list(enumerate(personal)))}
    picked = sorted((i for i in items if i.sku in rank), key=lambda i: rank[i.sku])
    return [*picked, *(i for i in items if i.sku not in rank)]


@dataclass(slots=True)
class _Customer:
    customer_id: str
    first_name: str
    personal: tuple[str, ...]


@dataclass(slots=True)
class _Lookup:
    token: int
    future: concurrent.futures.Future[CustomerCard | None]
    deadline: float


Listener = Callable[[], None]


class KioskPresenter:
    """The kiosk over ``till``'s local cache; see the module docstring.

    ``lookup`` asks HQ for a card the cache does not hold (run on a worker thread; None: cache
    only). ``clock`` gives monotonic seconds. Call :meth:`tick` a few times a second.
    """

    def __init__(
        self,
        till: Till,
        settings: KioskSettings,
        *,
        lookup: CardLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.till = till
        self.settings = settings
        self._lookup = lookup
        self._clock = clock
        self._listeners: list[Listener] = []
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: _Lookup | None = None
        self._token = 0
        self._shop_text: str | None = None
        self._shop = self._load_shop()

        now = clock()
        self.screen: Screen = "idle"
        self._previous: Screen = "idle"
        self._last_activity = now
        self._notice_until = math.inf
        self.customer: _Customer | None = None
        self.slides: tuple[SlideView, ...] = ()
        self.slide_index = 0
        self._slide_started = now
        self.product: ProductView | None = None
        self.personal: PersonalView | None = None
        self.search: SearchView = _NO_SEARCH
        self.notice: NoticeView | None = None
        self.pin: PinView = _NO_PIN
        self._pin_digits = ""
        self._pin_failures = 0
        self._locked_until = -math.inf
        self.exit_requested = False
        self._rebuild_slides()

    # -- listeners and life cycle --------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def close(self) -> None:
        """Stop the lookup thread (an answer in flight is dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    # -- what the header shows -----------------------------------------------------------------

    @property
    def store_name(self) -> str:
        return self._shop.name

    @property
    def greeting(self) -> str:
        """ "Hello, Maria" while a card is on: the only personal data the kiosk shows."""
        if self.customer is None:
            return ""
        return f"Hello, {self.customer.first_name}" if self.customer.first_name else "Hello"

    @property
    def slide(self) -> SlideView:
        return self.slides[self.slide_index % len(self.slides)]

    # -- actions -------------------------------------------------------------------------------

    def scan(self, text: str) -> None:
        """A code from the wedge or serial scanner: a product, a card, or a friendly notice."""
        self._touch()
        self._token += 1  # a lookup still running is for an earlier scan: drop its answer
        self._pending = None
        try:
            self._route(text)
        except (BarcodeError, IdentifierError) as exc:
            log.info("kiosk: unreadable scan: %s", exc.message)
            self._show_notice(_UNREADABLE)
        except OmnitillError as exc:
            log.warning("kiosk: the scan could not be handled: %s", exc.message)
            self._show_notice(_UNREADABLE)
        except Exception:  # a kiosk must never stop on one scan
            log.exception("kiosk: handling a scan failed")
            self._show_notice(_UNREADABLE)
        self._changed()

    def scanner_failed(self, message: str) -> None:
        """The serial scanner's failed read (garbled bytes, a lost device)."""
        log.warning("kiosk scanner: %s", message)
        self._touch()
        self._show_notice(_SCANNER_FAULT)
        self._changed()

    def show_product(self, sku: str) -> None:
        """A product touched on a slide, a list or the search results."""
        self._touch()
        try:
            item = self.till.catalogue.by_sku(sku)
        except OmnitillError as exc:
            log.warning("kiosk: reading product %s failed: %s", sku, exc.message)
            item = None
        if item is None:
            self._show_notice(_UNKNOWN_PRODUCT)
        else:
            self._show_item(item)
        self._changed()

    def open_search(self) -> None:
        self._touch()
        if self.screen != "search":
            self._previous = self._home() if self.screen in ("notice", "pin") else self.screen
        self.screen = "search"
        self._run_search(self.search.query)
        self._changed()

    def type_text(self, text: str) -> None:
        """Keys of the on-screen keyboard (or a person's typing) into the search."""
        self._touch()
        if self.screen != "search":
            return
        typed = "".join(c for c in text if c.isprintable())
        self._run_search((self.search.query + typed)[:MAX_QUERY])
        self._changed()

    def backspace(self) -> None:
        self._touch()
        if self.screen == "search":
            self._run_search(self.search.query[:-1])
        elif self.screen == "pin":
            self._pin_digits = self._pin_digits[:-1]
            self.pin = PinView(self._masked(), self.pin.message, self.pin.locked)
        self._changed()

    def clear_search(self) -> None:
        self._touch()
        if self.screen == "search":
            self._run_search("")
            self._changed()

    def back(self) -> None:
        """Back / Done: a product or the search goes back; the personal screen (or the idle
        one) ends the visit and forgets the customer."""
        self._touch()
        if self.screen == "search":
            self.screen = self._previous if self._previous != "search" else self._home()
            if self.screen == "product" and self.product is None:
                self.screen = self._home()
        elif self.screen in ("product", "notice", "pin"):
            self._pin_digits = ""
            self.screen = self._home()
        else:
            self._go_idle()
        self._changed()

    def open_pin(self) -> None:
        """The staff's way out: the PIN pad (the Staff button, Ctrl+Shift+Q)."""
        self._touch()
        if self.screen != "pin":
            self._pin_digits = ""
            self.screen = "pin"
        self.pin = self._pin_view("")
        self._changed()

    def pin_digit(self, digit: str) -> None:
        self._touch()
        if self.screen != "pin" or len(digit) != 1 or not digit.isdigit():
            return
        if len(self._pin_digits) < PIN_LENGTH[1] and not self._locked():
            self._pin_digits += digit
        self.pin = self._pin_view(self.pin.message)
        self._changed()

    def submit_pin(self) -> bool:
        """Check the PIN typed: True (and :attr:`exit_requested`) when it is right."""
        self._touch()
        if self.screen != "pin":
            return False
        digits, self._pin_digits = self._pin_digits, ""
        if self._locked():
            self.pin = self._pin_view("")
            self._changed()
            return False
        pin_hash = self.settings.pin_hash
        right = (
            bool(digits)
            and pin_hash is not None
            and verify_pin(digits, pin_hash.get_secret_value())
        )
        if right:
            self._pin_failures = 0
            self.exit_requested = True
            log.info("kiosk: admin PIN accepted, leaving the kiosk")
            self.pin = PinView("", "PIN accepted", False)
        else:
            self._pin_failures += 1
            if self._pin_failures >= self.settings.pin_attempts:
                self._pin_failures = 0
                self._locked_until = self._clock() + self.settings.pin_lockout_s
                log.warning("kiosk: %d wrong PINs, PIN pad locked", self.settings.pin_attempts)
            self.pin = self._pin_view("Wrong PIN")
        self._changed()
        return right

    def tick(self) -> None:
        """Time passes: lookup answers, the notice and inactivity timeouts, slides."""
        now = self._clock()
        changed = self._take_lookup_answer(now)
        if self.screen != "idle" and now - self._last_activity >= self.settings.idle_timeout_s:
            self._go_idle()
            changed = True
        elif self.screen == "notice" and now >= self._notice_until:
            self.screen = self._previous
            self.notice = None
            changed = True
        elif self.screen == "pin" and self.pin.locked and not self._locked():
            self.pin = self._pin_view("")
            changed = True
        elif self.screen == "idle" and now - self._slide_started >= self.settings.slide_interval_s:
            self._next_slide(now)
            changed = True
        if changed:
            self._changed()

    # -- scans ---------------------------------------------------------------------------------

    def _route(self, text: str) -> None:
        stripped = text.strip()
        if len(stripped) > MAX_SCAN_LENGTH:
            raise BarcodeFormatError(
                f"{len(stripped)} characters is longer than any code", code=stripped[:40]
            )
        kind, sep, _ = stripped.partition(":")
        if sep and kind.lower() in IDENTIFIER_KINDS:
            self._identify(stripped)
            return
        scan = classify_scan(text, loyalty=self.till.settings.loyalty_format)
        if isinstance(scan, LoyaltyScan):
            self._identify(f"loyalty:{scan.number}")
        elif isinstance(scan, ProductScan):
            item = self.till.catalogue.by_gtin(scan.gtin.gtin14)
            if item is None:
                self._show_notice(_UNKNOWN_PRODUCT)
            else:
                self._show_item(item)
        elif isinstance(scan, VariableMeasureScan):
            measure = scan.measure
            item = self.till.catalogue.by_item_reference(measure.item_reference)
            if item is None:
                self._show_notice(_UNKNOWN_PRODUCT)
            elif measure.price_minor is not None:
                price = self._money(measure.price_minor, item.currency)
                self._show_item(item, note=f"Price on this label: {price}")
            else:
                self._show_item(item, note=f"This label: {measure.weight_g} g")
        else:
            assert isinstance(scan, ReceiptScan | CommandScan)
            self._show_notice(_NOT_HERE)

    def _identify(self, text: str) -> None:
        ident = self.till.customers.parse(text)
        card = self.till.customers.cached_card(ident)
        if card is not None:
            self._greet(card)
            return
        if self._lookup is None:
            self._show_notice(_UNKNOWN_CARD)
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="kiosk-lookup"
            )
        future = self._executor.submit(self._lookup, str(ident))
        self._pending = _Lookup(self._token, future, self._clock() + self.settings.lookup_timeout_s)
        self._show_notice(_LOOKING_UP, until=math.inf)

    def _take_lookup_answer(self, now: float) -> bool:
        pending = self._pending
        if pending is None:
            return False
        if pending.token != self._token or self.screen != "notice":
            self._pending = None
            return False
        if not pending.future.done():
            if now < pending.deadline:
                return False
            log.info("kiosk: HQ did not answer a card lookup in time")
            pending.future.cancel()
            card = None
        else:
            try:
                card = pending.future.result()
            except OmnitillError as exc:
                log.info("kiosk: card lookup at HQ failed: %s", exc.message)
                card = None
            except Exception:
                log.exception("kiosk: card lookup at HQ failed unexpectedly")
                card = None
        self._pending = None
        self._touch()
        if card is None:
            self._show_notice(_UNKNOWN_CARD)
        else:
            self._previous = "personal"
            self._greet(card)
        return True

    def _greet(self, card: CustomerCard) -> None:
        first = " ".join(card.first_name.split())[:MAX_FIRST_NAME]
        customer_id = str(card.customer_id)
        personal = tuple(sku for sku, _, _ in self.till.catalogue.personal_for(customer_id))
        self.customer = _Customer(customer_id, first, personal)
        items = self._items(personal, PERSONAL_SHOWN)
        title = "Picked for you"
        if not items:
            items = self._items(self._bestseller_skus(None), PERSONAL_SHOWN)
            title = "Popular in this store"
        greeting = f"Hello, {first}!" if first else "Hello!"
        self.personal = PersonalView(first, greeting, title, tuple(items))
        self.search = _NO_SEARCH
        self.product = None
        self.notice = None
        self.screen = "personal"

    # -- products ------------------------------------------------------------------------------

    def _show_item(self, item: CatalogueItem, *, note: str = "") -> None:
        weighed = item.variable_measure == "weight"
        related = self._items(
            (sku for sku, _, _ in self.till.catalogue.also_bought_for([item.sku])[item.sku]),
            ALSO_BOUGHT_SHOWN,
            skip=item.sku,
        )
        related_title = "Customers who bought this also bought"
        if not related:
            related = self._items(
                self._bestseller_skus(item.category or None), ALSO_BOUGHT_SHOWN, skip=item.sku
            )
            related_title = f"Popular in {item.category}" if item.category else "Popular here"
        self.product = ProductView(
            sku=item.sku,
            name=item.name,
            description=self._description(item),
            price=self._money(item.price_minor, item.currency),
            unit="per kg" if weighed else "",
            note=note,
            related_title=related_title if related else "",
            related=tuple(related),
        )
        self.notice = None
        self.screen = "product"

    def _description(self, item: CatalogueItem) -> str:
        row = self.till.store.query_one(
            "SELECT json_extract(data, '$.attributes.description') FROM products WHERE sku = ?",
            (item.sku,),
        )
        if row is not None and row[0]:
            return " ".join(str(row[0]).split())
        return " | ".join(part for part in (item.brand, item.category) if part)

    def _items(self, skus: Iterable[str], limit: int, *, skip: str = "") -> list[ItemView]:
        """Views of the first ``limit`` products of ``skus`` this store sells."""
        out: list[ItemView] = []
        seen = {skip}
        for sku in skus:
            if len(out) >= limit:
                break
            if sku in seen:
                continue
            seen.add(sku)
            item = self.till.catalogue.by_sku(sku)
            if item is not None:
                out.append(self._item_view(item))
        return out

    def _item_view(self, item: CatalogueItem, note: str = "") -> ItemView:
        price = self._money(item.price_minor, item.currency)
        if item.variable_measure == "weight":
            price += " / kg"
        return ItemView(item.sku, item.name, price, note)

    # -- search --------------------------------------------------------------------------------

    def _run_search(self, query: str) -> None:
        name = self.customer.first_name if self.customer is not None else ""
        if not query.strip():
            hint = "Type a product name, brand or code"
            if self.customer is not None:
                hint += ": your picks come first"
            self.search = SearchView(query, hint, ())
            return
        try:
            found = self.till.catalogue.search(query, limit=SEARCH_FETCH)
        except OmnitillError as exc:
            log.warning("kiosk: search failed: %s", exc.message)
            found = []
        personal = self.customer.personal if self.customer is not None else ()
        ranked = rank_by_personal(found, personal)[:SEARCH_SHOWN]
        mine = set(personal)
        note = f"Picked for {name}" if name else "Picked for you"
        results = tuple(self._item_view(i, note if i.sku in mine else "") for i in ranked)
        if results:
            hint = f"{len(found)} found" if len(found) < SEARCH_FETCH else "Many found"
            hint += ": touch one for its price"
        else:
            hint = "Nothing found: try another word"
        self.search = SearchView(query, hint, results)

    # -- idle ----------------------------------------------------------------------------------

    def _go_idle(self) -> None:
        self.customer = None
        self.product = None
        self.personal = None
        self.notice = None
        self.search = _NO_SEARCH
        self._pin_digits = ""
        self._pending = None
        self._token += 1
        self.screen = "idle"
        self._previous = "idle"
        self._rebuild_slides()

    def _next_slide(self, now: float) -> None:
        self._slide_started = now
        self.slide_index += 1
        if self.slide_index >= len(self.slides):
            # Once round: take up lists the feed brought meanwhile.
            self._rebuild_slides()

    def _rebuild_slides(self) -> None:
        self._shop = self._load_shop()
        self.slide_index = 0
        self._slide_started = self._clock()
        store_id = self.till.settings.store_id
        try:
            rows = self.till.store.query(
                "SELECT key FROM recommendations WHERE kind = 'bestsellers' AND key >= ? AND "
                "key < ? ORDER BY key",
                (f"{store_id}/", f"{store_id}0"),  # '0' follows '/': the keys of this store
            )
        except OmnitillError as exc:
            log.warning("kiosk: reading the bestsellers failed: %s", exc.message)
            rows = []
        categories = [str(r[0]).split("/", 1)[1] for r in rows]
        ordered = ["*"] if "*" in categories else []
        ordered += [c for c in categories if c != "*"]
        found: list[tuple[str, tuple[ItemView, ...]]] = []
        overall = False
        for category in ordered[:MAX_SLIDES]:
            items = self._items(
                self._bestseller_skus(None if category == "*" else category), SLIDE_ITEMS
            )
            if items:
                title = (
                    "Bestsellers in this store" if category == "*" else f"Bestsellers in {category}"
                )
                found.append((title, tuple(items)))
                overall = overall or category == "*"
        trending = self._items(self._trending_skus(), SLIDE_ITEMS)
        if trending:
            # Right after the store's overall bestsellers: the news comes round soon.
            found.insert(1 if overall else 0, ("Trending now", tuple(trending)))
            del found[MAX_SLIDES:]
        if not found:
            found = [("Welcome", ())]
        self.slides = tuple(
            SlideView(title, items, f"Slide {n} of {len(found)}")
            for n, (title, items) in enumerate(found, start=1)
        )

    def _bestseller_skus(self, category: str | None) -> list[str]:
        try:
            return [i.sku for i in self.till.catalogue.bestsellers(category)]
        except OmnitillError as exc:
            log.warning("kiosk: reading the bestsellers failed: %s", exc.message)
            return []

    def _trending_skus(self) -> list[str]:
        try:
            return [i.sku for i in self.till.catalogue.trending()]
        except OmnitillError as exc:
            log.warning("kiosk: reading the trending list failed: %s", exc.message)
            return []

    # -- helpers -------------------------------------------------------------------------------

    def _touch(self) -> None:
        self._last_activity = self._clock()

    def _home(self) -> Screen:
        return "personal" if self.customer is not None and self.personal is not None else "idle"

    def _show_notice(self, notice: NoticeView, *, until: float | None = None) -> None:
        if self.screen not in ("notice", "pin"):
            self._previous = self.screen
        elif self.screen == "pin":
            self._previous = self._home()
        self.notice = notice
        self.screen = "notice"
        self._notice_until = self._clock() + self.settings.notice_s if until is None else until

    def _locked(self) -> bool:
        return self._clock() < self._locked_until

    def _masked(self) -> str:
        return " ".join("*" * len(self._pin_digits))

    def _pin_view(self, message: str) -> PinView:
        if self._locked():
            wait = math.ceil(self._locked_until - self._clock())
            return PinView("", f"Too many wrong PINs: try again in {wait} s", True)
        return PinView(self._masked(), message or _NO_PIN.message, False)

    def _money(self, amount: int, currency: str) -> str:
        try:
            return Money(amount, currency).format(self._shop.locale)
        except OmnitillError:
            return f"{amount} {currency} minor units"

    def _load_shop(self) -> Store:
        """The store's settings from HQ's feed (the till's own until the first pull)."""
        s = self.till.settings
        try:
            row = self.till.store.query_one(
                "SELECT data FROM store_config WHERE key = ?", (f"store:{s.store_id}",)
            )
        except OmnitillError:
            row = None
        text = None if row is None else str(row[0])
        if text is not None and text == self._shop_text:
            return self._shop
        self._shop_text = text
        if text is not None:
            try:
                return Store.model_validate_json(text)
            except ValidationError as exc:
                log.warning("the store configuration from HQ is unreadable (%s)", exc)
        return Store(store_id=s.store_id, name=s.store_id, currency=s.currency)
