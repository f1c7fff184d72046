"""The single customer view: identity graph, merges, field-level last-writer-wins, erasure.

Model
-----
A *profile* is one customer record as it came in: an import row, a till's provisional customer,
a web visitor. Profiles *claim* normalized identifiers (email, E.164 phone, loyalty number, web
ids, till-local ids). Profiles connected through identifiers are one *customer*, whose id is the
id of its oldest profile (``profiles.customer_id`` points every profile at it).

The assignment of profiles to customers is a pure function of the claims and of the set of
*shared* identifiers, recomputed locally whenever claims change (:func:`resolve`). So a merge is
never a destructive step: every change of assignment is appended to ``merges`` (merge or
unmerge) and announced to tills as a tombstone with ``merged_into``; undoing a wrong merge is
recomputing.

Merge protection
----------------
An identifier claimed by ``merge_protection_threshold`` (default 3) or more distinct profiles
is *shared*: a shop's own email typed in for customers without one, a family's landline, a
kiosk's web id. Shared identifiers never connect profiles and never identify a customer at the
till. When an identifier becomes shared, the merges it caused are undone by the same
recomputation.

Field values
------------
Customer fields (``first_name``, ``last_name``, ...) are last-writer-wins per field, ordered by
the writer's hybrid logical clock stamp (``shared.hlc``; the till id inside the stamp breaks
ties). The losing value of every race is kept in ``customer_field_history``. A customer's value
for a field is the newest stamp among all its profiles. Consent is an append-only event history;
the newest event per channel wins.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.errors import IdentifierError, InvalidInput, NotFound, ProtocolError
from shared.hlc import DEFAULT_MAX_DRIFT_MS, HLCTimestamp, wall_clock_ms
from shared.identifiers import (
    IDENTIFIER_KINDS,
    Identifier,
    guess_identifier,
    normalize_identifier,
)
from shared.protocol import CustomerPatch
from shared.wire import utc_now
from sync_server.db.bulk import insert_ignore
from sync_server.db.schema import (
    changes,
    consent_events,
    customer_field_history,
    customer_fields,
    customer_stores,
    dirty_cards,
    dirty_lists,
    events,
    identifiers,
    mail_queue,
    merges,
    orders,
    profiles,
    quarantine,
    recommendation_lists,
    returns,
    shared_identifiers,
)
from sync_server.services import feed
from sync_server.services.tills import Till

log = logging.getLogger(__name__)

#: Fields a till or an import may write; everything else a retailer sends is a custom attribute.
CUSTOMER_FIELDS = frozenset(
    {"first_name", "last_name", "age_band", "region", "home_store", "birth_date", "language"}
)
DEFAULT_THRESHOLD = 3


# ---------------------------------------------------------------------------------------------
# Profiles and claims


def ensure_profile(
    conn: Connection,
    *,
    profile_id: UUID,
    source: str,
    claims: Sequence[Identifier] = (),
    home_store: str | None = None,
    attributes: dict[str, str] | None = None,
    now: datetime | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> UUID:
    """Create the profile if it is new, add its claims, and return its customer's id."""
    now = now or utc_now()
    conn.execute(
        insert_ignore(conn, profiles),
        {
            "profile_id": profile_id,
            "customer_id": profile_id,
            "source": source,
            "home_store": home_store,
            "attributes": json.dumps(attributes or {}),
            "created_at": now,
        },
    )
    if claims:
        claim(conn, profile_id, claims, now=now)
        resolve(conn, {profile_id}, threshold=threshold)
    return customer_of(conn, profile_id)


def claim(
    conn: Connection, profile_id: UUID, claims: Iterable[Identifier], *, now: datetime
) -> None:
    rows = [
        {"kind": i.kind, "value": i.value, "profile_id": profile_id, "created_at": now}
        for i in claims
    ]
    if rows:
        conn.execute(insert_ignore(conn, identifiers), rows)


def customer_of(conn: Connection, profile_id: UUID) -> UUID:
    customer = conn.execute(
        sa.select(profiles.c.customer_id).where(profiles.c.profile_id == profile_id)
    ).scalar_one_or_none()
    if customer is None:
        raise NotFound(f"No customer {profile_id}")
    return UUID(str(customer))


# Built once with bind parameters (it runs for every lookup at a till and for sales with an
# identifier): building a SELECT costs several times what the index lookup itself takes.
_KIND = sa.bindparam("kind", type_=sa.String())
_VALUE = sa.bindparam("value", type_=sa.String())
_FIND_CUSTOMER = (
    sa.select(profiles.c.customer_id)
    .select_from(identifiers.join(profiles, profiles.c.profile_id == identifiers.c.profile_id))
    .where(
        identifiers.c.kind == _KIND,
        identifiers.c.value == _VALUE,
        profiles.c.erased_at.is_(None),
        ~sa.exists().where(
            shared_identifiers.c.kind == _KIND, shared_identifiers.c.value == _VALUE
        ),
    )
    .order_by(profiles.c.created_at)
    .limit(1)
)


def find_customer(conn: Connection, ident: Identifier) -> UUID | None:
    """The customer an identifier names, or None. A shared identifier names nobody."""
    customer = conn.execute(_FIND_CUSTOMER, {"kind": ident.kind, "value": ident.value}).scalar()
    return None if customer is None else UUID(str(customer))


# ---------------------------------------------------------------------------------------------
# Resolution


def resolve(conn: Connection, seeds: set[UUID], *, threshold: int = DEFAULT_THRESHOLD) -> set[UUID]:
    """Recompute which customer each profile near ``seeds`` belongs to; return the customers.

    Flags identifiers that reached the threshold as shared, then recomputes connected
    components over the non-shared identifiers for every profile reachable from the seeds (and
    every profile of the customers they belong to, so a split is seen too).
    """
    now = utc_now()
    seeds = set(seeds)
    seeds |= _flag_shared(conn, seeds, threshold=threshold, now=now)
    universe, edges = _neighbourhood(conn, seeds)
    if len(universe) > 10_000:
        log.warning("identity resolution over %d profiles: check merge protection", len(universe))
    info = {
        UUID(str(r.profile_id)): (r.created_at, UUID(str(r.customer_id)), r.erased_at)
        for r in conn.execute(
            sa.select(
                profiles.c.profile_id,
                profiles.c.created_at,
                profiles.c.customer_id,
                profiles.c.erased_at,
            ).where(profiles.c.profile_id.in_(universe))
        )
    }
    parent = {p: p for p in info}

    def find(p: UUID) -> UUID:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for members in edges.values():
        live = [m for m in members if m in info and info[m][2] is None]
        for other in live[1:]:
            ra, rb = find(live[0]), find(other)
            if ra != rb:
                parent[rb] = ra
    components: dict[UUID, list[UUID]] = defaultdict(list)
    for p in info:
        components[find(p)].append(p)
    old_root = {p: info[p][1] for p in info}
    new_root: dict[UUID, UUID] = {}
    for component in components.values():
        winner = min(component, key=lambda m: (info[m][0], str(m)))
        for m in component:
            new_root[m] = winner
    moved = [p for p in info if new_root[p] != old_root[p]]
    for p in moved:
        conn.execute(
            profiles.update().where(profiles.c.profile_id == p).values(customer_id=new_root[p])
        )
        conn.execute(
            orders.update().where(orders.c.profile_id == p).values(customer_id=new_root[p])
        )
    before = set(old_root.values()) & set(info)
    after = set(new_root.values())
    for gone in sorted(before - after, key=str):
        winner = new_root[gone]
        via = _link(edges, gone, winner, new_root)
        conn.execute(
            merges.insert().values(
                action="merge",
                winner=winner,
                loser=gone,
                via_kind=via[0] if via else None,
                via_value=via[1] if via else None,
                at=now,
            )
        )
        feed.drop_key(conn, entity="customer", key=str(gone))
        feed.record_change(
            conn,
            entity="customer",
            key=str(gone),
            action="delete",
            reason="merged",
            merged_into=str(winner),
        )
        _move_stores(conn, gone, winner)
        log.info("customer %s merged into %s via %s", gone, winner, via)
    for back in sorted(after - before, key=str):
        if old_root.get(back, back) != back:
            conn.execute(
                merges.insert().values(
                    action="unmerge",
                    winner=back,
                    loser=old_root[back],
                    at=now,
                )
            )
            log.info("customer %s split off from %s", back, old_root[back])
            _copy_stores(conn, old_root[back], back)
    mark_dirty(conn, after, now=now)
    return after


def _flag_shared(conn: Connection, seeds: set[UUID], *, threshold: int, now: datetime) -> set[UUID]:
    """Flag identifiers of the seeds claimed by >= threshold profiles; return their claimants."""
    claimed = (
        sa.select(identifiers.c.kind, identifiers.c.value)
        .where(identifiers.c.profile_id.in_(seeds))
        .distinct()  # two seeds sharing an identifier must not count its claims twice
        .subquery()
    )
    counts = conn.execute(
        sa.select(identifiers.c.kind, identifiers.c.value, sa.func.count().label("n"))
        .join(
            claimed,
            sa.and_(identifiers.c.kind == claimed.c.kind, identifiers.c.value == claimed.c.value),
        )
        .group_by(identifiers.c.kind, identifiers.c.value)
        .having(sa.func.count() >= threshold)
    ).all()
    affected: set[UUID] = set()
    for row in counts:
        fresh = conn.execute(
            insert_ignore(conn, shared_identifiers),
            {"kind": row.kind, "value": row.value, "claims": row.n, "flagged_at": now},
        ).rowcount
        conn.execute(
            shared_identifiers.update()
            .where(shared_identifiers.c.kind == row.kind, shared_identifiers.c.value == row.value)
            .values(claims=row.n)
        )
        if fresh:
            log.warning(
                "identifier %s:%s is claimed by %d customer records: it will not merge them",
                row.kind,
                row.value,
                row.n,
            )
            affected |= {
                UUID(str(p))
                for p in conn.execute(
                    sa.select(identifiers.c.profile_id).where(
                        identifiers.c.kind == row.kind, identifiers.c.value == row.value
                    )
                ).scalars()
            }
    return affected


def _neighbourhood(
    conn: Connection, seeds: set[UUID]
) -> tuple[set[UUID], dict[tuple[str, str], set[UUID]]]:
    """Profiles reachable from the seeds through non-shared identifiers or shared customers."""
    universe: set[UUID] = set()
    edges: dict[tuple[str, str], set[UUID]] = {}
    frontier = set(seeds)
    shared = sa.exists().where(
        shared_identifiers.c.kind == identifiers.c.kind,
        shared_identifiers.c.value == identifiers.c.value,
    )
    while frontier:
        universe |= frontier
        batch = list(frontier)
        frontier = set()
        idents = conn.execute(
            sa.select(identifiers.c.kind, identifiers.c.value)
            .where(identifiers.c.profile_id.in_(batch), ~shared)
            .distinct()
        ).all()
        keys = [(r.kind, r.value) for r in idents if (r.kind, r.value) not in edges]
        for i in range(0, len(keys), 200):
            chunk = keys[i : i + 200]
            rows = conn.execute(
                sa.select(identifiers.c.kind, identifiers.c.value, identifiers.c.profile_id).where(
                    sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(chunk)
                )
            ).all()
            for kind, value in chunk:
                edges.setdefault((kind, value), set())
            for r in rows:
                p = UUID(str(r.profile_id))
                edges[(r.kind, r.value)].add(p)
                if p not in universe:
                    frontier.add(p)
        customers = {
            UUID(str(c))
            for c in conn.execute(
                sa.select(profiles.c.customer_id).where(profiles.c.profile_id.in_(batch))
            ).scalars()
        }
        for p in conn.execute(
            sa.select(profiles.c.profile_id).where(profiles.c.customer_id.in_(customers))
        ).scalars():
            pid = UUID(str(p))
            if pid not in universe:
                frontier.add(pid)
    return universe, edges


def _link(
    edges: dict[tuple[str, str], set[UUID]], loser: UUID, winner: UUID, root: dict[UUID, UUID]
) -> tuple[str, str] | None:
    """An identifier that ties the loser's old profiles to the winner's, for the audit trail."""
    for key, members in edges.items():
        if loser in members and any(m != loser and root.get(m) == winner for m in members):
            return key
    for key, members in edges.items():
        if len({root.get(m) for m in members}) == 1 and root.get(loser) in {
            root.get(m) for m in members
        }:
            return key
    return None


def _move_stores(conn: Connection, loser: UUID, winner: UUID) -> None:
    _copy_stores(conn, loser, winner)
    conn.execute(customer_stores.delete().where(customer_stores.c.customer_id == loser))


def _copy_stores(conn: Connection, source: UUID, target: UUID) -> None:
    stores_of = conn.execute(
        sa.select(customer_stores.c.store_id).where(customer_stores.c.customer_id == source)
    ).scalars()
    rows = [{"customer_id": target, "store_id": s} for s in stores_of]
    if rows:
        conn.execute(insert_ignore(conn, customer_stores), rows)


def resolve_all(conn: Connection, *, threshold: int = DEFAULT_THRESHOLD) -> int:
    """Bulk resolution after an import: flag shared identifiers, merge linked profiles.

    Returns the number of profiles whose customer changed.
    """
    now = utc_now()
    counts = conn.execute(
        sa.select(identifiers.c.kind, identifiers.c.value, sa.func.count().label("n"))
        .group_by(identifiers.c.kind, identifiers.c.value)
        .having(sa.func.count() >= 2)
    ).all()
    linking: set[UUID] = set()
    for row in counts:
        if row.n >= threshold:
            conn.execute(
                insert_ignore(conn, shared_identifiers),
                {"kind": row.kind, "value": row.value, "claims": row.n, "flagged_at": now},
            )
    keys = [(r.kind, r.value) for r in counts]
    for i in range(0, len(keys), 200):
        for p in conn.execute(
            sa.select(identifiers.c.profile_id).where(
                sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(keys[i : i + 200])
            )
        ).scalars():
            linking.add(UUID(str(p)))
    if not linking:
        return 0
    before = dict(
        conn.execute(
            sa.select(profiles.c.profile_id, profiles.c.customer_id).where(
                profiles.c.profile_id.in_(linking)
            )
        ).all()
    )
    resolve(conn, linking, threshold=threshold)
    after = dict(
        conn.execute(
            sa.select(profiles.c.profile_id, profiles.c.customer_id).where(
                profiles.c.profile_id.in_(linking)
            )
        ).all()
    )
    return sum(1 for p in before if before[p] != after.get(p))


# ---------------------------------------------------------------------------------------------
# Till-facing operations


def customer_for_sale(
    conn: Connection, *, till: Till, customer_id: UUID | None, identifier: str | None
) -> tuple[UUID | None, UUID | None]:
    """(profile, customer) a sale or event belongs to. Unknown ids are kept off the view."""
    if customer_id is not None:
        row = conn.execute(
            sa.select(profiles.c.customer_id, profiles.c.erased_at).where(
                profiles.c.profile_id == customer_id
            )
        ).first()
        if row is not None and row.erased_at is None:
            return customer_id, UUID(str(row.customer_id))
        if row is None:
            log.warning("till %s: sale for unknown customer %s", till.till_id, customer_id)
        return None, None
    if identifier is None:
        return None, None
    try:
        ident = Identifier.parse_key(identifier)
    except IdentifierError as exc:
        raise InvalidInput(f"customer_identifier: {exc.message}") from exc
    if ident.kind == "till_local":
        profile_id = UUID(ident.value[3:])
        if erased_profiles(conn, profile_id):
            # A provisional customer made at the till and erased at HQ since: claiming the
            # till-local id again would hang the erased profile back on the identity graph.
            return None, None
        customer = ensure_profile(
            conn, profile_id=profile_id, source="till", claims=[ident], home_store=till.store_id
        )
        return profile_id, customer
    existing = find_customer(conn, ident)
    if existing is not None:
        return existing, existing
    profile_id = uuid.uuid4()
    return profile_id, ensure_profile(
        conn, profile_id=profile_id, source="till", claims=[ident], home_store=till.store_id
    )


def erased_profiles(conn: Connection, profile_id: UUID) -> frozenset[UUID]:
    """Every profile of the erased customer ``profile_id`` belonged to; empty if not erased.

    :func:`erase_customer` keeps the emptied profile rows (``erased_at`` set) for exactly this:
    an op from a till that was offline during the erasure still names the customer by a
    profile id or a till-local id, and can be recognized.
    """
    row = conn.execute(
        sa.select(profiles.c.customer_id, profiles.c.erased_at).where(
            profiles.c.profile_id == profile_id
        )
    ).first()
    if row is None or row.erased_at is None:
        return frozenset()
    return frozenset(
        UUID(str(p))
        for p in conn.execute(
            sa.select(profiles.c.profile_id).where(
                profiles.c.customer_id == row.customer_id, profiles.c.erased_at.is_not(None)
            )
        ).scalars()
    )


def erased_named(
    conn: Connection, *, customer_id: UUID | None, identifier: str | None
) -> frozenset[UUID]:
    """The erased customer's profiles an op names by its ``customer_id`` or a ``till_local``
    ``customer_identifier``; empty when it names no erased customer.

    Only ids can be recognized: an erased customer's email, phone and loyalty number are gone
    from HQ (not even hashed, see :func:`erase_customer`), so an op naming the customer only
    by one of those values cannot be told apart from a new customer giving it.
    """
    found: frozenset[UUID] = frozenset()
    if customer_id is not None:
        found |= erased_profiles(conn, customer_id)
    if identifier is not None:
        try:
            ident = Identifier.parse_key(identifier)
        except IdentifierError:
            return found
        if ident.kind == "till_local":
            found |= erased_profiles(conn, UUID(ident.value[3:]))
    return found


def anonymized(payload: str, erased: Iterable[UUID]) -> str:
    """A stored JSON document (a sale, an event's data) as :func:`erase_customer` leaves the
    erased customer's older ones: customer keys emptied, the customer's ids cut out of texts."""
    members = frozenset(erased)
    scrubbed = _erased_ids(members).scrub_text(payload)
    return payload if scrubbed is None else scrubbed


def _erased_ids(members: frozenset[UUID]) -> _Erased:
    """What is left to know of an erased customer: the ids of its (emptied) profiles."""
    return _Erased.of(
        profiles=members,
        claimed=(),
        identifiers=(),
        strong={str(m) for m in members} | {f"tl-{m}" for m in members},
        weak=(),
        words=(),
        mails=(),
    )


#: The reason a customer patch for an erased customer is rejected (the till dead-letters it). It
#: names neither the customer nor any value: ``ops.error`` keeps it.
ERASED_PATCH = (
    "The customer this patch is for was erased at HQ (a right-to-erasure request): the patch is "
    "refused and none of its values are stored. Do not retry it; enter the customer again only "
    "if they give their details anew."
)


def apply_customer_patch(conn: Connection, *, till: Till, patch: CustomerPatch) -> set[UUID]:
    """Apply a till's customer patch; return the customers whose card changed.

    A patch naming an erased customer (its ``customer_id``, or any ``till_local`` identifier of
    an erased profile: a provisional customer made offline and erased since) raises
    :class:`InvalidInput` with :data:`ERASED_PATCH`, so the op is answered ``rejected``. Applying
    it would write the erased person's fields, consent and identifiers back.
    """
    claims: list[Identifier] = []
    for item in patch.identifiers:
        try:
            claims.append(normalize_identifier(item.kind, item.value))
        except IdentifierError as exc:
            raise InvalidInput(f"identifier {item.kind}: {exc.message}") from exc
    unknown = set(patch.fields) - CUSTOMER_FIELDS
    if unknown:
        raise InvalidInput(
            f"Unknown customer field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(CUSTOMER_FIELDS))}"
        )
    stamps = {}
    latest_ok = wall_clock_ms() + DEFAULT_MAX_DRIFT_MS
    for name, write in patch.fields.items():
        try:
            stamps[name] = HLCTimestamp.decode(write.hlc)
        except ProtocolError as exc:
            raise InvalidInput(f"field {name}: {exc.message}") from exc
        if stamps[name].wall_ms > latest_ok:
            # A till whose clock runs far ahead would win every later conflict.
            raise InvalidInput(
                f"field {name}: clock stamp {write.hlc} is more than "
                f"{DEFAULT_MAX_DRIFT_MS // 1000} s in the future of HQ's clock; "
                "check the till's date and time"
            )
    local = [UUID(c.value[3:]) for c in claims if c.kind == "till_local"]
    named = ([patch.customer_id] if patch.customer_id is not None else []) + local
    if conn.execute(
        sa.select(sa.func.count())
        .select_from(profiles)
        .where(profiles.c.profile_id.in_(named), profiles.c.erased_at.is_not(None))
    ).scalar_one():
        raise InvalidInput(ERASED_PATCH)
    if patch.customer_id is not None:
        target = patch.customer_id
        exists = conn.execute(
            sa.select(profiles.c.erased_at).where(profiles.c.profile_id == target)
        ).first()
        if exists is None:
            raise InvalidInput(f"No customer {target} at HQ")
    else:
        if not local:
            raise InvalidInput("A patch without customer_id needs a till_local identifier")
        target = local[0]
    now = utc_now()
    ensure_profile(conn, profile_id=target, source="till", home_store=till.store_id, now=now)
    customer = customer_of(conn, target)
    for name, write in patch.fields.items():
        write_field(
            conn,
            customer=customer,
            profile=target,
            field=name,
            value=write.value,
            hlc=stamps[name].encode(),
            writer=stamps[name].node,
            now=now,
        )
    if patch.consent_events:
        conn.execute(
            consent_events.insert(),
            [
                {
                    "profile_id": target,
                    "channel": e.channel,
                    "granted": e.granted,
                    "at": e.at,
                    "source": f"{e.source}:{till.till_id}",
                }
                for e in patch.consent_events
            ],
        )
    affected = {customer}
    if claims:
        claim(conn, target, claims, now=now)
        affected |= resolve(conn, {target})
    return {customer_of(conn, target)} | affected


def write_field(
    conn: Connection,
    *,
    customer: UUID,
    profile: UUID,
    field: str,
    value: str | None,
    hlc: str,
    writer: str,
    now: datetime,
) -> bool:
    """Last-writer-wins for one field; the loser goes to history. True if ``value`` won."""
    current = conn.execute(
        sa.select(customer_fields.c.value, customer_fields.c.hlc, customer_fields.c.writer)
        .select_from(
            customer_fields.join(profiles, profiles.c.profile_id == customer_fields.c.profile_id)
        )
        .where(profiles.c.customer_id == customer, customer_fields.c.field == field)
        .order_by(customer_fields.c.hlc.desc())
        .limit(1)
    ).first()
    if current is not None and current.hlc == hlc:
        return bool(current.value == value)  # the same write again
    wins = current is None or hlc > current.hlc
    if wins:
        if current is not None:
            _history(conn, profile, field, current.value, current.hlc, current.writer, now)
        updated = conn.execute(
            customer_fields.update()
            .where(customer_fields.c.profile_id == profile, customer_fields.c.field == field)
            .values(value=value, hlc=hlc, writer=writer)
        ).rowcount
        if not updated:
            conn.execute(
                customer_fields.insert().values(
                    profile_id=profile, field=field, value=value, hlc=hlc, writer=writer
                )
            )
    else:
        _history(conn, profile, field, value, hlc, writer, now)
    return wins


def _history(
    conn: Connection,
    profile: UUID,
    field: str,
    value: str | None,
    hlc: str,
    writer: str,
    now: datetime,
) -> None:
    conn.execute(
        customer_field_history.insert().values(
            profile_id=profile, field=field, value=value, hlc=hlc, writer=writer, recorded_at=now
        )
    )


def parse_lookup(text: str, *, default_region: str) -> Identifier:
    """``kind:value`` or whatever a cashier typed or scanned."""
    kind, sep, rest = text.partition(":")
    try:
        if sep and kind in IDENTIFIER_KINDS:
            return normalize_identifier(kind, rest, default_region=default_region)
        return guess_identifier(text, default_region=default_region)
    except IdentifierError as exc:
        raise InvalidInput(exc.message) from exc


def lookup_needs_region(text: str) -> bool:
    """Whether :func:`parse_lookup` may read ``text`` as a phone number (needing a region).

    An explicit kind other than ``phone``, or an ``@`` in guessed text (an email), never is.
    """
    kind, sep, _ = text.partition(":")
    if sep and kind in IDENTIFIER_KINDS:
        return kind == "phone"
    return "@" not in text


# ---------------------------------------------------------------------------------------------
# Cards and change tracking


def mark_dirty(conn: Connection, customers: Iterable[UUID], *, now: datetime | None = None) -> None:
    """Queue the customers' cards for a rebuild (see ``dirty_cards`` and ``cards``)."""
    rows = [{"customer_id": c, "since": now or utc_now(), "version": 0} for c in customers]
    if not rows:
        return
    stmt: Any = (
        postgresql.insert(dirty_cards)
        if conn.dialect.name == "postgresql"
        else sqlite.insert(dirty_cards)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={"version": dirty_cards.c.version + 1, "leased_until": None},
    )
    conn.execute(stmt, rows)


def customers_changed(conn: Connection, customers: set[UUID], *, store_id: str | None) -> None:
    """Customers touched by ingest: their card is rebuilt and reaches ``store_id``'s tills."""
    if store_id is not None:
        conn.execute(
            insert_ignore(conn, customer_stores),
            [{"customer_id": c, "store_id": store_id} for c in customers],
        )
    mark_dirty(conn, customers)


# ---------------------------------------------------------------------------------------------
# Erasure


#: What replaces a personal value cut out of a longer text.
ERASED_TEXT = "[erased]"
#: Keys of stored JSON documents (sales, returns, events, web calls, quarantined ops) whose value
#: is personal wherever it appears in one of the erased customer's documents. Compared
#: lowercased without ``_`` and ``-``, so ``customer_id``, ``userId`` and ``first-name`` all match.
_PERSONAL_KEYS = frozenset(
    {
        "customerid",
        "customeridentifier",
        "customername",
        "identifiers",
        "userid",
        "anonymousid",
        "previousid",
        "traits",
        "context",  # a web call's device, IP address, location and page URL
        "email",
        "phone",
        "address",
        "firstname",
        "lastname",
        "fullname",
        "username",
        "birthday",
        "birthdate",
        "ip",
        "loyaltynumber",
        "street",
        "postalcode",
        "zipcode",
    }
)
#: Subtrees describing the shop, not the customer (a receipt's store block): only the erased
#: customer's own values are cut out of them, never whole keys.
_SHOP_KEYS = frozenset({"store"})
#: Customer fields whose values are personal on their own (names, birth date).
_PERSONAL_FIELDS = ("first_name", "last_name", "birth_date")
#: ``recs.PERSONAL``, the kind of a customer's own recommendation list (recs imports this
#: module, so the name is repeated here).
_PERSONAL_LIST = "personal"
_QUARANTINE_NOTE = "Personal data removed: the customer was erased at HQ on {day}."


@dataclass(frozen=True, slots=True)
class _Erased:
    """The erased customer's personal values, gathered before any of them is deleted.

    ``strong`` values name the customer wherever they appear, even inside a longer text: email
    addresses (identifiers and the addresses their receipts went to), phone numbers, loyalty
    numbers, till-local ids and profile ids. ``weak`` values name them only as a whole text
    (web ids such as ``anon-1``, the full name); ``words`` (first name, last name, birth date)
    are personal only inside the customer's own documents. All are casefolded. Identifiers
    other customers claim too (a family's email, the shop's own) are not theirs alone and are
    left out: they name nobody in particular.
    """

    profiles: frozenset[UUID]
    #: Every identifier the customer claims; ``identifiers`` those nobody else claims.
    claimed: frozenset[tuple[str, str]]
    identifiers: frozenset[tuple[str, str]]
    strong: frozenset[str]
    weak: frozenset[str]
    words: frozenset[str]
    mails: frozenset[UUID]
    #: Finds a strong value inside a text; finds any strong or weak value inside a text.
    strong_pattern: re.Pattern[str] | None
    any_pattern: re.Pattern[str] | None

    @classmethod
    def of(
        cls,
        *,
        profiles: Iterable[UUID],
        claimed: Iterable[tuple[str, str]],
        identifiers: Iterable[tuple[str, str]],
        strong: Iterable[str],
        weak: Iterable[str],
        words: Iterable[str],
        mails: Iterable[UUID],
    ) -> _Erased:
        strong, weak = frozenset(strong), frozenset(weak)
        return cls(
            profiles=frozenset(profiles),
            claimed=frozenset(claimed),
            identifiers=frozenset(identifiers),
            strong=strong,
            weak=weak,
            words=frozenset(words),
            mails=frozenset(mails),
            strong_pattern=_alternatives(strong),
            any_pattern=_alternatives(strong | weak),
        )

    @property
    def anonymous_ids(self) -> list[str]:
        return sorted(v for k, v in self.identifiers if k == "web_anon")

    def mentioned_in(self, doc: Any) -> bool:
        """Whether a stored document names the customer (used on documents no column links
        to a customer: quarantined ops). Names alone do not: another person may share them."""
        whole = self.strong | self.weak
        stack = [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                kind, value = item.get("kind"), item.get("value")
                if isinstance(kind, str) and isinstance(value, str):
                    try:
                        ident = normalize_identifier(kind, value)
                    except IdentifierError:
                        pass
                    else:
                        if (ident.kind, ident.value) in self.identifiers:
                            return True
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str):
                text = item.strip().casefold()
                after = text.partition(":")[2]
                if text in whole or (after and after in whole):
                    return True
                if self.strong_pattern is not None and self.strong_pattern.search(item):
                    return True
        return False

    def scrub(self, doc: Any) -> Any:
        """The customer's document with every personal value removed, everything else kept.

        Values under :data:`_PERSONAL_KEYS` become null (lists become empty), a customer patch
        keeps its field names and clock stamps but not the values, and the customer's
        identifiers, ids, addresses and names are cut out of every other text.
        """
        return self._scrub(doc, keyed=True)

    def _scrub(self, doc: Any, *, keyed: bool) -> Any:
        if isinstance(doc, dict):
            out: dict[str, Any] = {}
            for key, value in doc.items():
                name = str(key).casefold().replace("_", "").replace("-", "")
                if keyed and name in _PERSONAL_KEYS:
                    out[key] = [] if isinstance(value, list) else None
                elif keyed and name == "fields" and isinstance(value, dict):
                    # A customer patch: which fields it wrote and when stays reviewable.
                    out[key] = {
                        field: {**write, "value": None} if isinstance(write, dict) else None
                        for field, write in value.items()
                    }
                else:
                    out[key] = self._scrub(value, keyed=keyed and name not in _SHOP_KEYS)
            return out
        if isinstance(doc, list):
            return [self._scrub(item, keyed=keyed) for item in doc]
        if isinstance(doc, str):
            if doc.strip().casefold() in self.words:
                return ERASED_TEXT
            pattern = self.any_pattern
            return pattern.sub(ERASED_TEXT, doc) if pattern is not None else doc
        return doc

    def scrub_text(self, payload: str | None) -> str | None:
        """:meth:`scrub` for a stored JSON text (text that is not JSON loses only the values)."""
        if payload is None:
            return None
        try:
            doc = json.loads(payload)
        except ValueError:
            return str(self._scrub(payload, keyed=False))
        return json.dumps(self.scrub(doc), ensure_ascii=False, separators=(",", ":"))


def erase_customer(conn: Connection, customer_id: UUID) -> int:
    """Remove a customer's personal data at HQ and, through the feed, on every till.

    ``customer_id`` may be any profile of the customer (a merged-away id erases the customer it
    was merged into). Every profile of the customer is erased; returns how many.

    Deleted: identifiers, field values and their losing values (history), consent events,
    receipt mails queued or sent to the customer (by address or by customer id), the card and
    the personal recommendation list (with ``erased`` tombstones on the feed, so tills drop
    them), the customer's stores and pending card and list rebuilds. The profile rows stay,
    emptied and marked ``erased_at``, so an old export or till cannot bring the customer back.

    Kept anonymized (for the books, the recommender and the operators): sales, online orders
    and returns (with the returns of those sales) lose the customer columns, and their stored
    documents lose every personal value (:class:`_Erased`: ``customer_id``,
    ``customer_identifier``, a web call's ``userId``, ``traits`` and ``context``, and the
    customer's identifiers, ids and names wherever they are written); events likewise, and the
    merge history keeps who was merged into whom but not the identifier that linked them.

    Quarantined ops (a till restored from an old backup) carry whole payloads no column links
    to a customer, so each is read: one that names the customer (an id, identifier or address
    of theirs) is scrubbed the same way and kept for review, its ``reason`` saying so.

    Losing values recorded under *other* profiles (written while those were merged with this
    customer, then split off by merge protection) are deleted when they equal this customer's
    names or birth date.

    Shared identifiers (merge protection): the flag on a value the customer claimed stays while
    any other profile still claims it, with its claim count updated: those profiles must stay
    apart, and the value is theirs as much as it was the erased customer's. A flag on a value
    nobody claims any more is deleted. It protects nothing then (a flag only stops claims from
    linking profiles), and keeping it would keep the erased customer's email or phone number
    at HQ. Keeping it hashed instead was rejected: a hash of an email address or phone number
    is still personal data (anyone can hash a guess and compare, and phone numbers are few
    enough to try them all), and lookups compare plain values, so a hashed flag would protect
    nothing either. Should the value be claimed again, the flag comes back as it first came:
    when ``merge_protection_threshold`` profiles claim it, undoing any merge it caused.
    """
    root = conn.execute(
        sa.select(profiles.c.customer_id, profiles.c.erased_at).where(
            profiles.c.profile_id == customer_id
        )
    ).first()
    if root is None:
        raise NotFound(f"No customer {customer_id}")
    if root.erased_at is not None:
        raise NotFound(f"Customer {customer_id} was already erased")
    customer = UUID(str(root.customer_id))
    members = sorted(
        (
            UUID(str(p))
            for p in conn.execute(
                sa.select(profiles.c.profile_id).where(profiles.c.customer_id == customer)
            ).scalars()
        ),
        key=str,
    )
    now = utc_now()
    erased = _gather(conn, members)
    quarantined = _erase_quarantined(conn, erased, now=now)
    _erase_history_elsewhere(conn, members)
    conn.execute(customer_fields.delete().where(customer_fields.c.profile_id.in_(members)))
    conn.execute(
        customer_field_history.delete().where(customer_field_history.c.profile_id.in_(members))
    )
    if erased.mails:
        # Receipts queued or sent by email hold the address and what was bought.
        conn.execute(mail_queue.delete().where(mail_queue.c.email_id.in_(sorted(erased.mails))))
    conn.execute(identifiers.delete().where(identifiers.c.profile_id.in_(members)))
    _release_shared(conn, erased.claimed)
    conn.execute(consent_events.delete().where(consent_events.c.profile_id.in_(members)))
    # The merge history stays (who was merged into whom), but not the identifier that linked them.
    conn.execute(
        merges.update()
        .where(sa.or_(merges.c.winner.in_(members), merges.c.loser.in_(members)))
        .values(via_value=None)
    )
    _anonymize_events(conn, erased)
    conn.execute(
        profiles.update()
        .where(profiles.c.profile_id.in_(members))
        .values(attributes="{}", home_store=None, erased_at=now)
    )
    _anonymize_orders(conn, erased)
    conn.execute(customer_stores.delete().where(customer_stores.c.customer_id.in_(members)))
    conn.execute(dirty_cards.delete().where(dirty_cards.c.customer_id.in_(members)))
    _erase_personal_lists(conn, members)
    # Only the customer's own profiles: a profile once merged into it and split off again is
    # another live customer, whose card must stay on the feed.
    for member in members:
        feed.drop_key(conn, entity="customer", key=str(member))
        feed.record_change(
            conn, entity="customer", key=str(member), action="delete", reason="erased"
        )
    log.info(
        "customer %s erased (%d profiles, %d quarantined ops scrubbed)",
        customer,
        len(members),
        quarantined,
    )
    return len(members)


def _gather(conn: Connection, members: Sequence[UUID]) -> _Erased:
    claimed = {
        (str(r.kind), str(r.value))
        for r in conn.execute(
            sa.select(identifiers.c.kind, identifiers.c.value).where(
                identifiers.c.profile_id.in_(members)
            )
        )
    }
    # A value other customers claim too (a shared family email, the shop's own address) is not
    # this customer's alone: it names nobody in particular and stays where the others use it.
    keys = sorted(claimed)
    others: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 200):
        others |= {
            (str(r.kind), str(r.value))
            for r in conn.execute(
                sa.select(identifiers.c.kind, identifiers.c.value).where(
                    sa.tuple_(identifiers.c.kind, identifiers.c.value).in_(
                        keys[start : start + 200]
                    ),
                    identifiers.c.profile_id.not_in(members),
                )
            )
        }
    own = claimed - others
    taken = {v.casefold() for _, v in others}
    emails = sorted(v for k, v in own if k == "email")
    mine = [mail_queue.c.payload.contains(str(m)) for m in members]
    if emails:
        mine.append(mail_queue.c.to_address.in_(emails))
    mails = conn.execute(
        sa.select(mail_queue.c.email_id, mail_queue.c.to_address).where(sa.or_(*mine))
    ).all()
    fields: dict[str, set[str]] = defaultdict(set)
    for table in (customer_fields, customer_field_history):
        for field, value in conn.execute(
            sa.select(table.c.field, table.c.value).where(
                table.c.profile_id.in_(members),
                table.c.field.in_(_PERSONAL_FIELDS),
                table.c.value.is_not(None),
            )
        ):
            if str(value).strip():
                fields[str(field)].add(str(value).strip().casefold())
    full_names = {
        f"{a} {b}"
        for first in fields["first_name"]
        for last in fields["last_name"]
        for a, b in ((first, last), (last, first))
    }
    strong = {v.casefold() for k, v in own if k in ("email", "phone", "loyalty", "till_local")}
    strong |= {str(m) for m in members} | {f"tl-{m}" for m in members}
    strong |= {str(r.to_address).casefold() for r in mails} - taken
    return _Erased.of(
        profiles=members,
        claimed=claimed,
        identifiers=own,
        strong=strong,
        weak={v.casefold() for k, v in own if k in ("web_anon", "web_user")} | full_names,
        words={v for values in fields.values() for v in values},
        mails=(UUID(str(r.email_id)) for r in mails),
    )


def _alternatives(values: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern matching any of ``values``, longest first."""
    ordered = sorted({v for v in values if v}, key=lambda v: (-len(v), v))
    if not ordered:
        return None
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def _erase_quarantined(conn: Connection, erased: _Erased, *, now: datetime) -> int:
    """Scrub the quarantined ops that name the customer; return how many.

    The quarantine only holds replays of restored tills, so reading all of it is cheap.
    """
    note = _QUARANTINE_NOTE.format(day=now.date().isoformat())
    rows = conn.execute(
        sa.select(quarantine.c.op_id, quarantine.c.payload, quarantine.c.reason)
    ).all()
    updates = []
    for row in rows:
        try:
            doc = json.loads(row.payload)
        except ValueError:
            doc = row.payload
        if not erased.mentioned_in(doc):
            continue
        reason = str(row.reason)
        updates.append(
            {
                "b_op_id": row.op_id,
                "b_payload": erased.scrub_text(row.payload),
                "b_reason": reason if note in reason else f"{reason} {note}",
            }
        )
    if updates:
        conn.execute(
            quarantine.update()
            .where(quarantine.c.op_id == sa.bindparam("b_op_id"))
            .values(payload=sa.bindparam("b_payload"), reason=sa.bindparam("b_reason")),
            updates,
        )
    return len(updates)


def _erase_history_elsewhere(conn: Connection, members: Sequence[UUID]) -> None:
    """Delete the customer's names left as losing values under profiles once merged with it.

    A field written through one profile while several were one customer records the value it
    beat under the writing profile; when merge protection splits them again, that losing value
    (maybe this customer's name) stays with the other profile's history.
    """
    related: set[UUID] = set()
    for winner, loser in conn.execute(
        sa.select(merges.c.winner, merges.c.loser).where(
            sa.or_(merges.c.winner.in_(members), merges.c.loser.in_(members))
        )
    ):
        related |= {UUID(str(winner)), UUID(str(loser))}
    related -= set(members)
    if not related:
        return
    pairs = set()
    for table in (customer_fields, customer_field_history):
        pairs |= {
            (str(r.field), str(r.value))
            for r in conn.execute(
                sa.select(table.c.field, table.c.value).where(
                    table.c.profile_id.in_(members),
                    table.c.field.in_(_PERSONAL_FIELDS),
                    table.c.value.is_not(None),
                )
            )
        }
    if pairs:
        conn.execute(
            customer_field_history.delete().where(
                customer_field_history.c.profile_id.in_(sorted(related, key=str)),
                sa.tuple_(customer_field_history.c.field, customer_field_history.c.value).in_(
                    sorted(pairs)
                ),
            )
        )


def _release_shared(conn: Connection, claimed: Iterable[tuple[str, str]]) -> None:
    """After the customer's claims are deleted: drop the shared flags nobody claims any more,
    recount the others (see :func:`erase_customer` for why)."""
    keys = sorted(claimed)
    for start in range(0, len(keys), 200):
        flagged = conn.execute(
            sa.select(shared_identifiers.c.kind, shared_identifiers.c.value).where(
                sa.tuple_(shared_identifiers.c.kind, shared_identifiers.c.value).in_(
                    keys[start : start + 200]
                )
            )
        ).all()
        for kind, value in flagged:
            where = (shared_identifiers.c.kind == kind, shared_identifiers.c.value == value)
            left = conn.execute(
                sa.select(sa.func.count())
                .select_from(identifiers)
                .where(identifiers.c.kind == kind, identifiers.c.value == value)
            ).scalar_one()
            if left:
                conn.execute(shared_identifiers.update().where(*where).values(claims=left))
            else:
                conn.execute(shared_identifiers.delete().where(*where))


def _anonymize_events(conn: Connection, erased: _Erased) -> None:
    """The customer's events (and anonymous ones of their web ids) stay, without them."""
    members = sorted(erased.profiles, key=str)
    mine: sa.ColumnElement[bool] = events.c.profile_id.in_(members)
    anonymous = erased.anonymous_ids
    if anonymous:
        mine = sa.or_(
            mine, sa.and_(events.c.profile_id.is_(None), events.c.anonymous_id.in_(anonymous))
        )
    rows = conn.execute(sa.select(events.c.event_id, events.c.data).where(mine)).all()
    if rows:
        conn.execute(
            events.update()
            .where(events.c.event_id == sa.bindparam("b_event_id"))
            .values(profile_id=None, anonymous_id=None, data=sa.bindparam("b_data")),
            [{"b_event_id": r.event_id, "b_data": erased.scrub_text(r.data) or "{}"} for r in rows],
        )


def _anonymize_orders(conn: Connection, erased: _Erased) -> None:
    """The customer's orders and returns (and the returns of those orders) stay, without them."""
    members = sorted(erased.profiles, key=str)
    rows = conn.execute(
        sa.select(orders.c.order_id, orders.c.payload).where(
            sa.or_(orders.c.customer_id.in_(members), orders.c.profile_id.in_(members))
        )
    ).all()
    if rows:
        conn.execute(
            orders.update()
            .where(orders.c.order_id == sa.bindparam("b_order_id"))
            .values(customer_id=None, profile_id=None, payload=sa.bindparam("b_payload")),
            [{"b_order_id": r.order_id, "b_payload": erased.scrub_text(r.payload)} for r in rows],
        )
    order_ids = [r.order_id for r in rows]
    found: dict[Any, str] = {}
    for r in conn.execute(
        sa.select(returns.c.return_id, returns.c.payload).where(returns.c.customer_id.in_(members))
    ):
        found[r.return_id] = r.payload
    for start in range(0, len(order_ids), 500):
        for r in conn.execute(
            sa.select(returns.c.return_id, returns.c.payload).where(
                returns.c.original_sale_id.in_(order_ids[start : start + 500])
            )
        ):
            found[r.return_id] = r.payload
    if found:
        conn.execute(
            returns.update()
            .where(returns.c.return_id == sa.bindparam("b_return_id"))
            .values(customer_id=None, payload=sa.bindparam("b_payload")),
            [
                {"b_return_id": return_id, "b_payload": erased.scrub_text(payload)}
                for return_id, payload in found.items()
            ],
        )


def _erase_personal_lists(conn: Connection, members: Sequence[UUID]) -> None:
    """Delete the customer's personal recommendation lists; tombstone those on the feed."""
    keys = [str(m) for m in members]
    listed = set(
        conn.execute(
            sa.select(recommendation_lists.c.key).where(
                recommendation_lists.c.kind == _PERSONAL_LIST,
                recommendation_lists.c.key.in_(keys),
            )
        ).scalars()
    )
    fed = {
        str(k)
        for k in conn.execute(
            sa.select(changes.c.key).where(
                changes.c.entity == "recommendation",
                changes.c.key.in_([f"{_PERSONAL_LIST}:{k}" for k in keys]),
            )
        ).scalars()
    }
    conn.execute(
        recommendation_lists.delete().where(
            recommendation_lists.c.kind == _PERSONAL_LIST, recommendation_lists.c.key.in_(keys)
        )
    )
    conn.execute(
        dirty_lists.delete().where(
            dirty_lists.c.kind == _PERSONAL_LIST, dirty_lists.c.key.in_(keys)
        )
    )
    for key in sorted(fed | {f"{_PERSONAL_LIST}:{k}" for k in listed}):
        feed.drop_key(conn, entity="recommendation", key=key)
        feed.record_change(conn, entity="recommendation", key=key, action="delete", reason="erased")
