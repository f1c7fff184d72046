"""Customer lookup at the till: what a cashier typed or scanned, answered with a customer card.

Rules
-----
- The text is ``kind:value`` or whatever was typed or scanned (``identity.parse_lookup``);
  phone numbers are read with the store's region (``default_region`` of the store's config,
  Germany when none is set).
- A shared identifier (merge protection: claimed by too many customer records) names nobody.
  Erased customers have no identifiers left and are never found.
- An identifier of a customer that was merged into another one answers with the surviving
  customer's card: every profile points at its current customer.
- Any till may look up any customer of the chain (a customer of another store shopping here).
  Looking up writes nothing: the till tells HQ through its outbox (a ``customer_identified``
  event) that its store now caches the card, and ingest puts the card's updates on the feed.

The card is the one on the change feed when some store caches the customer (the card worker
keeps those current within a second of a change), served as the JSON the worker stored; only
a customer no store caches yet has their card built here. The answer is JSON text, so the
route sends it as it is instead of parsing and re-serializing a model.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.errors import NotFound
from sync_server.db.schema import changes, stores
from sync_server.services import cards, identity

#: How a store without a configured region reads national phone numbers.
DEFAULT_REGION = "DE"

_REGION = sa.select(stores.c.data).where(
    stores.c.store_id == sa.bindparam("store", type_=sa.String())
)
# Every store's row of a customer's card carries the same card: any one of them will do.
_CARD_ON_FEED = (
    sa.select(changes.c.data)
    .where(
        changes.c.entity == "customer",
        changes.c.key == sa.bindparam("key", type_=sa.String()),
        changes.c.action == "upsert",
    )
    .limit(1)
)


def card_json(conn: Connection, *, store_id: str, text: str) -> str:
    """The JSON of the card of the customer ``text`` identifies, for a till of ``store_id``.

    Reads only, in the caller's transaction (one snapshot on both engines). Raises
    InvalidInput for text that is no identifier and NotFound when it names nobody.
    """
    region = DEFAULT_REGION
    if identity.lookup_needs_region(text):
        data = conn.execute(_REGION, {"store": store_id}).scalar()
        if data:
            region = json.loads(data).get("default_region", DEFAULT_REGION)
    ident = identity.parse_lookup(text, default_region=region)
    customer = identity.find_customer(conn, ident)
    if customer is None:
        raise NotFound(f"No customer with {ident.kind} {ident.value}")
    stored = conn.execute(_CARD_ON_FEED, {"key": str(customer)}).scalar()
    if stored is not None:
        return str(stored)
    card = cards.build_card(conn, customer)
    if card is None:
        raise NotFound(f"No customer with {ident.kind} {ident.value}")
    return card.model_dump_json()
