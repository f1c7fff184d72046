from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInput, MoneyError
from shared.money import CURRENCIES, Money, minor_units, sum_money

amounts = st.integers(min_value=-(10**12), max_value=10**12)
sample_currencies = st.sampled_from(["EUR", "USD", "GBP", "CHF", "SEK", "JPY", "ISK", "BHD", "KWD"])

# --------------------------------------------------------------------------------------------
# Construction and currencies
# --------------------------------------------------------------------------------------------


def test_the_currency_table_knows_common_currencies_and_their_decimals() -> None:
    assert len(CURRENCIES) >= 30
    assert {code: minor_units(code) for code in ("EUR", "USD", "GBP", "JPY", "KRW", "BHD")} == {
        "EUR": 2,
        "USD": 2,
        "GBP": 2,
        "JPY": 0,
        "KRW": 0,
        "BHD": 3,
    }
    assert minor_units("ISK") == 0
    assert minor_units("TND") == 3
    assert all(len(code) == 3 and code.isupper() for code in CURRENCIES)


def test_currency_codes_are_normalized() -> None:
    assert Money(1230, " eur ") == Money(1230, "EUR")
    assert Money(1230, "eur").currency == "EUR"
    assert minor_units("jpy") == 0


@pytest.mark.parametrize("code", ["XYZ", "EURO", "", "€"])
def test_unknown_currencies_are_refused(code: str) -> None:
    with pytest.raises(MoneyError, match="Unknown currency"):
        Money(100, code)
    with pytest.raises(MoneyError, match="Unknown currency"):
        minor_units(code)


def test_money_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        Money(1, "XYZ")


@pytest.mark.parametrize("flag", [True, False])
def test_bool_is_not_an_amount(flag: bool) -> None:
    with pytest.raises(MoneyError, match="whole number of minor units"):
        Money(flag, "EUR")


@pytest.mark.parametrize("amount", [12.3, 0.0, Decimal("12.30")])
def test_floats_and_decimals_are_refused_as_integer_minor_units(amount: object) -> None:
    with pytest.raises(MoneyError, match="money is integer minor units"):
        Money(amount, "EUR")  # type: ignore[arg-type]


def test_text_is_not_an_amount() -> None:
    with pytest.raises(MoneyError, match="whole number of minor units"):
        Money("1230", "EUR")  # type: ignore[arg-type]


def test_money_is_frozen_and_hashable() -> None:
    money = Money(1230, "EUR")
    with pytest.raises(AttributeError):
        money.amount = 5  # type: ignore[misc]
    assert {money, Money(1230, "EUR")} == {money}
    assert not hasattr(money, "__dict__")


# --------------------------------------------------------------------------------------------
# Arithmetic and comparison
# --------------------------------------------------------------------------------------------


def test_arithmetic_in_one_currency() -> None:
    a, b = Money(1230, "EUR"), Money(70, "EUR")
    assert a + b == Money(1300, "EUR")
    assert a - b == Money(1160, "EUR")
    assert b - a == Money(-1160, "EUR")
    assert -a == Money(-1230, "EUR")
    assert abs(Money(-5, "EUR")) == Money(5, "EUR")
    assert a * 3 == Money(3690, "EUR")
    assert 3 * a == Money(3690, "EUR")
    assert a * -1 == -a
    assert Money.zero("JPY") == Money(0, "JPY")


@pytest.mark.parametrize("operation", ["add", "subtract"])
def test_mixing_currencies_names_both(operation: str) -> None:
    eur, usd = Money(500, "EUR"), Money(300, "USD")
    with pytest.raises(MoneyError, match=rf"Cannot {operation} 5\.00 EUR and 3\.00 USD") as info:
        _ = eur + usd if operation == "add" else eur - usd
    assert "EUR" in info.value.message and "USD" in info.value.message


@pytest.mark.parametrize("factor", [1.5, 2.0, Decimal("2"), True])
def test_money_is_multiplied_only_by_whole_numbers(factor: Any) -> None:
    with pytest.raises(MoneyError, match="only by whole numbers"):
        _ = Money(100, "EUR") * factor
    with pytest.raises(MoneyError, match="only by whole numbers"):
        _ = factor * Money(100, "EUR")


def test_money_does_not_mix_with_plain_numbers() -> None:
    with pytest.raises(TypeError):
        _ = Money(100, "EUR") + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Money(100, "EUR") < 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Money(100, "EUR") / 2  # type: ignore[operator]


def test_comparison_within_one_currency() -> None:
    small, large = Money(5, "EUR"), Money(7, "EUR")
    assert small < large
    assert small <= large
    assert small <= Money(5, "EUR")
    assert large > small
    assert large >= small
    assert not large < small
    assert max([small, large]) == large
    assert sorted([large, small, Money(-1, "EUR")]) == [Money(-1, "EUR"), small, large]


@pytest.mark.parametrize("compare", [operator.lt, operator.le, operator.gt, operator.ge])
def test_ordering_across_currencies_is_refused(compare: Callable[[Money, Money], bool]) -> None:
    with pytest.raises(MoneyError, match=r"compare 1\.00 EUR and 1\.00 USD"):
        compare(Money(100, "EUR"), Money(100, "USD"))


def test_equality_across_currencies_is_simply_false() -> None:
    assert Money(100, "EUR") != Money(100, "USD")
    assert Money(0, "EUR") != Money(0, "JPY")


@given(a=amounts, b=amounts, currency=sample_currencies)
def test_arithmetic_matches_integer_arithmetic(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y).amount == a + b
    assert (x - y) + y == x
    assert -x == Money(-a, currency)
    assert (x < y) == (a < b)
    assert (x + y).to_decimal() == x.to_decimal() + y.to_decimal()


# --------------------------------------------------------------------------------------------
# Decimal view, parsing, formatting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "expected"),
    [
        (Money(1230, "EUR"), "12.30"),
        (Money(-5, "EUR"), "-0.05"),
        (Money(0, "EUR"), "0.00"),
        (Money(1234, "JPY"), "1234"),
        (Money(1005, "BHD"), "1.005"),
        (Money(-1, "KWD"), "-0.001"),
    ],
)
def test_to_decimal_keeps_the_currencys_decimals(money: Money, expected: str) -> None:
    value = money.to_decimal()
    assert value == Decimal(expected)
    assert str(value) == expected


def test_to_decimal_is_exact_for_huge_amounts() -> None:
    huge = 10**40 + 1
    assert str(Money(huge, "EUR").to_decimal()) == "1" + "0" * 38 + ".01"


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("12.30", "EUR", 1230),
        ("12,30", "EUR", 1230),
        ("-0.5", "EUR", -50),
        ("1 234,50", "EUR", 123450),
        ("1\u00a0234,50", "EUR", 123450),
        ("1\u202f234,50", "EUR", 123450),
        ("1.234,50", "EUR", 123450),
        ("1,234.50", "USD", 123450),
        ("1'234.50", "CHF", 123450),
        ("1.234.567", "EUR", 123456700),
        ("1,234,567.8", "USD", 123456780),
        ("  7 ", "EUR", 700),
        ("+3", "EUR", 300),
        ("\u22123,10", "EUR", -310),
        (".5", "EUR", 50),
        ("0", "EUR", 0),
        ("-0", "EUR", 0),
        ("0.00", "EUR", 0),
        ("€12.30", "EUR", 1230),
        ("-€12.30", "EUR", -1230),
        ("€-12.30", "EUR", -1230),
        ("12,30 €", "EUR", 1230),
        ("-12,30 €", "EUR", -1230),
        ("CHF 12.30", "CHF", 1230),
        ("12.30 chf", "CHF", 1230),
        ("£0.05", "GBP", 5),
        ("1234", "JPY", 1234),
        ("¥1 234", "JPY", 1234),
        ("1.005", "BHD", 1005),
        ("-0,001", "KWD", -1),
        ("1.5", "BHD", 1500),
    ],
)
def test_parse_reads_typed_amounts_exactly(text: str, currency: str, amount: int) -> None:
    assert Money.parse(text, currency) == Money(amount, currency)


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("1.005", "EUR", "has 3 decimal places but EUR has 2 decimal places"),
        ("12.301", "USD", "has 3 decimal places but USD has 2"),
        ("1,000", "EUR", "for thousands type 1000"),
        ("12.5", "JPY", "1 decimal place but JPY has no decimal places"),
        ("1.0001", "BHD", "4 decimal places but BHD has 3"),
        ("", "EUR", "not an amount of money"),
        ("   ", "EUR", "not an amount of money"),
        ("abc", "EUR", "not an amount of money"),
        ("12.", "EUR", "not an amount of money"),
        (".", "EUR", "not an amount of money"),
        ("--5", "EUR", "not an amount of money"),
        ("+-5", "EUR", "not an amount of money"),
        ("5-", "EUR", "not an amount of money"),
        ("1e5", "EUR", "not an amount of money"),
        ("NaN", "EUR", "not an amount of money"),
        ("Infinity", "EUR", "not an amount of money"),
        ("\u0663", "EUR", "not an amount of money"),  # an Arabic-Indic digit
        ("1.2,3.4", "EUR", "not an amount of money"),
        ("1.2.3", "EUR", "grouped by three digits"),
        ("12 34", "EUR", "grouped by three digits"),
        ("1234 567,00", "EUR", "grouped by three digits"),
        ("$12", "EUR", "amount in USD, but this amount is in EUR"),
        ("12.30 USD", "EUR", "amount in USD, but this amount is in EUR"),
        ("9" * 40, "EUR", "too large"),
    ],
)
def test_parse_refuses_what_it_cannot_read_exactly(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        Money.parse(text, currency)


def test_parse_refuses_unknown_currencies_and_non_text() -> None:
    with pytest.raises(MoneyError, match="Unknown currency"):
        Money.parse("1.00", "XYZ")
    with pytest.raises(MoneyError, match="reads text"):
        Money.parse(12.3, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("money", "locale", "expected"),
    [
        (Money(1230, "EUR"), "en", "€12.30"),
        (Money(1230, "EUR"), "de", "12,30 €"),
        (Money(1230, "EUR"), "fr_FR", "12,30 €"),
        (Money(1230, "EUR"), "es-ES", "12,30 €"),
        (Money(1230, "EUR"), "it", "12,30 €"),
        (Money(1230, "EUR"), "nl_NL.UTF-8", "12,30 €"),
        (Money(1230, "EUR"), "fi", "12,30 €"),
        (Money(-1230, "EUR"), "en", "-€12.30"),
        (Money(-1230, "EUR"), "de", "-12,30 €"),
        (Money(5, "GBP"), "en_GB", "£0.05"),
        (Money(100000, "USD"), "en_US", "$1000.00"),
        (Money(1230, "CHF"), "en", "CHF 12.30"),
        (Money(-1230, "CHF"), "en", "-CHF 12.30"),
        (Money(1230, "CHF"), "de_CH", "CHF 12.30"),
        (Money(1230, "CHF"), "de_DE", "12,30 CHF"),
        (Money(1230, "SEK"), "sv", "12,30 SEK"),
        (Money(1234, "JPY"), "en", "¥1234"),
        (Money(1234, "JPY"), "de", "1234 ¥"),
        (Money(1005, "BHD"), "en", "BHD 1.005"),
        (Money(1005, "BHD"), "fr", "1,005 BHD"),
        (Money(0, "EUR"), "en", "€0.00"),
        (Money(1230, "EUR"), "xx", "€12.30"),
        (Money(1230, "EUR"), "", "€12.30"),
    ],
)
def test_format(money: Money, locale: str, expected: str) -> None:
    assert money.format(locale) == expected


def test_format_defaults_to_english() -> None:
    assert Money(1230, "EUR").format() == "€12.30"


@given(
    amount=amounts,
    currency=sample_currencies,
    locale=st.sampled_from(["en", "en_US", "de", "fr", "de_CH", "sv", "pt_BR"]),
)
def test_format_and_parse_round_trip(amount: int, currency: str, locale: str) -> None:
    money = Money(amount, currency)
    assert Money.parse(money.format(locale), currency) == money
    assert Money.parse(str(money.to_decimal()), currency) == money


# --------------------------------------------------------------------------------------------
# Allocation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "ratios", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (5, [1, 1], [3, 2]),
        (-5, [1, 1], [-3, -2]),
        (1000, [1999, 999, 0], [667, 333, 0]),
        (1, [1, 1, 1], [1, 0, 0]),
        (0, [3, 4], [0, 0]),
        (7, [5], [7]),
        (10, [0, 1, 0], [0, 10, 0]),
        # shares 4.8, 1.6, 1.6: two units are left over; the largest remainder gets one, then
        # the earlier of the two equal remainders
        (8, [3, 1, 1], [5, 2, 1]),
    ],
)
def test_allocate_examples(amount: int, ratios: list[int], expected: list[int]) -> None:
    parts = Money(amount, "EUR").allocate(ratios)
    assert parts == [Money(part, "EUR") for part in expected]


@given(
    amount=amounts,
    ratios=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(any),
    currency=sample_currencies,
)
def test_allocate_loses_no_minor_unit(amount: int, ratios: list[int], currency: str) -> None:
    money = Money(amount, currency)
    parts = money.allocate(ratios)
    assert len(parts) == len(ratios)
    assert sum_money(parts, currency) == money
    total = sum(ratios)
    for part, ratio in zip(parts, ratios, strict=True):
        assert part.currency == money.currency
        # each part is within one minor unit of its exact proportional share
        exact = Decimal(amount * ratio) / Decimal(total)
        assert abs(Decimal(part.amount) - exact) < 1
        if ratio == 0:
            assert part.amount == 0
    assert (-money).allocate(ratios) == [-part for part in parts]


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ([], "no parts"),
        ([0, 0], "every ratio is 0"),
        ([1, -1], "ratio 2 is -1"),
        ([1, 0.5], "ratio 2 is 0.5"),
        ([True, 1], "ratio 1 is True"),
    ],
)
def test_allocate_refuses_bad_ratios(ratios: list[int], message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        Money(1000, "EUR").allocate(ratios)


# --------------------------------------------------------------------------------------------
# Sums
# --------------------------------------------------------------------------------------------


def test_sum_money() -> None:
    assert sum_money([], "EUR") == Money(0, "EUR")
    assert sum_money((Money(n, "SEK") for n in (1, 2, 3)), "SEK") == Money(6, "SEK")


def test_sum_money_refuses_other_currencies_and_non_money() -> None:
    with pytest.raises(MoneyError, match=r"EUR and 1\.00 USD"):
        sum_money([Money(100, "EUR"), Money(100, "USD")], "EUR")
    with pytest.raises(MoneyError, match=r"0\.00 GBP and 1\.00 EUR"):
        sum_money([Money(100, "EUR")], "GBP")
    with pytest.raises(MoneyError, match="Only Money"):
        sum_money([100], "EUR")  # type: ignore[list-item]
