"""``/api/v1/admin``: figures and till management for HQ staff."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field

from sync_server.api.deps import AdminDep, DbDep
from sync_server.api.errors import error_responses
from sync_server.db.schema import (
    dirty_cards,
    events,
    orders,
    products,
    profiles,
    quarantine,
    returns,
    tills,
)
from sync_server.services import tills as till_service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class Stats(BaseModel):
    sales: int
    orders: int
    returns: int
    customers: int
    products: int
    tills: int
    events: int
    quarantined_ops: int
    cards_pending: int = Field(description="Customer cards waiting to be rebuilt for tills")


@router.get(
    "/stats",
    response_model=Stats,
    summary="Counts of what HQ holds",
    responses=error_responses(401, 403),
)
def stats(_: AdminDep, db: DbDep) -> Stats:
    def count(table: sa.Table, *where: Any) -> int:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )

    with db.read() as conn:
        return Stats(
            sales=count(orders, orders.c.channel == "store"),
            orders=count(orders),
            returns=count(returns),
            customers=count(
                profiles,
                profiles.c.profile_id == profiles.c.customer_id,
                profiles.c.erased_at.is_(None),
            ),
            products=count(products, products.c.deleted_at.is_(None)),
            tills=count(tills, tills.c.revoked_at.is_(None)),
            events=count(events),
            quarantined_ops=count(quarantine),
            cards_pending=count(dirty_cards),
        )


@router.get(
    "/tills", summary="Enrolled tills and their sync state", responses=error_responses(401, 403)
)
def list_tills(_: AdminDep, db: DbDep) -> list[dict[str, Any]]:
    return till_service.list_tills(db)


@router.delete(
    "/tills/{till_id}",
    summary="Revoke a till's token",
    responses=error_responses(401, 403, 404, 422),
)
def revoke_till(till_id: str, _: AdminDep, db: DbDep) -> dict[str, str]:
    till_service.revoke_till(db, till_id)
    return {"till_id": till_id, "status": "revoked"}
