"""Recommendation lists for tills and HQ staff, and HQ's merchandising rules.

Lists are read as ``sync_server.services.recs`` stored them (rules already applied). Cold
start: a product without a list of its own answers an empty list, a customer without one gets
the bestsellers of their home store (or of the chain), a store without sales the chain's, and a
store with nothing trending the chain's trending list.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from shared.errors import NotFound, PermissionDenied
from shared.recommendations import RecommendationList
from sync_server.api.deps import AdminDep, CallerDep, DbDep
from sync_server.api.errors import error_responses
from sync_server.db.schema import products, profiles, recommendation_lists
from sync_server.services import recs

router = APIRouter(prefix="/api/v1", tags=["recommendations"])

SkuPath = Annotated[str, Path(min_length=1, max_length=64, examples=["GRO-000001"])]
StorePath = Annotated[str, Path(min_length=1, max_length=64, examples=["S001"])]


@router.get(
    "/products/{sku}/also-bought",
    response_model=RecommendationList,
    summary="What customers who bought a product also bought",
    responses=error_responses(401, 404, 422),
    description=(
        "The product's also-bought list, best first, with HQ's merchandising rules applied. "
        "A product nobody has bought with anything yet answers an empty list; an unknown SKU "
        "answers 404. Till or admin token."
    ),
)
def also_bought(sku: SkuPath, _: CallerDep, db: DbDep) -> RecommendationList:
    with db.read() as conn:
        found = recs.read_list(conn, recs.ALSO_BOUGHT, sku)
        if found is not None:
            return found
        known = conn.execute(
            sa.select(products.c.sku).where(products.c.sku == sku)
        ).scalar_one_or_none()
    if known is None:
        raise NotFound(f"No product with SKU {sku!r}")
    return recs.make_list(recs.ALSO_BOUGHT, sku, [])


@router.get(
    "/customers/{customer_id}/recommendations",
    response_model=RecommendationList,
    summary="A customer's personal recommendations",
    responses=error_responses(401, 404, 422),
    description=(
        "Built from the customer's purchases in every channel and their web browsing (products "
        "viewed or carted and not bought rank high; the chain's staples and what they already "
        "bought are left out), kept current within seconds of a purchase or web event. A "
        "customer without history gets the bestsellers of their home store, or of the chain. "
        "Till or admin token."
    ),
)
def customer_recommendations(customer_id: UUID, _: CallerDep, db: DbDep) -> RecommendationList:
    with db.read() as conn:
        row = conn.execute(
            sa.select(profiles.c.customer_id, profiles.c.home_store, profiles.c.erased_at).where(
                profiles.c.profile_id == customer_id
            )
        ).first()
        if row is None or row.erased_at is not None:
            raise NotFound(f"No customer {customer_id}")
        customer = str(row.customer_id)
        found = recs.read_list(conn, recs.PERSONAL, customer)
        if found is not None:
            return found
        fallback = None
        if row.home_store:
            fallback = recs.read_list(conn, recs.BESTSELLERS, f"{row.home_store}/*")
        if fallback is None:
            key = conn.execute(
                sa.select(sa.func.min(recommendation_lists.c.key)).where(
                    recommendation_lists.c.kind == recs.BESTSELLERS,
                    recommendation_lists.c.key.like("%/*"),
                )
            ).scalar_one_or_none()
            fallback = recs.read_list(conn, recs.BESTSELLERS, key) if key else None
    items = fallback.items if fallback else ()
    return recs.make_list(recs.PERSONAL, customer, [(i.sku, i.score, i.reason) for i in items])


@router.get(
    "/stores/{store_id}/bestsellers",
    response_model=RecommendationList,
    summary="A store's bestsellers, overall or in one category",
    responses=error_responses(401, 403, 422),
    description=(
        "Recent sales of the store weigh most, with a small share of the chain's so a new "
        "store or a thin category still has a list. A till may read its own store's lists "
        "only; the admin token reads any. Unknown stores and categories answer an empty list."
    ),
)
def store_bestsellers(
    store_id: StorePath,
    who: CallerDep,
    db: DbDep,
    category: Annotated[str | None, Query(min_length=1, max_length=200, examples=["Dairy"])] = None,
) -> RecommendationList:
    if who is not None and who.store_id != store_id:
        raise PermissionDenied(
            f"Till {who.till_id} belongs to store {who.store_id}, not {store_id}"
        )
    key = f"{store_id}/{category or '*'}"
    with db.read() as conn:
        found = recs.read_list(conn, recs.BESTSELLERS, key)
    return found if found is not None else recs.make_list(recs.BESTSELLERS, key, [])


TRENDING_EXAMPLE = {
    "kind": "trending",
    "key": "S001/Seasonal",
    "items": [
        {"sku": "SEA-000412", "score": 4.317, "reason": None},
        {"sku": "SEA-000415", "score": 2.906, "reason": None},
    ],
    "generated_at": "2026-11-23T15:04:05Z",
}


@router.get(
    "/stores/{store_id}/trending",
    response_model=RecommendationList,
    summary="What is selling more than usual in a store, overall or in one category",
    responses={
        200: {
            "description": "The trending list, best first",
            "content": {
                "application/json": {
                    "examples": {
                        "seasonal": {"summary": "Christmas coming", "value": TRENDING_EXAMPLE}
                    }
                }
            },
        },
        **error_responses(401, 403, 422),
    },
    description=(
        "Items whose baskets in the last 7 days clearly exceed their rate over the 28 days "
        "before: at least 5 baskets, 1.5 times the usual rate and a rise of 2 standard "
        "deviations (the score), so a few sales of a rare item do not trend. Kept current "
        "within seconds of new sales. `store_id` `*` is the whole chain, web shop included; "
        "a store with no trending list of its own answers the chain's. A till may read its "
        "own store's lists (and the chain's); the admin token reads any."
    ),
)
def store_trending(
    store_id: Annotated[
        str, Path(min_length=1, max_length=64, pattern=r"^(\*|[A-Za-z0-9_.-]+)$", examples=["S001"])
    ],
    who: CallerDep,
    db: DbDep,
    category: Annotated[
        str | None, Query(min_length=1, max_length=200, examples=["Seasonal"])
    ] = None,
) -> RecommendationList:
    if who is not None and store_id not in (who.store_id, "*"):
        raise PermissionDenied(
            f"Till {who.till_id} belongs to store {who.store_id}, not {store_id}"
        )
    key = f"{store_id}/{category or '*'}"
    with db.read() as conn:
        found = recs.read_list(conn, recs.TRENDING, key)
        if (found is None or not found.items) and store_id != "*":
            chain = recs.read_list(conn, recs.TRENDING, f"*/{category or '*'}")
            if chain is not None and chain.items:
                return recs.make_list(
                    recs.TRENDING, key, [(i.sku, i.score, i.reason) for i in chain.items]
                )
    return found if found is not None else recs.make_list(recs.TRENDING, key, [])


# ---------------------------------------------------------------------------------------------
# Merchandising rules


class RuleIn(BaseModel):
    kind: Literal["pin", "boost", "exclude"] = Field(
        description="pin: put `sku` first in `target_sku`'s list or in the lists of every "
        "product of `category`; boost: multiply the score of `sku` or of a `category`'s "
        "products by `weight`; exclude: drop `sku` or a `category` from every list."
    )
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    category: str | None = Field(default=None, min_length=1, max_length=200)
    target_sku: str | None = Field(default=None, min_length=1, max_length=64)
    weight: float = Field(default=1.0, gt=0, le=1000, description="A boost's factor.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"kind": "exclude", "category": "Tobacco"},
                {"kind": "pin", "sku": "APP-000014", "target_sku": "APP-000013"},
                {"kind": "boost", "sku": "GRO-000042", "weight": 2.0},
            ]
        }
    }


class RuleOut(BaseModel):
    rule_id: UUID
    kind: str
    sku: str | None
    category: str | None
    target_sku: str | None
    weight: float
    active: bool
    created_at: str


def _out(rule: recs.Rule) -> RuleOut:
    return RuleOut.model_validate(rule.as_json())


@router.post(
    "/admin/merchandising",
    response_model=RuleOut,
    tags=["admin"],
    summary="Add a merchandising rule (pin, boost, exclude)",
    responses=error_responses(401, 403, 422),
    description=(
        "Applies on top of every list HQ serves and sends: the also-bought, bestsellers and "
        "trending lists are recomputed and reach the tills within seconds; personal lists at "
        "the customer's next purchase or web visit, or the next `omnitill admin rebuild-recs`. "
        "The rule itself is on the feed (entity `merchandising`)."
    ),
)
def add_rule(rule: RuleIn, _: AdminDep, db: DbDep) -> RuleOut:
    return _out(
        recs.add_rule(
            db,
            kind=rule.kind,
            sku=rule.sku,
            category=rule.category,
            target_sku=rule.target_sku,
            weight=rule.weight,
        )
    )


@router.get(
    "/admin/merchandising",
    response_model=list[RuleOut],
    tags=["admin"],
    summary="Every merchandising rule",
    responses=error_responses(401, 403),
)
def list_rules(_: AdminDep, db: DbDep) -> list[RuleOut]:
    with db.read() as conn:
        return [_out(r) for r in recs.list_rules(conn)]


@router.delete(
    "/admin/merchandising/{rule_id}",
    tags=["admin"],
    summary="Delete a merchandising rule",
    responses=error_responses(401, 403, 404, 422),
)
def delete_rule(rule_id: UUID, _: AdminDep, db: DbDep) -> dict[str, str]:
    recs.delete_rule(db, rule_id)
    return {"rule_id": str(rule_id), "status": "deleted"}
