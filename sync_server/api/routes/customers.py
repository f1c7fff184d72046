"""``/api/v1/customers``: lookup at the till, the full view and erasure at HQ."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from shared.customer import CustomerCard
from sync_server.api.deps import AdminDep, DbDep, TillToken, TillTokenDep
from sync_server.api.errors import error_responses
from sync_server.db.engine import Database
from sync_server.services import cards, identity
from sync_server.services import lookup as lookup_service

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

JSON = "application/json"


def _lookup(db: Database, caller: TillToken, text: str) -> str:
    """One read, in one worker thread: the till's token checked again, then the card."""
    with db.read() as conn:
        till = caller.confirm(conn)
        return lookup_service.card_json(conn, store_id=till.store_id, text=text)


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
    caller: TillTokenDep,
    db: DbDep,
    identifier: Annotated[
        str, Query(min_length=1, max_length=320, examples=["email:maria@example.com"])
    ],
) -> Response:
    # The card is JSON text already (see services.lookup), sent as it is: parsing it into the
    # model only for FastAPI to serialize it again doubled the work.
    return Response(await run_in_threadpool(_lookup, db, caller, identifier), media_type=JSON)


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
