"""The incremental ranker gives exactly the full ranking (``suggest_for_basket``), scan after scan:
same suggestions, scores to the last bit, reasons, prices, and the same names asked for."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.suggestions import BasketRanker, ItemTuple, ListItems, suggest_for_basket
from shared.customer import CardItem
from shared.recommendations import RecommendedItem

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
#: A small catalogue, so lists overlap, candidates tie and basket items suggest each other.
SKUS = [f"S{i:02d}" for i in range(14)]
NOT_SOLD = {"S12", "S13"}


class RecordingNames(Mapping[str, str]):
    """Names as the catalogue's lazy mapping gives them, noting every SKU asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, sku: str, default: Any = None) -> Any:
        self.asked.append(sku)
        return default if sku in NOT_SOLD or sku not in SKUS else f"Name of {sku}"

    def __getitem__(self, sku: str) -> str:
        name: str | None = self.get(sku)
        if name is None:
            raise KeyError(sku)
        return name

    def __iter__(self) -> Iterator[str]:
        return iter([sku for sku in SKUS if sku not in NOT_SOLD])

    def __len__(self) -> int:
        return len(SKUS) - len(NOT_SOLD)


def as_tuple(item: ItemTuple | RecommendedItem) -> ItemTuple:
    return (item.sku, item.score, item.reason) if isinstance(item, RecommendedItem) else item


sku = st.sampled_from(SKUS)
# Few distinct scores, so that sums tie; zeros; now and then a score that is not a finite number.
score = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0]),
    st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False),
)
weird_score = st.one_of(score, st.just(float("inf")), st.just(float("nan")))
list_items = st.lists(st.tuples(sku, score, st.sampled_from([None, "r"])), max_size=8)
card_item = st.builds(
    CardItem,
    sku=sku,
    at=st.one_of(st.none(), st.integers(0, 20).map(lambda d: NOW - timedelta(days=d, hours=3))),
    price_minor=st.one_of(st.none(), st.integers(1, 5000)),
)
operation = st.one_of(
    st.tuples(st.just("scan"), sku),
    st.tuples(st.just("scan"), sku),
    st.tuples(st.just("void"), sku),
    # HQ's feed changed a list (a new tuple, maybe the same items), or the cache was dropped.
    st.tuples(st.just("relist"), sku, list_items),
    st.tuples(st.just("reread"), sku),
    st.tuples(st.just("models"), sku),  # a list of models (not a tuple) for this item
    st.tuples(st.just("weird"), sku, st.lists(st.tuples(sku, weird_score, st.none()), max_size=4)),
    st.tuples(
        st.just("customer"),
        st.lists(sku, max_size=3),
        st.lists(st.tuples(sku, score, st.none()), max_size=6),
        st.lists(card_item, max_size=3),
        st.lists(card_item, max_size=3),
    ),
    st.tuples(st.just("n"), st.integers(0, 7)),
    st.tuples(st.just("plain")),  # this time the lists come without a generation
)
CHANGES_LISTS = {"relist", "reread", "models", "weird"}


class Versioned(Mapping[str, ListItems]):
    """The test's lists with a ``generation``, bumped whenever a list changes."""

    def __init__(self, lists: dict[str, ListItems]) -> None:
        self.lists = lists
        self.generation = 0

    def __getitem__(self, sku: str) -> ListItems:
        return self.lists[sku]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lists)

    def __len__(self) -> int:
        return len(self.lists)


@settings(deadline=None, max_examples=300)
@given(
    initial=st.dictionaries(sku, list_items, max_size=len(SKUS)),
    operations=st.lists(operation, min_size=1, max_size=40),
    customer_name=st.sampled_from([None, "", "Maria"]),
)
def test_the_ranker_equals_the_full_ranking_after_every_scan(
    initial: dict[str, list[ItemTuple]],
    operations: list[tuple[Any, ...]],
    customer_name: str | None,
) -> None:
    lists: dict[str, ListItems] = {key: tuple(items) for key, items in initial.items()}
    basket: list[str] = []
    exclude: list[str] = []
    personal: ListItems = ()
    viewed: list[CardItem] = []
    cart: list[CardItem] = []
    n = 3
    ranker = BasketRanker()
    versioned = Versioned(lists)
    for op in operations:
        if op[0] in CHANGES_LISTS:
            versioned.generation += 1  # what the catalogue's lazy lists do when data changed
        match op:
            case ("scan", item):
                basket.append(item)
            case ("void", item):
                basket = [s for s in basket if s != item]
            case ("relist", item, items):
                lists[item] = tuple(items)
            case ("reread", item):
                lists[item] = tuple([as_tuple(i) for i in lists.get(item, ())])
            case ("models", item):
                lists[item] = [
                    RecommendedItem(sku=s, score=x, reason=r)
                    for s, x, r in map(as_tuple, lists.get(item, ()))
                    if math.isfinite(x)
                ]
            case ("weird", item, items):
                lists[item] = tuple(items)
            case ("customer", excluded, mine, seen, left):
                exclude, personal, viewed, cart = excluded, tuple(mine), seen, left
            case ("n", count):
                n = count
        arguments: dict[str, Any] = {
            "exclude": exclude,
            "personal": personal,
            "viewed": viewed,
            "cart": cart,
            "now": NOW,
            "n": n,
            "customer_name": customer_name,
        }
        full_names, ranker_names = RecordingNames(), RecordingNames()
        expected = suggest_for_basket(basket, lists, names=full_names, **arguments)
        # The lists as the catalogue hands them out (with a generation), or a plain mapping.
        source = lists if op[0] == "plain" else versioned
        found = ranker.suggest(basket, source, names=ranker_names, **arguments)
        # repr: a score that is not a number (from a list that had one) is not equal to itself.
        assert repr(found) == repr(expected), op
        assert ranker_names.asked == full_names.asked, op


def test_a_twenty_line_basket_opens_only_the_newest_lists() -> None:
    # Each basket item's list is its own three candidates, scores 1, 0.9, 0.8: the top three
    # come from the newest item (weight 1 beats everything older items can score).
    basket = [f"B{i:02d}" for i in range(20)]
    lists: dict[str, tuple[ItemTuple, ...]] = {
        b: ((f"{b}-x", 1.0, None), (f"{b}-y", 0.9, None), (f"{b}-z", 0.8, None)) for b in basket
    }
    names = {c: c for items in lists.values() for c, _, _ in items}
    ranker = BasketRanker()
    found = ranker.suggest(basket, lists, names=names, now=NOW)
    assert [s.sku for s in found] == ["B19-x", "B19-y", "B19-z"]
    assert found == suggest_for_basket(basket, lists, names=names, now=NOW)
    # One more scan: the ranker keeps the other 20 lists as they were and still agrees.
    basket.append("B20")
    lists["B20"] = (("B05-x", 1.0, None), ("NEW", 0.95, None))
    names["NEW"] = "NEW"
    found = ranker.suggest(basket, lists, names=names, now=NOW, n=4)
    assert found == suggest_for_basket(basket, lists, names=names, now=NOW, n=4)
    assert [s.sku for s in found][:2] == ["B05-x", "NEW"]
    assert found[0].because_of == "B20"
