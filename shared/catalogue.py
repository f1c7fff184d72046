"""Catalogue: stores, products and prices as HQ owns them and tills cache them."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from shared.barcodes import VariableMeasureKind
from shared.tax import TaxMode
from shared.wire import CurrencyCode, MinorUnits, Sku, StoreId, TillId, UtcDatetime, WireModel

#: A tax rate in percent ("19", "8.875"); 0 <= rate < 100.
TaxRate = Annotated[Decimal, Field(ge=0, lt=100, max_digits=7, decimal_places=4)]


class Store(WireModel):
    """A store and the settings its tills need."""

    store_id: StoreId
    name: str = Field(min_length=1, max_length=200)
    city: str = ""
    currency: CurrencyCode = "EUR"
    tax_mode: TaxMode = "inclusive"
    default_region: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    timezone: str = "Europe/Berlin"
    locale: str = "en"
    tills: tuple[TillId, ...] = ()


class Product(WireModel):
    """A sellable item.

    ``gtins`` holds every barcode of the item in 14-digit normalized form. Items weighed or
    priced at the counter carry ``variable_measure`` and an ``item_reference`` instead; for
    weight items ``price_minor`` is the price per kilogram.
    """

    sku: Sku
    name: str = Field(min_length=1, max_length=300)
    brand: str = ""
    category: str = ""
    subcategory: str = ""
    gtins: tuple[str, ...] = ()
    price_minor: MinorUnits = Field(ge=0)
    currency: CurrencyCode = "EUR"
    tax_rate: TaxRate = Decimal("0")
    variable_measure: VariableMeasureKind | None = None
    item_reference: str | None = Field(default=None, pattern=r"^[0-9]{4,6}$")
    attributes: dict[str, str] = Field(default_factory=dict)
    active: bool = True


class Price(WireModel):
    """A price that overrides the product's list price in one store or chain-wide, in a window."""

    sku: Sku
    store_id: StoreId | None = None
    price_minor: MinorUnits = Field(ge=0)
    currency: CurrencyCode = "EUR"
    valid_from: UtcDatetime | None = None
    valid_to: UtcDatetime | None = None
