"""The till's trending lists, as HQ's feed leaves them in a real cache file: the store's own list
per category, the chain's (store ``*``) when the store has nothing trending, and the empty lists
HQ sends when a category stops trending."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.catalogue import Catalogue
from edge_agent.store import LocalStore
from shared.errors import InvalidInput
from shared.recommendations import RecommendedItem
from tests.edge_agent import factories as f

OTHER_STORE = "S002"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("trending"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def catalogue(store: LocalStore) -> Catalogue:
    return Catalogue(store, store_id=f.STORE_ID)


def skus(items: list[RecommendedItem]) -> list[str]:
    return [i.sku for i in items]


def trending(key: str, *items: f.Item) -> f.Change:
    return f.recommendation_change("trending", key, [(i.sku, 9.0 - n) for n, i in enumerate(items)])


def test_no_trending_list_is_an_empty_one(catalogue: Catalogue) -> None:
    assert catalogue.trending() == []
    assert catalogue.trending("Grocery") == []


def test_the_stores_own_list_overall_and_per_category(
    store: LocalStore, catalogue: Catalogue
) -> None:
    f.apply(
        store,
        [
            trending(f"{f.STORE_ID}/*", f.WINE, f.SOCKS, f.JAM),
            trending(f"{f.STORE_ID}/Grocery", f.WINE, f.JAM),
            trending("*/*", f.MILK),
            trending(f"{OTHER_STORE}/*", f.BELT),
        ],
    )
    found = catalogue.trending()
    assert skus(found) == [f.WINE.sku, f.SOCKS.sku, f.JAM.sku]  # not the chain's, not S002's
    assert [i.score for i in found] == [9.0, 8.0, 7.0]
    assert skus(catalogue.trending("Grocery")) == [f.WINE.sku, f.JAM.sku]
    assert skus(catalogue.trending(limit=2)) == [f.WINE.sku, f.SOCKS.sku]
    assert catalogue.trending(limit=0) == []
    assert skus(catalogue.trending(store_id=OTHER_STORE)) == [f.BELT.sku]
    assert skus(catalogue.trending(store_id="*")) == [f.MILK.sku]


def test_the_chains_list_stands_in_for_a_store_with_nothing_trending(
    store: LocalStore, catalogue: Catalogue
) -> None:
    f.apply(
        store,
        [
            trending("*/*", f.COFFEE, f.TSHIRT),
            trending("*/Apparel", f.TSHIRT),
            trending(f"{f.STORE_ID}/Grocery", f.BREAD),
        ],
    )
    assert skus(catalogue.trending()) == [f.COFFEE.sku, f.TSHIRT.sku]
    assert skus(catalogue.trending("Apparel")) == [f.TSHIRT.sku]
    assert skus(catalogue.trending("Grocery")) == [f.BREAD.sku]
    assert skus(catalogue.trending("Deli")) == []  # neither the store nor the chain

    # Grocery stops trending here: HQ sends the store an empty list, the chain's takes over.
    f.apply(store, [trending(f"{f.STORE_ID}/Grocery"), trending("*/Grocery", f.MILK)])
    assert skus(catalogue.trending("Grocery")) == [f.MILK.sku]

    # A deleted chain list is gone at the next read (the cache follows the store).
    f.apply(store, [f.delete_change("recommendation", "trending:*/*")])
    assert catalogue.trending() == []


def test_a_malformed_list_is_skipped_not_raised(store: LocalStore, catalogue: Catalogue) -> None:
    bad = f.recommendation_change("trending", f"{f.STORE_ID}/*", [])
    bad["data"] = {"kind": "trending", "key": f"{f.STORE_ID}/*", "items": [{"sku": ""}]}
    f.apply(store, [bad, trending("*/*", f.JAM)])
    assert skus(catalogue.trending()) == [f.JAM.sku]  # unreadable own list: the chain's


def test_a_negative_limit_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidInput, match="-1 items"):
        catalogue.trending(limit=-1)
