"""The customer card: what a till knows about a customer at the counter.

The card is small on purpose: tills cache one per customer of their store. HQ's full
single-customer view (the whole cross-channel timeline) never leaves HQ.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from shared.wire import MinorUnits, PlainText, Sku, UtcDatetime, WireModel

IdentifierKindName = Literal["email", "phone", "loyalty", "web_anon", "web_user", "till_local"]
ConsentChannel = Literal["email", "sms", "marketing_email", "marketing_sms", "profiling"]


class CustomerIdentifierModel(WireModel):
    """A normalized identifier on the wire (see ``shared.identifiers`` for normalization)."""

    kind: IdentifierKindName
    value: PlainText = Field(min_length=1, max_length=320)


class ConsentEvent(WireModel):
    """One consent decision. Consent is an append-only history; the newest event wins."""

    channel: ConsentChannel
    granted: bool
    at: UtcDatetime
    source: PlainText = Field(default="till", max_length=100)


class CardItem(WireModel):
    """A product on a card, with when and why it is there."""

    sku: Sku
    name: str = ""
    at: UtcDatetime | None = None
    price_minor: MinorUnits | None = None


class CustomerCard(WireModel):
    """What the till shows and uses for one customer."""

    customer_id: UUID
    first_name: str = ""
    last_name: str = ""
    identifiers: tuple[CustomerIdentifierModel, ...] = ()
    loyalty_points: int = Field(default=0, ge=-(10**12), le=10**12)
    consents: dict[ConsentChannel, bool] = Field(default_factory=dict)
    recent_purchases: tuple[CardItem, ...] = ()
    recently_viewed: tuple[CardItem, ...] = ()
    cart_items: tuple[CardItem, ...] = ()
    recommendations: tuple[Sku, ...] = ()
    provisional: bool = False
    updated_at: UtcDatetime | None = None

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or "Customer"
