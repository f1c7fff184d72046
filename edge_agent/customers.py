"""The customer at the counter: identify by card, phone, email or receipt QR; edit; consent.

Identifying must feel instant and must never block a sale:

1. What was typed or scanned becomes a normalized identifier (``shared.identifiers``): an email,
   a phone number in the store's country, a loyalty card (prefix, length and Luhn digit), a
   till-local id, or an explicit ``kind:value`` (what a digital receipt's QR code carries).
2. **Cache.** The till's own copy of the store's customer cards answers at once. When HQ can be
   asked, it is asked in the background for a fresher card, which replaces the cached one.
3. **HQ.** Not cached: HQ is asked with a short timeout (300 ms by default). Its card is cached.
   An answer that arrives after the timeout is still cached, for the next scan.
4. **Provisional.** Offline, too slow, or unknown at HQ: the till creates a provisional customer
   with a till-local id (``TL-<uuid>``; the uuid becomes the customer id, at HQ too). The
   customer row, its identifiers and a ``customer_patch`` op (the till-local id and what was
   scanned) are written in one transaction. When the op reaches HQ, HQ creates that customer
   and merges it with any customer sharing an identifier; the merge comes back on the feed as a
   tombstone, and ``customer_aliases`` then maps the provisional id to the survivor, so a sale or
   a screen still holding the old id finds the survivor's card (:meth:`CustomerDesk.card_for`).

An erased customer is gone from the cache (the feed's ``erased`` tombstone); scanned again, the
card makes a new provisional customer, as for anyone unknown.

Edits are per field, each stamped with the till's hybrid logical clock (``shared.hlc``); HQ keeps
the newest stamp per field, so edits made offline on several tills converge to the same values
everywhere once they have synced and pulled. The cache is updated at once, in the same
transaction as the outbox op. Consent changes are appended as events (the newest wins). The
clock's last stamp is saved with every edit (:func:`load_clock` seeds a clock from it after a
restart), so a till whose clock was set back never stamps an edit older than its last one.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import sqlite_utils
from pydantic import ValidationError

from edge_agent import outbox
from edge_agent.store import LocalStore
from shared.barcodes import LoyaltyFormat
from shared.customer import ConsentChannel, ConsentEvent, CustomerCard, CustomerIdentifierModel
from shared.errors import InvalidInput, NotFound, OmnitillError
from shared.hlc import HLCTimestamp, HybridLogicalClock
from shared.identifiers import (
    IDENTIFIER_KINDS,
    Identifier,
    guess_identifier,
    new_till_local_id,
    normalize_identifier,
)
from shared.ids import new_id
from shared.protocol import CustomerPatch, FieldWrite, InStoreEvent
from shared.protocol import describe_validation_error as _describe
from shared.wire import utc_now

__all__ = [
    "EDITABLE_FIELDS",
    "CustomerDesk",
    "Identification",
    "IdentificationSource",
    "Lookup",
    "load_clock",
]

log = logging.getLogger(__name__)

IdentificationSource = Literal["cache", "server", "provisional"]

#: Asks HQ for a card: (identifier as ``kind:value``, timeout in seconds) -> card or None.
Lookup = Callable[[str, float], CustomerCard | None]

#: Fields a till may edit: HQ's ``identity.CUSTOMER_FIELDS`` (a test keeps the two equal).
EDITABLE_FIELDS = frozenset(
    {"first_name", "last_name", "age_band", "region", "home_store", "birth_date", "language"}
)
#: Of those, the ones the card shows (and the cache updates at once).
_CARD_FIELDS = ("first_name", "last_name")

#: ``sync_state`` key of the clock's last stamp.
CLOCK_STATE_KEY = "hlc_last"

_TILL_LOCAL_PREFIX = "TL-"


@dataclass(frozen=True, slots=True)
class Identification:
    """Who the customer is, and where the answer came from."""

    card: CustomerCard
    source: IdentificationSource
    identifier: Identifier


def load_clock(store: LocalStore, node: str) -> HybridLogicalClock:
    """The till's clock, seeded with the last stamp it saved (see the module docstring)."""
    saved = store.get_state(CLOCK_STATE_KEY)
    last = None
    if saved:
        try:
            last = HLCTimestamp.decode(saved)
        except OmnitillError:
            log.warning("ignoring an unreadable saved clock stamp %r", saved[:80])
    return HybridLogicalClock(node, last=last)


class CustomerDesk:
    """Identify and edit customers at one till. Thread-safe; :meth:`close` when done."""

    def __init__(
        self,
        store: LocalStore,
        *,
        till_id: str,
        store_id: str,
        default_region: str,
        loyalty_format: LoyaltyFormat,
        clock: HybridLogicalClock,
        lookup: Lookup | None = None,
        lookup_timeout_s: float = 0.3,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if lookup_timeout_s <= 0:
            raise ValueError("lookup_timeout_s must be positive")
        self._store = store
        self.till_id = till_id
        self.store_id = store_id
        self._region = default_region
        self._loyalty = loyalty_format
        self._clock = clock
        self._lookup = lookup
        self._timeout = lookup_timeout_s
        self._own_executor = executor is None and lookup is not None
        self._executor = executor
        if self._own_executor:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="customer-lookup"
            )
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def close(self) -> None:
        """Stop the lookup threads this desk started (answers in flight are dropped)."""
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- identify ------------------------------------------------------------------------------

    def parse(self, text: str) -> Identifier:
        """The identifier in what was typed or scanned; ``IdentifierError`` says what is wrong."""
        stripped = text.strip()
        kind, sep, rest = stripped.partition(":")
        if sep and kind in IDENTIFIER_KINDS:
            return normalize_identifier(
                kind, rest, default_region=self._region, loyalty_format=self._loyalty
            )
        return guess_identifier(stripped, default_region=self._region, loyalty_format=self._loyalty)

    def identify(self, text: str) -> Identification:
        """Who this is: from the cache at once, else from HQ (briefly), else provisional."""
        ident = self.parse(text)
        card = self.cached_card(ident)
        if card is not None:
            self._refresh_in_background(ident)
            return Identification(card, "cache", ident)
        if self._lookup is not None:
            card = self._ask_hq(ident)
            if card is not None:
                return Identification(card, "server", ident)
        return self._create_provisional(ident)

    def cached_card(self, ident: Identifier) -> CustomerCard | None:
        """The cached card an identifier names (following merges), or None."""
        row = self._store.query_one(
            "SELECT c.card FROM customer_identifiers i JOIN customers c ON c.customer_id = "
            "COALESCE((SELECT a.customer_id FROM customer_aliases a WHERE a.old_id = "
            "i.customer_id), i.customer_id) WHERE i.kind = ? AND i.value = ?",
            (ident.kind, ident.value),
        )
        if row is not None:
            return _card(row[0])
        if ident.kind == "till_local":
            # A provisional customer merged at HQ: its id lives on as an alias.
            return self.card_for(ident.value[len(_TILL_LOCAL_PREFIX) :])
        return None

    def card_for(self, customer_id: UUID | str) -> CustomerCard | None:
        """The cached card of a customer id, or of the customer it was merged into."""
        resolved = self.resolve_id(customer_id)
        if resolved is None:
            return None
        row = self._store.query_one("SELECT card FROM customers WHERE customer_id = ?", (resolved,))
        return None if row is None else _card(row[0])

    def resolve_id(self, customer_id: UUID | str) -> str | None:
        """The id a customer has now on this till (after merges), or None if not cached."""
        cid = str(customer_id)
        row = self._store.query_one(
            "SELECT customer_id FROM customers WHERE customer_id = "
            "COALESCE((SELECT customer_id FROM customer_aliases WHERE old_id = ?), ?)",
            (cid, cid),
        )
        return None if row is None else str(row[0])

    def _refresh_in_background(self, ident: Identifier) -> None:
        if self._lookup is None or self._executor is None:
            return
        key = str(ident)
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        try:
            self._executor.submit(self._refresh, ident)
        except RuntimeError:  # executor shut down: the till is closing
            with self._lock:
                self._refreshing.discard(key)

    def _refresh(self, ident: Identifier) -> None:
        try:
            self._fetch_and_cache(ident)
        except OmnitillError as exc:
            log.debug("background refresh of %s failed: %s", ident.kind, exc.message)
        except Exception:
            log.exception("background refresh of a customer card failed")
        finally:
            with self._lock:
                self._refreshing.discard(str(ident))

    def _ask_hq(self, ident: Identifier) -> CustomerCard | None:
        assert self._executor is not None
        try:
            future = self._executor.submit(self._fetch_and_cache, ident)
        except RuntimeError:
            return None
        try:
            return future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
            # The answer, if it comes, is still cached by the lookup thread.
            log.info("HQ did not answer a customer lookup within %.0f ms", self._timeout * 1000)
        except OmnitillError as exc:
            log.info("customer lookup at HQ failed: %s", exc.message)
        except Exception:
            log.exception("customer lookup at HQ failed unexpectedly")
        return None

    def _fetch_and_cache(self, ident: Identifier) -> CustomerCard | None:
        assert self._lookup is not None
        card = self._lookup(str(ident), self._timeout)
        if card is None:
            return None
        with self._store.transaction() as db:
            if _has_pending_patch(db, str(card.customer_id)):
                # Our own edit has not reached HQ yet: HQ's card would hide it until it does.
                log.debug("kept the cached card of %s: edits waiting to sync", card.customer_id)
                row = db.execute(
                    "SELECT card FROM customers WHERE customer_id = ?", [str(card.customer_id)]
                ).fetchone()
                return _card(row[0]) if row else card
            known = db.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", [str(card.customer_id)]
            ).fetchone()
            _cache_card(db, card)
            if known is None:
                # New to this till: through the outbox, HQ learns that this store's tills want
                # the card's updates on the feed (the lookup itself writes nothing at HQ).
                event = InStoreEvent(
                    event_id=new_id(),
                    kind="customer_identified",
                    at=utc_now(),
                    customer_id=card.customer_id,
                )
                outbox.enqueue(db, "event", event.model_dump(mode="json"))
        return card

    def _create_provisional(self, ident: Identifier) -> Identification:
        local = ident if ident.kind == "till_local" else new_till_local_id()
        customer_id = UUID(local.value[len(_TILL_LOCAL_PREFIX) :])
        claims = [local] if local == ident else [local, ident]
        identifiers = tuple(CustomerIdentifierModel(kind=i.kind, value=i.value) for i in claims)
        card = CustomerCard(
            customer_id=customer_id,
            identifiers=identifiers,
            provisional=True,
            updated_at=utc_now(),
        )
        patch = CustomerPatch(identifiers=identifiers)
        with self._store.transaction() as db:
            # A lookup that timed out may have cached the card meanwhile (a double scan too).
            cached = self.cached_card(ident)
            if cached is not None:
                return Identification(cached, "cache", ident)
            _cache_card(db, card)
            outbox.enqueue(db, "customer_patch", patch.model_dump(mode="json"))
        log.info("provisional customer %s created for a %s", customer_id, ident.kind)
        return Identification(card, "provisional", ident)

    # -- edits ---------------------------------------------------------------------------------

    def update_fields(self, customer_id: UUID | str, fields: Mapping[str, str | None]) -> None:
        """Change customer fields here and, through the outbox, at HQ (one transaction)."""
        if not fields:
            return
        unknown = sorted(set(fields) - EDITABLE_FIELDS)
        if unknown:
            raise InvalidInput(
                f"Unknown customer field(s) {', '.join(unknown)}; "
                f"a till can change {', '.join(sorted(EDITABLE_FIELDS))}"
            )
        with self._store.transaction() as db:
            card = self._load(db, customer_id)
            writes = {
                name: FieldWrite(value=value, hlc=self._clock.now().encode())
                for name, value in fields.items()
            }
            shown = {name: (writes[name].value or "") for name in _CARD_FIELDS if name in writes}
            card = card.model_copy(update={**shown, "updated_at": utc_now()})
            patch = self._patch(card, fields=writes)
            _save_card(db, card)
            outbox.enqueue(db, "customer_patch", patch.model_dump(mode="json"))
            _save_clock(db, self._clock)

    def record_consent(self, customer_id: UUID | str, channel: str, granted: bool) -> None:
        """Record a consent decision (appended at HQ; the newest per channel wins)."""
        try:
            event = ConsentEvent.model_validate(
                {"channel": channel, "granted": granted, "at": utc_now(), "source": "till"}
            )
        except ValidationError as exc:
            raise InvalidInput(f"Consent: {_describe(exc)}") from exc
        with self._store.transaction() as db:
            card = self._load(db, customer_id)
            consents: dict[ConsentChannel, bool] = {**card.consents, event.channel: granted}
            card = card.model_copy(update={"consents": consents, "updated_at": utc_now()})
            _save_card(db, card)
            patch = self._patch(card, consent_events=(event,))
            outbox.enqueue(db, "customer_patch", patch.model_dump(mode="json"))

    def _load(self, db: sqlite_utils.Database, customer_id: UUID | str) -> CustomerCard:
        cid = self.resolve_id(customer_id)
        row = None
        if cid is not None:
            row = db.execute("SELECT card FROM customers WHERE customer_id = ?", [cid]).fetchone()
        card = None if row is None else _card(row[0])
        if cid is None or card is None:
            raise NotFound(
                f"Customer {customer_id} is not on this till (erased, or never identified here)"
            )
        return card

    def _patch(self, card: CustomerCard, **changes: Any) -> CustomerPatch:
        if card.provisional:
            # HQ may not know this customer yet: the till-local id makes (or finds) it.
            local = [i for i in card.identifiers if i.kind == "till_local"]
            if not local:
                local = [
                    CustomerIdentifierModel(
                        kind="till_local", value=f"{_TILL_LOCAL_PREFIX}{card.customer_id}"
                    )
                ]
            return CustomerPatch(identifiers=(local[0],), **changes)
        return CustomerPatch(customer_id=card.customer_id, **changes)


# -- the cache ---------------------------------------------------------------------------------


def _card(text: str) -> CustomerCard | None:
    try:
        return CustomerCard.model_validate_json(text)
    except ValidationError as exc:
        # A card from a newer HQ, or a damaged row: treat it as not cached rather than fail.
        log.warning("unreadable cached customer card: %s", _describe(exc))
        return None


def _save_card(db: sqlite_utils.Database, card: CustomerCard) -> None:
    db.execute(
        "INSERT INTO customers(customer_id, first_name, last_name, provisional, card, updated_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT(customer_id) DO UPDATE SET "
        "first_name=excluded.first_name, last_name=excluded.last_name, "
        "provisional=excluded.provisional, card=excluded.card, updated_at=excluded.updated_at",
        [
            str(card.customer_id),
            card.first_name,
            card.last_name,
            int(card.provisional),
            card.model_dump_json(),
            card.updated_at.isoformat() if card.updated_at else None,
        ],
    )


def _cache_card(db: sqlite_utils.Database, card: CustomerCard) -> None:
    """Store a card and its identifiers; a till-local id under another id means a merge."""
    customer_id = str(card.customer_id)
    _save_card(db, card)
    db.execute("DELETE FROM customer_identifiers WHERE customer_id = ?", [customer_id])
    for ident in card.identifiers:
        db.execute(
            "INSERT OR REPLACE INTO customer_identifiers(kind, value, customer_id) VALUES (?,?,?)",
            [ident.kind, ident.value, customer_id],
        )
        if ident.kind == "till_local" and not card.provisional:
            old = _till_local_uuid(ident.value)
            if old is not None and old != customer_id:
                # HQ merged a provisional customer into this one before the feed told us.
                db.execute("DELETE FROM customers WHERE customer_id = ?", [old])
                db.execute("DELETE FROM customer_identifiers WHERE customer_id = ?", [old])
                db.execute(
                    "INSERT OR REPLACE INTO customer_aliases(old_id, customer_id) VALUES (?, ?)",
                    [old, customer_id],
                )
                db.execute(
                    "UPDATE customer_aliases SET customer_id = ? WHERE customer_id = ?",
                    [customer_id, old],
                )


def _till_local_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value[len(_TILL_LOCAL_PREFIX) :]))
    except ValueError:
        return None


def _has_pending_patch(db: sqlite_utils.Database, customer_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM outbox WHERE status = 'pending' AND type = 'customer_patch' AND "
        "(json_extract(payload, '$.customer_id') = ? OR instr(payload, ?) > 0) LIMIT 1",
        [customer_id, f"{_TILL_LOCAL_PREFIX}{customer_id}"],
    ).fetchone()
    return row is not None


def _save_clock(db: sqlite_utils.Database, clock: HybridLogicalClock) -> None:
    db.execute(
        "INSERT INTO sync_state(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [CLOCK_STATE_KEY, clock.last.encode()],
    )
