"""Recommendation lists as HQ computes them and tills cache them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.wire import Sku, UtcDatetime, WireModel

ListKind = Literal["also_bought", "personal", "bestsellers", "trending"]


class RecommendedItem(WireModel):
    sku: Sku
    score: float = Field(ge=0)
    reason: str | None = Field(
        default=None, description="Why, in words a cashier can say ('often bought with X')."
    )


class RecommendationList(WireModel):
    """One list: ``key`` is a SKU (also_bought), a customer UUID (personal) or
    ``store_id/category`` (bestsellers, trending)."""

    kind: ListKind
    key: str = Field(min_length=1, max_length=200)
    items: tuple[RecommendedItem, ...] = Field(default=(), max_length=200)
    generated_at: UtcDatetime | None = None
