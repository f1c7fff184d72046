"""Catalogue lookups over a store filled through the real change-feed path."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from edge_agent import feed
from edge_agent.catalogue import Catalogue, CatalogueItem, fts_query
from edge_agent.store import LocalStore
from shared.barcodes import parse_gtin
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def catalogue(store: LocalStore) -> Catalogue:
    return Catalogue(store, store_id=f.STORE_ID, clock=lambda: NOW)


def test_a_barcode_finds_its_product(catalogue: Catalogue) -> None:
    assert f.MILK.ean is not None
    item = catalogue.by_gtin(parse_gtin(f.MILK.ean).gtin14)
    assert item == CatalogueItem(
        sku=f.MILK.sku,
        name=f.MILK.name,
        brand="Alpenhof",
        category="Grocery",
        price_minor=129,
        currency="EUR",
        tax_rate=Decimal("7"),
        variable_measure=None,
        item_reference=None,
    )
    assert catalogue.by_gtin(f.gtin14(f.UNKNOWN_EAN)) is None


def test_upc_a_and_ean_13_of_one_can_are_one_key(store: LocalStore, catalogue: Catalogue) -> None:
    f.apply(store, [f.product_change("COLA", "Cola 330 ml", 99, gtins=["036000291452"])])
    upc, ean = parse_gtin("036000291452"), parse_gtin("0036000291452")
    assert upc.gtin14 == ean.gtin14
    found = catalogue.by_gtin(ean.gtin14)
    assert found is not None and found.sku == "COLA"


def test_weighed_and_priced_items_are_found_by_item_reference(catalogue: Catalogue) -> None:
    carrots = catalogue.by_item_reference(f.CARROTS_REF)
    assert carrots is not None
    assert (carrots.sku, carrots.variable_measure, carrots.price_minor) == (
        f.CARROTS.sku,
        "weight",
        199,
    )
    ham = catalogue.by_item_reference(f.HAM_REF)
    assert ham is not None and ham.variable_measure == "price"
    assert catalogue.by_item_reference("99999") is None


def test_inactive_and_deleted_products_are_unknown(store: LocalStore, catalogue: Catalogue) -> None:
    assert f.RETIRED.ean is not None
    assert catalogue.by_gtin(f.gtin14(f.RETIRED.ean)) is None
    assert catalogue.by_sku(f.RETIRED.sku) is None
    assert catalogue.search("crisps") == []
    assert catalogue.name_of(f.RETIRED.sku) is None
    f.apply(store, [f.delete_change("product", f.MILK.sku)])
    assert f.MILK.ean is not None
    assert catalogue.by_gtin(f.gtin14(f.MILK.ean)) is None
    assert catalogue.by_sku(f.MILK.sku) is None


def test_a_store_price_valid_now_overrides_the_chain_and_list_price(
    store: LocalStore, catalogue: Catalogue
) -> None:
    def price() -> int:
        item = catalogue.by_sku(f.COFFEE.sku)
        assert item is not None
        return item.price_minor

    assert price() == 1299
    f.apply(store, [f.price_change(f.COFFEE.sku, 1199)])  # chain-wide, open-ended
    assert price() == 1199
    f.apply(store, [f.price_change(f.COFFEE.sku, 999, store_id="S999")])  # another store
    assert price() == 1199
    f.apply(
        store,
        [
            f.price_change(
                f.COFFEE.sku,
                1099,
                store_id=f.STORE_ID,
                valid_from=NOW - timedelta(days=1),
                valid_to=NOW + timedelta(days=1),
            )
        ],
    )
    assert price() == 1099
    # The same row, no longer valid: the chain price is back.
    f.apply(
        store,
        [
            f.price_change(
                f.COFFEE.sku,
                1099,
                store_id=f.STORE_ID,
                valid_from=NOW - timedelta(days=2),
                valid_to=NOW,
            )
        ],
    )
    assert price() == 1199
    f.apply(
        store,
        [f.price_change(f.COFFEE.sku, 899, store_id=f.STORE_ID, valid_from=NOW + timedelta(1))],
    )
    assert price() == 1199
    later = Catalogue(store, store_id=f.STORE_ID, clock=lambda: NOW + timedelta(days=2))
    later_item = later.by_sku(f.COFFEE.sku)
    assert later_item is not None and later_item.price_minor == 899
    # The scan path resolves prices the same way.
    assert f.COFFEE.ean is not None
    scanned = later.by_gtin(f.gtin14(f.COFFEE.ean))
    assert scanned is not None and scanned.price_minor == 899


def test_search_by_name_brand_and_sku_prefix(catalogue: Catalogue) -> None:
    assert [i.sku for i in catalogue.search("riesl")] == [f.WINE.sku]
    assert {i.sku for i in catalogue.search("alpenhof")} == {f.MILK.sku, f.BUTTER.sku}
    assert [i.sku for i in catalogue.search("alpenhof butt")] == [f.BUTTER.sku]
    assert [i.sku for i in catalogue.search("  NORDKIND   jeans ")] == [f.JEANS.sku]
    assert {i.sku for i in catalogue.search("app")} == {
        f.TSHIRT.sku,
        f.JEANS.sku,
        f.BELT.sku,
        f.SOCKS.sku,
    }
    assert len(catalogue.search("nordkind", limit=2)) == 2
    assert catalogue.search("nordkind", limit=0) == []


def test_search_ignores_accents(store: LocalStore, catalogue: Catalogue) -> None:
    f.apply(store, [f.product_change("DELI-PATE", "Pâté de campagne", 499)])
    assert [i.sku for i in catalogue.search("pate")] == ["DELI-PATE"]
    assert [i.sku for i in catalogue.search("PÂTÉ")] == ["DELI-PATE"]


def test_digits_match_barcode_and_sku_prefixes(store: LocalStore, catalogue: Catalogue) -> None:
    assert f.JAM.ean is not None
    # The EAN-13 as printed, its first digits, and the 14-digit form all find the jam.
    assert [i.sku for i in catalogue.search(f.JAM.ean)] == [f.JAM.sku]
    assert f.JAM.sku in {i.sku for i in catalogue.search(f.JAM.ean[:9])}
    assert [i.sku for i in catalogue.search(f.gtin14(f.JAM.ean))] == [f.JAM.sku]
    f.apply(store, [f.product_change("100234", "Numbered Notebook", 250)])
    assert [i.sku for i in catalogue.search("1002")] == ["100234"]


@pytest.mark.parametrize(
    ("text", "finds_milk"),
    [
        ('"', False),
        ('"milk', True),
        ("*", False),
        ("milk*", True),
        ("-milk", True),
        ("milk OR bread", False),  # every word must match: no product is milk and bread
        ("AND", False),
        ("NEAR(milk fresh)", False),  # "near" is a word too, and no product has it
        ("name:milk", False),
        ("^milk", True),
        ("(", False),
        ("')--; DROP TABLE products; --", False),
        ("", False),
        ("   ", False),
        ("\x00", False),
        ("🥛", False),
        ("9" * 40, False),
        ("milk " * 200, True),
    ],
)
def test_search_never_raises_on_odd_input(
    catalogue: Catalogue, text: str, finds_milk: bool
) -> None:
    found = [i.sku for i in catalogue.search(text)]
    assert (f.MILK.sku in found) is finds_milk
    assert catalogue.by_sku(f.MILK.sku) is not None  # and nothing was dropped


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('say "cheese" now*') == '"say"* "cheese"* "now"*'
    assert fts_query("--- ***") is None


def test_names_in_bulk(catalogue: Catalogue) -> None:
    assert catalogue.names([f.MILK.sku, f.BREAD.sku, "NOPE", f.RETIRED.sku, f.MILK.sku]) == {
        f.MILK.sku: f.MILK.name,
        f.BREAD.sku: f.BREAD.name,
    }
    many = [f"X{i}" for i in range(1200)] + [f.JAM.sku]
    assert catalogue.names(many) == {f.JAM.sku: f.JAM.name}


def test_recommendation_lists(store: LocalStore, catalogue: Catalogue) -> None:
    assert [i.sku for i in catalogue.also_bought(f.BREAD.sku)] == [
        f.BUTTER.sku,
        f.JAM.sku,
        f.MILK.sku,
    ]
    assert catalogue.also_bought("NOPE") == []
    assert [i.sku for i in catalogue.bestsellers("Grocery")] == [f.MILK.sku, f.BREAD.sku]
    assert [i.sku for i in catalogue.bestsellers()] == [f.TSHIRT.sku]
    assert catalogue.bestsellers("Toys") == []
    both = catalogue.also_bought_for([f.BREAD.sku, f.MILK.sku])
    assert set(both) == {f.BREAD.sku, f.MILK.sku}


def test_personal_list_follows_a_merge(store: LocalStore, catalogue: Catalogue) -> None:
    old, survivor = str(uuid.uuid4()), str(uuid.uuid4())
    f.apply(
        store,
        [
            f.customer_change(f.make_card(customer_id=uuid.UUID(old))),
            f.customer_change(f.make_card(customer_id=uuid.UUID(survivor))),
            f.recommendation_change("personal", old, [(f.JAM.sku, 1.0)]),
            f.recommendation_change("personal", survivor, [(f.WINE.sku, 1.0)]),
        ],
    )
    assert [i.sku for i in catalogue.personal(old)] == [f.JAM.sku]
    f.apply(store, [f.delete_change("customer", old, reason="merged", merged_into=survivor)])
    assert [i.sku for i in catalogue.personal(old)] == [f.WINE.sku]
    assert catalogue.personal(str(uuid.uuid4())) == []


def test_a_new_feed_page_is_seen_at_the_next_lookup(
    store: LocalStore, catalogue: Catalogue
) -> None:
    assert catalogue.also_bought(f.BREAD.sku)[0].sku == f.BUTTER.sku
    assert catalogue.name_of(f.BREAD.sku) == f.BREAD.name
    f.apply(
        store,
        [
            f.recommendation_change("also_bought", f.BREAD.sku, [(f.WINE.sku, 1.0)]),
            f.product_change(f.BREAD.sku, "Sourdough Rye 500 g", 349),
        ],
    )
    assert [i.sku for i in catalogue.also_bought(f.BREAD.sku)] == [f.WINE.sku]
    assert catalogue.name_of(f.BREAD.sku) == "Sourdough Rye 500 g"
    f.apply(store, [f.delete_change("recommendation", f"also_bought:{f.BREAD.sku}")])
    assert catalogue.also_bought(f.BREAD.sku) == []


def test_lookups_from_another_thread_see_their_own_fresh_data(
    store: LocalStore, catalogue: Catalogue
) -> None:
    assert catalogue.also_bought(f.BREAD.sku)
    seen: list[list[str]] = []

    def lookup() -> None:
        seen.append([i.sku for i in catalogue.also_bought(f.BREAD.sku)])

    f.apply(store, [f.recommendation_change("also_bought", f.BREAD.sku, [(f.JAM.sku, 1.0)])])
    worker = threading.Thread(target=lookup)
    worker.start()
    worker.join()
    assert seen == [[f.JAM.sku]]
    assert [i.sku for i in catalogue.also_bought(f.BREAD.sku)] == [f.JAM.sku]


def test_a_malformed_list_from_hq_is_ignored(
    store: LocalStore, catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {
        "entity": "recommendation",
        "key": f"also_bought:{f.JAM.sku}",
        "action": "upsert",
        "data": {"items": [{"sku": f.BREAD.sku, "score": -3}]},
    }
    feed.apply_page(store, [bad], "v1.0.999")
    with caplog.at_level(logging.WARNING):
        assert catalogue.also_bought(f.JAM.sku) == []
    assert "malformed also_bought list" in caplog.text
