from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInput, MoneyError, TaxError
from shared.tax import BasketTax, LineTax, TaxMode, basket_tax, line_tax

modes = st.sampled_from(["inclusive", "exclusive"])
line_amounts = st.integers(min_value=-(10**9), max_value=10**9)
rates = st.one_of(
    st.sampled_from([Decimal(r) for r in ("0", "5", "7", "10", "19", "20", "21", "8.875", "25")]),
    # any percentage with up to three decimals in [0, 100)
    st.integers(min_value=0, max_value=99_999).map(lambda n: Decimal(n).scaleb(-3)),
)
baskets = st.lists(st.tuples(line_amounts, rates), max_size=25)


def reference_tax(amount: int, rate: Decimal, mode: TaxMode) -> int:
    """The rule as the module docstring states it, computed with decimal's ROUND_HALF_UP."""
    with localcontext() as context:
        context.prec = 80
        base = Decimal(100) + rate if mode == "inclusive" else Decimal(100)
        exact = Decimal(amount) * rate / base
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------------------------
# Known examples, worked by hand
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rate", "net", "tax"),
    [
        (100, "20", 83, 17),  # 100 × 20/120 = 16.67 -> 17
        (5, "20", 4, 1),  # 5 × 20/120 = 0.833 -> 1
        (1, "20", 1, 0),  # 0.167 -> 0
        (120, "20", 100, 20),  # exactly 20
        (3, "20", 2, 1),  # 3 × 20/120 = 0.5 exactly -> 1 (half-even would give 0)
        (15, "20", 12, 3),  # 2.5 -> 3 (half-even would give 2)
        (119, "19", 100, 19),  # exactly 19
        (100, "19", 84, 16),  # 1900/119 = 15.97 -> 16
        (107, "7", 100, 7),
        (999, "0", 999, 0),
        (0, "20", 0, 0),
    ],
)
def test_inclusive_examples(amount: int, rate: str, net: int, tax: int) -> None:
    assert line_tax(amount, Decimal(rate), "inclusive") == LineTax(net=net, tax=tax, gross=amount)


@pytest.mark.parametrize(
    ("amount", "rate", "tax"),
    [
        (999, "8.875", 89),  # 999 × 0.08875 = 88.66 -> 89
        (10, "5", 1),  # 0.5 exactly -> 1: half up, not half even (0)
        (30, "5", 2),  # 1.5 -> 2
        (50, "5", 3),  # 2.5 -> 3: half up, not half even (2)
        (9, "5", 0),  # 0.45 -> 0
        (10000, "8.875", 888),  # 887.5 -> 888
        (1999, "0", 0),
    ],
)
def test_exclusive_examples(amount: int, rate: str, tax: int) -> None:
    assert line_tax(amount, Decimal(rate), "exclusive") == LineTax(
        net=amount, tax=tax, gross=amount + tax
    )


def test_returns_round_half_away_from_zero() -> None:
    # -0.5 cent of tax on a returned 0.10 line becomes -1, so the refund mirrors the sale
    assert line_tax(-10, Decimal("5"), "exclusive") == LineTax(net=-10, tax=-1, gross=-11)
    assert line_tax(-3, Decimal("20"), "inclusive") == LineTax(net=-2, tax=-1, gross=-3)


def test_rates_accept_whole_numbers() -> None:
    assert line_tax(100, 20, "inclusive") == line_tax(100, Decimal("20"), "inclusive")  # type: ignore[arg-type]


def test_huge_amounts_do_not_depend_on_decimal_precision() -> None:
    amount = 10**40 + 10
    assert line_tax(amount, Decimal("5"), "exclusive").tax == 5 * 10**38 + 1  # x.5 -> up


# --------------------------------------------------------------------------------------------
# Properties of one line
# --------------------------------------------------------------------------------------------


@given(amount=line_amounts, rate=rates, mode=modes)
def test_line_tax_follows_the_documented_rule(amount: int, rate: Decimal, mode: TaxMode) -> None:
    line = line_tax(amount, rate, mode)
    assert line.tax == reference_tax(amount, rate, mode)
    assert line.net + line.tax == line.gross
    if mode == "inclusive":
        assert line.gross == amount
    else:
        assert line.net == amount


@given(amount=line_amounts, rate=rates, mode=modes)
def test_a_return_exactly_reverses_a_sale(amount: int, rate: Decimal, mode: TaxMode) -> None:
    assert line_tax(-amount, rate, mode) == -line_tax(amount, rate, mode)


@given(net=line_amounts, rate=rates)
def test_both_modes_agree_on_the_same_line(net: int, rate: Decimal) -> None:
    # Taxing the exclusive gross inclusively finds the same tax again: the rounding error of the
    # exclusive tax, scaled by 100/(100+rate), is always below half a minor unit.
    exclusive = line_tax(net, rate, "exclusive")
    assert line_tax(exclusive.gross, rate, "inclusive") == exclusive


# --------------------------------------------------------------------------------------------
# Baskets
# --------------------------------------------------------------------------------------------


def test_basket_example_with_a_breakdown_per_rate() -> None:
    basket = basket_tax(
        [(100, Decimal("20")), (50, Decimal("7")), (30, Decimal("20.0"))], "inclusive"
    )
    assert basket.lines == (
        LineTax(net=83, tax=17, gross=100),
        LineTax(net=47, tax=3, gross=50),  # 350/107 = 3.27 -> 3
        LineTax(net=25, tax=5, gross=30),
    )
    assert (basket.net, basket.tax, basket.gross) == (155, 25, 180)
    # 20 and 20.0 are the same rate; keys come in ascending order
    assert list(basket.by_rate) == [Decimal("7"), Decimal("20")]
    assert basket.by_rate[Decimal("20")] == LineTax(net=108, tax=22, gross=130)
    assert basket.by_rate[Decimal("7")] == LineTax(net=47, tax=3, gross=50)


def test_per_line_rounding_differs_from_invoice_rounding() -> None:
    # Three 0.03 lines at 20% inclusive: 0.5 cent each -> 1 cent per line, 3 cents in all;
    # rounding the invoice total (0.09 × 20/120 = 1.5 -> 2) would give a different receipt.
    basket = basket_tax([(3, Decimal("20"))] * 3, "inclusive")
    assert basket.tax == 3
    assert basket.net == 6


def test_an_empty_basket_has_no_tax() -> None:
    assert basket_tax([], "exclusive") == BasketTax(lines=(), net=0, tax=0, gross=0, by_rate={})


@given(lines=baskets, mode=modes)
def test_basket_totals_are_the_sums_of_its_lines(
    lines: list[tuple[int, Decimal]], mode: TaxMode
) -> None:
    basket = basket_tax(lines, mode)
    assert basket.lines == tuple(line_tax(amount, rate, mode) for amount, rate in lines)
    assert basket.net == sum(line.net for line in basket.lines)
    assert basket.tax == sum(line.tax for line in basket.lines)
    assert basket.gross == sum(line.gross for line in basket.lines)
    assert basket.net + basket.tax == basket.gross
    amounts = sum(amount for amount, _ in lines)
    assert (basket.gross if mode == "inclusive" else basket.net) == amounts


@given(lines=baskets, mode=modes)
def test_the_breakdown_per_rate_adds_up_to_the_totals(
    lines: list[tuple[int, Decimal]], mode: TaxMode
) -> None:
    basket = basket_tax(lines, mode)
    assert list(basket.by_rate) == sorted({rate for _, rate in lines})
    assert sum(group.net for group in basket.by_rate.values()) == basket.net
    assert sum(group.tax for group in basket.by_rate.values()) == basket.tax
    assert sum(group.gross for group in basket.by_rate.values()) == basket.gross
    for rate, group in basket.by_rate.items():
        at_rate = [line for line, (_, r) in zip(basket.lines, lines, strict=True) if r == rate]
        assert group.tax == sum(line.tax for line in at_rate)
        assert group.gross == sum(line.gross for line in at_rate)
        assert group.net + group.tax == group.gross


@given(lines=baskets, mode=modes)
def test_a_returned_basket_reverses_the_sale(
    lines: list[tuple[int, Decimal]], mode: TaxMode
) -> None:
    sale = basket_tax(lines, mode)
    refund = basket_tax([(-amount, rate) for amount, rate in lines], mode)
    assert refund.lines == tuple(-line for line in sale.lines)
    assert (refund.net, refund.tax, refund.gross) == (-sale.net, -sale.tax, -sale.gross)
    assert refund.by_rate == {rate: -group for rate, group in sale.by_rate.items()}


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        (Decimal("100"), "not possible"),
        (Decimal("150"), "not possible"),
        (Decimal("-0.001"), "not possible"),
        (Decimal("NaN"), "not possible"),
        (Decimal("Infinity"), "not possible"),
        (100, "not possible"),
        (8.875, "exact decimal percentage.*not a float"),
        (True, "exact decimal percentage.*not a bool"),
        ("20", "decimal percentage"),
    ],
)
def test_impossible_rates_are_refused(rate: object, message: str) -> None:
    with pytest.raises(TaxError, match=message):
        line_tax(100, rate, "inclusive")  # type: ignore[arg-type]
    with pytest.raises(TaxError, match=message):
        basket_tax([(100, rate)], "exclusive")  # type: ignore[list-item]


@pytest.mark.parametrize("rate", [Decimal("0"), Decimal("99.999")])
def test_rate_bounds_are_zero_inclusive_and_a_hundred_exclusive(rate: Decimal) -> None:
    assert line_tax(1000, rate, "exclusive").net == 1000


def test_a_bad_rate_in_a_basket_names_its_line() -> None:
    with pytest.raises(TaxError, match=r"Tax rate 120% on line 2 is not possible"):
        basket_tax([(100, Decimal("20")), (100, Decimal("120"))], "inclusive")


def test_unknown_modes_are_refused() -> None:
    with pytest.raises(TaxError, match="Tax mode 'vat' is not known"):
        line_tax(100, Decimal("20"), "vat")  # type: ignore[arg-type]
    with pytest.raises(TaxError, match="Tax mode 'Inclusive' is not known"):
        basket_tax([], "Inclusive")  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [9.99, True, "999", Decimal("999")])
def test_amounts_must_be_integer_minor_units(amount: object) -> None:
    with pytest.raises(MoneyError, match="whole number of minor units"):
        line_tax(amount, Decimal("20"), "inclusive")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="on line 1 must be a whole number"):
        basket_tax([(amount, Decimal("20"))], "inclusive")  # type: ignore[list-item]


def test_tax_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        line_tax(100, Decimal("100"), "inclusive")


def test_results_are_frozen_and_self_consistent() -> None:
    line = LineTax(net=83, tax=17, gross=100)
    with pytest.raises(AttributeError):
        line.tax = 0  # type: ignore[misc]
    with pytest.raises(TaxError, match="not the gross"):
        LineTax(net=83, tax=16, gross=100)
    with pytest.raises(TaxError, match="not the sums of its lines"):
        BasketTax(lines=(line,), net=83, tax=17, gross=101, by_rate={})
    with pytest.raises(TaxError, match="breakdown per rate does not add up"):
        BasketTax(lines=(line,), net=83, tax=17, gross=100, by_rate={})
    assert line + LineTax(net=1, tax=1, gross=2) == LineTax(net=84, tax=18, gross=102)
