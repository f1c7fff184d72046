"""Customer cards: the small view of a customer that tills cache, built from the full view.

Ingest only marks a customer *dirty* (in the same transaction as the sale); a background worker
(any server process) claims dirty customers with ``DELETE ... RETURNING`` — atomic on SQLite and
PostgreSQL, so two processes never build the same card twice and a crash before commit leaves
the claim in place — rebuilds their cards and puts them on the feed for every store whose tills
cache the customer. This keeps ingest fast and the feed current within a second.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.customer import CardItem, CustomerCard, CustomerIdentifierModel
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import (
    UtcDateTime,
    Uuid,
    consent_events,
    customer_field_history,
    customer_fields,
    customer_stores,
    dirty_cards,
    events,
    identifiers,
    merges,
    order_lines,
    orders,
    products,
    profiles,
    recommendation_lists,
    returns,
    shared_identifiers,
)
from sync_server.services import feed

log = logging.getLogger(__name__)

RECENT = 5
CART_DAYS = 30
#: Loyalty points: one per whole currency unit spent, net of returns.
POINTS_PER_MINOR = 100


def _members(conn: Connection, customer: UUID) -> list[UUID]:
    return [
        UUID(str(p))
        for p in conn.execute(
            sa.select(profiles.c.profile_id).where(
                profiles.c.customer_id == customer, profiles.c.erased_at.is_(None)
            )
        ).scalars()
    ]


# The card's statements are built once, with bind parameters: building a SELECT costs several
# times what SQLite takes to answer it from an index, and cards are built on the till's
# lookup path and, for every change, by the card worker. SQLAlchemy compiles each once per
# engine (its statement cache).
_CUSTOMER = sa.bindparam("customer", type_=Uuid)
_MEMBERS = sa.select(profiles.c.profile_id).where(
    profiles.c.customer_id == _CUSTOMER, profiles.c.erased_at.is_(None)
)
_HEADER = sa.select(
    # Live: the customer's own profile still heads the customer (not merged away, not erased).
    sa.exists()
    .where(
        profiles.c.profile_id == _CUSTOMER,
        profiles.c.customer_id == _CUSTOMER,
        profiles.c.erased_at.is_(None),
    )
    .label("live"),
    sa.select(sa.func.coalesce(sa.func.sum(orders.c.total_minor), 0))
    .where(orders.c.customer_id == _CUSTOMER)
    .scalar_subquery()
    .label("spent"),
    sa.select(sa.func.coalesce(sa.func.sum(returns.c.total_minor), 0))
    .where(returns.c.customer_id == _CUSTOMER)
    .scalar_subquery()
    .label("refunded"),
    sa.select(recommendation_lists.c.data)
    .where(
        recommendation_lists.c.kind == "personal",
        recommendation_lists.c.key == sa.bindparam("key", type_=sa.String()),
    )
    .scalar_subquery()
    .label("personal"),
)
_FIELDS = sa.select(customer_fields.c.field, customer_fields.c.value, customer_fields.c.hlc).where(
    customer_fields.c.profile_id.in_(_MEMBERS)
)
#: Identifiers a till never meets: every web session's anonymous id would otherwise land on the
#: card and in every till's identifier table (dozens per customer, and none scanned in a store).
_OFF_CARD = ("web_anon",)
_IDENTIFIERS = (
    sa.select(identifiers.c.kind, identifiers.c.value)
    .where(
        identifiers.c.profile_id.in_(_MEMBERS),
        identifiers.c.kind.not_in(_OFF_CARD),
        ~sa.exists().where(
            shared_identifiers.c.kind == identifiers.c.kind,
            shared_identifiers.c.value == identifiers.c.value,
        ),
    )
    .distinct()
    .order_by(identifiers.c.kind, identifiers.c.value)
)
_CONSENTS = (
    sa.select(consent_events.c.channel, consent_events.c.granted)
    .where(consent_events.c.profile_id.in_(_MEMBERS))
    .order_by(consent_events.c.at, consent_events.c.id)
)
# Product names come with the rows (a product may be gone: the card then shows the SKU).
_PURCHASES = (
    sa.select(order_lines.c.sku, orders.c.created_at, products.c.data)
    .select_from(
        order_lines.join(orders, orders.c.order_id == order_lines.c.order_id).outerjoin(
            products, products.c.sku == order_lines.c.sku
        )
    )
    .where(orders.c.customer_id == _CUSTOMER, orders.c.channel == "store")
    .order_by(orders.c.created_at.desc())
    .limit(RECENT * 4)
)
_WEB = (
    sa.select(events.c.kind, events.c.sku, events.c.at, products.c.data)
    .select_from(events.outerjoin(products, products.c.sku == events.c.sku))
    .where(
        events.c.profile_id.in_(_MEMBERS),
        events.c.channel == "web",
        events.c.sku.is_not(None),
        events.c.at > sa.bindparam("since", type_=UtcDateTime),
    )
    .order_by(events.c.at.desc())
    .limit(200)
)
_BOUGHT_SINCE = (
    sa.select(order_lines.c.sku, sa.func.max(orders.c.created_at).label("at"))
    .join(orders, orders.c.order_id == order_lines.c.order_id)
    .where(
        orders.c.customer_id == _CUSTOMER,
        order_lines.c.sku.in_(sa.bindparam("skus", expanding=True, type_=sa.String())),
    )
    .group_by(order_lines.c.sku)
)


def _name(sku: str, data: str | None) -> str:
    return str(json.loads(data).get("name", sku)) if data is not None else sku


def build_card(conn: Connection, customer: UUID) -> CustomerCard | None:
    """The card of a customer, or None when the id is not a live customer (merged, erased).

    The customer's values across all its live profiles: each field's newest write, the
    identifiers that still identify someone (not shared ones), the newest consent per channel,
    loyalty points net of returns, the latest store purchases, recently viewed and carted web
    products (carted and not bought since), and the personal recommendations.
    """
    who = {"customer": customer}
    header = conn.execute(_HEADER, {**who, "key": str(customer)}).one()
    if not header.live:
        return None
    fields: dict[str, tuple[str, str | None]] = {}
    for row in conn.execute(_FIELDS, who):
        if row.field not in fields or row.hlc > fields[row.field][0]:
            fields[row.field] = (row.hlc, row.value)
    idents = conn.execute(_IDENTIFIERS, who).all()
    consents = {row.channel: row.granted for row in conn.execute(_CONSENTS, who)}
    purchases = conn.execute(_PURCHASES, who).all()
    web = conn.execute(_WEB, {**who, "since": utc_now() - timedelta(days=CART_DAYS)}).all()
    added = {w.sku for w in web if w.kind == "Product Added"}
    bought_since: dict[str, Any] = (
        {r.sku: r.at for r in conn.execute(_BOUGHT_SINCE, {**who, "skus": sorted(added)})}
        if added
        else {}
    )

    def items(rows: Iterable[tuple[str, Any, str | None]]) -> tuple[CardItem, ...]:
        out: list[CardItem] = []
        seen: set[str] = set()
        for sku, at, data in rows:
            if sku in seen:
                continue
            seen.add(sku)
            out.append(CardItem(sku=sku, name=_name(sku, data), at=at))
            if len(out) == RECENT:
                break
        return tuple(out)

    viewed = items((w.sku, w.at, w.data) for w in web if w.kind == "Product Viewed")
    cart = items(
        (w.sku, w.at, w.data)
        for w in web
        if w.kind == "Product Added" and (w.sku not in bought_since or bought_since[w.sku] < w.at)
    )
    personal = header.personal
    return CustomerCard(
        customer_id=customer,
        first_name=(fields.get("first_name", ("", "")))[1] or "",
        last_name=(fields.get("last_name", ("", "")))[1] or "",
        identifiers=tuple(CustomerIdentifierModel(kind=r.kind, value=r.value) for r in idents),
        loyalty_points=max(0, int(header.spent) - int(header.refunded)) // POINTS_PER_MINOR,
        consents=consents,
        recent_purchases=items((p.sku, p.created_at, p.data) for p in purchases),
        recently_viewed=viewed,
        cart_items=cart,
        recommendations=tuple(
            item["sku"] for item in (json.loads(personal)["items"] if personal else [])
        )[:10],
        updated_at=utc_now(),
    )


#: How long a worker may take to build a batch of cards before another may take them over.
LEASE = timedelta(seconds=60)


def refresh_dirty_cards(db: Database, *, limit: int = 50) -> int:
    """Rebuild the cards of up to ``limit`` dirty customers and put them on the feed.

    Three short steps, so the database's write lock is never held while cards are built: lease
    a batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so processes take different batches),
    build the cards with reads only, then write the feed rows and clear each dirty row whose
    version is unchanged. A customer changed meanwhile stays dirty (its lease is dropped) and is
    rebuilt next round; a worker that dies leaves a lease that expires.
    """
    now = utc_now()
    with db.write() as conn:
        pick = (
            sa.select(dirty_cards.c.customer_id, dirty_cards.c.version)
            .where(sa.or_(dirty_cards.c.leased_until.is_(None), dirty_cards.c.leased_until < now))
            .order_by(dirty_cards.c.since)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        leased = {UUID(str(r.customer_id)): int(r.version) for r in conn.execute(pick)}
        if not leased:
            return 0
        conn.execute(
            dirty_cards.update()
            .where(dirty_cards.c.customer_id.in_(list(leased)))
            .values(leased_until=now + LEASE)
        )
    rows: list[dict[str, Any]] = []
    with db.read() as conn:
        scopes: dict[UUID, list[str]] = {}
        for row in conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id).where(
                customer_stores.c.customer_id.in_(list(leased))
            )
        ):
            scopes.setdefault(UUID(str(row.customer_id)), []).append(row.store_id)
        for customer in leased:
            if customer not in scopes:
                continue
            card = build_card(conn, customer)
            if card is None:
                continue
            data = card.model_dump_json()
            rows.extend(
                {"entity": "customer", "key": str(customer), "scope": s, "data": data}
                for s in scopes[customer]
            )
    with db.write() as conn:
        # A card built from data that has changed since must not replace a newer one: write
        # only for customers whose version is still the one leased, and clear those rows.
        # FOR UPDATE on PostgreSQL: an erasure or a merge running now deletes or bumps these
        # rows in its own transaction; without the lock this read would see them unchanged
        # until it commits, and an old card could land on the feed after its tombstone.
        check = sa.select(dirty_cards.c.customer_id, dirty_cards.c.version).where(
            dirty_cards.c.customer_id.in_(list(leased))
        )
        if conn.dialect.name == "postgresql":
            check = check.with_for_update()
        current = {UUID(str(r.customer_id)): int(r.version) for r in conn.execute(check)}
        unchanged = {c for c, v in leased.items() if current.get(c) == v}
        feed.record_changes(conn, [r for r in rows if UUID(r["key"]) in unchanged])
        if unchanged:
            conn.execute(dirty_cards.delete().where(dirty_cards.c.customer_id.in_(unchanged)))
        changed = [c for c in leased if c in current and c not in unchanged]
        if changed:
            conn.execute(
                dirty_cards.update()
                .where(dirty_cards.c.customer_id.in_(changed))
                .values(leased_until=None)
            )
    return len(leased)


def customer_view(conn: Connection, customer_id: UUID) -> dict[str, Any]:
    """HQ's full single-customer view: card, profiles, attributes, history and timeline."""
    row = conn.execute(
        sa.select(profiles.c.customer_id, profiles.c.erased_at).where(
            profiles.c.profile_id == customer_id
        )
    ).first()
    if row is None or row.erased_at is not None:
        from shared.errors import NotFound

        raise NotFound(f"No customer {customer_id}")
    customer = UUID(str(row.customer_id))
    card = build_card(conn, customer)
    assert card is not None
    members = _members(conn, customer)
    profile_rows = (
        conn.execute(
            sa.select(profiles)
            .where(profiles.c.profile_id.in_(members))
            .order_by(profiles.c.created_at)
        )
        .mappings()
        .all()
    )
    attributes: dict[str, str] = {}
    for p in profile_rows:
        attributes.update(json.loads(p["attributes"]))
    timeline: list[dict[str, Any]] = []
    for o in conn.execute(
        sa.select(orders)
        .where(orders.c.customer_id == customer)
        .order_by(orders.c.created_at.desc())
        .limit(100)
    ).mappings():
        timeline.append(
            {
                "at": o["created_at"],
                "channel": o["channel"],
                "kind": "order",
                "order_id": str(o["order_id"]),
                "store_id": o["store_id"],
                "total_minor": o["total_minor"],
                "currency": o["currency"],
            }
        )
    for r in conn.execute(
        sa.select(returns).where(returns.c.customer_id == customer).limit(100)
    ).mappings():
        timeline.append(
            {
                "at": r["created_at"],
                "channel": "store",
                "kind": "return",
                "return_id": str(r["return_id"]),
                "total_minor": r["total_minor"],
            }
        )
    for e in conn.execute(
        sa.select(events)
        .where(events.c.profile_id.in_(members))
        .order_by(events.c.at.desc())
        .limit(100)
    ).mappings():
        timeline.append(
            {"at": e["at"], "channel": e["channel"], "kind": e["kind"], "sku": e["sku"]}
        )
    timeline.sort(key=lambda item: item["at"], reverse=True)
    history = (
        conn.execute(
            sa.select(customer_field_history)
            .where(customer_field_history.c.profile_id.in_(members))
            .order_by(customer_field_history.c.id)
        )
        .mappings()
        .all()
    )
    merge_rows = (
        conn.execute(
            sa.select(merges)
            .where(sa.or_(merges.c.winner == customer, merges.c.loser == customer))
            .order_by(merges.c.id)
        )
        .mappings()
        .all()
    )
    return {
        "customer_id": str(customer),
        "card": json.loads(card.model_dump_json()),
        "attributes": attributes,
        "profiles": [
            {
                "profile_id": str(p["profile_id"]),
                "source": p["source"],
                "home_store": p["home_store"],
                "created_at": p["created_at"],
            }
            for p in profile_rows
        ],
        "stores": sorted(
            conn.execute(
                sa.select(customer_stores.c.store_id).where(
                    customer_stores.c.customer_id == customer
                )
            ).scalars()
        ),
        "field_history": [
            {
                "field": h["field"],
                "value": h["value"],
                "hlc": h["hlc"],
                "writer": h["writer"],
                "recorded_at": h["recorded_at"],
            }
            for h in history
        ],
        "merges": [
            {
                "action": m["action"],
                "winner": str(m["winner"]),
                "loser": str(m["loser"]),
                "via": f"{m['via_kind']}:{m['via_value']}" if m["via_kind"] else None,
                "at": m["at"],
            }
            for m in merge_rows
        ],
        "timeline": timeline[:200],
    }
