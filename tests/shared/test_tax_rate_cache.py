"""line_tax remembers the rates it has checked: the same taxes and the same refusals as checking
every call, whatever was seen before (equal floats, bools, ints, NaNs, a full cache)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import tax
from shared.errors import MoneyError, TaxError
from shared.tax import TaxMode, basket_tax, line_tax

modes = st.sampled_from(["inclusive", "exclusive"])
amounts = st.integers(min_value=-(10**9), max_value=10**9)
rates = st.integers(min_value=0, max_value=99_999).map(lambda n: Decimal(n).scaleb(-3))


def reference_tax(amount: int, rate: Decimal, mode: TaxMode) -> int:
    with localcontext() as context:
        context.prec = 80
        base = Decimal(100) + rate if mode == "inclusive" else Decimal(100)
        return int((Decimal(amount) * rate / base).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def refusal(call: object, *args: object) -> tuple[type[Exception], str]:
    assert callable(call)
    with pytest.raises((TaxError, MoneyError)) as caught:
        call(*args)
    return type(caught.value), caught.value.message


@given(amounts, rates, modes, st.integers(0, 4))
def test_a_remembered_rate_taxes_like_a_new_one(
    amount: int, rate: Decimal, mode: TaxMode, zeros: int
) -> None:
    # The same value written with more zeros ("7", "7.000") is one rate with one fraction.
    for same in (rate, rate.quantize(Decimal(1).scaleb(-3 - zeros)), rate):
        line = line_tax(amount, same, mode)
        assert line.tax == reference_tax(amount, rate, mode)
        assert Fraction(*tax._RATE_FRACTIONS.get(rate, rate.as_integer_ratio())) == rate


@pytest.mark.parametrize(
    ("seen", "bad"),
    [
        (Decimal("7"), 7.0),  # equal to a remembered Decimal, but a float
        (Decimal("1"), True),  # equal to Decimal(1), but a bool
        (Decimal("0"), False),
        (Decimal("19"), "19"),
    ],
)
def test_a_remembered_rate_does_not_let_equal_other_types_in(seen: Decimal, bad: object) -> None:
    fresh = dict(tax._RATE_FRACTIONS)
    tax._RATE_FRACTIONS.clear()
    try:
        expected = refusal(line_tax, 100, bad, "inclusive")
        line_tax(100, seen, "inclusive")
        assert seen in tax._RATE_FRACTIONS
        assert refusal(line_tax, 100, bad, "inclusive") == expected
    finally:
        tax._RATE_FRACTIONS.clear()
        tax._RATE_FRACTIONS.update(fresh)


def test_ints_are_accepted_and_impossible_rates_refused_every_time() -> None:
    whole: Any = 19  # an int rate is accepted, though not in line_tax's signature
    assert line_tax(119, whole, "inclusive") == line_tax(119, Decimal(19), "inclusive")
    for bad in (Decimal("sNaN"), Decimal("NaN"), Decimal("Infinity"), Decimal(100), Decimal(-1)):
        first = refusal(line_tax, 100, bad, "exclusive")
        assert refusal(line_tax, 100, bad, "exclusive") == first
        assert first[0] is TaxError
    assert refusal(line_tax, 100, Decimal(100), "exclusive")[1] == (
        "Tax rate 100% is not possible: a rate is at least 0 and below 100 percent"
    )


def test_checks_keep_their_order_and_messages_for_a_remembered_rate() -> None:
    line_tax(100, Decimal("20"), "inclusive")
    assert refusal(line_tax, 1.5, Decimal("20"), "inclusive") == (
        MoneyError,
        "Amount 1.5 must be a whole number of minor units (cents), e.g. 1230 for 12.30",
    )
    assert refusal(line_tax, 100, Decimal("20"), "gross")[0] is TaxError
    assert refusal(basket_tax, [(100, Decimal("20")), (5, 7.5)], "inclusive") == (
        TaxError,
        "Tax rate 7.5 on line 2 must be an exact decimal percentage such as Decimal('8.875'), "
        "not a float",
    )


def test_the_cache_stays_small_and_right_when_full() -> None:
    for n in range(tax._RATE_FRACTIONS_SIZE + 50):
        rate = Decimal(n).scaleb(-2)
        assert line_tax(10_000, rate, "exclusive").tax == reference_tax(10_000, rate, "exclusive")
    assert len(tax._RATE_FRACTIONS) <= tax._RATE_FRACTIONS_SIZE
    rate = Decimal("99.999")
    assert line_tax(10**6, rate, "inclusive").tax == reference_tax(10**6, rate, "inclusive")
