"""The demo chain: a believable store chain with a year of history, written as import files.

``generate_demo_data(out_dir, DemoConfig(...))`` writes ``stores.json``, ``products.csv``,
``customers.csv``, ``orders.jsonl``, ``web_events.jsonl`` and ``manifest.json``; their formats
are documented column by column in ``docs/data-formats.md``, which is also the import format of
``omnitill admin import``. The rules that make the data worth testing against:

Determinism
    Every value comes from :class:`random.Random` streams seeded from the seed and the part
    being built (``"products"``, ``"customers"``, ``"history"``), never from the clock, ``uuid4``
    or hash randomization, so the same seed and sizes give byte-identical files. The catalogue
    depends only on the seed and the product count, so growing ``--orders`` keeps the products.
    IDs are ``UUID(int=rng.getrandbits(128), version=4)``. History covers the 365 days before a
    fixed end date (default 2026-10-31T23:59:59Z).

Co-purchase structure
    Products belong to at most one *complement group* (a pasta with its sauce and cheese, a phone
    with its own case, charger and screen protector, a T-shirt with matching jeans and belt). A
    basket is one or two *anchors* drawn by Zipf-distributed popularity (from the customer's
    preferred category about half the time, from the season's products when one is on), the
    anchor's group partners each with its group's probability (0.04 to 0.35), the customer's own
    *staples* (milk, bread, eggs, bananas...) each with probability 0.45, and a little noise.
    Staples are in four baskets out of five (milk alone in one in five), so raw co-occurrence
    ranks a staple first for about half of all products, while the true partners have lifts in
    the hundreds: they are what a recommender that discounts popularity should find.

Identities
    Not everyone has every identifier (email 80 %, phone 65 %, loyalty card 70 %, web account
    40 % and only with an email). About 1 % of customer rows are a second record of an earlier
    person (same email or phone, another loyalty card, the name spelled differently), so the
    identity graph has merges to find; ``max(5, customers // 1000)`` rows carry the chain's own
    ``noreply@marktwerk.example`` that cashiers type when a customer gives none, so merge
    protection has something to protect against.

Maria's story
    The first customer row is Maria. Two days before the end date she views a T-shirt online,
    logs in and adds it to her cart, and never orders online; about 38 hours later she buys that
    T-shirt at full price in store S001 with her loyalty card. Other identified visitors who
    leave a cart sometimes do the same. ``manifest.json`` names her ids under ``stories``.

Scale
    Customers, orders and web events are streamed to their files a day at a time; what stays in
    memory is the product table and a few compact arrays per customer (16 bytes of id, home
    store, taste, staples, sign-up time, activity weight), so a million customers and a million
    orders fit in a few hundred megabytes.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import logging
import math
import time
import unicodedata
import uuid
from array import array
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import IO, Any, Final, Generic, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from shared.barcodes import (
    DEFAULT_LOYALTY_FORMAT,
    DEFAULT_RULES,
    LoyaltyFormat,
    VariableMeasureRule,
    encode_variable_measure,
    make_gtin,
    make_loyalty_number,
)

__all__ = [
    "CUSTOMER_COLUMNS",
    "DEFAULT_END_DATE",
    "DEFAULT_SEED",
    "DEMO_FILES",
    "MAX_CUSTOMERS",
    "MAX_PRODUCTS",
    "MAX_STORES",
    "MIN_CUSTOMERS",
    "MIN_ORDERS",
    "MIN_PRODUCTS",
    "PRODUCT_COLUMNS",
    "Catalogue",
    "ComplementGroup",
    "DemoConfig",
    "DemoProduct",
    "DemoSummary",
    "FileSummary",
    "MariaStory",
    "build_catalogue",
    "generate_demo_data",
    "parse_end_date",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_SEED: Final = 42
DEFAULT_END_DATE: Final = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
HISTORY_DAYS: Final = 365
MIN_PRODUCTS: Final = 100
MAX_PRODUCTS: Final = 999_999
MIN_CUSTOMERS: Final = 50
MAX_CUSTOMERS: Final = 9_999_999
MIN_ORDERS: Final = 100
MAX_STORES: Final = 999

CHAIN_NAME: Final = "Marktwerk"
CHAIN_DOMAIN: Final = "marktwerk.example"
CHAIN_CURRENCY: Final = "EUR"
SHARED_EMAIL: Final = f"noreply@{CHAIN_DOMAIN}"
LOYALTY_FORMAT: Final[LoyaltyFormat] = DEFAULT_LOYALTY_FORMAT

DEMO_FILES: Final = (
    "stores.json",
    "products.csv",
    "customers.csv",
    "orders.jsonl",
    "web_events.jsonl",
    "manifest.json",
)
PRODUCT_COLUMNS: Final = (
    "sku",
    "gtin",
    "item_reference",
    "name",
    "brand",
    "category",
    "subcategory",
    "price_minor",
    "currency",
    "tax_rate",
    "variable_measure",
    "margin_band",
    "season",
)
CUSTOMER_COLUMNS: Final = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "loyalty_number",
    "web_user_id",
    "email_consent",
    "sms_consent",
    "age_band",
    "region",
    "home_store",
    "created_at",
    "crm_segment",
    "preferred_contact",
)

DAY: Final = 86_400
_JSON_SEPARATORS: Final = (",", ":")

# German VAT: food is reduced, everything else (drinks included) standard. The catalogue is the
# chain's home-country one; per-country tax tables are not part of the demo.
FOOD_TAX: Final = "7"
STANDARD_TAX: Final = "19"

# Scale labels: GS1 restricted-circulation prefix 21 carries a price, 28 a weight in grams.
_PRICE_LABEL_RULE: Final[VariableMeasureRule] = next(r for r in DEFAULT_RULES if r.prefix == "21")
_WEIGHT_LABEL_RULE: Final[VariableMeasureRule] = next(r for r in DEFAULT_RULES if r.prefix == "28")


# ============================================================================================
# Configuration and results
# ============================================================================================


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """What to generate. Raises ``ValueError`` for sizes the generator cannot honour."""

    seed: int = DEFAULT_SEED
    stores: int = 5
    products: int = 2000
    customers: int = 5000
    orders: int = 30_000
    end_date: datetime = DEFAULT_END_DATE

    def __post_init__(self) -> None:
        _check_range("stores", self.stores, 1, MAX_STORES)
        _check_range("products", self.products, MIN_PRODUCTS, MAX_PRODUCTS)
        _check_range("customers", self.customers, MIN_CUSTOMERS, MAX_CUSTOMERS)
        _check_range("orders", self.orders, MIN_ORDERS, None)
        if self.end_date.tzinfo is None or self.end_date.utcoffset() is None:
            raise ValueError(
                f"The end date {self.end_date.isoformat()} has no time zone; give it in UTC, "
                "like 2026-10-31T23:59:59Z"
            )

    @property
    def end(self) -> datetime:
        """The end date in UTC, whole seconds."""
        return self.end_date.astimezone(UTC).replace(microsecond=0)


def _check_range(name: str, value: int, low: int, high: int | None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"The number of {name} must be {bound}, not {value}")


def parse_end_date(text: str) -> datetime:
    """``2026-10-31`` (the end of that UTC day) or an ISO 8601 time with a zone, as UTC.

    Raises ``ValueError`` with a message naming the expected form.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: use 2026-10-31 or 2026-10-31T23:59:59Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: end it with Z for UTC")
    return parsed.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True, kw_only=True)
class FileSummary:
    """One written file: data rows (lines for JSON Lines, rows after the header for CSV)."""

    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class MariaStory:
    """Where to find the viewed-online, bought-in-store customer of the architecture story."""

    customer_id: str
    web_user_id: str
    anonymous_id: str
    sku: str
    product_name: str
    cart_id: str
    viewed_at: str
    store_order_id: str
    store_id: str
    bought_at: str


@dataclass(frozen=True, kw_only=True)
class DemoSummary:
    """What :func:`generate_demo_data` wrote."""

    out_dir: Path
    config: DemoConfig
    files: tuple[FileSummary, ...]
    stats: dict[str, int]
    maria: MariaStory
    seconds: float

    def file(self, name: str) -> FileSummary:
        return next(f for f in self.files if f.name == name)


# ============================================================================================
# Stores
# ============================================================================================


class _Region(NamedTuple):
    code: str
    timezone: str
    locale: str
    cities: tuple[str, ...]
    phone_prefix: str
    phone_digits: int


# Mobile ranges that phonenumbers validates for the whole range (checked by the tests).
_REGIONS: Final[tuple[_Region, ...]] = (
    _Region("DE", "Europe/Berlin", "de", ("Berlin", "Hamburg", "München", "Köln"), "+49151", 8),
    _Region("NL", "Europe/Amsterdam", "nl", ("Amsterdam", "Rotterdam", "Utrecht"), "+3161", 7),
    _Region("FR", "Europe/Paris", "fr", ("Paris", "Lyon", "Besançon"), "+3361", 7),
    _Region("IE", "Europe/Dublin", "en", ("Dublin", "Cork", "Galway"), "+35387", 7),
    _Region("AT", "Europe/Vienna", "de", ("Wien", "Graz", "Linz"), "+43664", 7),
    _Region("BE", "Europe/Brussels", "nl", ("Antwerpen", "Gent", "Brussel"), "+3247", 7),
    _Region("IT", "Europe/Rome", "it", ("Milano", "Torino", "Bologna"), "+39347", 7),
    _Region("ES", "Europe/Madrid", "es", ("Madrid", "Barcelona", "Málaga"), "+346", 8),
    _Region("PT", "Europe/Lisbon", "pt", ("Lisboa", "Porto"), "+35191", 7),
    _Region("FI", "Europe/Helsinki", "fi", ("Helsinki", "Tampere"), "+35840", 7),
)
_REGION_BY_CODE: Final = {r.code: r for r in _REGIONS}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Store:
    store_id: str
    name: str
    city: str
    region: _Region
    tills: tuple[str, ...]
    weight: float

    def as_json(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "name": self.name,
            "city": self.city,
            "currency": CHAIN_CURRENCY,
            "tax_mode": "inclusive",
            "default_region": self.region.code,
            "timezone": self.region.timezone,
            "locale": self.region.locale,
            "tills": list(self.tills),
        }


def _build_stores(rng: Random, count: int) -> list[_Store]:
    # Round-robin over the countries first, so five stores are five countries.
    slots: list[tuple[_Region, str]] = []
    for round_ in range(max(len(r.cities) for r in _REGIONS)):
        slots.extend((r, r.cities[round_]) for r in _REGIONS if round_ < len(r.cities))
    stores = []
    for i in range(count):
        region, city = slots[i % len(slots)]
        branch = i // len(slots)
        name = f"{CHAIN_NAME} {city}" + (f" {branch + 1}" if branch else "")
        store_id = f"S{i + 1:03d}"
        tills = tuple(f"{store_id}-T{t + 1}" for t in range(rng.randint(2, 4)))
        # The first stores are the flagships: bigger, more of the customers' home store.
        weight = (1.0 / (1.0 + 0.25 * i)) * rng.uniform(0.8, 1.2)
        stores.append(
            _Store(
                store_id=store_id,
                name=name,
                city=city,
                region=region,
                tills=tills,
                weight=weight,
            )
        )
    return stores


# ============================================================================================
# Catalogue
# ============================================================================================


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoProduct:
    """One row of ``products.csv``. ``gtin`` is empty for counter-weighed or priced items."""

    sku: str
    gtin: str
    item_reference: str
    name: str
    brand: str
    category: str
    subcategory: str
    price_minor: int
    tax_rate: str
    variable_measure: str
    margin_band: str
    season: str

    def csv_row(self) -> list[str]:
        return [
            self.sku,
            self.gtin,
            self.item_reference,
            self.name,
            self.brand,
            self.category,
            self.subcategory,
            str(self.price_minor),
            CHAIN_CURRENCY,
            self.tax_rate,
            self.variable_measure,
            self.margin_band,
            self.season,
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplementGroup:
    """Products bought together; ``members`` are product indices, the lead first.

    When the lead is a basket's anchor each other member joins with ``lead_p``; when another
    member is the anchor the lead joins with ``back_p`` and the other members with ``member_p``
    (a phone's case is often bought without the phone, a phone rarely without its case).
    """

    kind: str
    members: tuple[int, ...]
    lead_p: float
    member_p: float
    back_p: float


class _Pool:
    """Products to draw from by weight (cumulative weights, binary search)."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: Sequence[int], weights: Sequence[float]) -> None:
        self.items = array("l", items)
        self.cum = array("d")
        acc = 0.0
        for w in weights:
            acc += w
            self.cum.append(acc)
        self.total = acc

    def __bool__(self) -> bool:
        return self.total > 0

    def draw(self, rng: Random) -> int:
        return self.items[bisect_right(self.cum, rng.random() * self.total)]


class _Weighted(Generic[_T]):
    """A small fixed set of choices with weights, drawn as ``random.choices`` would."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: Sequence[_T], weights: Sequence[float]) -> None:
        self.items = tuple(items)
        self.cum = tuple(accumulate(weights))
        self.total = self.cum[-1]

    def draw(self, rng: Random) -> _T:
        return self.items[bisect_right(self.cum, rng.random() * self.total)]


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    """The product table and the structure baskets are drawn from."""

    products: tuple[DemoProduct, ...]
    groups: tuple[ComplementGroup, ...]
    #: group index per product, -1 for products in no group
    group_of: tuple[int, ...]
    #: indices of the staple products every customer keeps buying
    staples: tuple[int, ...]
    #: popularity weight per product (Zipf over a random rank, times a category factor)
    popularity: tuple[float, ...]
    category_names: tuple[str, ...]
    anchor_pool: _Pool = field(repr=False)
    category_pools: tuple[_Pool, ...] = field(repr=False)
    season_pools: dict[str, _Pool] = field(repr=False)
    impulse_pool: _Pool = field(repr=False)
    category_of: bytes = field(repr=False)
    #: the T-shirt of Maria's story
    story_tshirt: int = 0


class _Spec(NamedTuple):
    """A product before it gets its SKU and barcode."""

    name: str
    brand: str
    category: str
    subcategory: str
    price_minor: int
    food: bool
    measure: str
    season: str
    margin: str
    pop: float


class _Template(NamedTuple):
    """A product, or a complement group, with slots filled once per instance.

    Each item reads ``"name | brand | subcategory | price | flags"``: the price is minor units
    or a ``low-high`` range (a shelf price ending in 9 is drawn from it); flags are ``food``
    (reduced VAT), a margin band ``A``/``B``/``C``, ``weight`` or ``price`` (sold at the counter,
    price per kg), a season, and ``pop=F`` to scale the item's popularity. ``{slot}`` takes one
    value per instance, so a T-shirt and its jeans come in the same brand.
    """

    kind: str
    category: str
    weight: float
    #: lead_p, member_p, back_p of the complement group (unused for single products)
    probabilities: tuple[float, float, float]
    slots: dict[str, tuple[str, ...]]
    items: tuple[str, ...]


def _choices(text: str) -> tuple[str, ...]:
    return tuple(text.split("|"))


_COLOURS: Final = _choices(
    "Navy|White|Black|Heather Grey|Olive|Burgundy|Sky Blue|Sand|Forest Green|Terracotta|Cream"
    "|Charcoal"
)
_BRANDS: Final = {
    "apparel": _choices(
        "Nordkind|Maison Lumière|Blue Harbour Denim|Stadtlauf|Fjällmark|Marktwerk Basics|Café Crème"
    ),
    "grocery": _choices(
        "Marktwerk|Alpenhof|Grünland Bio|Nordfrisch|Bäckerei Sonnenkorn|Maison Dubois|Fjordkost"
        "|Zuiderzee"
    ),
    "italian": _choices("Casa Rossi|Pastificio Bellini|Nonna Lucia|Marktwerk Italia"),
    "tech": _choices("Veltro|Nokko|Aurum|Kestrel|Lumio"),
    "home": _choices("Hjem|Casa Serena|Maison Dubois|Marktwerk Home|Ströhm"),
    "tail": _choices("Marktwerk|Sonnenblick|Pélican|Kleine Welt|Grünland|Åkerö"),
}


def _kit(
    kind: str,
    category: str,
    weight: float,
    probabilities: tuple[float, float, float],
    *items: str,
    **slots: str | tuple[str, ...],
) -> _Template:
    parsed = {k: _choices(v) if isinstance(v, str) else v for k, v in slots.items()}
    return _Template(kind, category, weight, probabilities, parsed, items)


def _single(category: str, weight: float, item: str, **slots: str | tuple[str, ...]) -> _Template:
    return _kit("single", category, weight, (0.0, 0.0, 0.0), item, **slots)


_STAPLES: Final = _kit(
    "staples",
    "Groceries",
    0.0,
    (0.0, 0.0, 0.0),
    "Whole Milk 3.5 % 1 l | Alpenhof | Dairy | 119 | food C pop=9",
    "Semi-Skimmed Milk 1.5 % 1 l | Alpenhof | Dairy | 109 | food C pop=6",
    "Sourdough Bread 750 g | Bäckerei Sonnenkorn | Bakery | 349 | food B pop=7",
    "Free-Range Eggs 10 pcs | Grünland Bio | Eggs | 329 | food C pop=7",
    "Bananas | | Fruit & Veg | 179 | food C weight pop=8",
    "Butter 250 g | Alpenhof | Dairy | 239 | food C pop=5",
    "Natural Yoghurt 500 g | Alpenhof | Dairy | 129 | food C pop=4",
    "Apples Elstar | | Fruit & Veg | 279 | food C weight pop=5",
    "Tomatoes on the Vine | | Fruit & Veg | 399 | food C weight pop=4",
    "Coffee Beans Crema 1 kg | Marktwerk | Coffee & Tea | 1499 | food B pop=3",
    "Wholegrain Toast 500 g | Bäckerei Sonnenkorn | Bakery | 169 | food C pop=3",
    "Cucumber | Grünland Bio | Fruit & Veg | 69 | food C pop=3",
)
# Maria's T-shirt, its jeans and belt: the first complement group, the same for every seed.
_STORY_KIT: Final = _kit(
    "outfit",
    "Apparel",
    0.0,
    (0.5, 0.3, 0.3),
    "Nordkind Organic Cotton T-Shirt Crew Neck Navy | Nordkind | T-Shirts | 1999 | A pop=2",
    "Nordkind Slim Jeans Indigo | Nordkind | Jeans | 5999 | A",
    "Nordkind Leather Belt Cognac | Nordkind | Accessories | 2999 | A",
)

# At least one item priced at the counter in every catalogue, however small.
_DELI_CHEESE: Final = _single(
    "Groceries", 0.0, "Gouda Young | | Deli Counter | 1490 | food B price"
)

_GROCERY_TEMPLATES: Final = (
    _kit(
        "pasta",
        "Groceries",
        3.0,
        (0.65, 0.5, 0.55),
        "{brand} {shape} 500 g | {brand} | Pasta | 99-249 | food C",
        "{brand} Sugo {sauce} 400 g | {brand} | Sauces | 149-379 | food",
        "{dairy} {cheese} 200 g | {dairy} | Cheese | 299-599 | food",
        brand=_BRANDS["italian"],
        shape="Spaghetti|Penne Rigate|Fusilli|Linguine|Rigatoni|Farfalle",
        sauce="Tomato & Basil|Arrabbiata|Pesto Genovese|Bolognese|Puttanesca|Carbonara",
        cheese="Parmigiano Reggiano|Grana Padano|Pecorino Romano",
        dairy="Caseificio Verdi|Latteria Sole|Marktwerk Italia",
    ),
    _kit(
        "tacos",
        "Groceries",
        1.0,
        (0.6, 0.45, 0.5),
        "{brand} Wheat Tortillas 8 pcs | {brand} | World Food | 149-249 | food",
        "{brand} Salsa {heat} 300 g | {brand} | World Food | 179-299 | food",
        "{brand} Guacamole Dip 200 g | {brand} | Chilled | 229-329 | food",
        "{brand} Grated Cheddar 150 g | {brand} | Cheese | 169-249 | food",
        brand="La Huerta|El Sol|Marktwerk",
        heat="Mild|Medium|Hot|Chipotle",
    ),
    _kit(
        "burger",
        "Groceries",
        1.0,
        (0.65, 0.4, 0.5),
        "Beef Patties {n} × 125 g | {butcher} | Meat | 399-899 | food",
        "Burger Buns {bun} 4 pcs | Bäckerei Sonnenkorn | Bakery | 199 | food",
        "{brand} Cheddar Slices 150 g | {brand} | Cheese | 169-249 | food",
        "{brand} Burger Sauce {sauce} 250 ml | {brand} | Sauces | 149-249 | food",
        n="2|4",
        butcher="Alpenhof|Weidegold",
        brand="Nordfrisch|Marktwerk|Grill Brothers",
        sauce="Classic|Smoky|Spicy|Truffle",
        bun="Brioche|Sesame|Wholegrain|Potato",
    ),
    _kit(
        "curry",
        "Groceries",
        1.0,
        (0.7, 0.45, 0.55),
        "{brand} {paste} Curry Paste 200 g | {brand} | World Food | 199-299 | food",
        "{brand} Coconut Milk 400 ml | {brand} | World Food | 129-199 | food",
        "{brand} Basmati Rice 1 kg | {brand} | Rice & Grains | 229-349 | food C",
        brand="Bangkok Kitchen|Spice Route|Marktwerk",
        paste="Red|Green|Yellow|Massaman|Panang",
    ),
    _kit(
        "breakfast",
        "Groceries",
        1.5,
        (0.55, 0.35, 0.4),
        "{brand} Granola {flavour} 500 g | {brand} | Cereals | 279-449 | food",
        "{brand} Greek-Style Yoghurt {fat} 500 g | {brand} | Dairy | 149-229 | food",
        "{brand} Blueberries 125 g | {brand} | Fruit & Veg | 179-299 | food",
        brand="Grünland Bio|Fjordkost|Marktwerk",
        flavour="Crunchy Nut|Berry|Chocolate|Apple Cinnamon|Tropical",
        fat="10 %|2 %|0.2 %",
    ),
    _kit(
        "crepes",
        "Groceries",
        0.7,
        (0.6, 0.35, 0.45),
        "{brand} Crêpe Mix {flour} 500 g | {brand} | Baking | 179-279 | food",
        "{brand} Crème fraîche 200 g | {brand} | Dairy | 119-179 | food",
        "{brand} {spread} 400 g | {brand} | Spreads | 249-449 | food",
        brand="Maison Dubois|Crêperie Bretonne|Marktwerk",
        flour="Wheat|Buckwheat|Spelt",
        spread="Hazelnut Spread|Salted Caramel Spread|Apricot Jam",
    ),
    _kit(
        "tea",
        "Groceries",
        1.0,
        (0.5, 0.3, 0.4),
        "{brand} {tea} Tea 20 Bags | {brand} | Coffee & Tea | 179-399 | food",
        "{brand} Butter Shortbread 150 g | {brand} | Biscuits | 149-279 | food",
        "{beekeeper} {honey} Honey 250 g | {beekeeper} | Spreads | 349-599 | food",
        brand="Teehaus Lindner|Fjordkost|Marktwerk",
        tea="Earl Grey|Darjeeling|Rooibos|Peppermint|Chai",
        honey="Acacia|Wildflower|Forest",
        beekeeper="Imkerei Sommer|Miel de Provence",
    ),
    _single(
        "Groceries",
        3.0,
        "{brand} {base} {variant} | {brand} | Snacks | 99-399 | food",
        brand=_BRANDS["grocery"],
        base="Crisps Paprika 175 g|Crisps Sea Salt 175 g|Salted Pretzels 200 g|Tortilla Chips 200 g"
        "|Dark Chocolate 70 % 100 g|Milk Chocolate Hazelnut 100 g|Gummy Bears 200 g"
        "|Rice Cakes 130 g|Mixed Nuts 200 g",
        variant="|||Organic|Family Pack|Classic",
    ),
    # German VAT: drinks other than milk are standard-rate.
    _single(
        "Groceries",
        3.0,
        "{brand} {base} {variant} | {brand} | Drinks | 79-449 | C",
        brand=_BRANDS["grocery"],
        base="Apple Spritzer 1 l|Cola 1.5 l|Elderflower Lemonade 0.75 l|Still Water 6 × 1.5 l"
        "|Orange Juice 1 l|Cold Brew Coffee 250 ml|Peach Iced Tea 1 l|Ginger Beer 330 ml",
        variant="|||Organic|Light|Zero",
    ),
    _single(
        "Groceries",
        3.0,
        "{brand} {base} {variant} | {brand} | Pantry | 89-899 | food C",
        brand=_BRANDS["grocery"],
        base="Extra Virgin Olive Oil 500 ml|Sea Salt 500 g|Wheat Flour Type 405 1 kg"
        "|Cane Sugar 1 kg|Balsamic Vinegar 250 ml|Chickpeas 400 g|Red Lentils 500 g"
        "|Peanut Butter 350 g|Strawberry Jam 340 g|Oat Flakes 500 g",
        variant="|||Organic|Family Pack|Classic",
    ),
    _single(
        "Groceries",
        2.0,
        "{brand} {base} | {brand} | Frozen | 149-599 | food",
        brand=_BRANDS["grocery"],
        base="Pizza Margherita|Pizza Tonno|Leaf Spinach 450 g|Fish Fingers 10 pcs"
        "|Vanilla Ice Cream 1 l|Garden Peas 750 g|Croissants to Bake 6 pcs",
    ),
    _single(
        "Groceries",
        2.5,
        "{brand} {base} | {brand} | Dairy | 79-449 | food C",
        brand=_BRANDS["grocery"],
        base="Emmentaler Slices 200 g|Brie de Meaux 200 g|Skyr 450 g|Quark 40 % 500 g"
        "|Mozzarella 125 g|Whipping Cream 200 ml|Oat Drink 1 l",
    ),
    _single(
        "Groceries",
        2.0,
        "{brand} {base} | {brand} | Bakery | 99-399 | food",
        brand=_BRANDS["grocery"],
        base="Croissants 4 pcs|Pretzel Rolls 6 pcs|Rye Bread 500 g|Pain au chocolat 4 pcs"
        "|Ciabatta 300 g|Cinnamon Buns 4 pcs",
    ),
    # Loose goods and deli portions: no brand, no barcode, priced per kg at the scale.
    _single(
        "Groceries",
        0.35,
        "{base} | | Fruit & Veg | 99-599 | food C weight",
        base="Carrots|Potatoes Waxy|Oranges|Pears Williams|Red Peppers|Courgettes|Onions|Mushrooms",
    ),
    _single(
        "Groceries",
        0.25,
        "{base} | | Deli Counter | 999-3999 | food B price",
        base="Black Forest Ham|Gouda Young|Salami Milano|Kalamata Olives|Smoked Salmon"
        "|Pâté de campagne|Comté 12 Months",
    ),
)

_APPAREL_TEMPLATES: Final = (
    _kit(
        "outfit",
        "Apparel",
        3.0,
        (0.5, 0.3, 0.3),
        "{brand} {material} T-Shirt {neck} {colour} | {brand} | T-Shirts | 999-2999 | A pop=2",
        "{brand} {fit} Jeans {wash} | {brand} | Jeans | 3999-8999 | A",
        "{brand} Leather Belt {leather} | {brand} | Accessories | 1999-4999 | A",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
        neck="Crew Neck|V-Neck|Henley",
        material="Organic Cotton|Linen Blend|Slub Cotton|Heavyweight",
        fit="Slim|Regular|Relaxed|Straight|Tapered",
        wash="Indigo|Stone Wash|Black Rinse|Mid Blue|Light Blue",
        leather="Cognac|Dark Brown|Black|Tan",
    ),
    _kit(
        "loungewear",
        "Apparel",
        1.5,
        (0.55, 0.35, 0.35),
        "{brand} Zip Hoodie {colour} | {brand} | Sweatshirts | 2999-6999 | A",
        "{brand} Joggers {colour} | {brand} | Trousers | 2499-4999 | A",
        "{brand} Sneaker Socks 3-Pack {colour} | {brand} | Socks | 799-1299 | A",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
    ),
    _kit(
        "smart",
        "Apparel",
        1.0,
        (0.45, 0.3, 0.25),
        "{brand} {shirt} {colour} | {brand} | Shirts | 2999-5999 | A",
        "{brand} Chinos {chino} | {brand} | Trousers | 3999-6999 | A",
        "{brand} Suede Derby Shoes | {brand} | Shoes | 6999-12999 | B",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
        shirt="Oxford Shirt|Flannel Shirt|Poplin Shirt|Linen Shirt",
        chino="Sand|Navy|Olive|Stone",
    ),
    _kit(
        "dress",
        "Apparel",
        1.0,
        (0.45, 0.3, 0.3),
        "{brand} Midi Dress {pattern} | {brand} | Dresses | 3999-8999 | A",
        "{brand} Leather Sandals | {brand} | Shoes | 3999-7999 | B",
        "{brand} Straw Tote Bag | {brand} | Accessories | 1999-3999 | A",
        brand=_BRANDS["apparel"],
        pattern="Floral|Polka Dot|Striped|Plain|Paisley",
    ),
    _single(
        "Apparel",
        4.0,
        "{brand} {base} {colour} | {brand} | {base} | 799-4999 | A",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
        base="Sports Socks 3-Pack|Boxer Briefs 2-Pack|Cardigan|Polo Shirt|Canvas Sneakers|Pyjamas"
        "|Leggings|Baseball Cap|Merino Jumper",
    ),
    _single(
        "Apparel",
        1.0,
        "{brand} Rain Jacket {colour} | {brand} | Outerwear | 5999-12999 | A",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
    ),
)

_ELECTRONICS_TEMPLATES: Final = (
    # A phone's own accessories: the case rarely comes without the phone's model in the basket.
    _kit(
        "phone",
        "Electronics",
        3.0,
        (0.7, 0.3, 0.08),
        "{brand} {series}{n}{suffix} {storage} GB | {brand} | Smartphones | 19900-119900"
        " | C pop=0.5",
        "{brand} {series}{n}{suffix} Silicone Case {colour} | {brand} | Phone Cases | 1499-3999"
        " | A pop=1.5",
        "{brand} {series}{n}{suffix} Fast Charger 30 W | {brand} | Chargers | 1999-3999 | A",
        "{brand} {series}{n}{suffix} Screen Protector | {brand} | Screen Protectors | 999-2499"
        " | A pop=1.3",
        brand=_BRANDS["tech"],
        series="X|S|Note |Lumen |Pro |Edge |Mini ",
        n="3|4|5|6|7|8|9|10|11|12|13|14|15|16|17|18|19",
        suffix="| | Pro| Plus| Lite|e",
        storage="128|256|512",
        colour=_COLOURS,
    ),
    _kit(
        "laptop",
        "Electronics",
        1.0,
        (0.65, 0.25, 0.05),
        '{brand} {line} {size}" Laptop {ram} GB | {brand} | Laptops | 49900-199900 | C pop=0.4',
        'Laptop Sleeve {size}" {colour} | {brand} | Laptop Accessories | 1999-3999 | A',
        "{brand} Wireless Mouse M{n} | {brand} | Laptop Accessories | 1999-5999 | A",
        "{brand} USB-C Hub 7-in-1 | {brand} | Laptop Accessories | 2999-5999 | A",
        brand=_BRANDS["tech"],
        line="Book|Air|Studio|Flex",
        size="13|14|15.6|16",
        ram="8|16|32",
        n="110|220|350|480|590|700|820|950",
        colour=_COLOURS,
    ),
    _kit(
        "tv",
        "Electronics",
        1.0,
        (0.6, 0.2, 0.05),
        '{brand} {inches}" 4K Smart TV {model} | {brand} | TVs | 39900-199900 | C pop=0.4',
        'TV Wall Mount up to {inches}" | Ströhm | TV Accessories | 2999-7999 | A',
        "HDMI 2.1 Cable 2 m | Lumio | Cables | 999-2499 | A",
        "{brand} Soundbar {channels} | {brand} | Audio | 9900-49900 | B",
        brand=_BRANDS["tech"],
        inches="43|50|55|65|75",
        model="Q60|Q80|U70|U90|OLED C4|OLED G5",
        channels="2.0|2.1|3.1|5.1",
    ),
    _kit(
        "camera",
        "Electronics",
        0.8,
        (0.6, 0.25, 0.05),
        "{brand} Snap {n}{suffix} Camera | {brand} | Cameras | 29900-149900 | C pop=0.4",
        "microSDXC {gb} GB V30 | Lumio | Memory Cards | 1499-4999 | A",
        "{brand} Snap {n}{suffix} Spare Battery | {brand} | Camera Accessories | 2999-5999 | A",
        "Camera Shoulder Bag | Fjällmark | Camera Accessories | 2999-6999 | A",
        brand=_BRANDS["tech"],
        n="1|2|3|4|5|6|7|8|9",
        suffix="| Pro| Mk II",
        gb="64|128|256",
    ),
    _single(
        "Electronics",
        3.0,
        "{brand} {base} {version} | {brand} | {base} | 499-19900 | B",
        brand=_BRANDS["tech"],
        base="AA Batteries 8-Pack|USB-C Cable 1 m|Power Bank 10000 mAh|Bluetooth Speaker"
        "|Smart Plug|Wireless Earbuds|Smartwatch|Over-Ear Headphones",
        version="|II|Pro|Go|2|3",
    ),
)

_HOME_TEMPLATES: Final = (
    _kit(
        "bedding",
        "Home",
        1.0,
        (0.7, 0.45, 0.45),
        "{brand} Duvet Cover 135 × 200 cm {colour} | {brand} | Bedding | 2999-6999 | A",
        "{brand} Pillowcase 80 × 80 cm {colour} | {brand} | Bedding | 999-1999 | A",
        "{brand} Fitted Sheet 90 × 200 cm {colour} | {brand} | Bedding | 1499-2999 | A",
        brand=_BRANDS["home"],
        colour=_COLOURS,
    ),
    _kit(
        "towels",
        "Home",
        1.0,
        (0.65, 0.4, 0.45),
        "{brand} Bath Towel 70 × 140 cm {colour} | {brand} | Bathroom | 1299-2999 | A",
        "{brand} Hand Towel 50 × 100 cm {colour} | {brand} | Bathroom | 799-1499 | A",
        "{brand} Bath Mat {colour} | {brand} | Bathroom | 1299-2499 | A",
        brand=_BRANDS["home"],
        colour=_COLOURS,
    ),
    _kit(
        "coffee",
        "Home",
        0.8,
        (0.6, 0.3, 0.1),
        "{brand} Filter Coffee Machine KM{n} | {brand} | Kitchen Appliances | 2999-12900"
        " | B pop=0.6",
        "{brand} Paper Coffee Filters Size 4, 100 pcs | {brand} | Kitchen | 149-349 | B",
        "{brand} Descaler 500 ml | {brand} | Cleaning | 399-799 | B",
        brand=_BRANDS["home"],
        n="12|20|26|34|41|58|63|77",
    ),
    _kit(
        "cookware",
        "Home",
        1.0,
        (0.55, 0.3, 0.15),
        "{brand} {material} Frying Pan {size} cm | {brand} | Cookware | 2499-8999 | B",
        "{brand} Glass Lid {size} cm | {brand} | Cookware | 999-1999 | A",
        "{brand} Silicone Spatula | {brand} | Kitchen | 499-1299 | A",
        brand=_BRANDS["home"],
        size="20|24|28|32",
        material="Cast Iron|Stainless Steel|Non-Stick|Carbon Steel",
    ),
    _kit(
        "candles",
        "Home",
        1.0,
        (0.55, 0.4, 0.4),
        "{brand} Scented Candle {scent} | {brand} | Decoration | 999-2999 | A",
        "{brand} {material} Candle Holder | {brand} | Decoration | 999-2499 | A",
        brand=_BRANDS["home"],
        scent="Vanilla|Sandalwood|Fig|Sea Salt|Lavender|Cedar",
        material="Brass|Glass|Ceramic|Marble",
    ),
    _single(
        "Home",
        3.0,
        "{brand} {base} {colour} | {brand} | Home Textiles | 799-3999 | A",
        brand=_BRANDS["home"],
        colour=_COLOURS,
        base="Storage Basket|Doormat 40 × 60 cm|Cushion Cover 50 × 50 cm|Tea Towels 3-Pack"
        "|Throw 130 × 170 cm|Table Runner",
    ),
    _single(
        "Home",
        2.0,
        "{brand} {base} {variant} | {brand} | Household | 199-3999 | B",
        brand=_BRANDS["home"],
        base="Storage Box 30 l|Kitchen Scale|Dish Brush|LED Bulb E27 806 lm"
        "|Picture Frame 13 × 18 cm|Glass Vase|Cutlery Tray|Laundry Basket",
        variant="|Classic|Compact|Large|Premium",
    ),
)

_SEASONAL_TEMPLATES: Final = (
    _kit(
        "sun",
        "Seasonal",
        1.0,
        (0.6, 0.35, 0.4),
        "{brand} Sunscreen SPF {spf} 200 ml | {brand} | Sun Care | 599-1499 | A summer",
        "{brand} After-Sun Lotion 200 ml | {brand} | Sun Care | 499-999 | A summer",
        "{brand} Sunglasses {style} | {brand} | Sunglasses | 999-3999 | A summer",
        brand="Sonnenblick|Soleil Doux|Marktwerk",
        spf="15|30|50",
        style="Aviator|Wayfarer|Round|Cat Eye",
    ),
    _kit(
        "barbecue",
        "Seasonal",
        1.0,
        (0.6, 0.35, 0.45),
        "Charcoal Briquettes 3 kg | Glutwerk | Barbecue | 499-899 | B summer",
        "Stainless Grill Tongs | Glutwerk | Barbecue | 799-1499 | A summer",
        "BBQ Sauce {flavour} 500 ml | Glutwerk | Sauces | 199-349 | food B summer",
        flavour="Smoky|Honey Mustard|Chipotle|Classic",
    ),
    _kit(
        "knitwear",
        "Seasonal",
        1.0,
        (0.6, 0.4, 0.4),
        "{brand} Knitted Gloves {colour} | {brand} | Winter Accessories | 999-2499 | A winter",
        "{brand} Knitted Scarf {colour} | {brand} | Winter Accessories | 1499-3499 | A winter",
        "{brand} Beanie {colour} | {brand} | Winter Accessories | 999-1999 | A winter",
        brand=_BRANDS["apparel"],
        colour=_COLOURS,
    ),
    _kit(
        "cosy",
        "Seasonal",
        0.7,
        (0.5, 0.3, 0.3),
        "Hot-Water Bottle {colour} | Hjem | Winter Home | 999-1999 | B winter",
        "Cosy Bed Socks {colour} | Hjem | Winter Home | 599-999 | A winter",
        "Ice Scraper with Glove | Ströhm | Car Winter | 499-999 | B winter",
        colour=_COLOURS,
    ),
    _kit(
        "christmas decorations",
        "Seasonal",
        1.0,
        (0.65, 0.4, 0.4),
        "Christmas Baubles 12 pcs {colour} | Weihnachtszauber | Decorations | 999-2499"
        " | A christmas",
        "Tinsel Garland 2 m {colour} | Weihnachtszauber | Decorations | 299-699 | A christmas",
        "LED Fairy Lights 100 Bulbs | Lumio | Decorations | 1299-2999 | A christmas",
        colour="Red|Gold|Silver|Midnight Blue|Champagne",
    ),
    _kit(
        "gift wrap",
        "Seasonal",
        0.8,
        (0.6, 0.4, 0.4),
        "Wrapping Paper {design} 3 m | Weihnachtszauber | Gift Wrap | 299-599 | A christmas",
        "Gift Tags {design} 24 pcs | Weihnachtszauber | Gift Wrap | 199-399 | A christmas",
        "Curling Ribbon 20 m | Weihnachtszauber | Gift Wrap | 149-299 | A christmas",
        design="Reindeer|Snowflakes|Kraft Stars|Nutcracker",
    ),
    _kit(
        "christmas bakery",
        "Seasonal",
        0.8,
        (0.55, 0.35, 0.4),
        "Nürnberger Lebkuchen 500 g | Bäckerei Sonnenkorn | Christmas Food | 399-699"
        " | food christmas",
        "Dresdner Christstollen 750 g | Bäckerei Sonnenkorn | Christmas Food | 899-1499"
        " | food christmas",
        "Glühwein 1 l | Weingut Rebhang | Christmas Food | 299-599 | B christmas",
    ),
)

_TAIL_TEMPLATES: Final = (
    _kit(
        "hair care",
        "Health & Beauty",
        1.0,
        (0.55, 0.45, 0.6),
        "{brand} Shampoo {variant} 250 ml | {brand} | Hair Care | 299-899 | A",
        "{brand} Conditioner {variant} 200 ml | {brand} | Hair Care | 299-899 | A",
        brand="Pélican|Åkerö|Sonnenblick",
        variant="Repair|Volume|Anti-Dandruff|Colour Care|Sensitive",
    ),
    # German VAT: pet food and books are reduced-rate.
    _kit(
        "dog",
        "Pets",
        1.0,
        (0.6, 0.3, 0.4),
        "{brand} Dog Food {flavour} 3 kg | {brand} | Pet Food | 999-2499 | food B",
        "{brand} Dog Treats {flavour} 200 g | {brand} | Pet Food | 199-499 | food A",
        brand="Pfotenglück|Marktwerk Pet",
        flavour="Chicken|Lamb & Rice|Salmon|Beef",
    ),
    _kit(
        "plants",
        "Garden",
        1.0,
        (0.55, 0.4, 0.5),
        "Terracotta Pot {size} cm | Gartenfreund | Garden | 299-1299 | A",
        "Potting Soil 20 l | Gartenfreund | Garden | 399-799 | B",
        size="12|17|21|25",
    ),
    _single(
        "Health & Beauty",
        1.5,
        "{brand} {base} {variant} | {brand} | Personal Care | 149-999 | A",
        brand=_BRANDS["tail"],
        base="Shower Gel|Toothpaste|Hand Cream|Deodorant|Face Wash|Lip Balm",
        variant="|Sensitive|Fresh|Men|Kids|Travel Size",
    ),
    _single(
        "Toys",
        1.0,
        "{brand} {base} {theme} | {brand} | Toys & Games | 799-4999 | A",
        brand=_BRANDS["tail"],
        base="Puzzle 1000 Pieces|Card Game|Building Blocks Set|Plush Bear|Board Game",
        theme="Ocean|Space|Dinosaurs|Castle|Farm|Jungle",
    ),
    _single(
        "Stationery",
        1.0,
        "{brand} {base} {colour} | {brand} | Paper & Pens | 199-2999 | A",
        brand=_BRANDS["tail"],
        base="Notebook A5 Dotted|Gel Pens 4-Pack|Sticky Notes|Fountain Pen|Ring Binder A4",
        colour=_COLOURS,
    ),
    _single(
        "Garden",
        0.8,
        "{brand} {base} | {brand} | Garden | 199-2999 | B",
        brand=_BRANDS["tail"],
        base="Garden Gloves|Watering Can 5 l|Flower Seeds Mix|Pruning Shears|Bird Feeder",
    ),
    _single(
        "Pets",
        0.6,
        "{brand} {base} | {brand} | Pet Supplies | 199-1999 | B",
        brand=_BRANDS["tail"],
        base="Cat Litter 10 l|Dog Lead|Cat Toy Mouse|Pet Bowl",
    ),
    _single(
        "Books",
        0.6,
        "{base}: {title} | Pélican | Books | 999-2999 | food B",
        base="Cookbook|Travel Guide|Crime Novel|Children's Picture Book",
        title="Sommer in Lissabon|Die stille Stunde|Le Jardin d'hiver|Zoë and the Moon"
        "|Fika at Home|Å, Ø and Æ|Het Kleine Café",
    ),
)


class _CategoryPlan(NamedTuple):
    """A share of the catalogue, how much of it comes as groups, and how popular it is."""

    name: str
    share: float
    kit_share: float
    templates: tuple[_Template, ...]
    pop_factor: float


_PLANS: Final = (
    _CategoryPlan("Groceries", 0.30, 0.45, _GROCERY_TEMPLATES, 1.6),
    _CategoryPlan("Apparel", 0.20, 0.6, _APPAREL_TEMPLATES, 1.0),
    _CategoryPlan("Electronics", 0.12, 0.65, _ELECTRONICS_TEMPLATES, 0.6),
    _CategoryPlan("Home", 0.14, 0.5, _HOME_TEMPLATES, 0.8),
    _CategoryPlan("Seasonal", 0.06, 1.0, _SEASONAL_TEMPLATES, 1.0),
    _CategoryPlan("Long tail", 0.18, 0.15, _TAIL_TEMPLATES, 0.45),
)
_CATEGORY_CODES: Final = {
    "Groceries": "GRO",
    "Apparel": "APP",
    "Electronics": "ELE",
    "Home": "HOM",
    "Seasonal": "SEA",
    "Health & Beauty": "HBA",
    "Toys": "TOY",
    "Stationery": "STA",
    "Garden": "GAR",
    "Pets": "PET",
    "Books": "BOO",
}
#: what a customer can prefer, in the order of the taste byte stored per customer
_TASTES: Final = ("Groceries", "Apparel", "Electronics", "Home", "Long tail")
_TASTE_CHOICE: Final = _Weighted(range(len(_TASTES)), (0.35, 0.25, 0.12, 0.16, 0.12))
_SEASONS: Final = ("summer", "winter", "christmas")
_SEASONAL: Final = 255


def _price(rng: Random, text: str) -> int:
    """A shelf price from ``"119"`` or ``"99-249"``: ends in 9, or in 99 from 100 euros up."""
    low, _, high = text.partition("-")
    if not high:
        return int(low)
    lo, hi = int(low), int(high)
    if hi >= 10_000:
        return rng.randint(lo // 100, hi // 100) * 100 - 1
    return rng.randint(lo // 10, hi // 10) * 10 + 9


def _instantiate(rng: Random, template: _Template) -> list[_Spec]:
    values = {name: rng.choice(options) for name, options in template.slots.items()}
    specs = []
    for item in template.items:
        name, brand, subcategory, price, flags = (part.strip() for part in item.split("|"))
        tokens = flags.split()
        pop = next((float(t[4:]) for t in tokens if t.startswith("pop=")), 1.0)
        specs.append(
            _Spec(
                name=" ".join(name.format(**values).split()),
                brand=brand.format(**values),
                category=template.category,
                subcategory=subcategory.format(**values),
                price_minor=_price(rng, price),
                food="food" in tokens,
                measure=next((t for t in tokens if t in ("weight", "price")), ""),
                season=next((t for t in tokens if t in _SEASONS), ""),
                margin=next((t for t in tokens if t in ("A", "B", "C")), "B"),
                pop=pop,
            )
        )
    return specs


_GS1_PREFIXES: Final = ("400", "401", "402", "403", "404", "405", "406", "871", "300", "539")
_FIRST_ITEM_REFERENCE: Final = 10_001
#: scales every template's partner probabilities: real partners join a basket less often than
#: the staples do, which is what makes raw co-occurrence recommend milk for everything
COMPLEMENT_STRENGTH: Final = 0.5
_IMPULSE_MAX_PRICE: Final = 2500
_VARIANTS: Final = _choices("Premium|Selection|Value Pack|Limited Edition|Essentials|Signature")


class _GtinAllocator:
    """Unique EAN-13s: one GS1 company prefix per brand, a new one every 100 000 items."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._companies: dict[tuple[str, int], str] = {}
        self._per_brand: dict[str, int] = {}
        self._next_company = rng.randrange(1000, 5000)

    def allocate(self, brand: str) -> str:
        n = self._per_brand.get(brand, 0)
        self._per_brand[brand] = n + 1
        key = (brand, n // 100_000)
        company = self._companies.get(key)
        if company is None:
            prefix = _GS1_PREFIXES[len(self._companies) % len(_GS1_PREFIXES)]
            company = f"{prefix}{self._next_company % 10_000:04d}"
            self._next_company += self._rng.randint(1, 37)
            self._companies[key] = company
        return make_gtin(f"{company}{n % 100_000:05d}")


def build_catalogue(seed: int, count: int) -> Catalogue:
    """The products for ``seed`` (``count`` of them) and the structure baskets are drawn from.

    Depends on nothing else, so tests and recommender benchmarks can rebuild the ground truth
    (the complement groups) that ``products.csv`` does not carry.
    """
    _check_range("products", count, MIN_PRODUCTS, MAX_PRODUCTS)
    rng = Random(f"omnitill-demo:{seed}:products")
    specs: list[_Spec] = []
    kits: list[tuple[int, int, _Template]] = []  # (first member, number of members, template)

    def add(template: _Template, items: list[_Spec]) -> None:
        if len(items) > 1:
            kits.append((len(specs), len(items), template))
        specs.extend(items)

    add(_STAPLES, _instantiate(rng, _STAPLES))
    kits.clear()  # staples are no group: they go with everything
    add(_STORY_KIT, _instantiate(rng, _STORY_KIT))
    add(_DELI_CHEESE, _instantiate(rng, _DELI_CHEESE))
    quotas = [max(2, round(plan.share * count)) for plan in _PLANS]
    quotas[0] += count - sum(quotas)  # rounding goes to groceries, which always have room
    made_by_plan = {"Groceries": len(_STAPLES.items) + 1, "Apparel": len(_STORY_KIT.items)}
    for plan, quota in zip(_PLANS, quotas, strict=True):
        made = made_by_plan.get(plan.name, 0)
        kit_templates = [t for t in plan.templates if len(t.items) > 1]
        single_templates = [t for t in plan.templates if len(t.items) == 1] or kit_templates
        while made < quota:
            left = quota - made
            grouped = left >= 2 and rng.random() < plan.kit_share
            pool = kit_templates if grouped else single_templates
            template = rng.choices(pool, weights=[t.weight for t in pool])[0]
            items = _instantiate(rng, template)[: left if grouped else 1]
            add(template, items)
            made += len(items)
    return _assemble_catalogue(rng, specs, kits)


def _assemble_catalogue(
    rng: Random, specs: list[_Spec], kits: list[tuple[int, int, _Template]]
) -> Catalogue:
    gtins = _GtinAllocator(rng)
    next_reference = _FIRST_ITEM_REFERENCE
    products: list[DemoProduct] = []
    seen: Counter[str] = Counter()
    for i, spec in enumerate(specs):
        # Two products with one name confuse a cashier; real ranges tell them apart like this.
        repeat = seen[spec.name]
        seen[spec.name] += 1
        name = spec.name
        if repeat:
            suffix = _VARIANTS[repeat - 1] if repeat <= len(_VARIANTS) else f"No. {repeat + 1}"
            name = f"{spec.name} {suffix}"
        measure = spec.measure
        if measure and next_reference > 99_999:
            measure = ""  # out of five-digit item references: sold prepacked instead
        reference = gtin = ""
        if measure:
            reference = f"{next_reference:05d}"
            next_reference += 1
        else:
            gtin = gtins.allocate(spec.brand or spec.category)
        products.append(
            DemoProduct(
                sku=f"{_CATEGORY_CODES[spec.category]}-{i + 1:06d}",
                gtin=gtin,
                item_reference=reference,
                name=name,
                brand=spec.brand,
                category=spec.category,
                subcategory=spec.subcategory,
                price_minor=spec.price_minor,
                tax_rate=FOOD_TAX if spec.food else STANDARD_TAX,
                variable_measure=measure,
                margin_band=spec.margin,
                season=spec.season,
            )
        )
    group_of = [-1] * len(products)
    groups: list[ComplementGroup] = []
    for start, size, template in kits:
        members = tuple(range(start, start + size))
        for m in members:
            group_of[m] = len(groups)
        lead_p, member_p, back_p = (p * COMPLEMENT_STRENGTH for p in template.probabilities)
        groups.append(
            ComplementGroup(
                kind=template.kind,
                members=members,
                lead_p=lead_p,
                member_p=member_p,
                back_p=back_p,
            )
        )

    staples = tuple(range(len(_STAPLES.items)))
    ranks = list(range(len(products)))
    rng.shuffle(ranks)
    plan_of = {t.category: p for p in _PLANS for t in p.templates}
    popularity = tuple(
        spec.pop * plan_of[spec.category].pop_factor / (ranks[i] + 10) ** 1.05
        for i, spec in enumerate(specs)
    )
    taste_index = {name: i for i, name in enumerate(_TASTES)}
    category_of = bytes(
        _SEASONAL
        if spec.category == "Seasonal"
        else taste_index.get(plan_of[spec.category].name, taste_index["Long tail"])
        for spec in specs
    )
    regular = [i for i in range(len(products)) if i >= len(staples) and category_of[i] != _SEASONAL]
    # Noise is impulse buys: anything cheap, whatever its popularity.
    impulse = [i for i in regular if products[i].price_minor <= _IMPULSE_MAX_PRICE]
    by_taste = [[i for i in regular if category_of[i] == t] for t in range(len(_TASTES))]
    season_members = {s: [i for i, p in enumerate(products) if p.season == s] for s in _SEASONS}
    return Catalogue(
        products=tuple(products),
        groups=tuple(groups),
        group_of=tuple(group_of),
        staples=staples,
        popularity=popularity,
        category_names=tuple(sorted({p.category for p in products})),
        anchor_pool=_Pool(regular, [popularity[i] for i in regular]),
        category_pools=tuple(_Pool(m, [popularity[i] for i in m]) for m in by_taste),
        season_pools={s: _Pool(m, [popularity[i] for i in m]) for s, m in season_members.items()},
        impulse_pool=_Pool(impulse, [1.0] * len(impulse)),
        category_of=category_of,
        story_tshirt=len(staples),
    )


# ============================================================================================
# Customers
# ============================================================================================

_FIRST_NAMES: Final = {
    "DE": _choices(
        "Anna|Lukas|Jürgen|Sophie|Maximilian|Käthe|Jörg|Leonie|Felix|Hannah|Paul"
        "|Mia|Björn|Günther|Emma|Jonas|Zoë|Katharina"
    ),
    "NL": _choices("Daan|Sanne|Bram|Zoë|Sem|Fleur|Thijs|Lotte|Jeroen|Eva|Noor|Joëlle|Anouk|Ruben"),
    "FR": _choices(
        "François|Camille|Léa|Hélène|Jérôme|Chloé|Théo|Amélie|Noël|Gaëlle|Louis|Zoé|Inès|Mathéo"
    ),
    "IE": _choices("Siobhán|Seán|Aoife|Niamh|Ciarán|Pádraig|Orla|Conor|Saoirse|Éabha|Liam|Róisín"),
    "AT": _choices(
        "Lukas|Katharina|Florian|Johanna|Matthias|Theresa|Sebastian|Magdalena"
        "|Jakob|Verena|Jürgen|Lena"
    ),
    "BE": _choices("Lucas|Louise|Arthur|Élise|Victor|Noah|Lina|Wout|Ine"),
    "IT": _choices("Giulia|Lorenzo|Francesca|Niccolò|Chiara|Matteo|Lucía|Alessandro"),
    "ES": _choices("José|María|Lucía|Álvaro|Sofía|Martín|Begoña|Íñigo"),
    "PT": _choices("João|Inês|Tomás|Beatriz|Gonçalo|Leonor|Sebastião"),
    "FI": _choices("Jukka|Aino|Väinö|Elina|Mikko|Sanna|Eetu"),
    "*": _choices(
        "Łukasz|Małgorzata|Agnieszka|Paweł|Mehmet|Ayşe|Zoë|José|François|Ngozi"
        "|Chidi|Dragoș|Ionuț|Søren|Åsa|Ewa|Thảo|Nikolaos"
    ),
}
_LAST_NAMES: Final = {
    "DE": _choices(
        "Müller|Schmidt|Schneider|Fischer|Weber|Meyer|Wagner|Becker|Schröder"
        "|Hoffmann|Weiß|Krüger|Groß|Köhler|Schäfer|Jäger"
    ),
    "NL": _choices(
        "de Jong|Jansen|de Vries|van den Berg|van Dijk|Bakker|Visser|Smit|Meijer"
        "|de Boer|Mulder|van der Linden"
    ),
    "FR": _choices(
        "Martin|Bernard|Dubois|Thomas|Robert|Richard|Petit|Durand|Lefèvre|Moreau"
        "|Girard|Mercier|Rousseau|Béranger"
    ),
    "IE": _choices(
        "Murphy|Kelly|O'Sullivan|Walsh|O'Brien|Byrne|Ryan|Ó Briain|McCarthy|Doyle|Ní Bhriain"
    ),
    "AT": _choices("Gruber|Huber|Bauer|Wagner|Pichler|Steiner|Moser|Mayer|Hofer|Leitner|Strauß"),
    "BE": _choices("Peeters|Janssens|Maes|Dubois|Lambert|Dupont|Claes|Wouters"),
    "IT": _choices("Rossi|Russo|Ferrari|Esposito|Bianchi|Colombo|Ricci|Marino"),
    "ES": _choices("García|Fernández|González|Rodríguez|López|Martínez|Sánchez|Muñoz"),
    "PT": _choices("Silva|Santos|Ferreira|Pereira|Oliveira|Costa|Gonçalves"),
    "FI": _choices("Korhonen|Virtanen|Mäkinen|Nieminen|Mäkelä|Hämäläinen"),
    "*": _choices(
        "Kowalski|Nowak|Wiśniewska|Yılmaz|Demir|Öztürk|Nguyễn|Popescu|Jørgensen"
        "|Åberg|Okafor|Dvořák|Novák|Papadopoulos"
    ),
}
_SHORT_NAMES: Final = {
    "Katharina": "Kathi",
    "Maximilian": "Max",
    "Alessandro": "Sandro",
    "Magdalena": "Lena",
    "Sebastian": "Basti",
    "Małgorzata": "Gosia",
    "Johanna": "Hanna",
    "Matthias": "Matze",
    "Francesca": "Franci",
    "Nikolaos": "Nikos",
}
_TRANSLITERATION: Final = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)
_ASCII_FOLD: Final = str.maketrans(
    {
        "ß": "ss",
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "Ae",
        "œ": "oe",
        "ı": "i",
        "đ": "d",
        "Đ": "D",
    }
)
_EMAIL_DOMAINS: Final = (
    "example.com",
    "example.net",
    "example.org",
    "mail.example",
    "post.example",
)
_AGE_BANDS: Final = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_CHOICE: Final = _Weighted(_AGE_BANDS, (0.11, 0.2, 0.2, 0.19, 0.16, 0.14))
# segment, share, activity weight (relative number of orders)
_SEGMENTS: Final = (
    ("regular", 0.42, 2.0),
    ("occasional", 0.26, 0.7),
    ("vip", 0.05, 6.0),
    ("new", 0.12, 1.2),
    ("lapsed", 0.15, 0.15),
)
STAPLES_PER_CUSTOMER: Final = 4
_STAPLE_CHOICE: Final = _Weighted(
    range(len(_STAPLES.items)), [float(item.rsplit("pop=", 1)[1]) for item in _STAPLES.items]
)
_DUPLICATE_ACTIVITY: Final = 0.4
_SOURCE_WINDOW: Final = 500


@cache
def _ascii_fold(text: str) -> str:
    """Lowercase ASCII letters only: what people put in an email address for their name."""
    decomposed = unicodedata.normalize(
        "NFKD", text.translate(_TRANSLITERATION).translate(_ASCII_FOLD)
    )
    return "".join(c for c in decomposed.lower() if c.isascii() and c.isalpha())


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


def _misspelt(rng: Random, first: str, last: str) -> tuple[str, str]:
    """The same person's name as another cashier typed it."""
    options: list[tuple[str, str]] = []
    if last.translate(_TRANSLITERATION) != last:
        options.append((first, last.translate(_TRANSLITERATION)))
    stripped = (_strip_accents(first), _strip_accents(last))
    if stripped != (first, last):
        options.append(stripped)
    if first in _SHORT_NAMES:
        options.append((_SHORT_NAMES[first], last))
    options.append((first, last.upper()))
    if len(last) >= 4:
        i = rng.randrange(1, len(last) - 2)
        swapped = last[:i] + last[i + 1] + last[i] + last[i + 2 :]
        if swapped != last:
            options.append((first, swapped))
        options.append((first, last[: i + 1] + last[i] + last[i + 1 :]))
    return rng.choice(options)


class _CustomerBook:
    """What the history needs per customer, in compact arrays (a million customers fit)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ids = bytearray(16 * count)
        self.home = array("H", bytes(2 * count))
        self.taste = bytearray(count)
        self.staples = bytearray(STAPLES_PER_CUSTOMER * count)
        self.created = array("q", bytes(8 * count))
        self.weights = array("d", bytes(8 * count))
        #: the web shop account id and its email for customers who have one, else ""
        self.web_user: list[str] = [""] * count
        self.web_email: list[str] = [""] * count
        self.duplicates = 0
        self.shared_email = 0

    def staples_of(self, index: int) -> bytes:
        return bytes(
            self.staples[STAPLES_PER_CUSTOMER * index : STAPLES_PER_CUSTOMER * (index + 1)]
        )

    def customer_id(self, index: int) -> str:
        return str(uuid.UUID(bytes=bytes(self.ids[16 * index : 16 * index + 16])))

    def pools(self) -> tuple[_Pool, _Pool]:
        """Everyone (by activity) and the customers with a web account (by activity)."""
        everyone = _Pool(range(self.count), self.weights)
        web = [i for i in range(self.count) if self.web_user[i] and self.weights[i] > 0]
        return everyone, _Pool(web, [self.weights[i] for i in web])


class _Person(NamedTuple):
    first: str
    last: str
    email: str
    phone: str
    region: str
    home: int
    created: int


def _new_uuid(rng: Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


_UUID_VERSION_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_VERSION_4: Final = (0x4000 << 64) | (0x8000 << 48)


def _new_uuid_text(rng: Random) -> str:
    """``str(_new_uuid(rng))``, three times faster: millions of events each need one."""
    h = f"{(rng.getrandbits(128) & _UUID_VERSION_CLEAR) | _UUID_VERSION_4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _write_customers(
    writer: Any,
    *,
    rng: Random,
    count: int,
    stores: Sequence[_Store],
    window_start: int,
    end: int,
) -> _CustomerBook:
    book = _CustomerBook(count)
    store_choice = _Weighted(range(len(stores)), [s.weight for s in stores])
    chain_regions = sorted({s.region.code for s in stores})
    duplicate_rows = set(rng.sample(range(20, count), k=max(2, round(count * 0.01))))
    shared_rows: set[int] = set()
    while len(shared_rows) < max(5, count // 1000):
        row = rng.randrange(1, count)
        if row not in duplicate_rows:
            shared_rows.add(row)
    # Multiplicative scrambles: injective below their modulus, so numbers never collide.
    loyalty_offset = rng.randrange(10**8)
    web_offset = rng.randrange(10**9)
    phone_offset = rng.randrange(10**7)
    recent: deque[_Person] = deque(maxlen=_SOURCE_WINDOW)
    six_years = 6 * 365 * DAY
    segment_choice = _Weighted([s[0] for s in _SEGMENTS], [s[1] for s in _SEGMENTS])
    segment_activity = {s[0]: s[2] for s in _SEGMENTS}

    def phone_for(region_code: str, row: int) -> str:
        region = _REGION_BY_CODE[region_code]
        modulus = 10**region.phone_digits
        number = (row * 7_654_321 + phone_offset) % modulus
        return f"{region.phone_prefix}{number:0{region.phone_digits}d}"

    def loyalty_for(row: int) -> str:
        return make_loyalty_number(LOYALTY_FORMAT, (row * 3_141_593 + loyalty_offset) % 10**8)

    def web_user_for(row: int) -> str:
        return f"wu-{(row * 2_718_281 + web_offset) % 10**9:09d}"

    for row in range(count):
        customer_id = _new_uuid(rng)
        book.ids[16 * row : 16 * row + 16] = customer_id.bytes
        staples = _pick_staples(rng)
        book.staples[STAPLES_PER_CUSTOMER * row : STAPLES_PER_CUSTOMER * (row + 1)] = bytes(staples)
        book.taste[row] = _TASTE_CHOICE.draw(rng)
        if row == 0:
            person, fields = _maria(rng, end, phone_for, loyalty_for, web_user_for)
            book.web_user[0] = fields["web_user_id"]
            book.web_email[0] = person.email
            book.home[0] = 0
            book.created[0] = person.created
            book.weights[0] = 0.0  # her history is written by hand, see _History.maria_story
            book.taste[0] = 0  # groceries: her trips before the T-shirt are food shopping
            book.staples[0:STAPLES_PER_CUSTOMER] = bytes((0, 2, 4, 5))
            writer.writerow([str(customer_id), *fields.values()])
            recent.append(person)
            continue

        source = None
        if row in duplicate_rows:
            candidates = [p for p in recent if p.email or p.phone]
            source = rng.choice(candidates) if candidates else None
        if source is not None:
            # A second record of an earlier person: a cashier did not find them and made a new
            # one, with a new loyalty card and the name typed differently.
            first, last = _misspelt(rng, source.first, source.last)
            share_email = bool(source.email) and (not source.phone or rng.random() < 0.6)
            share_phone = bool(source.phone) and (not share_email or rng.random() < 0.4)
            email = source.email if share_email else ""
            if email and rng.random() < 0.3:
                email = email.capitalize() if rng.random() < 0.5 else email.upper()
            phone = source.phone if share_phone else ""
            region = source.region
            home = source.home
            created = min(end - DAY, source.created + rng.randint(7 * DAY, 400 * DAY))
            segment = "occasional"
            activity = _DUPLICATE_ACTIVITY
            loyalty = loyalty_for(row)
            web_user = ""
            book.duplicates += 1
        else:
            home = store_choice.draw(rng)
            region = stores[home].region.code
            if rng.random() < 0.04:
                region = rng.choice(chain_regions)  # lives across a border, or moved
            pool = region if rng.random() < 0.8 else "*"
            first = rng.choice(_FIRST_NAMES[pool])
            last = rng.choice(_LAST_NAMES[pool])
            segment = segment_choice.draw(rng)
            activity = segment_activity[segment] * rng.uniform(0.5, 1.5)
            if segment == "new":
                created = rng.randint(end - 120 * DAY, end - DAY)
            elif segment == "lapsed" or rng.random() < 0.75:
                created = rng.randint(end - six_years, window_start - DAY)
            else:
                created = rng.randint(window_start, end - DAY)
            has_email = rng.random() < 0.8
            has_phone = rng.random() < 0.65
            has_loyalty = rng.random() < 0.7 or not (has_email or has_phone)
            email = _email_for(rng, first, last, row) if has_email else ""
            phone = phone_for(region, row) if has_phone else ""
            loyalty = loyalty_for(row) if has_loyalty else ""
            web_user = web_user_for(row) if has_email and rng.random() < 0.5 else ""
            if row in shared_rows:
                # The cashier typed the chain's own address for a customer who gave none.
                email = rng.choice((SHARED_EMAIL, SHARED_EMAIL, SHARED_EMAIL.capitalize()))
                web_user = ""
                loyalty = loyalty or loyalty_for(row)
                book.shared_email += 1
            recent.append(_Person(first, last, email, phone, region, home, created))
        email_consent = bool(email) and SHARED_EMAIL not in email.lower() and rng.random() < 0.55
        sms_consent = bool(phone) and rng.random() < 0.35
        preferred = _preferred_contact(rng, email_consent=email_consent, sms_consent=sms_consent)
        book.home[row] = home
        book.created[row] = created
        book.weights[row] = activity
        if web_user:
            book.web_user[row] = web_user
            book.web_email[row] = email.lower()
        writer.writerow(
            [
                str(customer_id),
                first,
                last,
                email,
                phone,
                loyalty,
                web_user,
                _bool(email_consent),
                _bool(sms_consent),
                _AGE_CHOICE.draw(rng),
                region,
                stores[home].store_id,
                _iso(created),
                segment,
                preferred,
            ]
        )
    return book


def _maria(
    rng: Random,
    end: int,
    phone_for: Callable[[str, int], str],
    loyalty_for: Callable[[int], str],
    web_user_for: Callable[[int], str],
) -> tuple[_Person, dict[str, str]]:
    created = end - 900 * DAY + 10 * 3600 + 1234
    email = "maria.schmidt@example.com"
    person = _Person("Maria", "Schmidt", email, phone_for("DE", 0), "DE", 0, created)
    fields = {
        "first_name": person.first,
        "last_name": person.last,
        "email": email,
        "phone": person.phone,
        "loyalty_number": loyalty_for(0),
        "web_user_id": web_user_for(0),
        "email_consent": "true",
        "sms_consent": "false",
        "age_band": "35-44",
        "region": "DE",
        "home_store": "S001",
        "created_at": _iso(created),
        "crm_segment": "regular",
        "preferred_contact": "email",
    }
    return person, fields


def _pick_staples(rng: Random) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < STAPLES_PER_CUSTOMER:
        s = _STAPLE_CHOICE.draw(rng)
        if s not in chosen:
            chosen.append(s)
    return chosen


def _email_for(rng: Random, first: str, last: str, row: int) -> str:
    f, la = _ascii_fold(first), _ascii_fold(last)
    # The row number keeps addresses unique: two people never share one by accident.
    style = rng.random()
    if style < 0.45:
        local = f"{f}.{la}{row}"
    elif style < 0.65:
        local = f"{f[:1]}{la}{row}"
    elif style < 0.8:
        local = f"{la}.{f}{row}"
    elif style < 0.97:
        local = f"{f}_{la}{row}"
    else:
        # Internationalized addresses (RFC 6531) exist; normalization must keep them intact.
        local = f"{first.lower()}.{row}"
    email = f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
    if rng.random() < 0.05:
        email = email[:1].upper() + email[1:]  # typed with a capital: normalization lowercases
    return email


def _preferred_contact(rng: Random, *, email_consent: bool, sms_consent: bool) -> str:
    if email_consent and (not sms_consent or rng.random() < 0.7):
        return "email"
    if sms_consent:
        return "sms"
    return "post" if rng.random() < 0.1 else "none"


def _bool(value: bool) -> str:
    return "true" if value else "false"


# ============================================================================================
# Time
# ============================================================================================

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# Formatting millions of timestamps with datetime is a third of the run time; a table of the
# 86 400 clock times and one date prefix per day make it a string join.
@cache
def _day_prefix(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


@cache
def _clock_times() -> tuple[str, ...]:
    return tuple(
        f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
    )


def _iso(ts: int) -> str:
    """``2026-10-31T23:59:59Z`` for a Unix time in seconds."""
    day, rest = divmod(ts, DAY)
    return f"{_day_prefix(day)}{_clock_times()[rest]}Z"


def _iso_ms(ts_ms: int) -> str:
    """``2026-10-31T23:59:59.123Z`` for a Unix time in milliseconds."""
    seconds, millis = divmod(ts_ms, 1000)
    day, rest = divmod(seconds, DAY)
    return f"{_day_prefix(day)}{_clock_times()[rest]}.{millis:03d}Z"


def _major(minor: int) -> str:
    """A EUR amount as Segment writes prices: ``"12.99"``."""
    return f"{minor // 100}.{minor % 100:02d}"


# Local opening hours (stores) and browsing hours (online), as relative weights per hour.
_STORE_HOURS: Final = _Weighted(range(8, 20), (4, 6, 8, 9, 10, 8, 7, 8, 10, 11, 9, 5))
_ONLINE_HOURS: Final = _Weighted(
    range(6, 24), (1, 2, 3, 3, 3, 4, 4, 3, 3, 3, 4, 5, 6, 7, 9, 10, 8, 5)
)
_WEEKDAY_WEIGHTS: Final = (0.9, 0.9, 0.95, 1.0, 1.15, 1.35, 0.55)
_MONTH_WEIGHTS: Final = (0.85, 0.85, 0.95, 0.97, 1.0, 1.0, 1.02, 1.0, 0.98, 1.0, 1.08, 1.35)


def _day_weight(day: date) -> float:
    weight = _WEEKDAY_WEIGHTS[day.weekday()] * _MONTH_WEIGHTS[day.month - 1]
    if (day.month, day.day) in ((12, 25), (12, 26), (1, 1)):
        weight *= 0.15  # most stores closed
    elif day.month == 12 and 15 <= day.day <= 23:
        weight *= 1.3  # the Christmas rush
    return weight


def _season_weights(day: date) -> tuple[float, float, float]:
    """How much each season's products sell on ``day`` (summer, winter, christmas)."""
    m = day.month
    summer = 1.0 if m in (6, 7, 8) else 0.35 if m in (5, 9) else 0.02
    winter = 1.0 if m in (12, 1, 2) else 0.4 if m in (11, 3) else 0.0
    if m == 12 and day.day <= 24:
        christmas = 1.5
    elif m == 11:
        christmas = 1.0 if day.day >= 15 else 0.3
    elif m == 12:
        christmas = 0.1
    else:
        christmas = 0.0
    return summer, winter, christmas


class _SeasonContext(NamedTuple):
    probability: float
    weights: tuple[float, float, float]


def _randround(rng: Random, value: float) -> int:
    whole = math.floor(value)
    return whole + (1 if rng.random() < value - whole else 0)


# ============================================================================================
# History: orders and web events, a day at a time
# ============================================================================================

ONLINE_SHARE: Final = 0.25
ANONYMOUS_STORE_SHARE: Final = 0.35
HOME_STORE_SHARE: Final = 0.85
ABANDONED_PER_ONLINE_ORDER: Final = 0.8
BROWSE_PER_ONLINE_ORDER: Final = 1.0
IN_STORE_AFTER_CART: Final = 0.25
_STAPLE_P_STORE: Final = 0.45
_STAPLE_P_ONLINE: Final = 0.2
_NOISE_P: Final = 0.5
_TASTE_P: Final = 0.5
_MAX_SESSION_LEAD: Final = 3 * 3600
_WEIGHT_RANGES: Final = {"Fruit & Veg": (250, 1800), "Deli Counter": (80, 450)}


class _Pending(NamedTuple):
    ts: int
    seq: int
    order_id: str
    customer: int
    store: int
    products: tuple[int, ...]
    extend: bool


class _Sink:
    """A UTF-8 file that counts its rows and hashes what it writes, in one pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb", buffering=1 << 20)
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.rows = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._hash.update(data)
        self._file.write(data)
        self.bytes += len(data)
        return len(text)

    def write_lines(self, lines: Sequence[str]) -> None:
        if lines:
            self.write("\n".join(lines) + "\n")
            self.rows += len(lines)

    def close(self) -> FileSummary:
        self._file.close()
        return FileSummary(
            name=self.path.name.removesuffix(".partial"),
            rows=self.rows,
            bytes=self.bytes,
            sha256=self._hash.hexdigest(),
        )

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=_JSON_SEPARATORS)


def _dumps(obj: object) -> str:
    return _ENCODER.encode(obj)


class _History:
    """Writes orders.jsonl and web_events.jsonl in time order, streaming a day at a time.

    Orders of a day are generated, sorted and written before the next day starts. A store
    purchase that follows an online cart one or two days later is scheduled ahead in a small
    heap and takes its place in that day's quota, so the order count stays exact. Web events
    are kept in a heap until no later day can produce an earlier event (sessions start at most
    ``_MAX_SESSION_LEAD`` before the order that ends them).
    """

    def __init__(
        self,
        *,
        config: DemoConfig,
        catalogue: Catalogue,
        stores: Sequence[_Store],
        book: _CustomerBook,
        orders: _Sink,
        events: _Sink,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.rng = Random(f"omnitill-demo:{config.seed}:history")
        self.config = config
        self.cat = catalogue
        self.products = catalogue.products
        self.vm = bytes(1 if p.variable_measure else 0 for p in catalogue.products)
        self.grocery = bytes(1 if p.category == "Groceries" else 0 for p in catalogue.products)
        self.stores = stores
        self.store_pool = _Pool(range(len(stores)), [s.weight for s in stores])
        self.book = book
        self.everyone, self.web_customers = book.pools()
        self.orders_sink = orders
        self.events_sink = events
        self.on_progress = on_progress
        self.end = int(config.end.timestamp())
        self.start = self.end - HISTORY_DAYS * DAY + 1
        self.day0 = self.start - self.start % DAY
        self.days = self.end // DAY - self.start // DAY + 1
        self.seq = 0
        self.future: list[_Pending] = []
        self.event_heap: list[tuple[int, int, str]] = []
        self.reserved = [0] * self.days
        self.quota = [0] * self.days
        self.offsets: dict[tuple[str, int], int] = {}
        self.product_json: dict[int, str] = {}
        self.stats = {
            "store_orders": 0,
            "online_orders": 0,
            "anonymous_store_orders": 0,
            "order_lines": 0,
            "web_sessions": 0,
            "abandoned_carts": 0,
            "carts_bought_in_store": 0,
        }

    # --- helpers ----------------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def new_id(self) -> str:
        return _new_uuid_text(self.rng)

    def day_of(self, ts: int) -> int:
        return (ts - self.day0) // DAY

    def utc_offset(self, timezone: str, day: int) -> int:
        key = (timezone, day)
        offset = self.offsets.get(key)
        if offset is None:
            noon = datetime.fromtimestamp(self.day0 + day * DAY + DAY // 2, UTC)
            delta = noon.astimezone(ZoneInfo(timezone)).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self.offsets[key] = offset
        return offset

    def local_time(self, day: int, timezone: str, *, online: bool) -> int:
        """A Unix time on ``day`` in the store's (or shopper's) busy hours, inside the window."""
        rng = self.rng
        hours = _ONLINE_HOURS if online else _STORE_HOURS
        base = self.day0 + day * DAY - self.utc_offset(timezone, day)
        ts = base
        for _ in range(20):
            hour = hours.draw(rng)
            ts = base + hour * 3600 + rng.randrange(3600)
            if self.start <= ts <= self.end:
                return ts
        return min(max(ts, self.start), self.end)

    def pick_customer(self, pool: _Pool, ts: int) -> int:
        """A customer who had signed up by ``ts``, or -1."""
        created = self.book.created
        for _ in range(20):
            c = pool.draw(self.rng)
            if created[c] <= ts:
                return c
        return -1

    def season(self, day: int) -> _SeasonContext:
        weights = _season_weights(datetime.fromtimestamp(self.day0 + day * DAY, UTC).date())
        return _SeasonContext(min(0.3, 0.12 * sum(weights)), weights)

    # --- baskets ----------------------------------------------------------------------------

    def anchor(self, taste: int, season: _SeasonContext) -> int:
        rng = self.rng
        cat = self.cat
        if season.probability and rng.random() < season.probability:
            name = rng.choices(_SEASONS, weights=season.weights)[0]
            pool = cat.season_pools[name]
            if pool:
                return pool.draw(rng)
        if rng.random() < _TASTE_P:
            pool = cat.category_pools[taste]
            if pool:
                return pool.draw(rng)
        return cat.anchor_pool.draw(rng)

    def add_with_partners(self, chosen: dict[int, None], product: int) -> None:
        chosen[product] = None
        g = self.cat.group_of[product]
        if g < 0:
            return
        group = self.cat.groups[g]
        lead = group.members[0]
        rng = self.rng
        for m in group.members:
            if m == product:
                continue
            if product == lead:
                p = group.lead_p
            elif m == lead:
                p = group.back_p
            else:
                p = group.member_p
            if rng.random() < p:
                chosen[m] = None

    def basket(self, customer: int, season: _SeasonContext, *, online: bool) -> list[int]:
        """Products of one basket: anchors and their partners, staples, a little noise."""
        rng = self.rng
        cat = self.cat
        chosen: dict[int, None] = {}
        if customer >= 0:
            taste = self.book.taste[customer]
            staples = self.book.staples_of(customer)
        else:
            taste = _TASTE_CHOICE.draw(rng)
            staples = bytes(_pick_staples(rng))
        for _ in range(1 if rng.random() < 0.5 else 2):
            self.add_with_partners(chosen, self.anchor(taste, season))
        staple_p = _STAPLE_P_ONLINE if online else _STAPLE_P_STORE
        for s in staples:
            if rng.random() < staple_p:
                chosen[cat.staples[s]] = None
        while rng.random() < _NOISE_P:
            pool = cat.impulse_pool if rng.random() < 0.5 else cat.anchor_pool
            chosen[pool.draw(rng)] = None
        items = [p for p in chosen if not (online and self.vm[p])]
        if not items:
            items = [cat.staples[0] if not online else cat.anchor_pool.draw(rng)]
            if online and self.vm[items[0]]:
                items = [cat.story_tshirt]
        return items

    def lines(self, products: Sequence[int]) -> tuple[list[dict[str, Any]], int]:
        rng = self.rng
        lines: list[dict[str, Any]] = []
        total = 0
        for p in products:
            product = self.products[p]
            if product.variable_measure:
                low, high = _WEIGHT_RANGES.get(product.subcategory, (200, 1200))
                grams = rng.randint(low // 5, high // 5) * 5
                price = (grams * product.price_minor + 500) // 1000
                line: dict[str, Any] = {
                    "sku": product.sku,
                    "quantity": 1,
                    "unit_price_minor": price,
                }
                if product.variable_measure == "weight":
                    line["weight_g"] = grams
                    line["label"] = encode_variable_measure(
                        _WEIGHT_LABEL_RULE, product.item_reference, grams
                    )
                else:
                    line["label"] = encode_variable_measure(
                        _PRICE_LABEL_RULE, product.item_reference, price
                    )
                total += price
            else:
                r = rng.random()
                if self.grocery[p]:
                    qty = 1 if r < 0.72 else 2 if r < 0.92 else 3 if r < 0.98 else 4
                else:
                    qty = 1 if r < 0.93 else 2
                line = {
                    "sku": product.sku,
                    "quantity": qty,
                    "unit_price_minor": product.price_minor,
                }
                total += qty * product.price_minor
            lines.append(line)
        return lines, total

    def order(
        self,
        *,
        ts: int,
        order_id: str,
        store: int,
        customer: int,
        products: Sequence[int],
    ) -> tuple[int, int, str, list[dict[str, Any]], int]:
        lines, total = self.lines(products)
        online = store < 0
        record = {
            "order_id": order_id,
            "channel": "online" if online else "store",
            "store_id": None if online else self.stores[store].store_id,
            "till_id": None if online else self.rng.choice(self.stores[store].tills),
            "customer_id": self.book.customer_id(customer) if customer >= 0 else None,
            "created_at": _iso(ts),
            "currency": CHAIN_CURRENCY,
            "lines": lines,
            "total_minor": total,
        }
        stats = self.stats
        if online:
            stats["online_orders"] += 1
        else:
            stats["store_orders"] += 1
            if customer < 0:
                stats["anonymous_store_orders"] += 1
        stats["order_lines"] += len(lines)
        return ts, self.next_seq(), _dumps(record), lines, total

    # --- web events -------------------------------------------------------------------------

    def props(self, product: int) -> dict[str, Any]:
        p = self.products[product]
        return {
            "product_id": p.sku,
            "sku": p.sku,
            "name": p.name,
            "price": _major(p.price_minor),
            "currency": CHAIN_CURRENCY,
        }

    def viewed_json(self, product: int) -> str:
        """The properties of a product event as JSON text, made once per product."""
        cached = self.product_json.get(product)
        if cached is None:
            cached = _dumps(self.props(product))
            self.product_json[product] = cached
        return cached

    def added_json(self, product: int, quantity: int, cart_id: str) -> str:
        return f'{self.viewed_json(product)[:-1]},"quantity":{quantity},"cart_id":"{cart_id}"}}'

    def emit(self, ts_ms: int, event: dict[str, Any]) -> None:
        heapq.heappush(self.event_heap, (ts_ms, self.next_seq(), _dumps(event)))

    def track(
        self,
        ts_ms: int,
        name: str,
        anonymous_id: str,
        user_id: str | None,
        properties: dict[str, Any] | str,
    ) -> None:
        """A Segment track call; ``properties`` as a dict or as JSON text already encoded."""
        # Assembled as text because there are millions; every piece is plain ASCII we made
        # (event names, UUIDs, "wu-" ids, timestamps) except the properties, encoded by json.
        props = properties if isinstance(properties, str) else _dumps(properties)
        user = "null" if user_id is None else f'"{user_id}"'
        line = (
            f'{{"type":"track","event":"{name}","messageId":"{self.new_id()}",'
            f'"anonymousId":"{anonymous_id}","userId":{user},'
            f'"timestamp":"{_iso_ms(ts_ms)}","properties":{props}}}'
        )
        heapq.heappush(self.event_heap, (ts_ms, self.next_seq(), line))

    def identify(self, ts_ms: int, anonymous_id: str, user_id: str, email: str) -> None:
        self.emit(
            ts_ms,
            {
                "type": "identify",
                "messageId": self.new_id(),
                "anonymousId": anonymous_id,
                "userId": user_id,
                "timestamp": _iso_ms(ts_ms),
                "traits": {"email": email},
            },
        )

    def cart_products(self, items: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
        return [{**self.props(p), "quantity": q} for p, q in items]

    def session_times(self, start_ms: int, end_ms: int, steps: int) -> list[int]:
        rng = self.rng
        span = max(0, end_ms - start_ms)
        return sorted(start_ms + rng.randrange(span + 1) for _ in range(steps))

    def browse_extras(self, products: Sequence[int], count: int) -> list[int]:
        """Products looked at and not bought: partners of the ones bought, or the same category."""
        rng = self.rng
        extras = []
        for _ in range(count):
            base = rng.choice(products)
            g = self.cat.group_of[base]
            if g >= 0 and rng.random() < 0.6:
                candidate = rng.choice(self.cat.groups[g].members)
            else:
                candidate = self.cat.category_pools[self.cat.category_of[base] % 5].draw(rng)
            if not self.vm[candidate]:
                extras.append(candidate)
        return extras

    def online_session(
        self,
        *,
        ts: int,
        customer: int,
        order_id: str,
        lines: list[dict[str, Any]],
        products: Sequence[int],
        total: int,
    ) -> None:
        """The web session that ends in an online order: views, adds, cart, checkout, order."""
        rng = self.rng
        anonymous_id = self.new_id()
        user_id = self.book.web_user[customer]
        email = self.book.web_email[customer]
        cart_id = self.new_id()
        items = [(p, int(line["quantity"])) for p, line in zip(products, lines, strict=True)]
        viewed = list(products) + self.browse_extras(products, rng.randint(0, 3))
        rng.shuffle(viewed)
        logged_in = rng.random() < 0.5
        steps = len(viewed) + len(items) + 3 + (0 if logged_in else 1)
        end_ms = ts * 1000
        start_ms = max(self.start * 1000, end_ms - rng.randint(120, 45 * 60) * 1000)
        times = iter(self.session_times(start_ms, end_ms - 1, steps))
        current: str | None = user_id if logged_in else None
        for p in viewed:
            self.track(next(times), "Product Viewed", anonymous_id, current, self.viewed_json(p))
        for p, q in items:
            props = self.added_json(p, q, cart_id)
            self.track(next(times), "Product Added", anonymous_id, current, props)
        cart = self.cart_products(items)
        self.track(
            next(times),
            "Cart Viewed",
            anonymous_id,
            current,
            {"cart_id": cart_id, "products": cart},
        )
        if not logged_in:
            self.identify(next(times), anonymous_id, user_id, email)
            current = user_id
        value = _major(total)
        self.track(
            next(times),
            "Checkout Started",
            anonymous_id,
            current,
            {"cart_id": cart_id, "value": value, "currency": CHAIN_CURRENCY, "products": cart},
        )
        next(times)  # the payment page
        self.track(
            end_ms,
            "Order Completed",
            anonymous_id,
            current,
            {
                "order_id": order_id,
                "cart_id": cart_id,
                "total": value,
                "currency": CHAIN_CURRENCY,
                "products": cart,
            },
        )
        self.stats["web_sessions"] += 1

    def abandoned_session(self, day: int, season: _SeasonContext) -> None:
        """Views and a cart with no order; an identified shopper may buy it in store later."""
        rng = self.rng
        customer = -1
        start = self.local_time(day, self.stores[0].region.timezone, online=True)
        if self.web_customers and rng.random() < 0.6:
            customer = self.pick_customer(self.web_customers, start)
        if customer >= 0:
            taste = self.book.taste[customer]
            timezone = self.stores[self.book.home[customer]].region.timezone
            start = self.local_time(day, timezone, online=True)
        else:
            taste = _TASTE_CHOICE.draw(rng)
        chosen: dict[int, None] = {}
        self.add_with_partners(chosen, self.anchor(taste, season))
        wanted = [p for p in chosen if not self.vm[p]] or [self.cat.story_tshirt]
        carted = wanted[: rng.randint(1, min(2, len(wanted)))]
        viewed = wanted + self.browse_extras(wanted, rng.randint(0, 3))
        anonymous_id = self.new_id()
        cart_id = self.new_id()
        user_id = self.book.web_user[customer] if customer >= 0 else None
        logged_in = user_id is not None and rng.random() < 0.5
        checkout = rng.random() < 0.25
        steps = len(viewed) + len(carted) + 2 + (1 if checkout else 0)
        start_ms = start * 1000
        end_ms = min(self.end * 1000, start_ms + rng.randint(60, 25 * 60) * 1000)
        times = iter(self.session_times(start_ms, end_ms, steps))
        current = user_id if logged_in else None
        for p in viewed:
            self.track(next(times), "Product Viewed", anonymous_id, current, self.viewed_json(p))
        at = next(times)
        if user_id is not None and current is None:
            self.identify(at, anonymous_id, user_id, self.book.web_email[customer])
            current = user_id
        items = [(p, 1) for p in carted]
        for p, q in items:
            props = self.added_json(p, q, cart_id)
            self.track(next(times), "Product Added", anonymous_id, current, props)
        cart = self.cart_products(items)
        self.track(
            next(times),
            "Cart Viewed",
            anonymous_id,
            current,
            {"cart_id": cart_id, "products": cart},
        )
        if checkout:
            value = _major(sum(self.products[p].price_minor for p in carted))
            self.track(
                next(times),
                "Checkout Started",
                anonymous_id,
                current,
                {"cart_id": cart_id, "value": value, "currency": CHAIN_CURRENCY, "products": cart},
            )
        self.stats["web_sessions"] += 1
        self.stats["abandoned_carts"] += 1
        if customer >= 0 and rng.random() < IN_STORE_AFTER_CART:
            self.schedule_store_purchase(customer, day + rng.randint(1, 2), end_ms // 1000, carted)

    def schedule_store_purchase(
        self, customer: int, day: int, after: int, products: Sequence[int]
    ) -> None:
        """Maria's pattern: what was carted online is bought in the home store a day or two on."""
        if day >= self.days or self.reserved[day] >= self.quota[day]:
            return
        store = self.book.home[customer]
        ts = self.local_time(day, self.stores[store].region.timezone, online=False)
        if ts <= after or self.day_of(ts) != day:
            return
        self.reserved[day] += 1
        pending = _Pending(
            ts, self.next_seq(), self.new_id(), customer, store, tuple(products), True
        )
        heapq.heappush(self.future, pending)
        self.stats["carts_bought_in_store"] += 1

    def browse_session(self, day: int, season: _SeasonContext) -> None:
        rng = self.rng
        customer = -1
        timezone = self.stores[0].region.timezone
        start = self.local_time(day, timezone, online=True)
        if self.web_customers and rng.random() < 0.35:
            customer = self.pick_customer(self.web_customers, start)
        taste = self.book.taste[customer] if customer >= 0 else rng.randrange(len(_TASTES))
        first = self.anchor(taste, season)
        viewed = [
            p for p in [first, *self.browse_extras([first], rng.randint(0, 3))] if not self.vm[p]
        ]
        if not viewed:
            return
        anonymous_id = self.new_id()
        user_id = self.book.web_user[customer] if customer >= 0 else None
        start_ms = start * 1000
        end_ms = min(self.end * 1000, start_ms + rng.randint(20, 10 * 60) * 1000)
        for at, p in zip(self.session_times(start_ms, end_ms, len(viewed)), viewed, strict=True):
            self.track(at, "Product Viewed", anonymous_id, user_id, self.viewed_json(p))
        self.stats["web_sessions"] += 1

    # --- Maria ------------------------------------------------------------------------------

    def maria_story(self) -> MariaStory:
        """Maria's year: grocery trips, then the T-shirt she carts online and buys in store."""
        book = self.book
        tshirt = self.cat.story_tshirt
        jeans = tshirt + 1
        timezone = self.stores[0].region.timezone
        for fraction in (0.08, 0.3, 0.52, 0.71, 0.9):
            day = int(self.days * fraction)
            ts = self.local_time(day, timezone, online=False)
            self.quota[self.day_of(ts)] += 1
            self.reserved[self.day_of(ts)] += 1
            heapq.heappush(
                self.future, _Pending(ts, self.next_seq(), self.new_id(), 0, 0, (), True)
            )
        bought = self.end - 14 * 3600
        order_id = self.new_id()
        self.quota[self.day_of(bought)] += 1
        self.reserved[self.day_of(bought)] += 1
        heapq.heappush(
            self.future, _Pending(bought, self.next_seq(), order_id, 0, 0, (tshirt,), False)
        )
        viewed = bought - 38 * 3600
        anonymous_id = self.new_id()
        cart_id = self.new_id()
        user_id = book.web_user[0]
        t = viewed * 1000 + 417
        self.track(t, "Product Viewed", anonymous_id, None, self.viewed_json(tshirt))
        self.track(t + 48_000, "Product Viewed", anonymous_id, None, self.viewed_json(jeans))
        self.track(t + 95_000, "Product Viewed", anonymous_id, None, self.viewed_json(tshirt))
        self.identify(t + 140_000, anonymous_id, user_id, book.web_email[0])
        added = self.added_json(tshirt, 1, cart_id)
        self.track(t + 171_000, "Product Added", anonymous_id, user_id, added)
        self.track(
            t + 203_000,
            "Cart Viewed",
            anonymous_id,
            user_id,
            {"cart_id": cart_id, "products": self.cart_products([(tshirt, 1)])},
        )
        self.stats["web_sessions"] += 1
        self.stats["abandoned_carts"] += 1
        self.stats["carts_bought_in_store"] += 1
        return MariaStory(
            customer_id=book.customer_id(0),
            web_user_id=user_id,
            anonymous_id=anonymous_id,
            sku=self.products[tshirt].sku,
            product_name=self.products[tshirt].name,
            cart_id=cart_id,
            viewed_at=_iso(viewed),
            store_order_id=order_id,
            store_id=self.stores[0].store_id,
            bought_at=_iso(bought),
        )

    # --- the loop ---------------------------------------------------------------------------

    def plan_quotas(self, orders: int) -> None:
        """Orders per day: weekday, month and holidays, cumulative rounding to the exact total."""
        weights = []
        for d in range(self.days):
            day_start = self.day0 + d * DAY
            covered = min(self.end + 1, day_start + DAY) - max(self.start, day_start)
            trend = 0.9 + 0.2 * d / max(1, self.days - 1)  # the chain grows over the year
            day = datetime.fromtimestamp(day_start, UTC).date()
            weights.append(_day_weight(day) * trend * covered / DAY)
        total = sum(weights)
        acc = 0.0
        previous = 0
        for d, w in enumerate(weights):
            acc += w
            upto = orders if d == self.days - 1 else math.floor(orders * acc / total)
            self.quota[d] += upto - previous
            previous = upto

    def run(self) -> MariaStory:
        rng = self.rng
        maria = self.maria_story()
        self.plan_quotas(self.config.orders - sum(self.quota))
        for day in range(self.days):
            day_end = self.day0 + (day + 1) * DAY
            season = self.season(day)
            today: list[tuple[int, int, str]] = []
            while self.future and self.future[0].ts < day_end:
                today.append(self.pending_order(heapq.heappop(self.future), season))
            fresh = self.quota[day] - len(today)
            for _ in range(fresh):
                today.append(self.fresh_order(day, season))
            expected_online = fresh * ONLINE_SHARE
            for _ in range(_randround(rng, expected_online * ABANDONED_PER_ONLINE_ORDER)):
                self.abandoned_session(day, season)
            for _ in range(_randround(rng, expected_online * BROWSE_PER_ONLINE_ORDER)):
                self.browse_session(day, season)
            today.sort()
            self.orders_sink.write_lines([line for _, _, line in today])
            self.flush_events(day_end - _MAX_SESSION_LEAD)
            if self.on_progress is not None:
                self.on_progress(len(today))
        self.flush_events(None)
        return maria

    def pending_order(self, pending: _Pending, season: _SeasonContext) -> tuple[int, int, str]:
        products = list(pending.products)
        if pending.extend:
            extra = self.basket(pending.customer, season, online=False)
            if products:
                # Came for the carted items; picks up some staples on the way.
                staples = {self.cat.staples[s] for s in self.book.staples_of(pending.customer)}
                extra = [p for p in extra if p in staples]
            products += [p for p in extra if p not in products]
        ts, seq, line, _, _ = self.order(
            ts=pending.ts,
            order_id=pending.order_id,
            store=pending.store,
            customer=pending.customer,
            products=products,
        )
        return ts, seq, line

    def fresh_order(self, day: int, season: _SeasonContext) -> tuple[int, int, str]:
        rng = self.rng
        if self.web_customers and rng.random() < ONLINE_SHARE:
            customer = self.pick_customer(self.web_customers, self.day0 + (day + 1) * DAY)
            if customer >= 0:
                timezone = self.stores[self.book.home[customer]].region.timezone
                ts = self.local_time(day, timezone, online=True)
                if self.book.created[customer] <= ts:
                    return self.online_order(ts, customer, season)
        customer = -1
        if rng.random() >= ANONYMOUS_STORE_SHARE:
            customer = self.pick_customer(self.everyone, self.day0 + (day + 1) * DAY)
        if customer >= 0 and rng.random() < HOME_STORE_SHARE:
            store = self.book.home[customer]
        else:
            store = self.store_pool.draw(rng)
        ts = self.local_time(day, self.stores[store].region.timezone, online=False)
        if customer >= 0 and self.book.created[customer] > ts:
            customer = -1  # signed up later that day: this visit was before the card
        products = self.basket(customer, season, online=False)
        ts, seq, line, _, _ = self.order(
            ts=ts, order_id=self.new_id(), store=store, customer=customer, products=products
        )
        return ts, seq, line

    def online_order(self, ts: int, customer: int, season: _SeasonContext) -> tuple[int, int, str]:
        products = self.basket(customer, season, online=True)
        order_id = self.new_id()
        ts, seq, line, lines, total = self.order(
            ts=ts, order_id=order_id, store=-1, customer=customer, products=products
        )
        self.online_session(
            ts=ts, customer=customer, order_id=order_id, lines=lines, products=products, total=total
        )
        return ts, seq, line

    def flush_events(self, before_ms_of: int | None) -> None:
        heap = self.event_heap
        out: list[str] = []
        if before_ms_of is None:
            while heap:
                out.append(heapq.heappop(heap)[2])
        else:
            limit = before_ms_of * 1000
            while heap and heap[0][0] < limit:
                out.append(heapq.heappop(heap)[2])
        self.events_sink.write_lines(out)


# ============================================================================================
# Putting it together
# ============================================================================================


def generate_demo_data(
    out_dir: Path,
    config: DemoConfig | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Write the demo chain into ``out_dir`` (created if missing) and describe what was written.

    Files are written under ``.partial`` names and renamed when all are complete, so a failed
    run never leaves a half-written set that looks whole. ``on_progress`` is called with the
    number of orders written after each simulated day. Raises ``OSError`` when the directory
    cannot be written.
    """
    config = config or DemoConfig()
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    sinks: dict[str, _Sink] = {}

    def sink(name: str) -> _Sink:
        sinks[name] = _Sink(out_dir / f"{name}.partial")
        return sinks[name]

    try:
        stores = _build_stores(Random(f"omnitill-demo:{config.seed}:stores"), config.stores)
        stores_sink = sink("stores.json")
        stores_sink.write(_stores_json(stores))
        stores_sink.rows = len(stores)

        catalogue = build_catalogue(config.seed, config.products)
        products_sink = sink("products.csv")
        products_csv = csv.writer(products_sink, lineterminator="\r\n")
        products_csv.writerow(PRODUCT_COLUMNS)
        for product in catalogue.products:
            products_csv.writerow(product.csv_row())
        products_sink.rows = len(catalogue.products)
        logger.info(
            "Catalogue: %d products, %d complement groups",
            len(catalogue.products),
            len(catalogue.groups),
        )

        end = int(config.end.timestamp())
        customers_sink = sink("customers.csv")
        customers_csv = csv.writer(customers_sink, lineterminator="\r\n")
        customers_csv.writerow(CUSTOMER_COLUMNS)
        book = _write_customers(
            customers_csv,
            rng=Random(f"omnitill-demo:{config.seed}:customers"),
            count=config.customers,
            stores=stores,
            window_start=end - HISTORY_DAYS * DAY + 1,
            end=end,
        )
        customers_sink.rows = config.customers
        logger.info("Customers: %d (%d duplicate records)", config.customers, book.duplicates)

        history = _History(
            config=config,
            catalogue=catalogue,
            stores=stores,
            book=book,
            orders=sink("orders.jsonl"),
            events=sink("web_events.jsonl"),
            on_progress=on_progress,
        )
        maria = history.run()
        files = [s.close() for s in sinks.values()]
    except BaseException:
        for s in sinks.values():
            s.abort()
        raise
    stats = {
        "stores": len(stores),
        "tills": sum(len(s.tills) for s in stores),
        "complement_groups": len(catalogue.groups),
        "duplicate_customers": book.duplicates,
        "shared_email_customers": book.shared_email,
        **history.stats,
    }
    manifest = _manifest(config, files, stats, maria)
    manifest_sink = _Sink(out_dir / "manifest.json.partial")
    manifest_sink.write(manifest)
    manifest_sink.rows = 1
    files.append(manifest_sink.close())
    for name in DEMO_FILES:
        (out_dir / f"{name}.partial").replace(out_dir / name)
    return DemoSummary(
        out_dir=out_dir,
        config=config,
        files=tuple(files),
        stats=stats,
        maria=maria,
        seconds=time.perf_counter() - started,
    )


def _stores_json(stores: Sequence[_Store]) -> str:
    chain = {
        "chain": {
            "name": CHAIN_NAME,
            "currency": CHAIN_CURRENCY,
            "loyalty_prefix": LOYALTY_FORMAT.prefix,
            "loyalty_length": LOYALTY_FORMAT.length,
        },
        "stores": [s.as_json() for s in stores],
    }
    return json.dumps(chain, ensure_ascii=False, indent=2) + "\n"


def _manifest(
    config: DemoConfig, files: Sequence[FileSummary], stats: dict[str, int], maria: MariaStory
) -> str:
    manifest = {
        "generator": "omnitill demo-data",
        "format_version": 1,
        "seed": config.seed,
        "end_date": _iso(int(config.end.timestamp())),
        "history_days": HISTORY_DAYS,
        "sizes": {
            "stores": config.stores,
            "products": config.products,
            "customers": config.customers,
            "orders": config.orders,
        },
        "files": {f.name: {"rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in files},
        "stats": stats,
        "stories": {"maria": maria.__dict__},
    }
    return json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
