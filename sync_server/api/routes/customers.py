"""``/api/v1/customers``: lookup at the till, the full view and erasure at HQ."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from shared.customer import CustomerCard
from shared.errors import NotFound
from sync_server.api.deps import AdminDep, CurrentTill, DbDep
from sync_server.api.errors import error_responses
from sync_server.db.engine import Database
from sync_server.db.schema import changes, stores
from sync_server.services import cards, identity
from sync_server.services.tills import Till

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])


def _lookup(db: Database, till: Till, text: str) -> CustomerCard:
    """The card for what was scanned.

    Reads only: the card comes from the change feed, where the card worker keeps every cached
    customer's card current; only a customer no store caches yet has their card built here.
    """
    with db.read() as conn:
        data = conn.execute(
            sa.select(stores.c.data).where(stores.c.store_id == till.store_id)
        ).scalar_one_or_none()
        region = json.loads(data).get("default_region", "DE") if data else "DE"
        ident = identity.parse_lookup(text, default_region=region)
        customer = identity.find_customer(conn, ident)
        if customer is None:
            raise NotFound(f"No customer with {ident.kind} {ident.value}")
        scopes = dict(
            conn.execute(
                sa.select(changes.c.scope, changes.c.data).where(
                    changes.c.entity == "customer",
                    changes.c.key == str(customer),
                    changes.c.action == "upsert",
                )
            ).all()
        )
        if scopes:
            card = CustomerCard.model_validate_json(next(iter(scopes.values())))
        else:
            built = cards.build_card(conn, customer)
            if built is None:
                raise NotFound(f"No customer with {ident.kind} {ident.value}")
            card = built
    return card


@router.get(
    "/lookup",
    response_model=CustomerCard,
    summary="Find a customer's card by any identifier",
    responses=error_responses(401, 404, 422),
    description=(
        "`identifier` is `kind:value` (`email:maria@example.com`, `phone:+4915112345678`, "
        "`loyalty:9900123456784`) or what a cashier typed or scanned (the kind is guessed; "
        "phone numbers use the store's region). Shared identifiers (a shop's own email) "
        "identify nobody and answer 404."
    ),
)
async def lookup(
    till: CurrentTill,
    db: DbDep,
    identifier: Annotated[
        str, Query(min_length=1, max_length=320, examples=["email:maria@example.com"])
    ],
) -> CustomerCard:
    # Reads only. The till tells HQ through its outbox (a `customer_identified` event) that
    # its store now caches this card, and ingest then puts the card's updates on the feed.
    return await run_in_threadpool(_lookup, db, till, identifier)


@router.get(
    "/{customer_id}",
    summary="The full single-customer view (admin)",
    responses=error_responses(401, 403, 404, 422),
    description=(
        "Card, merged profiles, custom CRM attributes, field history (values that lost a "
        "last-writer-wins race), merges and the cross-channel timeline. A merged customer's "
        "old id answers with the surviving customer."
    ),
)
def get_customer(customer_id: UUID, _: AdminDep, db: DbDep) -> dict[str, Any]:
    with db.read() as conn:
        return cards.customer_view(conn, customer_id)


@router.delete(
    "/{customer_id}",
    summary="Erase a customer's personal data (right to be forgotten)",
    responses=error_responses(401, 403, 404, 422),
    description=(
        "Removes personal fields, identifiers, consents and attributes at HQ, detaches web "
        "events and anonymizes sales and returns (kept for the books). Every till removes the "
        "card when it pulls the `erased` tombstone."
    ),
)
def erase_customer(customer_id: UUID, _: AdminDep, db: DbDep) -> dict[str, Any]:
    with db.write() as conn:
        profiles_erased = identity.erase_customer(conn, customer_id)
    return {"customer_id": str(customer_id), "erased_profiles": profiles_erased}
