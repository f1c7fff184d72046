"""Incremental basket pricing: the engine reprices only the lines that changed, and its totals are
always exactly what pricing the whole basket again gives (``price_basket``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.sale_engine import (
    BasketPricer,
    BasketTotals,
    DiscountRule,
    SaleEngine,
    price_basket,
)
from edge_agent.store import LocalStore
from shared.errors import InvalidInput, OmnitillError
from shared.tax import TaxMode
from tests.edge_agent import factories as f


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture(scope="module")
def shared_store(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    # One store for every example: the engine only reads the catalogue (and parks baskets).
    local = f.store_from_template(template, tmp_path_factory.mktemp("pricing"))
    yield local
    local.close()


def full(engine: SaleEngine) -> BasketTotals | str:
    """The reference: the whole basket priced from scratch (or the error it raises)."""
    try:
        return price_basket(
            engine.basket, tax_mode=engine.shop.tax_mode, currency=engine.shop.currency
        )
    except OmnitillError as exc:
        return f"{type(exc).__name__}: {exc.message}"


def incremental(engine: SaleEngine) -> BasketTotals | str:
    try:
        return engine.totals()
    except OmnitillError as exc:
        return f"{type(exc).__name__}: {exc.message}"


RATES = [Decimal(r) for r in ("0", "7", "8.875", "19", "20")]
index = st.integers(0, 40)
discount = st.one_of(
    st.tuples(st.just("percent"), st.decimals(min_value=Decimal("0.5"), max_value=100, places=1)),
    st.tuples(st.just("amount"), st.integers(1, 3000)),
)
operation = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 5000), st.integers(1, 4), st.sampled_from(RATES)),
    st.tuples(st.just("sku"), st.integers(0, len(f.PLAIN) - 1), st.integers(1, 3)),
    st.tuples(st.just("weighed"), st.integers(1, 3000)),
    st.tuples(st.just("void"), index),
    st.tuples(st.just("quantity"), index, st.integers(1, 6)),
    st.tuples(st.just("line_discount"), index, discount),
    st.tuples(st.just("basket_discount"), discount),
    st.tuples(st.just("remove_discounts"), st.one_of(st.none(), index)),
    st.tuples(st.just("pending"), st.integers(2, 4)),
    # Lines changed behind the engine's back are repriced too.
    st.tuples(st.just("outside_quantity"), index, st.integers(1, 6)),
    st.tuples(st.just("outside_rate"), index, st.sampled_from(RATES)),
    st.tuples(st.just("park_and_resume")),
    st.tuples(st.just("cash"), st.integers(1, 2000)),
    st.tuples(st.just("cancel")),
)


LINE_OPERATIONS = {
    "void",
    "quantity",
    "line_discount",
    "outside_quantity",
    "outside_rate",
}


def apply(engine: SaleEngine, op: tuple[Any, ...]) -> None:
    lines = engine.basket.lines
    # Operations on a line pick one by position (modulo the basket's size); none: no-op.
    line_no = (
        lines[op[1] % len(lines)].line_no if lines and len(op) > 1 and type(op[1]) is int else 0
    )
    if op[0] in LINE_OPERATIONS and not lines:
        return
    match op:
        case ("open", price, quantity, rate):
            engine.add_open_price("Keyed item", price, rate, quantity)
        case ("sku", item, quantity):
            engine.add_sku(f.PLAIN[item].sku, quantity)
        case ("weighed", grams):
            engine.add_sku(f.CARROTS.sku, weight_g=grams)
        case ("void", _):
            engine.void_line(line_no)
        case ("quantity", _, quantity):
            engine.set_quantity(line_no, quantity)
        case ("line_discount", _, (kind, value)):
            engine.discount_line(line_no, kind=kind, value=value, reason="Promo")
        case ("basket_discount", (kind, value)):
            engine.discount_basket(kind=kind, value=value, reason="Basket promo")
        case ("remove_discounts", which):
            engine.remove_discounts(None if which is None else line_no)
        case ("pending", quantity):
            engine.set_pending_quantity(quantity)
        case ("outside_quantity", _, quantity):
            engine.basket.line(line_no).quantity = quantity
        case ("outside_rate", _, rate):
            engine.basket.line(line_no).tax_rate = rate
        case ("park_and_resume",):
            engine.resume(engine.park())
        case ("cash", amount):
            engine.add_tender_cash(amount)
        case ("cancel",):
            engine.cancel()
        case _:
            raise AssertionError(f"unknown operation {op!r}")


@settings(deadline=None, max_examples=150)
@given(
    mode=st.sampled_from(["inclusive", "exclusive"]),
    operations=st.lists(operation, min_size=1, max_size=40),
)
def test_incremental_totals_equal_a_full_repricing_after_every_change(
    shared_store: LocalStore, mode: TaxMode, operations: list[tuple[Any, ...]]
) -> None:
    engine = f.make_engine(shared_store, tax_mode=mode)
    for op in operations:
        # A refused change (too big a discount, payment started...) leaves the basket as it was.
        with contextlib.suppress(InvalidInput):
            apply(engine, op)
        expected = full(engine)
        assert incremental(engine) == expected, op
        assert incremental(engine) == expected, op  # and again, with nothing changed
        if isinstance(expected, BasketTotals):
            assert expected.subtotal_minor == sum(p.amount_minor for p in expected.lines)
    engine.cancel()


def test_a_scan_reprices_only_the_new_line(
    shared_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = f.make_engine(shared_store)
    for number in range(20):
        engine.add_open_price(f"Item {number}", 100 + number, RATES[number % len(RATES)])
    engine.totals()
    priced: list[int] = []
    original = BasketPricer._price_line

    def counting(self: BasketPricer, line: Any) -> Any:
        priced.append(line.line_no)
        return original(self, line)

    monkeypatch.setattr(BasketPricer, "_price_line", counting)
    added = engine.add_open_price("One more", 250, Decimal("7"))
    totals = engine.totals()
    assert priced == [added.line_no]
    engine.set_quantity(3, 5)
    engine.void_line(1)
    assert engine.totals() == full(engine)
    assert priced == [added.line_no, 3]  # set_quantity checks the totals; voiding prices nothing
    assert totals.total_minor == sum(100 + n for n in range(20)) + 250


def test_a_refused_discount_leaves_the_totals_as_they_were(shared_store: LocalStore) -> None:
    engine = f.make_engine(shared_store)
    line = engine.add_open_price("Keyed item", 500, Decimal("19"))
    before = engine.totals()
    with pytest.raises(InvalidInput, match="left on the line"):
        engine.discount_line(line.line_no, kind="amount", value=501, reason="Too much")
    assert engine.totals() == before == full(engine)
    # An error met while pricing is the one the full pricing raises, naming the line.
    line.discounts.append(DiscountRule(kind="amount", value=Decimal(600), reason="Outside"))
    assert incremental(engine) == full(engine)
    assert "on line 1 (Keyed item)" in str(incremental(engine))
    line.discounts.clear()
    assert engine.totals() == before
