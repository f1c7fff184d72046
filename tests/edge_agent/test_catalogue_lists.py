"""Reading a recommendation list's JSON on the scan path: the quick reading of plain lists gives
exactly what HQ's ``RecommendedItem`` model gives, and anything else is the model's to judge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from edge_agent.catalogue import Catalogue, parse_list
from edge_agent.store import LocalStore
from shared.recommendations import RecommendedItem
from tests.edge_agent import factories as f

MODEL = TypeAdapter(tuple[RecommendedItem, ...])


def by_the_model(text: str) -> tuple[Any, ...] | str:
    try:
        return tuple([(i.sku, i.score, i.reason) for i in MODEL.validate_json(text)])
    except ValidationError as exc:
        return f"refused: {exc.error_count()} errors"


def by_parse_list(text: str) -> tuple[Any, ...] | str:
    try:
        return parse_list(text)
    except ValidationError as exc:
        return f"refused: {exc.error_count()} errors"


sku = st.one_of(
    st.from_regex(r"[A-Z]{1,3}-?[0-9]{1,6}", fullmatch=True),
    st.text(max_size=70),  # spaces, control characters, empty, too long
    st.integers(),
    st.none(),
)
score = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10, max_value=2**60),
    st.booleans(),
    st.text(max_size=5),
)
reason = st.one_of(st.none(), st.text(max_size=20), st.integers())
item = st.one_of(
    st.fixed_dictionaries({"sku": sku, "score": score, "reason": reason}),
    st.fixed_dictionaries({"sku": sku, "score": score}),  # no reason
    st.fixed_dictionaries({"sku": sku, "score": score, "extra": st.integers()}),
    st.fixed_dictionaries({"score": score}),  # no SKU
    st.integers(),
    st.lists(st.integers(), max_size=2),
)
around = st.sampled_from(["", " ", "\n", " x", ",", "]"])


@settings(deadline=None, max_examples=400)
@given(items=st.lists(item, max_size=6), before=around, after=around)
def test_a_list_reads_exactly_as_the_model_reads_it(
    items: list[Any], before: str, after: str
) -> None:
    text = before.strip(",]x") + json.dumps(items) + after
    assert repr(by_parse_list(text)) == repr(by_the_model(text))


@pytest.mark.parametrize(
    "text",
    [
        '[{"sku":"P000001","score":0.9,"reason":null},{"sku":"P000002","score":1,"reason":"Top"}]',
        "[]",
        '[{"sku":"A\\u0001","score":0.5}]',  # a control character in a SKU
        '[{"sku":" A","score":0.5}]',  # spaces the model strips
        '[{"sku":"A","score":9007199254740993}]',  # above 2**53: the model's own float
        '[{"sku":"A","score":NaN}]',
        '{"sku":"A","score":1}',
        "not json",
        "",
    ],
)
def test_plain_and_odd_lists(text: str) -> None:
    assert repr(by_parse_list(text)) == repr(by_the_model(text))


# --- the scan path's lookups over a real store ---------------------------------------------------

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


def test_price_of_is_by_sku_s_price(store: LocalStore, catalogue: Catalogue) -> None:
    f.apply(
        store,
        [
            f.price_change(f.COFFEE.sku, 1199),
            f.price_change(
                f.JAM.sku,
                299,
                store_id=f.STORE_ID,
                valid_from=NOW - timedelta(days=1),
                valid_to=NOW + timedelta(days=1),
            ),
            f.price_change(f.BREAD.sku, 199, store_id=f.STORE_ID, valid_from=NOW + timedelta(1)),
        ],
    )
    skus = [item.sku for item in (*f.PLAIN, f.CARROTS, f.HAM, f.RETIRED)] + ["NOPE"]
    for sku in skus:
        item = catalogue.by_sku(sku)
        assert catalogue.price_of(sku) == (None if item is None else item.price_minor), sku
    assert catalogue.price_of(f.COFFEE.sku) == 1199
    assert catalogue.price_of(f.JAM.sku) == 299
    assert catalogue.price_of(f.BREAD.sku) == f.BREAD.price_minor  # not valid yet
    assert catalogue.price_of(f.RETIRED.sku) is None  # inactive: not sold


def test_the_lists_generation_changes_when_the_store_does(
    store: LocalStore, catalogue: Catalogue
) -> None:
    names, lists = catalogue.suggestion_sources()
    first = lists[f.BREAD.sku]
    assert [sku for sku, _, _ in first] == [sku for sku, _ in f.ALSO_BOUGHT[f.BREAD.sku]]
    assert names.get(f.BUTTER.sku) == f.BUTTER.name
    generation = getattr(lists, "generation", None)
    assert generation is not None

    # Nothing committed: same generation, the very same list.
    _, again = catalogue.suggestion_sources()
    assert getattr(again, "generation", None) == generation
    assert again.get(f.BREAD.sku) is first

    # A feed page changes the list: a new generation, and the new list.
    f.apply(store, [f.recommendation_change("also_bought", f.BREAD.sku, [(f.WINE.sku, 1.0)])])
    _, changed = catalogue.suggestion_sources()
    assert getattr(changed, "generation", None) != generation
    assert changed.get(f.BREAD.sku) == ((f.WINE.sku, 1.0, None),)
    assert changed.get("NO-SUCH-SKU") == ()
