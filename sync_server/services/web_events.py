"""Web-shop events in: Segment calls from the HTTP API and from ``web_events.jsonl``.

The calls are those of the `Segment spec <https://segment.com/docs/connections/spec/>`_:
``track``, ``identify``, ``page``, ``screen``, ``group`` and ``alias``. Each becomes one row of
``events`` (channel ``web``): a ``track`` call's ``kind`` is its event name (``Product
Viewed``, ``Product Added``, ``Order Completed``...), any other call's its type; ``sku`` is
``properties.sku`` or ``properties.product_id``; ``data`` the whole call as JSON.

Exactly once
    An event's id is derived from its ``messageId`` (``uuid5``), the primary key of ``events``:
    the same message sent again, by a retrying client or a re-imported file, is a
    ``duplicate`` and changes nothing. A call without a ``messageId`` is named by the SHA-256 of
    its content, so an identical retry is still caught.

Who it was (the identity graph of ``identity``)
    ``userId`` (``web_user``), ``traits.email`` and ``traits.phone`` (from ``identify`` traits
    or any call's ``context.traits``) are *strong* identifiers; ``anonymousId`` (``web_anon``)
    a weak one. An event belongs to the customer its identifiers already name (strong ones
    first); failing that, a strong identifier makes a new ``web`` profile (its id derived from
    the identifier, so the same person gets the same profile again). The event's identifiers
    are then claimed for that customer: strong ones may merge customers (a web account and a
    till customer with the same email are one person; merge protection stops shared
    addresses), an anonymous id never does: it is claimed only while nobody holds it, so two
    people shopping on one family laptop are not merged. When an anonymous id is first claimed
    the visitor's earlier anonymous events join the customer too (Segment's ``identify``
    semantics); later anonymous events of that browser join at once. Events of visitors never
    identified keep their ``anonymousId`` and no customer. ``alias`` links ``previousId`` to
    ``userId``: as an anonymous id, and as a strong account id when it already names one.

What it changes
    Product and order events (and anonymous events joining a customer) mark the customer's
    card dirty, so ``recently_viewed`` and ``cart_items`` reach the tills through the feed, and
    their personal list (``recs.refresh_dirty_lists``). ``Order Completed`` also stores an
    *online order* (channel ``online``, no store, ``properties.order_id`` as its id: a UUID as
    it is, any other text through ``uuid5``), exactly as imported online orders are stored, so
    the recommender counts it like any other basket. An order already at HQ (the same order in
    ``orders.jsonl``, or sent again under another ``messageId``) is not stored twice. Prices
    are decimal strings or numbers in major units, as Segment sends them; the order's total is
    ``properties.total`` (else ``revenue``, else the sum of the lines), which may differ from
    the lines by shipping or discounts.

Bad input
    A call that breaks a rule is refused with a message naming the field (the API answers
    422; a batch and an import report it per event and store the others). Beyond the spec:
    ids and names have length limits (ids 200 characters, event names and SKUs 64), a
    ``timestamp`` must carry a time zone and be no more than a day ahead of HQ's clock, an
    event is at most 32 KB and a batch 500 KB (Segment's own limits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import sqlalchemy as sa
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from sqlalchemy.engine import Connection

from shared.catalogue import Store
from shared.errors import IdentifierError, InvalidInput, MoneyError
from shared.identifiers import Identifier, normalize_identifier
from shared.money import Money
from shared.wire import PlainText, UtcDatetime, utc_now
from sync_server.db.bulk import bulk_insert, insert_ignore
from sync_server.db.engine import Database
from sync_server.db.schema import (
    events,
    identifiers,
    order_lines,
    orders,
    profiles,
    shared_identifiers,
    stores,
)
from sync_server.services import identity, importer, recs

log = logging.getLogger(__name__)

#: Namespaces of the ids derived from Segment's text ids.
EVENT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://omnitill.org/web/event")
PROFILE_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://omnitill.org/web/profile")
ORDER_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://omnitill.org/web/order")
#: Segment's limits: one call, one batch.
MAX_EVENT_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
#: How far ahead of HQ's clock a timestamp may be (a device with a wrong clock).
MAX_AHEAD: Final = timedelta(days=1)
ORDER_COMPLETED: Final = "Order Completed"
CALL_TYPES: Final = ("track", "identify", "page", "screen", "group", "alias")
#: Fallbacks when HQ knows no store yet.
DEFAULT_REGION: Final = str(Store.model_fields["default_region"].default)
DEFAULT_CURRENCY: Final = str(Store.model_fields["currency"].default)


# ---------------------------------------------------------------------------------------------
# The calls (Segment spec)


def _id_text(value: Any) -> Any:
    # Segment accepts numeric ids; they are the same id as their text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: userId, anonymousId, messageId, previousId, groupId.
SegmentId = Annotated[PlainText, BeforeValidator(_id_text), Field(min_length=1, max_length=200)]
#: A track call's event name ("Product Viewed").
EventName = Annotated[PlainText, Field(min_length=1, max_length=64)]
Name = Annotated[PlainText, Field(max_length=200)]


class SegmentCall(BaseModel):
    """What every call has. Fields of the spec not listed here (``sentAt``, ``channel``,
    ``version``...) are kept with the event."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, populate_by_name=True)

    message_id: SegmentId | None = Field(
        default=None,
        alias="messageId",
        description="Unique per call: a call sent again with the same messageId is stored once.",
    )
    anonymous_id: SegmentId | None = Field(
        default=None, alias="anonymousId", description="The browser's or app's visitor id."
    )
    user_id: SegmentId | None = Field(
        default=None, alias="userId", description="The web shop's account id, once logged in."
    )
    timestamp: UtcDatetime | None = Field(
        default=None, description="When it happened (ISO 8601 with a zone); default: received."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="Segment context; `context.traits` may carry email."
    )
    integrations: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_someone(self) -> SegmentCall:
        if self.anonymous_id is None and self.user_id is None:
            raise ValueError("anonymousId or userId is required: who did this?")
        return self


class TrackCall(SegmentCall):
    """Something the visitor did: ``event`` names it, ``properties`` describe it."""

    type: Literal["track"] = "track"
    event: EventName = Field(description="The event name, e.g. Product Viewed.")
    properties: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "messageId": "5b93b621-dd37-46b3-9dfb-bc4fd4eb38f6",
                    "anonymousId": "c28dfed2-a353-4ed4-975a-aea34f9ca2d2",
                    "userId": "wu-997903058",
                    "timestamp": "2026-11-23T09:30:56.226Z",
                    "properties": {
                        "product_id": "APP-000013",
                        "sku": "APP-000013",
                        "name": "Organic T-Shirt",
                        "price": "19.99",
                        "currency": "EUR",
                    },
                }
            ]
        }
    )


class IdentifyCall(SegmentCall):
    """Who the visitor is: ``traits`` (``email``, ``phone``, names...)."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "identify",
                    "messageId": "0c1244f7-1783-4938-975b-577d1b862252",
                    "anonymousId": "c28dfed2-a353-4ed4-975a-aea34f9ca2d2",
                    "userId": "wu-997903058",
                    "timestamp": "2026-11-23T09:31:02.000Z",
                    "traits": {"email": "maria.muller@example.com"},
                }
            ]
        }
    )


class PageCall(SegmentCall):
    """A page of the web shop seen."""

    type: Literal["page"] = "page"
    name: Name | None = None
    category: Name | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenCall(SegmentCall):
    """A screen of the app seen."""

    type: Literal["screen"] = "screen"
    name: Name | None = None
    category: Name | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class GroupCall(SegmentCall):
    """The visitor belongs to a group (a company account): kept on the timeline only."""

    type: Literal["group"] = "group"
    group_id: SegmentId = Field(alias="groupId")
    traits: dict[str, Any] = Field(default_factory=dict)


class AliasCall(SegmentCall):
    """``previousId`` (an anonymous id, or an older account id) is the same person as
    ``userId``."""

    type: Literal["alias"] = "alias"
    previous_id: SegmentId = Field(alias="previousId")
    user_id: SegmentId = Field(alias="userId")


CALL_MODELS: Final[dict[str, type[SegmentCall]]] = {
    "track": TrackCall,
    "identify": IdentifyCall,
    "page": PageCall,
    "screen": ScreenCall,
    "group": GroupCall,
    "alias": AliasCall,
}


class SegmentBatch(BaseModel):
    """``POST /v1/batch``: many calls of any type; ``context`` and ``integrations`` apply to
    each call that has none of its own."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    # Any items, not objects: one malformed call must not cost the batch its good ones.
    batch: list[Any] = Field(
        min_length=1,
        description="The calls, each with its `type`: track, identify, page, screen, group, "
        "alias (the fields of the single-call bodies).",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"$ref": "#/components/schemas/TrackCall"},
                    {"$ref": "#/components/schemas/IdentifyCall"},
                    {"$ref": "#/components/schemas/PageCall"},
                    {"$ref": "#/components/schemas/ScreenCall"},
                    {"$ref": "#/components/schemas/GroupCall"},
                    {"$ref": "#/components/schemas/AliasCall"},
                ]
            }
        },
    )
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    write_key: str | None = Field(
        default=None, alias="writeKey", description="The write key, when no header carries it."
    )


def validation_reason(exc: ValidationError) -> str:
    """Pydantic's errors as one line a web developer can act on."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_call(raw: Any, *, call_type: str | None = None) -> SegmentCall:
    """One call from its JSON object; ``call_type`` is the endpoint's type (``/v1/track``),
    else the call's own ``type`` decides. ``InvalidInput`` names what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidInput("each call must be a JSON object")
    given = raw.get("type")
    kind = call_type or given
    if kind is None:
        raise InvalidInput(f"type is missing: one of {', '.join(CALL_TYPES)}")
    if not isinstance(kind, str) or kind not in CALL_MODELS:
        raise InvalidInput(f"type must be one of {', '.join(CALL_TYPES)}, not {kind!r}")
    if call_type is not None and given is not None and given != call_type:
        raise InvalidInput(f"a {given!r} call was sent to the {call_type} endpoint")
    try:
        return CALL_MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(validation_reason(exc)) from None


# ---------------------------------------------------------------------------------------------
# Events as stored


@dataclass(frozen=True, slots=True)
class ChainDefaults:
    """What a call leaves to the chain: the country of phone numbers, the order currency."""

    region: str = DEFAULT_REGION
    currency: str = DEFAULT_CURRENCY


def chain_defaults(conn: Connection) -> ChainDefaults:
    """The first store's region and currency (the chain's, in practice)."""
    data = conn.execute(
        sa.select(stores.c.data).order_by(stores.c.store_id).limit(1)
    ).scalar_one_or_none()
    if data is None:
        return ChainDefaults()
    store = json.loads(data)
    return ChainDefaults(
        region=str(store.get("default_region") or DEFAULT_REGION),
        currency=str(store.get("currency") or DEFAULT_CURRENCY),
    )


@dataclass(frozen=True, slots=True)
class WebOrder:
    order_id: UUID
    currency: str
    total_minor: int
    tax_minor: int
    lines: tuple[tuple[str, int, int], ...]  # (sku, quantity, amount_minor)


@dataclass(frozen=True, slots=True)
class WebEvent:
    """A validated call, ready to store."""

    event_id: UUID
    message_id: str
    kind: str
    at: datetime
    #: identifiers that may merge customers (account id, email, phone)
    strong: tuple[Identifier, ...]
    #: account ids that count only if HQ already knows them (an alias's previousId)
    known_only: tuple[Identifier, ...]
    anonymous: Identifier | None
    sku: str | None
    order: WebOrder | None
    data: str


def to_event(
    call: SegmentCall, *, received_at: datetime, defaults: ChainDefaults = ChainDefaults()
) -> WebEvent:
    """The event a call stands for; ``InvalidInput`` when a property breaks a rule."""
    document = call.model_dump(mode="json", by_alias=True, exclude_none=True)
    message_id = call.message_id
    if message_id is None:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        message_id = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        document["messageId"] = message_id
    at = call.timestamp or received_at
    if at > received_at + MAX_AHEAD:
        raise InvalidInput(
            f"timestamp {at.isoformat()} is more than a day ahead of HQ's clock "
            f"({received_at.isoformat(timespec='seconds')}); check the device's date"
        )
    document.setdefault("timestamp", at.isoformat().replace("+00:00", "Z"))
    strong: list[Identifier] = []
    known_only: list[Identifier] = []
    anonymous = None
    if call.user_id is not None:
        strong.append(_identifier("userId", "web_user", call.user_id, defaults))
    traits: dict[str, Any] = {}
    context_traits = call.context.get("traits")
    if isinstance(context_traits, dict):
        traits.update(context_traits)
    if isinstance(call, IdentifyCall):
        traits.update(call.traits)
    for name, kind in (("email", "email"), ("phone", "phone")):
        value = traits.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"traits.{name} must be text, not {json.dumps(value)[:40]}")
        strong.append(_identifier(f"traits.{name}", kind, value, defaults))
    if isinstance(call, AliasCall):
        known_only.append(_identifier("previousId", "web_user", call.previous_id, defaults))
        anonymous = _identifier("previousId", "web_anon", call.previous_id, defaults)
    elif call.anonymous_id is not None:
        anonymous = _identifier("anonymousId", "web_anon", call.anonymous_id, defaults)
    sku = None
    order = None
    kind = str(getattr(call, "type", ""))
    if isinstance(call, TrackCall):
        kind = call.event
        sku = _sku("properties", call.properties)
        if call.event == ORDER_COMPLETED:
            order = _order(call.properties, defaults)
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if len(data.encode()) > MAX_EVENT_BYTES:
        raise InvalidInput(
            f"the call is {len(data.encode()):,} bytes; Segment's limit is {MAX_EVENT_BYTES:,}"
        )
    return WebEvent(
        event_id=uuid.uuid5(EVENT_NAMESPACE, message_id),
        message_id=message_id,
        kind=kind,
        at=at,
        strong=tuple(dict.fromkeys(strong)),
        known_only=tuple(known_only),
        anonymous=anonymous,
        sku=sku,
        order=order,
        data=data,
    )


def _identifier(field: str, kind: str, value: str, defaults: ChainDefaults) -> Identifier:
    try:
        return normalize_identifier(kind, value, default_region=defaults.region)
    except IdentifierError as exc:
        raise InvalidInput(f"{field}: {exc.message}") from None


def _sku(where: str, properties: dict[str, Any]) -> str | None:
    for name in ("sku", "product_id"):
        value = _id_text(properties.get(name))
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{where}.{name} must be text, not {json.dumps(value)[:40]}")
        value = value.strip()
        if not value or len(value) > 64 or not value.isprintable():
            raise InvalidInput(
                f"{where}.{name} {value[:70]!r} is not a SKU (1 to 64 printable characters)"
            )
        return value
    return None


def _money(where: str, value: Any, currency: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f'{where} must be a decimal amount like "12.99", not {value!r}')
    try:
        text = str(Decimal(str(value))) if not isinstance(value, str) else value
        amount = Money.parse(text, currency).amount
    except (MoneyError, InvalidOperation) as exc:
        reason = exc.message if isinstance(exc, MoneyError) else "not a number"
        raise InvalidInput(f"{where}: {reason}") from None
    if amount < 0:
        raise InvalidInput(f"{where} is negative ({value})")
    return amount


def _order(properties: dict[str, Any], defaults: ChainDefaults) -> WebOrder:
    raw_id = _id_text(properties.get("order_id"))
    if not isinstance(raw_id, str) or not raw_id.strip() or len(raw_id) > 200:
        raise InvalidInput(
            "properties.order_id is missing or not an id: an Order Completed names its order"
        )
    try:
        order_id = UUID(raw_id.strip())
    except ValueError:
        order_id = uuid.uuid5(ORDER_NAMESPACE, raw_id.strip())
    currency = properties.get("currency") or defaults.currency
    if not isinstance(currency, str):
        raise InvalidInput(f"properties.currency must be a code like EUR, not {currency!r}")
    currency = currency.strip().upper()
    try:
        Money(0, currency)
    except MoneyError as exc:
        raise InvalidInput(f"properties.currency: {exc.message}") from None
    products = properties.get("products")
    if not isinstance(products, list) or not products:
        raise InvalidInput("properties.products must list the products bought")
    lines: list[tuple[str, int, int]] = []
    for n, item in enumerate(products):
        where = f"properties.products[{n}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object")
        sku = _sku(where, item)
        if sku is None:
            raise InvalidInput(f"{where} has no sku or product_id")
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(f"{where}.quantity must be a whole number of 1 or more")
        price = _money(f"{where}.price", item.get("price", 0), currency)
        lines.append((sku, quantity, price * quantity))
    total_value = properties.get("total", properties.get("revenue"))
    total = (
        sum(amount for _, _, amount in lines)
        if total_value is None
        else _money("properties.total", total_value, currency)
    )
    tax = properties.get("tax")
    return WebOrder(
        order_id=order_id,
        currency=currency,
        total_minor=total,
        tax_minor=0 if tax is None else _money("properties.tax", tax, currency),
        lines=tuple(lines),
    )


# ---------------------------------------------------------------------------------------------
# Storing events


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["accepted", "duplicate", "rejected"]
    detail: str | None = None


_Key = tuple[str, str]


def _key(ident: Identifier) -> _Key:
    return (ident.kind, ident.value)


def _owners(conn: Connection, keys: set[_Key]) -> tuple[dict[_Key, UUID], set[_Key]]:
    """Which customer each identifier names (as ``identity.find_customer``), and which of them
    are shared (naming nobody)."""
    owner: dict[_Key, tuple[datetime, UUID]] = {}
    shared: set[_Key] = set()
    wanted = sorted(keys)
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        for kind, value, customer_id, created_at in conn.execute(
            sa.select(
                identifiers.c.kind,
                identifiers.c.value,
                profiles.c.customer_id,
                profiles.c.created_at,
            )
            .join(profiles, profiles.c.profile_id == identifiers.c.profile_id)
            .where(
                sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(chunk),
                profiles.c.erased_at.is_(None),
            )
        ):
            key = (kind, value)
            if key not in owner or created_at < owner[key][0]:
                owner[key] = (created_at, UUID(str(customer_id)))
        shared.update(
            (kind, value)
            for kind, value in conn.execute(
                sa.select(shared_identifiers.c.kind, shared_identifiers.c.value).where(
                    sa.tuple_(shared_identifiers.c.kind, shared_identifiers.c.value).in_(chunk)
                )
            )
        )
    return {k: c for k, (_, c) in owner.items()}, shared


def store_events(
    conn: Connection,
    batch: Sequence[WebEvent],
    *,
    threshold: int = identity.DEFAULT_THRESHOLD,
) -> list[Outcome]:
    """Store the events of ``batch`` in ``conn``'s transaction: one outcome per event."""
    now = utc_now()
    outcomes: list[Outcome | None] = [None] * len(batch)
    ids = [e.event_id for e in batch]
    present: set[UUID] = set()
    for start in range(0, len(ids), 500):
        present.update(
            UUID(str(i))
            for i in conn.execute(
                sa.select(events.c.event_id).where(events.c.event_id.in_(ids[start : start + 500]))
            ).scalars()
        )
    fresh: list[int] = []
    for i, event in enumerate(batch):
        if event.event_id in present:
            outcomes[i] = Outcome("duplicate")
        else:
            present.add(event.event_id)
            fresh.append(i)
    keys = {
        _key(ident)
        for i in fresh
        for ident in (*batch[i].strong, *batch[i].known_only, batch[i].anonymous)
        if ident is not None
    }
    owner, shared = _owners(conn, keys)
    # New web profiles: made for a strong identifier nobody holds.
    new_ids = {
        uuid.uuid5(PROFILE_NAMESPACE, str(batch[i].strong[0])) for i in fresh if batch[i].strong
    }
    existing: dict[UUID, Any] = {}
    for chunk in _chunks(sorted(new_ids, key=str)):
        for row in conn.execute(
            sa.select(profiles.c.profile_id, profiles.c.customer_id, profiles.c.erased_at).where(
                profiles.c.profile_id.in_(chunk)
            )
        ):
            existing[UUID(str(row.profile_id))] = row
    made: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    seeds: set[UUID] = set()
    linked_anon: dict[str, UUID] = {}
    #: anonymous events of this batch waiting for their visitor to identify later in it
    waiting: dict[_Key, list[int]] = defaultdict(list)
    target_of: dict[int, UUID | None] = {}
    for i in fresh:
        event = batch[i]
        strong = [k for k in map(_key, event.strong) if k not in shared]
        known = [k for k in map(_key, event.known_only) if k in owner and k not in shared]
        anon = _key(event.anonymous) if event.anonymous is not None else None
        if anon is not None and anon in shared:
            anon = None
        # The anonymous id decides only for a visitor who says nothing else: a new account on a
        # browser someone else used before is a new person, not them.
        named = [*strong, *known] if strong or known else ([anon] if anon else [])
        target = next((owner[k] for k in named if k in owner), None)
        if target is None and strong:
            profile_id = uuid.uuid5(PROFILE_NAMESPACE, f"{strong[0][0]}:{strong[0][1]}")
            record = existing.get(profile_id)
            if record is not None and record.erased_at is not None:
                outcomes[i] = Outcome(
                    "rejected",
                    "this visitor's customer record was erased at HQ (right to be forgotten); "
                    "stop sending their events",
                )
                continue
            if record is None:
                made.append(
                    {
                        "profile_id": profile_id,
                        "customer_id": profile_id,
                        "source": "web",
                        "home_store": None,
                        "attributes": "{}",
                        "created_at": now,
                    }
                )
                target = profile_id
            else:
                target = UUID(str(record.customer_id))
        if target is None:
            target_of[i] = None  # an anonymous visitor nobody knows yet
            if anon is not None:
                waiting[anon].append(i)
            continue
        for key in [*strong, *known]:
            if owner.get(key) != target:
                claims.append({"kind": key[0], "value": key[1], "profile_id": target})
                if key in owner:
                    seeds.add(target)  # it names another customer: they may be one person
                owner[key] = target
        if anon is not None and anon not in owner:
            # An anonymous id joins the first customer who identifies on it, never a second.
            claims.append({"kind": anon[0], "value": anon[1], "profile_id": target})
            owner[anon] = target
            linked_anon[anon[1]] = target
            for earlier in waiting.pop(anon, ()):
                target_of[earlier] = target
        target_of[i] = target
    if made:
        conn.execute(insert_ignore(conn, profiles), made)
    if claims:
        for c in claims:
            c["created_at"] = now
        conn.execute(insert_ignore(conn, identifiers), claims)
    if seeds:
        identity.resolve(conn, seeds, threshold=threshold)
    stored = [i for i in fresh if outcomes[i] is None]
    rows = [
        {
            "event_id": batch[i].event_id,
            "profile_id": target_of.get(i),
            "anonymous_id": _value(batch[i].anonymous),
            "channel": "web",
            "kind": batch[i].kind,
            "at": batch[i].at,
            "sku": batch[i].sku,
            "data": batch[i].data,
        }
        for i in stored
    ]
    bulk_insert(conn, events, rows, ignore=True)
    touched: set[UUID] = set()
    # Anonymous events of earlier requests join the visitor (this batch's joined above).
    newly = sorted(linked_anon)
    unowned: list[str] = []
    for chunk in _chunks(newly):
        unowned += conn.execute(
            sa.select(events.c.anonymous_id)
            .where(events.c.anonymous_id.in_(chunk), events.c.profile_id.is_(None))
            .distinct()
        ).scalars()
    for anonymous_id in unowned:
        conn.execute(
            events.update()
            .where(events.c.anonymous_id == anonymous_id, events.c.profile_id.is_(None))
            .values(profile_id=linked_anon[anonymous_id])
        )
        touched.add(linked_anon[anonymous_id])
    touched |= {c["profile_id"] for c in claims}  # the card lists identifiers
    for i in stored:
        target = target_of.get(i)
        if target is not None and (batch[i].sku is not None or batch[i].order is not None):
            touched.add(target)
    _store_orders(conn, [(batch[i], target_of.get(i)) for i in stored if batch[i].order], now)
    customers = _customers_of(conn, touched)
    if customers:
        identity.mark_dirty(conn, customers, now=now)
        recs.mark_lists_dirty(conn, recs.DIRTY_PERSONAL, [str(c) for c in customers])
    for i in stored:
        outcomes[i] = Outcome("accepted")
    return [o if o is not None else Outcome("rejected", "not stored") for o in outcomes]


def _value(ident: Identifier | None) -> str | None:
    return None if ident is None else ident.value


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _customers_of(conn: Connection, profile_ids: set[UUID]) -> set[UUID]:
    found: set[UUID] = set()
    for chunk in _chunks(sorted(profile_ids, key=str)):
        found.update(
            UUID(str(c))
            for c in conn.execute(
                sa.select(profiles.c.customer_id).where(
                    profiles.c.profile_id.in_(chunk), profiles.c.erased_at.is_(None)
                )
            ).scalars()
        )
    return found


def _store_orders(
    conn: Connection, placed: list[tuple[WebEvent, UUID | None]], now: datetime
) -> None:
    """Online orders of ``Order Completed`` events, as the order import stores them."""
    if not placed:
        return
    wanted = [e.order.order_id for e, _ in placed if e.order is not None]
    present: set[UUID] = set()
    for chunk in _chunks(wanted):
        present.update(
            UUID(str(o))
            for o in conn.execute(
                sa.select(orders.c.order_id).where(orders.c.order_id.in_(chunk))
            ).scalars()
        )
    customer_of = {
        p: c
        for p, c in (
            (UUID(str(r.profile_id)), UUID(str(r.customer_id)))
            for chunk in _chunks(sorted({t for _, t in placed if t is not None}, key=str))
            for r in conn.execute(
                sa.select(profiles.c.profile_id, profiles.c.customer_id).where(
                    profiles.c.profile_id.in_(chunk), profiles.c.erased_at.is_(None)
                )
            )
        )
    }
    order_rows: list[dict[str, Any]] = []
    line_rows: list[dict[str, Any]] = []
    for event, target in placed:
        order = event.order
        if order is None or order.order_id in present:
            continue
        present.add(order.order_id)
        order_rows.append(
            {
                "order_id": order.order_id,
                "channel": "online",
                "store_id": None,
                "till_id": None,
                "customer_id": customer_of.get(target) if target is not None else None,
                "profile_id": target if target in customer_of else None,
                "receipt_number": None,
                "created_at": event.at,
                "currency": order.currency,
                "total_minor": order.total_minor,
                "tax_minor": order.tax_minor,
                "payload": event.data,
                "ingested_at": now,
            }
        )
        line_rows.extend(
            {
                "order_id": order.order_id,
                "line_no": n,
                "sku": sku,
                "quantity": quantity,
                "amount_minor": amount,
            }
            for n, (sku, quantity, amount) in enumerate(order.lines, start=1)
        )
    bulk_insert(conn, orders, order_rows)
    bulk_insert(conn, order_lines, line_rows)


def ingest(
    db: Database,
    calls: Sequence[SegmentCall],
    *,
    threshold: int = identity.DEFAULT_THRESHOLD,
    received_at: datetime | None = None,
) -> list[Outcome]:
    """Validate and store calls from the API in one transaction; one outcome per call."""
    received_at = received_at or utc_now()
    with db.read() as conn:
        defaults = chain_defaults(conn)
    outcomes: list[Outcome | None] = [None] * len(calls)
    good: list[tuple[int, WebEvent]] = []
    for i, call in enumerate(calls):
        try:
            good.append((i, to_event(call, received_at=received_at, defaults=defaults)))
        except InvalidInput as exc:
            outcomes[i] = Outcome("rejected", exc.message)
    if good:
        with db.write() as conn:
            stored = store_events(conn, [e for _, e in good], threshold=threshold)
        for (i, _), outcome in zip(good, stored, strict=True):
            outcomes[i] = outcome
    return [o if o is not None else Outcome("rejected", "not stored") for o in outcomes]


# ---------------------------------------------------------------------------------------------
# Importing web_events.jsonl


def import_web_events(
    db: Database,
    path: Path,
    *,
    threshold: int = identity.DEFAULT_THRESHOLD,
    on_error: importer.ErrorSink | None = None,
    progress: importer.Progress | None = None,
) -> importer.ImportReport:
    """Import the calls of a ``web_events.jsonl`` (one Segment call per line, as
    ``omnitill demo-data`` writes them); calls already at HQ (same ``messageId``) are skipped.

    Each bad line is reported with its number, as by the other imports.
    """
    run = importer._Run("web_events", on_error, progress)
    with db.read() as conn:
        defaults = chain_defaults(conn)
    received_at = utc_now()
    chunk: list[tuple[int, WebEvent]] = []

    def flush() -> None:
        if not chunk:
            return
        with db.write() as conn:
            stored = store_events(conn, [e for _, e in chunk], threshold=threshold)
        for (line, _), outcome in zip(chunk, stored, strict=True):
            if outcome.status == "accepted":
                run.report.imported += 1
            elif outcome.status == "duplicate":
                run.report.skipped += 1
            else:
                run.reject(line, outcome.detail or "not stored")
        chunk.clear()
        run.advance()

    for line, item in importer._json_lines(path, run):
        try:
            event = to_event(parse_call(item), received_at=received_at, defaults=defaults)
        except InvalidInput as exc:
            run.reject(line, exc.message)
            continue
        chunk.append((line, event))
        if len(chunk) >= importer.CHUNK:
            flush()
    flush()
    return run.finish()
