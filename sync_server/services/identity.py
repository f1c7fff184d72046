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
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
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
    events,
    identifiers,
    mail_queue,
    merges,
    orders,
    profiles,
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


def find_customer(conn: Connection, ident: Identifier) -> UUID | None:
    """The customer an identifier names, or None. A shared identifier names nobody."""
    if _is_shared(conn, ident):
        return None
    row = conn.execute(
        sa.select(profiles.c.customer_id)
        .select_from(identifiers.join(profiles, profiles.c.profile_id == identifiers.c.profile_id))
        .where(
            identifiers.c.kind == ident.kind,
            identifiers.c.value == ident.value,
            profiles.c.erased_at.is_(None),
        )
        .order_by(profiles.c.created_at)
        .limit(1)
    ).first()
    return None if row is None else UUID(str(row.customer_id))


def _is_shared(conn: Connection, ident: Identifier) -> bool:
    return (
        conn.execute(
            sa.select(shared_identifiers.c.kind).where(
                shared_identifiers.c.kind == ident.kind, shared_identifiers.c.value == ident.value
            )
        ).first()
        is not None
    )


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


def apply_customer_patch(conn: Connection, *, till: Till, patch: CustomerPatch) -> set[UUID]:
    """Apply a till's customer patch; return the customers whose card changed."""
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
    if patch.customer_id is not None:
        target = patch.customer_id
        exists = conn.execute(
            sa.select(profiles.c.erased_at).where(profiles.c.profile_id == target)
        ).first()
        if exists is None:
            raise InvalidInput(f"No customer {target} at HQ")
        if exists.erased_at is not None:
            raise InvalidInput(f"Customer {target} was erased; the patch is dropped")
    else:
        local = [c for c in claims if c.kind == "till_local"]
        if not local:
            raise InvalidInput("A patch without customer_id needs a till_local identifier")
        target = UUID(local[0].value[3:])
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


def erase_customer(conn: Connection, customer_id: UUID) -> int:
    """Remove a customer's personal data at HQ and, through the feed, on every till.

    Sales and returns stay for the books, with the customer references removed. Returns the
    number of profiles erased.
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
    members = [
        UUID(str(p))
        for p in conn.execute(
            sa.select(profiles.c.profile_id).where(profiles.c.customer_id == customer)
        ).scalars()
    ]
    keys = set(members) | {
        UUID(str(m))
        for m in conn.execute(
            sa.select(merges.c.loser).where(merges.c.winner.in_(members))
        ).scalars()
    }
    now = utc_now()
    conn.execute(customer_fields.delete().where(customer_fields.c.profile_id.in_(members)))
    conn.execute(
        customer_field_history.delete().where(customer_field_history.c.profile_id.in_(members))
    )
    emails = list(
        conn.execute(
            sa.select(identifiers.c.value).where(
                identifiers.c.profile_id.in_(members), identifiers.c.kind == "email"
            )
        ).scalars()
    )
    if emails:
        # Receipts queued or sent by email hold the address and what was bought.
        conn.execute(mail_queue.delete().where(mail_queue.c.to_address.in_(emails)))
    conn.execute(identifiers.delete().where(identifiers.c.profile_id.in_(members)))
    conn.execute(consent_events.delete().where(consent_events.c.profile_id.in_(members)))
    # The merge history stays (who was merged into whom), but not the identifier that linked them.
    conn.execute(
        merges.update()
        .where(sa.or_(merges.c.winner.in_(keys), merges.c.loser.in_(keys)))
        .values(via_value=None)
    )
    conn.execute(
        events.update()
        .where(events.c.profile_id.in_(members))
        .values(profile_id=None, anonymous_id=None)
    )
    conn.execute(
        profiles.update()
        .where(profiles.c.profile_id.in_(members))
        .values(attributes="{}", home_store=None, erased_at=now)
    )
    for table, id_column in ((orders, orders.c.order_id), (returns, returns.c.return_id)):
        rows = conn.execute(
            sa.select(id_column, table.c.payload).where(table.c.customer_id.in_(members))
        ).all()
        for row in rows:
            payload = _scrub(row.payload)
            conn.execute(table.update().where(id_column == row[0]).values(payload=payload))
        conn.execute(
            table.update().where(table.c.customer_id.in_(members)).values(customer_id=None)
        )
    conn.execute(orders.update().where(orders.c.profile_id.in_(members)).values(profile_id=None))
    conn.execute(customer_stores.delete().where(customer_stores.c.customer_id.in_(members)))
    conn.execute(dirty_cards.delete().where(dirty_cards.c.customer_id.in_(members)))
    for key in keys:
        conn.execute(
            changes.delete().where(changes.c.entity == "customer", changes.c.key == str(key))
        )
        feed.record_change(conn, entity="customer", key=str(key), action="delete", reason="erased")
    log.info("customer %s erased (%d profiles)", customer, len(members))
    return len(members)


def _scrub(payload: str | None) -> str | None:
    if payload is None:
        return None
    data = json.loads(payload)
    for name in ("customer_id", "customer_identifier"):
        if name in data:
            data[name] = None
    return json.dumps(data)
