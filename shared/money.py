"""Money: an integer amount of a currency's minor unit, and the few operations a till needs.

Rules:

- An amount is a whole number of the currency's *minor unit* (cents, pence, öre; whole yen for
  JPY, which has none; fils for BHD, which has three decimals). Floats are refused everywhere:
  0.1 + 0.2 is not 0.3 in binary floating point, and a till must not lose or invent a cent.
  ``bool`` is refused too, although Python counts ``True`` as the integer 1.
- The currency is an ISO 4217 code from ``CURRENCIES``, which also gives each currency's number
  of decimals (its minor-unit exponent). Codes are normalized to upper case.
- Amounts in different currencies are never added, subtracted or ordered: that needs an
  exchange rate, which is a business decision and never done silently. (Equality across
  currencies is allowed and simply false.)
- Money is multiplied only by whole numbers (quantities). Anything that needs rounding, like a
  percentage discount or a tax, goes through ``allocate`` or ``shared.tax``, which say how
  they round.
- ``allocate`` splits an amount in proportion to whole-number ratios by the largest-remainder
  method, so the parts always add up to the original amount: a basket discount spread over the
  lines loses no cent. Negative amounts split symmetrically (``(-m).allocate(r)`` is
  ``[-p for p in m.allocate(r)]``), so a refund reverses a sale's split exactly.
- ``Money.parse`` reads what a person types: "12.30", "12,30", "-0.5", "1 234,50",
  "1.234,50", "1,234.50", "1'234.50", optionally with the currency's own symbol or code
  ("€12.30", "12,30 €", "CHF 12.30"). A single "." or "," is always the decimal separator;
  thousands are grouped with spaces or apostrophes, or with the other punctuation mark when
  both are present, and groups must have three digits. Digits beyond the currency's decimals
  are refused even when they are zeros: "1,000" in EUR is more likely a thousand typed the
  English way than one euro, so the till asks instead of guessing.
- ``Money.format`` is deliberately simple (no CLDR/babel): English style puts the symbol in
  front ("€12.30", "-$5.00") or the code and a space ("CHF 12.30"); the decimal-comma locales
  of continental Europe put it after ("12,30 €", "-12,30 CHF"), except Switzerland and
  Liechtenstein, which write "CHF 12.30". There is no thousands grouping, and the output is
  always accepted by ``Money.parse``. ``format_amount`` writes the same text for an amount in
  minor units without making a ``Money`` (a till writes a few with every scan).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType

from shared.errors import MoneyError

__all__ = ["CURRENCIES", "Money", "format_amount", "minor_units", "sum_money"]

#: ISO 4217 codes Omnitill accepts, with their minor-unit exponent (number of decimals).
CURRENCIES: Mapping[str, int] = MappingProxyType(
    {
        # Europe
        "EUR": 2,
        "GBP": 2,
        "CHF": 2,
        "SEK": 2,
        "NOK": 2,
        "DKK": 2,
        "ISK": 0,
        "PLN": 2,
        "CZK": 2,
        "HUF": 2,
        "RON": 2,
        "BGN": 2,
        "RSD": 2,
        "TRY": 2,
        "UAH": 2,
        # Americas
        "USD": 2,
        "CAD": 2,
        "MXN": 2,
        "BRL": 2,
        "ARS": 2,
        "CLP": 0,
        "COP": 2,
        "PYG": 0,
        # Asia and Pacific
        "JPY": 0,
        "KRW": 0,
        "CNY": 2,
        "HKD": 2,
        "TWD": 2,
        "SGD": 2,
        "INR": 2,
        "IDR": 2,
        "THB": 2,
        "MYR": 2,
        "PHP": 2,
        "VND": 0,
        "AUD": 2,
        "NZD": 2,
        "XPF": 0,
        # Middle East and Africa
        "ILS": 2,
        "AED": 2,
        "SAR": 2,
        "QAR": 2,
        "BHD": 3,
        "KWD": 3,
        "OMR": 3,
        "JOD": 3,
        "IQD": 3,
        "LYD": 3,
        "TND": 3,
        "EGP": 2,
        "MAD": 2,
        "ZAR": 2,
        "KES": 2,
        "NGN": 2,
        "UGX": 0,
        "XOF": 0,
        "XAF": 0,
    }
)

# Only symbols that mean one currency to a customer: "$" alone is USD, Canadians see "CAD".
_SYMBOLS: Mapping[str, str] = MappingProxyType({"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥"})

# Languages that write "12,30 €": decimal comma, currency after the number.
_COMMA_LANGUAGES = frozenset(
    {
        "bg", "ca", "cs", "da", "de", "el", "es", "et", "fi", "fr", "hr", "hu", "is", "it",
        "lt", "lv", "nb", "nl", "nn", "no", "pl", "pt", "ro", "ru", "sk", "sl", "sr", "sv",
        "tr", "uk",
    }
)  # fmt: skip
# Regions whose languages are in the set above but that write "CHF 12.30".
_POINT_REGIONS = frozenset({"CH", "LI"})

_MINUS_SIGNS = ("-", "\u2212")
# Thousands separators people type or paste: spaces (plain, no-break, narrow no-break, thin)
# and the Swiss apostrophes.
_GROUP_CHARS = " \u00a0\u202f\u2009'\u2019"
_NUMBER_CHARS = re.compile(rf"[0-9.,{_GROUP_CHARS}]+")
_DIGITS = re.compile(r"[0-9]+")
# Far beyond any real amount, and well below Python's limit on int() of long digit strings.
_MAX_DIGITS = 30


def minor_units(currency: str) -> int:
    """The number of decimals of ``currency`` (2 for EUR, 0 for JPY, 3 for BHD)."""
    return CURRENCIES[_currency_code(currency)]


def _currency_code(currency: object) -> str:
    if not isinstance(currency, str):
        raise MoneyError(
            f"A currency is a three-letter ISO 4217 code such as EUR, not {currency!r}"
        )
    code = currency.strip().upper()
    if code not in CURRENCIES:
        raise MoneyError(
            f"Unknown currency {currency!r}: use a three-letter ISO 4217 code that Omnitill "
            f"knows, such as EUR, USD, GBP or CHF"
        )
    return code


def _checked_amount(amount: object) -> int:
    if isinstance(amount, bool):
        raise MoneyError(
            f"An amount of money cannot be {amount!r}: give a whole number of minor units "
            f"(cents), e.g. 1230 for 12.30"
        )
    if isinstance(amount, int):
        return amount
    if isinstance(amount, float | Decimal):
        raise MoneyError(
            f"An amount of money cannot be {amount!r}: money is integer minor units (cents), "
            f"e.g. 1230 for 12.30; use Money.parse for a decimal text"
        )
    raise MoneyError(
        f"An amount of money must be a whole number of minor units (cents), not {amount!r}"
    )


def _digits_text(magnitude: int, exponent: int, separator: str) -> str:
    if exponent == 0:
        return str(magnitude)
    whole, fraction = divmod(magnitude, 10**exponent)
    return f"{whole}{separator}{fraction:0{exponent}d}"


def _take_sign(text: str) -> tuple[str, str]:
    """Split a leading sign ("-", "\u2212" or "+", else "") from the rest of ``text``."""
    if text.startswith((*_MINUS_SIGNS, "+")):
        return text[0], text[1:].strip()
    return "", text


def _without_currency(text: str, code: str) -> str:
    """Drop this currency's own code or symbol from either end of ``text``."""
    marks = [code]
    if code in _SYMBOLS:
        marks.append(_SYMBOLS[code])
    for mark in marks:
        if text[: len(mark)].upper() == mark:
            return text[len(mark) :].strip()
        if text[-len(mark) :].upper() == mark:
            return text[: -len(mark)].strip()
    return text


def _split_number(number: str, original: str) -> tuple[str, str]:
    """Split a typed unsigned number into (whole digits, fraction digits), or say what is wrong."""
    not_a_number = MoneyError(
        f"{original!r} is not an amount of money: type digits with an optional minus sign and "
        f"decimal separator, e.g. 12.30 or 12,30"
    )
    if not _NUMBER_CHARS.fullmatch(number):
        raise not_a_number
    dots, commas = number.count("."), number.count(",")
    decimal_mark: str | None
    if dots and commas:
        decimal_mark = "." if number.rfind(".") > number.rfind(",") else ","
        group_mark = "," if decimal_mark == "." else "."
        if number.count(decimal_mark) > 1:
            raise not_a_number
    elif dots == 1 or commas == 1:
        decimal_mark, group_mark = ("." if dots else ","), ""
    elif dots or commas:
        # "1.234.567" or "1,234,567": several marks of one kind can only be thousands.
        decimal_mark, group_mark = None, ("." if dots else ",")
    else:
        decimal_mark, group_mark = None, ""

    if decimal_mark is None:
        whole, fraction = number, ""
    else:
        whole, fraction = number.rsplit(decimal_mark, 1)
        if not _DIGITS.fullmatch(fraction):
            raise not_a_number

    groups = re.split(f"[{re.escape(_GROUP_CHARS + group_mark)}]", whole)
    if len(groups) == 1:
        if whole == "" and fraction:
            return "0", fraction
        if not _DIGITS.fullmatch(whole):
            raise not_a_number
        return whole, fraction
    head, *rest = groups
    if not re.fullmatch(r"[0-9]{1,3}", head) or not all(
        re.fullmatch(r"[0-9]{3}", group) for group in rest
    ):
        raise MoneyError(
            f"{original!r} is not an amount of money: thousands must be grouped by three "
            f"digits, e.g. 1 234 567,50 or 1,234,567.50"
        )
    return "".join(groups), fraction


def _decimals(count: int) -> str:
    return {0: "no decimal places", 1: "1 decimal place"}.get(count, f"{count} decimal places")


def _refuse_other_currency(original: str, rest: str, code: str) -> None:
    """Say so when typed text carries another currency's symbol or code ("$12" for EUR)."""
    for other, symbol in _SYMBOLS.items():
        if other != code and symbol in rest:
            raise MoneyError(f"{original!r} is an amount in {other}, but this amount is in {code}")
    found = re.search(r"[A-Za-z]{3}", rest)
    if found and found.group().upper() in CURRENCIES:
        other = found.group().upper()
        raise MoneyError(f"{original!r} is an amount in {other}, but this amount is in {code}")


def _locale_parts(locale: str) -> tuple[str, str]:
    parts = re.split(r"[-_.@]", locale.strip())
    language = parts[0].lower()
    region = parts[1].upper() if len(parts) > 1 else ""
    return language, region


def _format_style(currency: object, locale: str) -> tuple[int, str, str, str]:
    """How amounts in ``currency`` are written in ``locale``: decimals, decimal separator, and
    the text before and after the number (the currency's symbol or code, see the docstring)."""
    code = _currency_code(currency)
    language, region = _locale_parts(locale)
    symbol = _SYMBOLS.get(code)
    if language in _COMMA_LANGUAGES and region not in _POINT_REGIONS:
        return CURRENCIES[code], ",", "", f" {symbol or code}"
    if symbol:
        return CURRENCIES[code], ".", symbol, ""
    return CURRENCIES[code], ".", f"{code} ", ""


# A till writes a few amounts for every scan, always in its store's currency and locale. Errors
# (an unknown currency) are not cached: every such call raises.
_cached_format_style = lru_cache(maxsize=64)(_format_style)


def _format(amount: int, currency: object, locale: str) -> str:
    if type(currency) is str and type(locale) is str:
        style = _cached_format_style(currency, locale)
    else:  # possibly unhashable: let _format_style say what is wrong
        style = _format_style(currency, locale)
    exponent, separator, before, after = style
    sign = "-" if amount < 0 else ""
    return f"{sign}{before}{_digits_text(abs(amount), exponent, separator)}{after}"


def format_amount(amount: int, currency: str, locale: str = "en") -> str:
    """``Money(amount, currency).format(locale)``, without making the ``Money``: the same text
    and the same errors, for the amounts a till writes in every message."""
    return _format(_checked_amount(amount), currency, locale)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency: ``Money(1230, "EUR")`` is 12.30 €."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        # Frozen: normalized values must be written around the dataclass's own __setattr__.
        object.__setattr__(self, "amount", _checked_amount(self.amount))
        object.__setattr__(self, "currency", _currency_code(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        """No money in ``currency``: the start of every sum."""
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Read a typed amount such as "12.30", "12,30", "-0.5" or "1 234,50" exactly.

        Raises ``MoneyError`` for text that is not a number, for more decimals than the
        currency has ("1.005" EUR) and for badly grouped thousands.
        """
        code = _currency_code(currency)
        exponent = CURRENCIES[code]
        if not isinstance(text, str):
            raise MoneyError(f"Money.parse reads text such as '12.30', not {text!r}")
        sign, rest = _take_sign(text.strip())
        rest = _without_currency(rest, code)
        if not sign:
            # "€-12.30": the sign may follow the symbol.
            sign, rest = _take_sign(rest)
        if not _NUMBER_CHARS.fullmatch(rest):
            _refuse_other_currency(text, rest, code)
        whole, fraction = _split_number(rest, text)
        if len(whole) > _MAX_DIGITS:
            raise MoneyError(f"{text!r} is too large to be an amount of money")
        if len(fraction) > exponent:
            raise MoneyError(
                f"{text!r} has {_decimals(len(fraction))} but {code} has {_decimals(exponent)}"
                + (f": amounts in {code} are whole numbers" if exponent == 0 else "")
                + ("; for thousands type 1000 or 1 000" if len(fraction) == 3 else "")
            )
        # Whole-number arithmetic: exact for any size, independent of the decimal context.
        amount = int(whole) * 10**exponent + (int(fraction.ljust(exponent, "0")) if exponent else 0)
        return cls(-amount if sign in _MINUS_SIGNS else amount, code)

    def to_decimal(self) -> Decimal:
        """The amount in major units with the currency's decimals: ``Decimal("12.30")``."""
        # The string constructor is exact whatever the decimal context's precision.
        return Decimal(f"{self.amount}E-{CURRENCIES[self.currency]}")

    def format(self, locale: str = "en") -> str:
        """The amount for a receipt or screen: "€12.30" (en), "12,30 €" (de), "CHF 12.30"."""
        return _format(self.amount, self.currency, locale)

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split this amount in proportion to ``ratios``; the parts add up to exactly this amount.

        Each part first gets its proportional share rounded towards zero; the minor units left
        over go one each to the parts with the largest remainders (the earliest part wins a
        tie). A part with ratio 0 always gets 0. Ratios are whole numbers, typically the line
        amounts a basket discount is spread over.
        """
        weights = list(ratios)
        if not weights:
            raise MoneyError(f"Cannot split {self._text()} into no parts: give at least one ratio")
        for position, weight in enumerate(weights, start=1):
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise MoneyError(
                    f"Cannot split {self._text()}: ratio {position} is {weight!r}, but ratios "
                    f"must be whole numbers (e.g. line amounts in minor units)"
                )
            if weight < 0:
                raise MoneyError(
                    f"Cannot split {self._text()}: ratio {position} is {weight}, but ratios "
                    f"cannot be negative"
                )
        total = sum(weights)
        if total == 0:
            raise MoneyError(f"Cannot split {self._text()}: every ratio is 0")
        # Split the magnitude and restore the sign so refunds mirror sales exactly.
        magnitude = abs(self.amount)
        shares: list[int] = []
        remainders: list[int] = []
        for weight in weights:
            share, remainder = divmod(magnitude * weight, total)
            shares.append(share)
            remainders.append(remainder)
        left_over = magnitude - sum(shares)
        by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for index in by_remainder[:left_over]:
            shares[index] += 1
        sign = -1 if self.amount < 0 else 1
        return [Money(sign * share, self.currency) for share in shares]

    def _text(self) -> str:
        return f"{self.to_decimal()} {self.currency}"

    def _same_currency(self, other: Money, action: str) -> None:
        if other.currency != self.currency:
            raise MoneyError(
                f"Cannot {action} {self._text()} and {other._text()}: amounts in different "
                f"currencies ({self.currency} and {other.currency}) are never combined without "
                f"an explicit exchange"
            )

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool | float | Decimal):
            raise MoneyError(
                f"Cannot multiply {self._text()} by {factor!r}: money is multiplied only by whole "
                f"numbers (quantities); use Money.allocate or shared.tax for anything that rounds"
            )
        if not isinstance(factor, int):
            return NotImplemented
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount >= other.amount


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """The sum of ``items``, all in ``currency``; ``Money.zero(currency)`` when there are none."""
    total = Money.zero(currency)
    for item in items:
        if not isinstance(item, Money):
            raise MoneyError(f"Only Money can be summed as money, not {item!r}")
        total += item
    return total
