"""Fill a till's local store the way HQ does: change-feed rows applied with ``feed.apply_page``.

Every helper builds the ``data`` of a change from the shared wire model HQ itself sends
(``Product``, ``Price``, ``Store``, ``RecommendationList``, ``CustomerCard``), so tests exercise
the real feed path, not rows poked into tables.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge_agent import feed
from edge_agent.catalogue import Catalogue
from edge_agent.sale_engine import SaleEngine
from edge_agent.store import LocalStore
from shared.barcodes import DEFAULT_RULES, encode_variable_measure, make_gtin
from shared.catalogue import Price, Product, Store
from shared.customer import CardItem, CustomerCard, CustomerIdentifierModel
from shared.protocol import MAX_PULL_LIMIT
from shared.recommendations import RecommendationList, RecommendedItem
from shared.tax import TaxMode

STORE_ID = "S001"
TILL_ID = "S001-T1"
PAGE_SIZE = 500

Change = dict[str, Any]

_pages = 0


def _change(entity: str, key: str, data: Mapping[str, Any] | None, **extra: Any) -> Change:
    return {
        "entity": entity,
        "key": key,
        "action": "upsert" if data is not None else "delete",
        "data": None if data is None else dict(data),
        "reason": extra.get("reason"),
        "merged_into": extra.get("merged_into"),
    }


def gtin(n: int, *, prefix: str = "400") -> str:
    """A valid EAN-13 (check digit included) for product number ``n``."""
    return make_gtin(f"{prefix}{n:0{12 - len(prefix)}d}")


def gtin14(ean: str) -> str:
    return ean.zfill(14)


def product_change(
    sku: str,
    name: str,
    price_minor: int,
    *,
    gtins: Sequence[str] = (),
    brand: str = "",
    category: str = "",
    tax_rate: str | Decimal = "19",
    currency: str = "EUR",
    variable_measure: str | None = None,
    item_reference: str | None = None,
    active: bool = True,
) -> Change:
    product = Product(
        sku=sku,
        name=name,
        brand=brand,
        category=category,
        gtins=tuple(gtin14(g) for g in gtins),
        price_minor=price_minor,
        currency=currency,
        tax_rate=Decimal(tax_rate),
        variable_measure=variable_measure,
        item_reference=item_reference,
        active=active,
    )
    return _change("product", sku, product.model_dump(mode="json"))


def price_change(
    sku: str,
    price_minor: int,
    *,
    store_id: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> Change:
    price = Price(
        sku=sku,
        store_id=store_id,
        price_minor=price_minor,
        valid_from=valid_from,
        valid_to=valid_to,
    )
    return _change("price", f"{sku}@{store_id or '*'}", price.model_dump(mode="json"))


def recommendation_change(
    kind: str, key: str, items: Iterable[tuple[str, float] | RecommendedItem]
) -> Change:
    recommended = tuple(
        item if isinstance(item, RecommendedItem) else RecommendedItem(sku=item[0], score=item[1])
        for item in items
    )
    rec = RecommendationList(kind=kind, key=key, items=recommended)
    return _change("recommendation", f"{kind}:{key}", rec.model_dump(mode="json"))


def store_change(shop: Store) -> Change:
    return _change("store", shop.store_id, shop.model_dump(mode="json"))


def customer_change(card: CustomerCard) -> Change:
    return _change("customer", str(card.customer_id), card.model_dump(mode="json"))


def delete_change(
    entity: str, key: str, *, reason: str = "deleted", merged_into: str | None = None
) -> Change:
    return _change(entity, key, None, reason=reason, merged_into=merged_into)


def apply(store: LocalStore, changes: Sequence[Change], *, page_size: int = PAGE_SIZE) -> int:
    """Apply ``changes`` in feed pages of ``page_size``, each with its own cursor."""
    global _pages
    applied = 0
    for start in range(0, len(changes), page_size):
        _pages += 1
        applied += feed.apply_page(store, changes[start : start + page_size], f"v1.0.{_pages}")
    return applied


def make_shop(**over: Any) -> Store:
    data: dict[str, Any] = {
        "store_id": STORE_ID,
        "name": "Omnitill Demo Berlin",
        "city": "Berlin",
        "currency": "EUR",
        "tax_mode": "inclusive",
        "timezone": "Europe/Berlin",
        "tills": (TILL_ID,),
    }
    data.update(over)
    return Store(**data)


def make_card(**over: Any) -> CustomerCard:
    data: dict[str, Any] = {
        "customer_id": uuid.uuid4(),
        "first_name": "Maria",
        "last_name": "Schmidt",
        "identifiers": (CustomerIdentifierModel(kind="email", value="maria@example.com"),),
        "loyalty_points": 120,
    }
    data.update(over)
    return CustomerCard(**data)


def open_store(path: Path) -> LocalStore:
    return LocalStore.open(path / "till.sqlite")


def build_template(
    directory: Path, changes: Sequence[Change], *, page_size: int = MAX_PULL_LIMIT
) -> Path:
    """A closed store file holding ``changes``, to copy for each test (creating and migrating a
    store costs a few fsyncs; copying a file costs none). Pages are the largest HQ sends."""
    directory.mkdir(parents=True, exist_ok=True)
    store = open_store(directory)
    # A throwaway fixture file needs no durability; the feed path is the real one all the same.
    store.db.execute("PRAGMA synchronous=OFF")
    apply(store, changes, page_size=page_size)
    store.close()  # the last connection's close checkpoints the WAL into the file
    return directory / "till.sqlite"


def store_from_template(template: Path, directory: Path) -> LocalStore:
    target = directory / "till.sqlite"
    shutil.copyfile(template, target)
    return LocalStore.open(target)


# --------------------------------------------------------------------------------------------
# A small grocery and apparel catalogue with everything a till meets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    sku: str
    name: str
    price_minor: int
    ean: str | None
    tax_rate: Decimal


MILK = Item("GRO-MILK", "Alpenhof Fresh Milk 1 l", 129, gtin(1), Decimal("7"))
BREAD = Item("GRO-BREAD", "Backstube Rye Bread 500 g", 299, gtin(2), Decimal("7"))
BUTTER = Item("GRO-BUTTER", "Alpenhof Butter 250 g", 249, gtin(3), Decimal("7"))
JAM = Item("GRO-JAM", "Sonnhof Strawberry Jam 450 g", 349, gtin(4), Decimal("7"))
COFFEE = Item("GRO-COFFEE", "Hochland Coffee Beans 1 kg", 1299, gtin(5), Decimal("7"))
WINE = Item("GRO-WINE", "Mosel Riesling 0.75 l", 899, gtin(6), Decimal("19"))
TSHIRT = Item("APP-TSHIRT", "Nordkind Organic Cotton T-Shirt Navy", 1999, gtin(7), Decimal("19"))
JEANS = Item("APP-JEANS", "Nordkind Slim Jeans Indigo", 5999, gtin(8), Decimal("19"))
BELT = Item("APP-BELT", "Nordkind Leather Belt Cognac", 2999, gtin(9), Decimal("19"))
SOCKS = Item("APP-SOCKS", "Nordkind Sneaker Socks 3-Pack", 999, gtin(10), Decimal("19"))
# Sold by weight: 1.99 per kilogram, scale labels with item reference 12345.
CARROTS = Item("VEG-CARROTS", "Carrots loose", 199, None, Decimal("7"))
CARROTS_REF = "12345"
# Priced at the deli counter: labels with item reference 54321 carry the price.
HAM = Item("DELI-HAM", "Black Forest Ham", 2490, None, Decimal("7"))
HAM_REF = "54321"
RETIRED = Item("GRO-OLD", "Discontinued Crisps", 199, gtin(11), Decimal("7"))
UNKNOWN_EAN = gtin(999)

PLAIN = (MILK, BREAD, BUTTER, JAM, COFFEE, WINE, TSHIRT, JEANS, BELT, SOCKS)

ALSO_BOUGHT: dict[str, list[tuple[str, float]]] = {
    BREAD.sku: [(BUTTER.sku, 0.9), (JAM.sku, 0.6), (MILK.sku, 0.3)],
    MILK.sku: [(COFFEE.sku, 0.8), (BREAD.sku, 0.5), (BUTTER.sku, 0.2)],
    TSHIRT.sku: [(JEANS.sku, 0.7), (BELT.sku, 0.5), (SOCKS.sku, 0.2)],
    JEANS.sku: [(BELT.sku, 0.9), (TSHIRT.sku, 0.6)],
    COFFEE.sku: [(MILK.sku, 2.0), (RETIRED.sku, 1.5)],
}


def grocery_changes(shop: Store | None = None) -> list[Change]:
    shop = shop or make_shop()
    changes = [store_change(shop)]
    category = {"GRO": "Grocery", "APP": "Apparel", "VEG": "Fruit & Veg", "DEL": "Deli"}
    brands = ("Alpenhof", "Backstube", "Sonnhof", "Hochland", "Mosel", "Nordkind")
    for item in PLAIN:
        changes.append(
            product_change(
                item.sku,
                item.name,
                item.price_minor,
                gtins=[item.ean] if item.ean else [],
                brand=next((b for b in brands if item.name.startswith(b)), ""),
                category=category[item.sku[:3]],
                tax_rate=item.tax_rate,
            )
        )
    changes += [
        product_change(
            CARROTS.sku,
            CARROTS.name,
            CARROTS.price_minor,
            category="Fruit & Veg",
            tax_rate=CARROTS.tax_rate,
            variable_measure="weight",
            item_reference=CARROTS_REF,
        ),
        product_change(
            HAM.sku,
            HAM.name,
            HAM.price_minor,
            category="Deli",
            tax_rate=HAM.tax_rate,
            variable_measure="price",
            item_reference=HAM_REF,
        ),
        product_change(
            RETIRED.sku,
            RETIRED.name,
            RETIRED.price_minor,
            gtins=[RETIRED.ean] if RETIRED.ean else [],
            active=False,
        ),
    ]
    changes += [
        recommendation_change("also_bought", sku, items) for sku, items in ALSO_BOUGHT.items()
    ]
    changes.append(
        recommendation_change(
            "bestsellers", f"{shop.store_id}/Grocery", [(MILK.sku, 10.0), (BREAD.sku, 8.0)]
        )
    )
    changes.append(recommendation_change("bestsellers", f"{shop.store_id}/*", [(TSHIRT.sku, 3.0)]))
    return changes


def fill_grocery(store: LocalStore, shop: Store | None = None) -> None:
    apply(store, grocery_changes(shop))


def weight_label(grams: int, ref: str = CARROTS_REF, prefix: str = "25") -> str:
    rule = next(r for r in DEFAULT_RULES if r.prefix == prefix)
    return encode_variable_measure(rule, ref, grams)


def price_label(price_minor: int, ref: str = HAM_REF, prefix: str = "21") -> str:
    rule = next(r for r in DEFAULT_RULES if r.prefix == prefix)
    return encode_variable_measure(rule, ref, price_minor)


def make_engine(
    store: LocalStore,
    *,
    shop: Store | None = None,
    tax_mode: TaxMode = "inclusive",
    clock: Any = None,
    till_id: str = TILL_ID,
) -> SaleEngine:
    shop = shop or make_shop(tax_mode=tax_mode)
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    catalogue = Catalogue(store, store_id=shop.store_id, **extra)
    return SaleEngine(
        store=store,
        catalogue=catalogue,
        shop=shop,
        till_id=till_id,
        cashier_id="cashier-7",
        **extra,
    )


def card_item(sku: str, at: datetime | None = None, price_minor: int | None = None) -> CardItem:
    return CardItem(sku=sku, at=at, price_minor=price_minor)


# --------------------------------------------------------------------------------------------
# A bulk catalogue for performance guards
# --------------------------------------------------------------------------------------------

_WORDS = (
    "Organic", "Classic", "Family", "Light", "Bio", "Fresh", "Crunchy", "Smoked", "Roasted",
    "Sweet", "Spicy", "Creamy", "Wholegrain", "Mini", "Large", "Premium",
)  # fmt: skip
_NOUNS = (
    "Yoghurt", "Cheese", "Pasta", "Rice", "Tea", "Cookies", "Juice", "Soup", "Sauce", "Nuts",
    "Cereal", "Chocolate", "Crackers", "Honey", "Oil", "Vinegar", "Socks", "Shirt", "Scarf",
)  # fmt: skip


def bulk_changes(count: int, *, list_length: int = 10, seed: int = 7) -> list[Change]:
    """``count`` products with a barcode and an also-bought list each.

    Built as plain dicts from one template checked against the wire models (validating tens of
    thousands of models would dominate the tests that use this); partners are spread with a
    multiplicative step rather than drawn at random, for the same reason.
    """
    rng = random.Random(seed)
    template = product_change("SKU0000000", "Template", 100, gtins=[gtin(1000, prefix="41")])
    list_template = recommendation_change("also_bought", "SKU0000000", [("SKU0000001", 1.0)])
    names = [f"{w} {n}" for w in _WORDS for n in _NOUNS]
    brands = ("Alpenhof", "Sonnhof", "Hochland", "Nordkind")
    categories = ("Grocery", "Apparel", "Drinks")
    scores = [round(1.0 - i / (list_length + 1), 3) for i in range(list_length)]
    skus = [f"SKU{n:07d}" for n in range(count)]
    changes: list[Change] = []
    for n, sku in enumerate(skus):
        data = dict(template["data"])
        data.update(
            sku=sku,
            name=f"{names[rng.randrange(len(names))]} {100 + n % 900} g",
            gtins=[gtin14(gtin(n + 1000, prefix="41"))],
            price_minor=49 + rng.randrange(4950),
            brand=brands[n % 4],
            category=categories[n % 3],
            tax_rate="7" if n % 2 else "19",
        )
        changes.append({**template, "key": sku, "data": data})
    step = 7919 if count % 7919 else 104729
    for n, sku in enumerate(skus):
        partners = [(n + step * (k + 1)) % count for k in range(list_length)]
        items = [
            {"sku": skus[p], "score": score, "reason": None}
            for p, score in zip(partners, scores, strict=True)
            if p != n
        ]
        data = {**list_template["data"], "key": sku, "items": items}
        changes.append({**list_template, "key": f"also_bought:{sku}", "data": data})
    Product.model_validate(changes[0]["data"])
    RecommendationList.model_validate(changes[count]["data"])
    return changes
