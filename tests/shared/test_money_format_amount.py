"""format_amount writes what Money.format writes, and refuses what Money refuses, with the same
message; the style each currency and locale remembers does not leak into the next call."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import MoneyError
from shared.money import CURRENCIES, Money, format_amount

LOCALES = ["en", "de", "de-CH", "fr_LI", "en-US", "sv_SE.UTF-8", "", "DE", "x@y", "nb-NO", "fr"]
COMMA = {"de", "sv", "nb", "fr"}


def outcome(call: Callable[[], str]) -> tuple[object, ...]:
    try:
        return ("ok", call())
    except MoneyError as exc:
        return ("error", exc.message)


def documented(amount: int, currency: str, locale: str) -> str:
    """The format the module docstring describes, written out on its own."""
    decimals = CURRENCIES[currency]
    magnitude = abs(amount)
    language = locale.replace("_", "-").split("-")[0].split(".")[0].split("@")[0].lower()
    region = (
        locale.replace("_", "-").split("-")[1][:2].upper() if "-" in locale or "_" in locale else ""
    )
    comma = language in COMMA and region not in ("CH", "LI")
    mark = "," if comma else "."
    number = (
        str(magnitude)
        if decimals == 0
        else f"{magnitude // 10**decimals}{mark}{magnitude % 10**decimals:0{decimals}d}"
    )
    sign = "-" if amount < 0 else ""
    symbol = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥"}.get(currency)
    if comma:
        return f"{sign}{number} {symbol or currency}"
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{currency} {number}"


amounts = st.integers(min_value=-(10**15), max_value=10**15)
currencies = st.sampled_from(sorted(CURRENCIES))


@given(amounts, currencies, st.sampled_from(LOCALES))
def test_format_amount_is_money_format(amount: int, currency: str, locale: str) -> None:
    text = format_amount(amount, currency, locale)
    assert text == Money(amount, currency).format(locale)
    assert text == documented(amount, currency, locale)
    assert Money.parse(text, currency) == Money(amount, currency)


@given(
    st.one_of(amounts, st.floats(), st.booleans(), st.decimals(places=2, allow_nan=False)),
    st.one_of(currencies, st.sampled_from(["eur", " chf ", "XXX", "", "Euro"]), st.integers()),
    st.sampled_from(LOCALES),
)
def test_format_amount_refuses_what_money_refuses(
    amount: object, currency: object, locale: str
) -> None:
    def money() -> str:
        return Money(amount, currency).format(locale)  # type: ignore[arg-type]

    def formatted() -> str:
        return format_amount(amount, currency, locale)  # type: ignore[arg-type]

    assert outcome(formatted) == outcome(money)


def test_a_bad_currency_is_refused_every_time_and_its_message_kept() -> None:
    for _ in range(2):
        with pytest.raises(MoneyError) as caught:
            format_amount(100, "EURO", "de")
        assert caught.value.message == (
            "Unknown currency 'EURO': use a three-letter ISO 4217 code that Omnitill knows, "
            "such as EUR, USD, GBP or CHF"
        )
    with pytest.raises(MoneyError, match="cannot be Decimal"):
        format_amount(Decimal("1.5"), "EUR")  # type: ignore[arg-type]


def test_unhashable_arguments_fail_as_before() -> None:
    with pytest.raises(MoneyError, match="three-letter ISO 4217 code"):
        format_amount(100, ["EUR"])  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Money(100, "EUR").format(["de"])  # type: ignore[arg-type]
    assert format_amount(-5, " usd ", "de-AT") == "-0,05 $"
