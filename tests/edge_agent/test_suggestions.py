"""Ranking suggestions for a basket: pure function, no store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.suggestions import (
    LIST_DEPTH,
    Suggestion,
    recency_weight,
    suggest_for_basket,
)
from shared.customer import CardItem
from shared.recommendations import RecommendedItem

# A Tuesday, 15:00 UTC.
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def rec(*pairs: tuple[str, float]) -> list[RecommendedItem]:
    return [RecommendedItem(sku=sku, score=score) for sku, score in pairs]


def names_for(*skus: str) -> dict[str, str]:
    return {sku: f"Name of {sku}" for sku in skus}


ALL = names_for(*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "BREAD", "BUTTER", "JAM", "MILK", "COFFEE")


def skus(found: list[Suggestion]) -> list[str]:
    return [s.sku for s in found]


def test_recency_weight_is_harmonic() -> None:
    assert [recency_weight(a) for a in range(4)] == [1.0, 0.5, 1 / 3, 0.25]


def test_the_newest_basket_item_leads() -> None:
    lists = {"A": rec(("X", 1.0)), "B": rec(("Y", 1.0))}
    assert skus(suggest_for_basket(["A", "B"], lists, names=ALL, now=NOW)) == ["Y", "X"]
    assert skus(suggest_for_basket(["B", "A"], lists, names=ALL, now=NOW)) == ["X", "Y"]


def test_rescanning_an_item_makes_it_the_newest_again() -> None:
    lists = {"A": rec(("X", 1.0)), "B": rec(("Y", 1.0))}
    found = suggest_for_basket(["A", "B", "A"], lists, names=ALL, now=NOW)
    assert skus(found) == ["X", "Y"]
    assert found[1].score == 0.5  # B is one distinct item old, not two scans


def test_items_suggested_by_several_basket_items_sum_their_scores() -> None:
    # X is the newest item's second choice but also goes with the two before it.
    lists = {
        "A": rec(("X", 1.0)),
        "B": rec(("X", 1.0)),
        "C": rec(("Y", 1.0), ("X", 0.4)),
    }
    found = suggest_for_basket(["A", "B", "C"], lists, names=ALL, now=NOW)
    assert skus(found) == ["X", "Y"]
    assert found[0].score == pytest.approx(1 / 3 + 1 / 2 + 0.4)
    # The reason names the basket item that contributed most (B: 0.5, C: 0.4, A: 0.33).
    assert found[0].because_of == "B"
    assert found[0].reason == "Often bought with Name of B"


def test_each_list_is_scaled_to_its_best_item() -> None:
    # HQ's raw scores differ by orders of magnitude between lists; the newest item still leads.
    lists = {"A": rec(("X", 900.0)), "B": rec(("Y", 0.01))}
    assert skus(suggest_for_basket(["A", "B"], lists, names=ALL, now=NOW)) == ["Y", "X"]


def test_only_the_head_of_each_list_counts() -> None:
    items = [(f"P{i:03d}", 100.0 - i) for i in range(LIST_DEPTH + 5)]
    names = names_for(*(sku for sku, _ in items))
    found = suggest_for_basket(["A"], {"A": rec(*items)}, names=names, now=NOW, n=100)
    assert len(found) == LIST_DEPTH


def test_basket_items_and_recent_purchases_are_dropped() -> None:
    lists = {"BREAD": rec(("BUTTER", 1.0), ("JAM", 0.9), ("MILK", 0.8), ("COFFEE", 0.1))}
    found = suggest_for_basket(
        ["MILK", "BREAD"], lists, names=ALL, exclude={"BUTTER"}, now=NOW, n=3
    )
    assert skus(found) == ["JAM", "COFFEE"]


def test_items_the_till_does_not_sell_are_skipped() -> None:
    lists = {"A": rec(("GONE", 1.0), ("X", 0.5))}
    found = suggest_for_basket(["A"], lists, names=ALL, now=NOW)
    assert skus(found) == ["X"]


def test_personal_list_is_mixed_in_with_the_customer_name() -> None:
    lists = {"A": rec(("X", 1.0))}
    found = suggest_for_basket(
        ["A"], lists, names=ALL, personal=rec(("P", 5.0)), now=NOW, customer_name="Maria"
    )
    assert skus(found) == ["X", "P"]
    assert found[1].reason == "Picked for Maria"
    assert found[1].because_of is None
    anonymous = suggest_for_basket([], {}, names=ALL, personal=rec(("P", 1.0)), now=NOW)
    assert anonymous[0].reason == "Picked for you"


def test_online_cart_and_views_get_strong_boosts_with_their_own_reasons() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    lists = {"A": rec(("X", 1.0), ("V", 0.2))}
    # Monday 23:30 UTC is already Tuesday in Berlin.
    monday_late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    found = suggest_for_basket(
        ["A"],
        lists,
        names=ALL,
        cart=[CardItem(sku="C", at=NOW - timedelta(days=2), price_minor=1999)],
        viewed=[CardItem(sku="V", at=monday_late)],
        now=NOW,
        tz=berlin,
    )
    assert skus(found) == ["C", "V", "X"]
    assert found[0].reason == "Left in online cart on Sunday"
    assert found[0].price_minor == 1999
    # V is also bought with A, but the view is what the cashier should mention.
    assert found[1].reason == "Viewed online today"
    assert found[1].because_of is None
    in_utc = suggest_for_basket(
        [], {}, names=ALL, viewed=[CardItem(sku="V", at=monday_late)], now=NOW
    )
    assert in_utc[0].reason == "Viewed online on Monday"


def test_older_online_signals_name_the_date_and_weigh_less() -> None:
    old = CardItem(sku="OLD", at=datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    new = CardItem(sku="NEW", at=NOW - timedelta(hours=3))
    undated = CardItem(sku="UNDATED")
    names = names_for("OLD", "NEW", "UNDATED")
    found = suggest_for_basket([], {}, names=names, viewed=[old, undated, new], now=NOW)
    assert skus(found) == ["NEW", "UNDATED", "OLD"]
    assert found[2].reason == "Viewed online on 3 Nov"
    assert found[1].reason == "Viewed online"


def test_cart_items_already_in_the_basket_or_bought_are_not_suggested() -> None:
    found = suggest_for_basket(
        ["A"],
        {},
        names=ALL,
        cart=[CardItem(sku="A", at=NOW), CardItem(sku="B", at=NOW), CardItem(sku="C", at=NOW)],
        exclude=["B"],
        now=NOW,
    )
    assert skus(found) == ["C"]


def test_ties_are_broken_by_sku_and_n_is_respected() -> None:
    lists = {"A": rec(("Z", 1.0), ("M", 1.0), ("B", 1.0), ("K", 1.0))}
    assert skus(suggest_for_basket(["A"], lists, names=ALL, now=NOW)) == ["B", "K", "M"]
    assert skus(suggest_for_basket(["A"], lists, names=ALL, now=NOW, n=1)) == ["B"]
    assert suggest_for_basket(["A"], lists, names=ALL, now=NOW, n=0) == []


def test_zero_scores_keep_hq_order() -> None:
    lists = {"A": rec(("Z", 0.0), ("B", 0.0))}
    assert skus(suggest_for_basket(["A"], lists, names=ALL, now=NOW)) == ["Z", "B"]


class CountingNames(Mapping[str, str]):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def __getitem__(self, sku: str) -> str:
        self.asked.append(sku)
        return self.names[sku]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def test_names_are_only_asked_for_what_is_shown() -> None:
    basket = [f"B{i}" for i in range(20)]
    lists = {sku: rec(*((f"{sku}-P{j}", 1.0 - j / 30) for j in range(20))) for sku in basket}
    everything = names_for(*basket, *(i.sku for items in lists.values() for i in items))
    names = CountingNames(everything)
    found = suggest_for_basket(basket, lists, names=names, now=NOW, n=3)
    assert len(found) == 3
    # Three suggestions and the basket items their reasons cite; never the 400 candidates.
    assert len(names.asked) <= 6


@given(
    basket=st.lists(st.sampled_from("ABCDEFGH"), max_size=12),
    lists=st.dictionaries(
        st.sampled_from("ABCDEFGH"),
        st.lists(
            st.tuples(st.sampled_from("ABCDEFGHIJKLMNOP"), st.floats(0, 1000)),
            max_size=8,
        ),
    ),
    exclude=st.sets(st.sampled_from("IJKLMNOP"), max_size=4),
    n=st.integers(0, 5),
)
def test_suggestions_never_repeat_the_basket_and_are_ranked(
    basket: list[str],
    lists: dict[str, list[tuple[str, float]]],
    exclude: set[str],
    n: int,
) -> None:
    also = {sku: rec(*items) for sku, items in lists.items()}
    found = suggest_for_basket(basket, also, names=ALL, exclude=exclude, now=NOW, n=n)
    assert len(found) <= n
    assert not {s.sku for s in found} & (set(basket) | exclude)
    assert len({s.sku for s in found}) == len(found)
    keys = [(-s.score, s.sku) for s in found]
    assert keys == sorted(keys)
    assert found == suggest_for_basket(basket, also, names=ALL, exclude=exclude, now=NOW, n=n)
    for s in found:
        assert s.because_of in basket
        assert s.reason == f"Often bought with Name of {s.because_of}"
