"""Tax on sale lines: VAT-style (tax included in the price) or sales-tax-style (tax added).

Each store has one tax mode:

- ``"inclusive"`` (VAT, GST): shelf prices include tax. A line's amount is its gross; the tax in
  it is ``gross × rate / (100 + rate)`` and the net is what remains. The customer pays the
  shelf price.
- ``"exclusive"`` (US sales tax): shelf prices exclude tax. A line's amount is its net; the tax
  is ``net × rate / 100`` and is added, so the customer pays more than the shelf price.

Rates are percentages as exact ``Decimal`` values (``Decimal("20")``, ``Decimal("8.875")``),
with ``0 <= rate < 100``. Floats are refused: ``8.875`` is exact in binary but ``8.9`` is not,
and a rate that is almost right makes a tax that is a cent wrong now and then.

Rounding: the tax of each line is rounded to a whole minor unit on its own, half away from zero
(``decimal.ROUND_HALF_UP``: 0.5 cent becomes 1 cent, -0.5 becomes -1). Why per line:

- it is what the receipt shows. Every line carries its own tax, and the totals are exactly the
  sums of the lines, so a receipt always adds up and never needs a "rounding difference" line;
  the till and HQ can check a sale by adding its lines (``shared.sale.check_totals``);
- most EU VAT regimes accept per-line rounding on receipts, and US states accept it for sales
  tax (several require it per item or allow either);
- a return reverses its sale line by line: rounding half *away from zero* makes
  ``line_tax(-x) == -line_tax(x)``, so a refund gives back exactly the tax that was charged
  (rounding half towards +infinity would not).

Rounding the tax once on the invoice total instead can differ from the sum of rounded line
taxes by up to n/2 minor units for n lines; Omnitill does not use it.

All arithmetic is on whole numbers (a rate is the exact fraction ``p/q``), so results do not
depend on a ``decimal`` context's precision however large an amount is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.errors import MoneyError, TaxError

__all__ = ["BasketTax", "LineTax", "TaxMode", "basket_tax", "line_tax"]

#: "inclusive": prices include tax (VAT); "exclusive": tax is added to prices (US sales tax).
TaxMode = Literal["inclusive", "exclusive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LineTax:
    """One line's (or a sum of lines') net, tax and gross in minor units; net + tax == gross."""

    net: int
    tax: int
    gross: int

    def __post_init__(self) -> None:
        if self.net + self.tax != self.gross:
            raise TaxError(
                f"Net {self.net} plus tax {self.tax} is {self.net + self.tax}, not the gross "
                f"{self.gross}"
            )

    def __add__(self, other: LineTax) -> LineTax:
        if not isinstance(other, LineTax):
            return NotImplemented
        return LineTax(
            net=self.net + other.net, tax=self.tax + other.tax, gross=self.gross + other.gross
        )

    def __neg__(self) -> LineTax:
        return LineTax(net=-self.net, tax=-self.tax, gross=-self.gross)


_NO_TAX = LineTax(net=0, tax=0, gross=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class BasketTax:
    """The tax of a whole basket: its lines, totals and a breakdown per rate for the receipt.

    ``net``, ``tax`` and ``gross`` are exactly the sums of ``lines``; ``by_rate`` maps each rate
    (ascending) to the sum of the lines taxed at it, so it adds up to the totals too. Both are
    checked on construction. Treat ``by_rate`` as read-only.
    """

    lines: tuple[LineTax, ...]
    net: int
    tax: int
    gross: int
    by_rate: dict[Decimal, LineTax]

    def __post_init__(self) -> None:
        total = sum(self.lines, _NO_TAX)
        if (self.net, self.tax, self.gross) != (total.net, total.tax, total.gross):
            raise TaxError(
                f"Basket totals net {self.net}, tax {self.tax}, gross {self.gross} are not the "
                f"sums of its lines ({total.net}, {total.tax}, {total.gross})"
            )
        if sum(self.by_rate.values(), _NO_TAX) != total:
            raise TaxError("The basket's tax breakdown per rate does not add up to its totals")


def _round_half_away_from_zero(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to a whole number, halves away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
#: Rates :func:`line_tax` has accepted, with their exact fractions: a store has a handful of
#: rates and taxes every line with one of them. Keyed by value (Decimal("7") and Decimal("7.0")
#: are one rate with one fraction); only exact ``Decimal`` keys are looked up, since ``7.0`` (a
#: float, refused) is equal to them too. Bounded: when full, further rates are checked each time.
_RATE_FRACTIONS: dict[Decimal, tuple[int, int]] = {}
_RATE_FRACTIONS_SIZE = 256


def _checked_rate(rate: object, where: str) -> Decimal:
    if isinstance(rate, bool | float):
        raise TaxError(
            f"Tax rate {rate!r}{where} must be an exact decimal percentage such as "
            f"Decimal('8.875'), not a {type(rate).__name__}"
        )
    if isinstance(rate, int):
        rate = Decimal(rate)
    if not isinstance(rate, Decimal):
        raise TaxError(
            f"Tax rate {rate!r}{where} must be a decimal percentage such as Decimal('20')"
        )
    if not rate.is_finite() or not _ZERO <= rate < _HUNDRED:
        raise TaxError(
            f"Tax rate {rate}%{where} is not possible: a rate is at least 0 and below 100 percent"
        )
    return rate


def _checked_mode(mode: object) -> TaxMode:
    if mode == "inclusive":
        return "inclusive"
    if mode == "exclusive":
        return "exclusive"
    raise TaxError(
        f"Tax mode {mode!r} is not known: use 'inclusive' (prices include tax, VAT) or "
        f"'exclusive' (tax is added to prices, US sales tax)"
    )


def _checked_amount(amount: object, where: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError(
            f"Amount {amount!r}{where} must be a whole number of minor units (cents), "
            f"e.g. 1230 for 12.30"
        )
    return amount


def _rate_fraction(rate: object, where: str) -> tuple[int, int]:
    """``_checked_rate(rate, where).as_integer_ratio()``, remembered for rates seen before."""
    if type(rate) is Decimal:
        try:
            return _RATE_FRACTIONS[rate]
        except (KeyError, TypeError):  # TypeError: a signalling NaN, which cannot be hashed
            pass
    fraction = _checked_rate(rate, where).as_integer_ratio()
    if type(rate) is Decimal and len(_RATE_FRACTIONS) < _RATE_FRACTIONS_SIZE:
        _RATE_FRACTIONS[rate] = fraction
    return fraction


def _line_tax(amount: int, fraction: tuple[int, int], mode: TaxMode) -> LineTax:
    """Net, tax and gross of ``amount`` at the rate ``fraction`` (numerator, denominator) %."""
    numerator, denominator = fraction
    if mode == "inclusive":
        # gross × rate / (100 + rate) with rate = numerator / denominator
        tax = _round_half_away_from_zero(amount * numerator, 100 * denominator + numerator)
        return LineTax(net=amount - tax, tax=tax, gross=amount)
    tax = _round_half_away_from_zero(amount * numerator, 100 * denominator)
    return LineTax(net=amount, tax=tax, gross=amount + tax)


def line_tax(amount_minor: int, rate: Decimal, mode: TaxMode) -> LineTax:
    """Net, tax and gross of one line whose amount is ``amount_minor`` in the store's mode.

    The amount is the gross in ``"inclusive"`` mode and the net in ``"exclusive"`` mode.
    Negative amounts (return lines) give exactly the negated result of the positive amount.
    """
    return _line_tax(
        _checked_amount(amount_minor, ""), _rate_fraction(rate, ""), _checked_mode(mode)
    )


def basket_tax(lines: Sequence[tuple[int, Decimal]], mode: TaxMode) -> BasketTax:
    """Tax each ``(amount_minor, rate)`` line and total them; totals are the sums of the lines."""
    checked_mode = _checked_mode(mode)
    taxed: list[LineTax] = []
    by_rate: dict[Decimal, LineTax] = {}
    for number, (amount, rate) in enumerate(lines, start=1):
        where = f" on line {number}"
        checked_rate = _checked_rate(rate, where)
        line = _line_tax(
            _checked_amount(amount, where), checked_rate.as_integer_ratio(), checked_mode
        )
        taxed.append(line)
        by_rate[checked_rate] = by_rate.get(checked_rate, _NO_TAX) + line
    total = sum(taxed, _NO_TAX)
    return BasketTax(
        lines=tuple(taxed),
        net=total.net,
        tax=total.tax,
        gross=total.gross,
        by_rate={rate: by_rate[rate] for rate in sorted(by_rate)},
    )
