"""The sale engine: the basket on the counter, from the first scan to the printed receipt.

Plain Python over the local store: the cashier's screen, the headless till and the store
simulator all drive the same :class:`SaleEngine`.

Lines
-----
- A product barcode is looked up by its 14-digit GTIN. Scanning the same plain product again adds
  to its line ("2 x Milk") unless that line was discounted or repriced.
- GS1 scale labels (``shared.barcodes``, configured by ``variable_rules``) find the item by its
  item reference. A *price* label sells one package at the printed price. A *weight* label
  sells the printed weight at the item's price per kilogram: ``price_per_kg * grams / 1000``
  rounded half up to a whole minor unit. Weighed lines always have quantity 1: scan each package.
- ``set_pending_quantity(3)`` then a scan sells 3 ("3 x" on the keypad).
- An unknown barcode raises :class:`UnknownBarcode` with the way out for the cashier: key the item
  as an open-price item (``add_open_price``) or search for it by name.

Discounts and tax
-----------------
Line discounts (an amount in minor units or a percent, each with a reason) apply in the order
given, a percent to what is left of the line, rounded half up. Basket discounts then apply to what
is left of the whole basket and are spread over the lines in proportion to their amounts with
``Money.allocate``, *before* tax, so every line's amount is final and its tax is computed on it
(``shared.tax``, per line, in the store's tax mode). Each line records its own discounts and its
share of each basket discount, so a line's amount is always its price times quantity less its
discounts, and the sale's totals are exactly the sums of its lines (``shared.sale.check_totals``
holds by construction and is checked again before anything is written). A discount that would
take a line or the basket below zero is refused.

The engine prices its basket with a :class:`BasketPricer`: a scan reprices the one line it
changed and updates the running totals, and the result is always exactly what
:func:`price_basket` (the whole basket priced again) gives. Its suggestions come from a
``BasketRanker`` the same way (see ``edge_agent.suggestions``).

Payment and completion
----------------------
Tenders: cash (may exceed what is due; the change comes from cash) and card through an
external terminal (never more than is due, and the terminal's reference is required); several
tenders split a payment. Once a tender is taken the lines are frozen. ``complete()`` refuses
until the sale is fully paid, naming the amount still due. It then writes, in ONE transaction,
the ``sales`` row, the outbox op that will carry the sale to HQ, the next receipt number
(``<till>-<6-digit counter>``, from ``sync_state`` key ``receipt_counter``) and a pending print
job. If that transaction fails (a full disk), nothing is written and the basket stays exactly as
it was, so the cashier can free space and complete again.

Parking, returns
----------------
``park()`` stores the basket as JSON and clears the counter; ``resume()`` brings it back.
``start_return(receipt_number)`` finds the original sale in the local ``sales`` table, so a
return works offline at the till that made the sale. A return line refunds the original line's
*final* amount (after every discount) in proportion to the quantity returned; across several
returns of one line the refunds are computed cumulatively (``round(amount * returned_so_far /
quantity)`` minus what was refunded before), so returning every unit refunds exactly the line's
amount and exactly its tax, however the units were split. More than was sold, less what earlier
returns took back, is refused.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils
from pydantic import ValidationError

from edge_agent import outbox
from edge_agent.catalogue import Catalogue, CatalogueItem
from edge_agent.store import LocalStore
from edge_agent.suggestions import BasketRanker, ItemTuple, Suggestion
from shared.barcodes import (
    DEFAULT_RULES,
    ProductScan,
    VariableMeasureRule,
    VariableMeasureScan,
)
from shared.catalogue import Store
from shared.customer import CustomerCard
from shared.errors import InvalidInput, NotFound, OmnitillError, StorageError
from shared.money import Money
from shared.protocol import describe_validation_error
from shared.receipt import ReceiptSuggestion, receipt_from_return, receipt_from_sale
from shared.sale import (
    Discount,
    DiscountKind,
    Return,
    ReturnLine,
    Sale,
    SaleLine,
    Tender,
    check_return_totals,
    check_totals,
)
from shared.tax import LineTax, TaxMode, basket_tax, line_tax
from shared.wire import utc_now

log = logging.getLogger(__name__)

__all__ = [
    "MAX_QUANTITY",
    "OPEN_PRICE_SKU",
    "RECEIPT_COUNTER_KEY",
    "Basket",
    "BasketLine",
    "BasketPricer",
    "BasketTotals",
    "DiscountRule",
    "ParkedBasket",
    "PricedLine",
    "ReturnDraft",
    "SaleEngine",
    "UnknownBarcode",
    "price_basket",
    "weighed_amount",
]

#: The SKU of items keyed in at an open price.
OPEN_PRICE_SKU = "OPEN-PRICE"
#: The largest quantity on one line (``SaleLine`` allows no more).
MAX_QUANTITY = 100_000
#: ``sync_state`` key of the last receipt number used at this till.
RECEIPT_COUNTER_KEY = "receipt_counter"

TenderChoice = Literal["cash", "card"]


class UnknownBarcode(InvalidInput):
    """A valid barcode that is not in this till's catalogue; ``code`` is what was scanned."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# The basket
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscountRule:
    """A discount as the cashier gave it: an amount in minor units or a percent, and why."""

    kind: DiscountKind
    value: Decimal
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "value": str(self.value), "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscountRule:
        kind = data["kind"]
        if kind not in ("amount", "percent"):
            raise InvalidInput(f"Unknown discount kind {kind!r} in a parked sale")
        return cls(kind=kind, value=Decimal(data["value"]), reason=str(data["reason"]))


@dataclass(slots=True)
class BasketLine:
    """One line on the counter. ``unit_price_minor`` is per kilogram for weighed lines."""

    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    tax_rate: Decimal
    weight_g: int | None = None
    barcode: str | None = None
    discounts: list[DiscountRule] = field(default_factory=list)
    open_price: bool = False
    price_embedded: bool = False

    @property
    def base_minor(self) -> int:
        """Price times quantity (or weight), before discounts."""
        if self.weight_g is not None:
            return self.quantity * weighed_amount(self.unit_price_minor, self.weight_g)
        return self.quantity * self.unit_price_minor

    def to_json(self) -> dict[str, Any]:
        return {
            "line_no": self.line_no,
            "sku": self.sku,
            "name": self.name,
            "quantity": self.quantity,
            "unit_price_minor": self.unit_price_minor,
            "tax_rate": str(self.tax_rate),
            "weight_g": self.weight_g,
            "barcode": self.barcode,
            "discounts": [d.to_json() for d in self.discounts],
            "open_price": self.open_price,
            "price_embedded": self.price_embedded,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BasketLine:
        return cls(
            line_no=int(data["line_no"]),
            sku=str(data["sku"]),
            name=str(data["name"]),
            quantity=int(data["quantity"]),
            unit_price_minor=int(data["unit_price_minor"]),
            tax_rate=Decimal(data["tax_rate"]),
            weight_g=None if data.get("weight_g") is None else int(data["weight_g"]),
            barcode=data.get("barcode"),
            discounts=[DiscountRule.from_json(d) for d in data.get("discounts", [])],
            open_price=bool(data.get("open_price", False)),
            price_embedded=bool(data.get("price_embedded", False)),
        )


@dataclass(slots=True)
class Basket:
    """The sale being rung up. ``scan_order`` lists SKUs by their last scan, newest last."""

    lines: list[BasketLine] = field(default_factory=list)
    discounts: list[DiscountRule] = field(default_factory=list)
    customer: CustomerCard | None = None
    customer_identifier: str | None = None
    tenders: list[Tender] = field(default_factory=list)
    next_line_no: int = 1
    scan_order: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.lines and not self.tenders

    def line(self, line_no: int) -> BasketLine:
        for line in self.lines:
            if line.line_no == line_no:
                return line
        raise InvalidInput(f"There is no line {line_no} in this sale")

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [line.to_json() for line in self.lines],
            "discounts": [d.to_json() for d in self.discounts],
            "customer": None if self.customer is None else self.customer.model_dump(mode="json"),
            "customer_identifier": self.customer_identifier,
            "tenders": [t.model_dump(mode="json") for t in self.tenders],
            "next_line_no": self.next_line_no,
            "scan_order": list(self.scan_order),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Basket:
        customer = data.get("customer")
        return cls(
            lines=[BasketLine.from_json(line) for line in data.get("lines", [])],
            discounts=[DiscountRule.from_json(d) for d in data.get("discounts", [])],
            customer=None if customer is None else CustomerCard.model_validate(customer),
            customer_identifier=data.get("customer_identifier"),
            tenders=[Tender.model_validate(t) for t in data.get("tenders", [])],
            next_line_no=int(data.get("next_line_no", 1)),
            scan_order=[str(s) for s in data.get("scan_order", [])],
        )


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A basket line with its discounts (its own and its share of basket discounts), final
    amount and tax."""

    line: BasketLine
    base_minor: int
    discounts: tuple[Discount, ...]
    amount_minor: int
    tax: LineTax


@dataclass(frozen=True, slots=True)
class BasketTotals:
    """What the customer display shows. ``by_rate`` maps tax rates to their net/tax/gross."""

    subtotal_minor: int
    tax_minor: int
    total_minor: int
    paid_minor: int
    due_minor: int
    change_minor: int
    by_rate: dict[Decimal, LineTax]
    lines: tuple[PricedLine, ...] = ()
    basket_discounts: tuple[Discount, ...] = ()

    @property
    def discount_minor(self) -> int:
        return sum(d.amount_minor for p in self.lines for d in p.discounts)


@dataclass(frozen=True, slots=True)
class ParkedBasket:
    park_id: str
    label: str
    created_at: datetime
    line_count: int
    total_minor: int


def weighed_amount(price_per_kg_minor: int, weight_g: int) -> int:
    """``price_per_kg * grams / 1000``, rounded half up to a whole minor unit."""
    return (price_per_kg_minor * weight_g + 500) // 1000


def _percent_of(amount: int, percent: Decimal) -> int:
    return int((Decimal(amount) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _discount_amount(rule: DiscountRule, remaining: int) -> int:
    if rule.kind == "percent":
        return _percent_of(remaining, rule.value)
    return int(rule.value)


@lru_cache(maxsize=1024, typed=True)
def _line_tax(amount: int, rate: Decimal, mode: TaxMode) -> LineTax:
    # typed: 7, 7.0 and Decimal(7) are equal keys to a plain cache, but a float rate must still
    # be refused by line_tax. Errors are not cached: every bad call raises. Small: the engine
    # taxes a line once when it changes (BasketPricer), and a full cache stays the same size, so
    # the garbage collector does not find new entries after every scan.
    return line_tax(amount, rate, mode)


@dataclass(frozen=True, slots=True)
class _BasketTax:
    lines: tuple[LineTax, ...]
    tax: int
    by_rate: dict[Decimal, LineTax]


def _basket_tax(lines: Sequence[tuple[int, Decimal]], mode: TaxMode) -> _BasketTax:
    """``shared.tax.basket_tax`` for the scan path: the same lines, tax and breakdown per rate.

    The basket is priced again at every scan, and most of its lines did not change: each line's
    tax is remembered (it depends only on its amount, rate and mode) and the totals are summed
    as plain integers, without ``basket_tax``'s checks that sums of ``LineTax`` add up (they do by
    construction here: every line is a checked ``LineTax``). A bad line goes through
    ``basket_tax`` itself, so its error names the line.
    """
    if mode not in ("inclusive", "exclusive"):
        basket_tax(lines, mode)  # raises TaxError
    try:
        taxed = tuple([_line_tax(amount, rate, mode) for amount, rate in lines])
    except (OmnitillError, TypeError, ArithmeticError):
        basket_tax(lines, mode)  # raises TaxError or MoneyError naming the line
        raise
    sums: dict[Decimal, list[int]] = {}
    total_tax = 0
    for (_, rate), line in zip(lines, taxed, strict=True):
        total_tax += line.tax
        found = sums.get(rate)
        if found is None:
            sums[rate] = [line.net, line.tax, line.gross]
        else:
            found[0] += line.net
            found[1] += line.tax
            found[2] += line.gross
    by_rate = {
        rate: LineTax(net=found[0], tax=found[1], gross=found[2])
        for rate, found in sorted(sums.items(), key=itemgetter(0))
    }
    return _BasketTax(lines=taxed, tax=total_tax, by_rate=by_rate)


def _line_discounts(line: BasketLine, money: _Formatter) -> tuple[int, list[Discount], int]:
    """A line's base amount, its own discounts in order and what is left of it; raises
    InvalidInput when a discount is larger than what is left of the line."""
    base = left = line.base_minor
    given: list[Discount] = []
    for rule in line.discounts:
        amount = _discount_amount(rule, left)
        if amount > left:
            raise InvalidInput(
                f"The discount of {money(amount)} on line {line.line_no} ({line.name}) is "
                f"more than the {money(left)} left on the line"
            )
        left -= amount
        given.append(
            Discount(kind=rule.kind, value=rule.value, amount_minor=amount, reason=rule.reason)
        )
    return base, given, left


def price_basket(basket: Basket, *, tax_mode: TaxMode, currency: str) -> BasketTotals:
    """Price every line, spread basket discounts, tax each line; raise InvalidInput when a
    discount is larger than what it applies to.

    This is the reference: :class:`BasketPricer` (the engine's, scan after scan) gives exactly
    the same totals by repricing only the lines that changed.
    """
    money = _Formatter(currency)
    bases: list[int] = []
    remaining: list[int] = []
    line_discounts: list[list[Discount]] = []
    for line in basket.lines:
        base, given, left = _line_discounts(line, money)
        bases.append(base)
        remaining.append(left)
        line_discounts.append(given)
    basket_given: list[Discount] = []
    for rule in basket.discounts:
        left = sum(remaining)
        amount = _discount_amount(rule, left)
        if amount > left:
            raise InvalidInput(
                f"The basket discount of {money(amount)} ({rule.reason}) is more than the "
                f"{money(left)} the basket costs"
            )
        basket_given.append(
            Discount(kind=rule.kind, value=rule.value, amount_minor=amount, reason=rule.reason)
        )
        if amount == 0:
            continue
        shares = Money(amount, currency).allocate(remaining)
        for index, share in enumerate(shares):
            if share.amount:
                remaining[index] -= share.amount
                line_discounts[index].append(
                    Discount(
                        kind="amount",
                        value=Decimal(share.amount),
                        amount_minor=share.amount,
                        reason=rule.reason,
                    )
                )
    taxed = _basket_tax(
        [(amount, line.tax_rate) for amount, line in zip(remaining, basket.lines, strict=True)],
        tax_mode,
    )
    priced = tuple(
        [
            PricedLine(
                line=line, base_minor=base, discounts=tuple(given), amount_minor=amount, tax=tax
            )
            for line, base, given, amount, tax in zip(
                basket.lines, bases, line_discounts, remaining, taxed.lines, strict=True
            )
        ]
    )
    subtotal = sum(remaining)
    return _totals(
        basket,
        tax_mode,
        subtotal=subtotal,
        tax=taxed.tax,
        by_rate=taxed.by_rate,
        lines=priced,
        basket_discounts=tuple(basket_given),
    )


def _totals(
    basket: Basket,
    tax_mode: TaxMode,
    *,
    subtotal: int,
    tax: int,
    by_rate: dict[Decimal, LineTax],
    lines: tuple[PricedLine, ...],
    basket_discounts: tuple[Discount, ...],
) -> BasketTotals:
    total = subtotal + (tax if tax_mode == "exclusive" else 0)
    paid = sum([t.amount_minor for t in basket.tenders]) if basket.tenders else 0
    return BasketTotals(
        subtotal_minor=subtotal,
        tax_minor=tax,
        total_minor=total,
        paid_minor=paid,
        due_minor=max(0, total - paid),
        change_minor=max(0, paid - total),
        by_rate=by_rate,
        lines=lines,
        basket_discounts=basket_discounts,
    )


#: What a line's price depends on (besides the store's tax mode): see ``BasketPricer``.
_LineKey = tuple[int, int, int | None, Decimal, tuple[DiscountRule, ...]]
#: A priced line as the pricer remembers it: the line, its key then, its price.
_Priced = tuple[BasketLine, _LineKey, PricedLine]


class BasketPricer:
    """:func:`price_basket` for one till's basket, scan after scan, repricing only what changed.

    Each line's price (its base, its own discounts, its amount and its tax) depends only on the
    line: its quantity, unit price, weight, tax rate and discounts (the *key*) and the store's tax
    mode. The pricer remembers each line's ``PricedLine`` with its key and keeps the basket's
    sums (subtotal, tax, net/tax/gross per rate) as running totals. At each call it compares
    every line's key with the one it remembers (a tuple per line: nothing is priced), prices the
    lines that are new or changed, takes the lines that left the basket out of the sums, and adds
    the new prices in. So a scan prices one line whatever the basket's size, and the totals are
    exactly the sums of the lines, as :func:`price_basket` computes them.

    It never trusts anything it cannot check: lines are compared by key, so a line changed from
    outside the engine is repriced too. A basket discount is spread over every line (its shares
    depend on all of them), so a basket with one is priced in full. Any error is left to
    :func:`price_basket`, which raises it with the same message, and nothing remembered changes.
    """

    __slots__ = ("_by_rate", "_currency", "_lines", "_money", "_subtotal", "_tax", "_tax_mode")

    def __init__(self, *, tax_mode: TaxMode, currency: str) -> None:
        self._tax_mode: TaxMode = tax_mode
        self._currency = currency
        self._money = _Formatter(currency)
        # id(line) -> (line, key, priced); the line is held, so its id cannot be reused.
        self._lines: dict[int, _Priced] = {}
        self._subtotal = 0
        self._tax = 0
        # rate -> [lines, net, tax, gross]
        self._by_rate: dict[Decimal, list[int]] = {}

    def price(self, basket: Basket) -> BasketTotals:
        """The basket's totals, equal to ``price_basket(basket, ...)``."""
        if basket.discounts or self._tax_mode not in ("inclusive", "exclusive"):
            return price_basket(basket, tax_mode=self._tax_mode, currency=self._currency)
        try:
            return self._price(basket)
        except (OmnitillError, TypeError, ArithmeticError):
            # price_basket raises the error the cashier must see (same message, same line).
            return price_basket(basket, tax_mode=self._tax_mode, currency=self._currency)

    def _price(self, basket: Basket) -> BasketTotals:
        old = self._lines
        lines = basket.lines
        kept: dict[int, _Priced] = {}
        priced: list[PricedLine] = []
        changed: list[_Priced] = []
        for line in lines:
            ident = id(line)
            key: _LineKey = (
                line.quantity,
                line.unit_price_minor,
                line.weight_g,
                line.tax_rate,
                tuple(line.discounts) if line.discounts else (),
            )
            entry = old.get(ident)
            if entry is None or entry[0] is not line or entry[1] != key:
                entry = (line, key, self._price_line(line))
                changed.append(entry)
            kept[ident] = entry
            priced.append(entry[2])
        if len(kept) != len(lines):
            # The same line object twice: not a basket the engine makes; price it in full.
            return price_basket(basket, tax_mode=self._tax_mode, currency=self._currency)
        if changed or len(old) != len(kept):
            # Everything is priced: only now is anything remembered. A line's rate is the one
            # in its key (the line itself may have been changed since).
            by_rate = self._by_rate
            for ident, entry in old.items():
                if kept.get(ident) is entry:
                    continue
                rate, gone = entry[1][3], entry[2]
                self._subtotal -= gone.amount_minor
                self._tax -= gone.tax.tax
                sums = by_rate[rate]
                sums[0] -= 1
                sums[1] -= gone.tax.net
                sums[2] -= gone.tax.tax
                sums[3] -= gone.tax.gross
            for entry in changed:
                rate, new = entry[1][3], entry[2]
                self._subtotal += new.amount_minor
                self._tax += new.tax.tax
                found = by_rate.get(rate)
                if found is None:
                    by_rate[rate] = [1, new.tax.net, new.tax.tax, new.tax.gross]
                else:
                    found[0] += 1
                    found[1] += new.tax.net
                    found[2] += new.tax.tax
                    found[3] += new.tax.gross
            for rate in [rate for rate, sums in by_rate.items() if not sums[0]]:
                del by_rate[rate]
            self._lines = kept
        return _totals(
            basket,
            self._tax_mode,
            subtotal=self._subtotal,
            tax=self._tax,
            by_rate={
                rate: LineTax(net=sums[1], tax=sums[2], gross=sums[3])
                for rate, sums in sorted(self._by_rate.items(), key=itemgetter(0))
            },
            lines=tuple(priced),
            basket_discounts=(),
        )

    def _price_line(self, line: BasketLine) -> PricedLine:
        base, given, amount = _line_discounts(line, self._money)
        tax = _line_tax(amount, line.tax_rate, self._tax_mode)
        return PricedLine(
            line=line, base_minor=base, discounts=tuple(given), amount_minor=amount, tax=tax
        )


class _Formatter:
    def __init__(self, currency: str, locale: str = "en") -> None:
        self.currency = currency
        self.locale = locale

    def __call__(self, amount: int) -> str:
        try:
            return Money(amount, self.currency).format(self.locale)
        except InvalidInput:
            return f"{amount} {self.currency} minor units"


# ---------------------------------------------------------------------------------------------
# Returns
# ---------------------------------------------------------------------------------------------


def _round_half_up_div(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(slots=True)
class ReturnDraft:
    """A return being prepared against ``sale``; ``returned_before`` counts, per line number,
    the units earlier returns at this till took back."""

    sale: Sale
    returned_before: dict[int, int] = field(default_factory=dict)
    selected: dict[int, int] = field(default_factory=dict)

    def _sale_line(self, line_no: int) -> SaleLine:
        for line in self.sale.lines:
            if line.line_no == line_no:
                return line
        raise InvalidInput(
            f"Receipt {self.sale.receipt_number} has no line {line_no}: lines are "
            f"{', '.join(str(line.line_no) for line in self.sale.lines)}"
        )

    def returnable(self, line_no: int) -> int:
        """Units of a line that can still be returned."""
        line = self._sale_line(line_no)
        return line.quantity - self.returned_before.get(line_no, 0)

    def select(self, line_no: int, quantity: int) -> None:
        """Return ``quantity`` units of a line (0 takes the line out of the return)."""
        line = self._sale_line(line_no)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise InvalidInput(f"Return quantity must be a whole number of units, not {quantity!r}")
        left = self.returnable(line_no)
        if quantity > left:
            before = self.returned_before.get(line_no, 0)
            already = f", {before} already returned" if before else ""
            raise InvalidInput(
                f"Cannot return {quantity} x {line.name}: receipt {self.sale.receipt_number} "
                f"sold {line.quantity}{already}, so at most {left} can come back"
            )
        if quantity == 0:
            self.selected.pop(line_no, None)
        else:
            self.selected[line_no] = quantity

    def select_all(self) -> None:
        """Return everything that has not been returned yet."""
        for line in self.sale.lines:
            if self.returnable(line.line_no) > 0:
                self.selected[line.line_no] = self.returnable(line.line_no)

    def lines(self) -> list[ReturnLine]:
        """The return lines as they will be refunded (see the module docstring for rounding)."""
        out = []
        for line in self.sale.lines:
            quantity = self.selected.get(line.line_no, 0)
            if not quantity:
                continue
            before = self.returned_before.get(line.line_no, 0)
            amount_before = _round_half_up_div(line.amount_minor * before, line.quantity)
            amount_after = _round_half_up_div(
                line.amount_minor * (before + quantity), line.quantity
            )
            tax_before = line_tax(amount_before, line.tax_rate, self.sale.tax_mode).tax
            tax_after = line_tax(amount_after, line.tax_rate, self.sale.tax_mode).tax
            out.append(
                ReturnLine(
                    original_line_no=line.line_no,
                    sku=line.sku,
                    name=line.name,
                    quantity=quantity,
                    amount_minor=amount_after - amount_before,
                    tax_minor=tax_after - tax_before,
                    tax_rate=line.tax_rate,
                )
            )
        return out

    @property
    def total_minor(self) -> int:
        lines = self.lines()
        amount = sum(line.amount_minor for line in lines)
        tax = sum(line.tax_minor for line in lines)
        return amount + (tax if self.sale.tax_mode == "exclusive" else 0)


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


def _receipt_prefix(till_id: str) -> str:
    # Receipt numbers are printed as CODE128 and must match ``Sale.receipt_number``.
    return re.sub(r"[^A-Z0-9-]", "-", till_id.upper())


def _checked_quantity(quantity: object, what: str = "Quantity") -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput(f"{what} must be a whole number, not {quantity!r}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"{what} must be between 1 and {MAX_QUANTITY}, not {quantity}")
    return quantity


def _checked_rule(kind: object, value: object, reason: object) -> DiscountRule:
    if kind not in ("amount", "percent"):
        raise InvalidInput(f"A discount is an 'amount' or a 'percent', not {kind!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Every discount needs a reason (for example 'damaged packaging')")
    if len(reason.strip()) > 200:
        raise InvalidInput("A discount reason has at most 200 characters")
    if isinstance(value, bool | float):
        raise InvalidInput(
            f"Discount value {value!r} must be a whole number of minor units or an exact "
            "decimal percent such as Decimal('12.5')"
        )
    try:
        number = Decimal(value) if isinstance(value, int | str) else value
    except InvalidOperation as exc:
        raise InvalidInput(f"Discount value {value!r} is not a number") from exc
    if not isinstance(number, Decimal) or not number.is_finite():
        raise InvalidInput(f"Discount value {value!r} is not a number")
    if kind == "percent":
        if not Decimal(0) < number <= Decimal(100):
            raise InvalidInput(f"A percent discount is more than 0 and at most 100, not {number}")
    else:
        if number != number.to_integral_value() or number <= 0:
            raise InvalidInput(
                f"An amount discount is a positive whole number of minor units (cents), not "
                f"{number}"
            )
        number = Decimal(int(number))
    return DiscountRule(
        kind="percent" if kind == "percent" else "amount", value=number, reason=reason.strip()
    )


class SaleEngine:
    """One till's current sale, and the sales, returns and parked baskets it writes."""

    def __init__(
        self,
        *,
        store: LocalStore,
        catalogue: Catalogue,
        shop: Store,
        till_id: str,
        cashier_id: str,
        clock: Callable[[], datetime] = utc_now,
        variable_rules: Sequence[VariableMeasureRule] = DEFAULT_RULES,
        receipt_base_url: str | None = None,
    ) -> None:
        self.receipt_base_url = receipt_base_url.rstrip("/") if receipt_base_url else None
        self.store = store
        self.catalogue = catalogue
        self.shop = shop
        self.till_id = till_id
        self.cashier_id = cashier_id
        self.clock = clock
        self.variable_rules = tuple(variable_rules)
        self.basket = Basket()
        self.last_sale: Sale | None = None
        self.last_return: Return | None = None
        self._pending_quantity: int | None = None
        self._receipt_prefix = _receipt_prefix(till_id)
        self._money = _Formatter(shop.currency, shop.locale)
        self._pricer = BasketPricer(tax_mode=shop.tax_mode, currency=shop.currency)
        self._priced_for = shop
        self._ranker = BasketRanker()
        try:
            self._tz: Any = ZoneInfo(shop.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown store time zone %r: suggestions use UTC", shop.timezone)
            self._tz = ZoneInfo("UTC")

    # -- adding lines --------------------------------------------------------------------------

    @property
    def pending_quantity(self) -> int | None:
        return self._pending_quantity

    def set_pending_quantity(self, quantity: int | None) -> None:
        """The next item added is sold this many times ("3 x"); None clears it."""
        self._pending_quantity = None if quantity is None else _checked_quantity(quantity)

    def add_scanned_product(
        self, scan: ProductScan | VariableMeasureScan, *, quantity: int = 1
    ) -> BasketLine:
        """Add what a product barcode or a scale label names."""
        self._editable()
        count = self._quantity(quantity)
        if isinstance(scan, ProductScan):
            item = self.catalogue.by_gtin(scan.gtin.gtin14)
            if item is None:
                raise UnknownBarcode(
                    f"No product with barcode {scan.gtin.digits}; key it as an open-price item "
                    "or search by name",
                    code=scan.gtin.digits,
                )
            self._check_sellable(item)
            if item.variable_measure == "weight":
                raise InvalidInput(
                    f"{item.name} is sold by weight: weigh it and scan the scale label, or key "
                    "its weight"
                )
            return self._add_item(item, count, barcode=scan.gtin.digits)
        measure = scan.measure
        item = self.catalogue.by_item_reference(measure.item_reference)
        if item is None:
            raise UnknownBarcode(
                f"No product with item reference {measure.item_reference} (scale label "
                f"{measure.code}); key it as an open-price item or search by name",
                code=measure.code,
            )
        self._check_sellable(item)
        if measure.kind == "price" and measure.price_minor is not None:
            return self._new_line(
                item,
                count,
                unit_price=measure.price_minor,
                barcode=measure.code,
                price_embedded=True,
            )
        if measure.weight_g is not None:
            return self._add_weighed(item, count, measure.weight_g, barcode=measure.code)
        raise InvalidInput(f"Scale label {measure.code} carries neither a price nor a weight")

    def add_sku(self, sku: str, quantity: int = 1, *, weight_g: int | None = None) -> BasketLine:
        """Add a product chosen on screen (from search or a suggestion); ``weight_g`` for an
        item sold by weight that was weighed at the counter."""
        self._editable()
        count = self._quantity(quantity)
        item = self.catalogue.by_sku(sku)
        if item is None:
            raise NotFound(f"No product with SKU {sku} at this till; search by name instead")
        self._check_sellable(item)
        if weight_g is not None or item.variable_measure == "weight":
            if weight_g is None:
                raise InvalidInput(f"{item.name} is sold by weight: give its weight in grams")
            return self._add_weighed(item, count, weight_g, barcode=None)
        return self._add_item(item, count, barcode=None)

    def add_open_price(
        self,
        name: str,
        price_minor: int,
        tax_rate: Decimal,
        quantity: int = 1,
        *,
        sku: str = OPEN_PRICE_SKU,
    ) -> BasketLine:
        """Add an item keyed by hand with its price (a product the till does not know)."""
        self._editable()
        count = self._quantity(quantity)
        clean = name.strip() if isinstance(name, str) else ""
        if not clean or len(clean) > 300:
            raise InvalidInput("An open-price item needs a name of 1 to 300 characters")
        if isinstance(price_minor, bool) or not isinstance(price_minor, int) or price_minor < 0:
            raise InvalidInput(
                f"An open price is a whole number of minor units (cents), 0 or more, not "
                f"{price_minor!r}"
            )
        line_tax(0, tax_rate, self.shop.tax_mode)  # raises TaxError for an impossible rate
        line = BasketLine(
            line_no=self.basket.next_line_no,
            sku=sku,
            name=clean,
            quantity=count,
            unit_price_minor=price_minor,
            tax_rate=tax_rate,
            open_price=True,
        )
        self._append(line)
        return line

    # -- changing lines ------------------------------------------------------------------------

    def void_line(self, line_no: int) -> BasketLine:
        self._editable()
        line = self.basket.line(line_no)
        self.basket.lines.remove(line)
        if all(other.sku != line.sku for other in self.basket.lines):
            self.basket.scan_order = [s for s in self.basket.scan_order if s != line.sku]
        return line

    def set_quantity(self, line_no: int, quantity: int) -> BasketLine:
        self._editable()
        line = self.basket.line(line_no)
        if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity < 1:
            raise InvalidInput(f"Quantity must be at least 1: to remove line {line_no}, void it")
        count = _checked_quantity(quantity)
        if line.weight_g is not None and count != 1:
            raise InvalidInput(f"{line.name} is weighed: scan each package instead")
        old = line.quantity
        line.quantity = count
        self._check_or_undo(lambda: setattr(line, "quantity", old))
        return line

    def discount_line(
        self, line_no: int, *, kind: DiscountKind, value: Decimal | int, reason: str
    ) -> BasketLine:
        """Take an amount (minor units) or a percent off one line, with a reason."""
        self._editable()
        line = self.basket.line(line_no)
        line.discounts.append(_checked_rule(kind, value, reason))
        self._check_or_undo(line.discounts.pop)
        return line

    def discount_basket(self, *, kind: DiscountKind, value: Decimal | int, reason: str) -> None:
        """Take an amount or a percent off the whole basket, spread over its lines."""
        self._editable()
        if not self.basket.lines:
            raise InvalidInput("The basket is empty: scan the items before discounting them")
        self.basket.discounts.append(_checked_rule(kind, value, reason))
        self._check_or_undo(self.basket.discounts.pop)

    def remove_discounts(self, line_no: int | None = None) -> None:
        """Remove a line's discounts, or the basket discounts when no line is given."""
        self._editable()
        if line_no is None:
            self.basket.discounts.clear()
        else:
            self.basket.line(line_no).discounts.clear()

    # -- customer, totals, suggestions ---------------------------------------------------------

    def attach_customer(self, card: CustomerCard | None, *, identifier: str | None = None) -> None:
        """Who is buying (any time before completion); None for nobody. ``identifier`` is the
        ``kind:value`` that identified them, kept when HQ has not resolved them yet."""
        self.basket.customer = card
        self.basket.customer_identifier = identifier

    def totals(self) -> BasketTotals:
        """The basket priced (equal to :func:`price_basket`; only changed lines are repriced)."""
        if self._priced_for is not self.shop:
            # A new store configuration (tax mode, currency): nothing remembered applies.
            self._pricer = BasketPricer(tax_mode=self.shop.tax_mode, currency=self.shop.currency)
            self._priced_for = self.shop
        return self._pricer.price(self.basket)

    def suggestions(self, n: int = 3) -> list[Suggestion]:
        """Suggestions for the basket and customer, best first, with prices (see
        ``edge_agent.suggestions``)."""
        skus = [s for s in self.basket.scan_order if s != OPEN_PRICE_SKU]
        card = self.basket.customer
        personal: Sequence[ItemTuple] = ()
        exclude: set[str] = set()
        if card is not None:
            exclude = {item.sku for item in card.recent_purchases}
            personal = self.catalogue.personal_for(str(card.customer_id))
            if not personal and card.recommendations:
                personal = [
                    (sku, 1.0 / (1 + i), None) for i, sku in enumerate(card.recommendations)
                ]
        names, lists = self.catalogue.suggestion_sources()
        found = self._ranker.ranked(
            skus,
            lists,
            names=names,
            exclude=exclude,
            personal=personal,
            viewed=card.recently_viewed if card is not None else (),
            cart=card.cart_items if card is not None else (),
            now=self.clock(),
            n=n,
            tz=self._tz,
            customer_name=(card.first_name or None) if card is not None else None,
        )
        out = []
        for sku, name, score, reason, _, because_of in found:
            # The catalogue's price now (a cart's price may be old); not sold: not shown.
            price = self.catalogue.price_of(sku)
            if price is None:
                continue
            out.append(
                Suggestion(
                    sku=sku,
                    name=name,
                    score=score,
                    reason=reason,
                    price_minor=price,
                    because_of=because_of,
                )
            )
        return out

    # -- payment and completion ----------------------------------------------------------------

    def add_tender_cash(self, amount_minor: int) -> BasketTotals:
        """Cash handed over; more than is due gives change at completion."""
        self._check_tender_amount(amount_minor)
        self.basket.tenders.append(Tender(kind="cash", amount_minor=amount_minor))
        return self.totals()

    def add_tender_card(self, amount_minor: int, reference: str) -> BasketTotals:
        """A card payment the external terminal approved; ``reference`` is its approval id."""
        due = self._check_tender_amount(amount_minor)
        ref = reference.strip() if isinstance(reference, str) else ""
        if not ref:
            raise InvalidInput(
                "A card payment needs the terminal's reference (approval code) from its slip"
            )
        if len(ref) > 200:
            raise InvalidInput("A card terminal reference has at most 200 characters")
        if amount_minor > due:
            raise InvalidInput(
                f"A card payment of {self._money(amount_minor)} is more than the "
                f"{self._money(due)} due: cards never give change"
            )
        self.basket.tenders.append(Tender(kind="card", amount_minor=amount_minor, reference=ref))
        return self.totals()

    def complete(self, *, suggestions: Sequence[Suggestion] = ()) -> Sale:
        """Record the paid sale, its outbox op, receipt number and print job in one transaction.

        ``suggestions`` (with prices) are printed on the receipt. On any failure nothing is
        written and the basket is left as it was.
        """
        totals = self.totals()
        if not self.basket.lines:
            raise InvalidInput("The sale has no items: scan something first")
        if totals.due_minor > 0:
            raise InvalidInput(
                f"{self._money(totals.due_minor)} is still due: take another payment before "
                "completing the sale"
            )
        if totals.total_minor == 0:
            raise InvalidInput(
                "The sale totals 0: a sale needs something to pay; void the lines or cancel"
            )
        draft = self._sale_draft(totals)
        card = self.basket.customer
        basket_names = {line.sku: line.name for line in self.basket.lines}
        printed = tuple(
            ReceiptSuggestion(
                sku=s.sku,
                name=s.name,
                price_minor=s.price_minor,
                because_of=basket_names.get(s.because_of, s.because_of) if s.because_of else None,
            )
            for s in suggestions
            if s.price_minor is not None
        )[:3]
        with self._writing("The sale was not saved") as db:
            number = self._next_receipt_number(db)
            sale = draft.model_copy(update={"receipt_number": number})
            text = sale.model_dump_json()
            db.execute(
                "INSERT INTO sales(sale_id, receipt_number, kind, created_at, customer_id, "
                "total_minor, payload) VALUES (?, ?, 'sale', ?, ?, ?, ?)",
                [
                    str(sale.sale_id),
                    number,
                    sale.created_at.isoformat(),
                    None if sale.customer_id is None else str(sale.customer_id),
                    sale.total_minor,
                    text,
                ],
            )
            outbox.enqueue(db, "sale", text)
            receipt = receipt_from_sale(
                sale,
                self.shop,
                customer_name=card.display_name if card is not None else None,
                loyalty_points=card.loyalty_points if card is not None else None,
                suggestions=printed,
                receipt_url=(
                    f"{self.receipt_base_url}/r/{sale.sale_id}" if self.receipt_base_url else None
                ),
            )
            self._print_job(db, sale.sale_id, "sale", receipt.model_dump_json(by_alias=True))
        log.info("sale %s completed: %s", number, self._money(sale.total_minor))
        self.last_sale = sale
        self.basket = Basket()
        self._pending_quantity = None
        return sale

    def cancel(self) -> None:
        """Throw the current basket away."""
        if any(t.kind == "card" for t in self.basket.tenders):
            log.warning("sale cancelled after a card payment: refund it at the terminal")
        self.basket = Basket()
        self._pending_quantity = None

    # -- parking -------------------------------------------------------------------------------

    def park(self, label: str = "") -> str:
        """Put the basket aside (the customer forgot their wallet); returns its park id."""
        if not self.basket.lines:
            raise InvalidInput("There is nothing to park: the basket is empty")
        if self.basket.tenders:
            raise InvalidInput("A sale with payments taken cannot be parked: complete it")
        park_id = str(uuid.uuid4())
        text = json.dumps(self.basket.to_json(), separators=(",", ":"), ensure_ascii=False)
        with self._writing("The sale was not parked") as db:
            db.execute(
                "INSERT INTO parked(park_id, created_at, label, basket) VALUES (?, ?, ?, ?)",
                [park_id, self.clock().isoformat(), label.strip()[:100], text],
            )
        self.basket = Basket()
        self._pending_quantity = None
        return park_id

    def resume(self, park_id: str) -> Basket:
        """Bring a parked basket back to the counter (the current basket must be empty)."""
        if not self.basket.is_empty:
            raise InvalidInput("Finish or park the current sale before resuming another one")
        with self._writing("The parked sale was not resumed") as db:
            row = db.execute("SELECT basket FROM parked WHERE park_id = ?", [park_id]).fetchone()
            if row is None:
                raise NotFound(f"No parked sale {park_id}: it was resumed or never parked here")
            db.execute("DELETE FROM parked WHERE park_id = ?", [park_id])
        self.basket = Basket.from_json(json.loads(row[0]))
        return self.basket

    def parked_list(self) -> list[ParkedBasket]:
        """Parked baskets, oldest first."""
        out = []
        for row in self.store.query(
            "SELECT park_id, created_at, label, basket FROM parked ORDER BY created_at, park_id"
        ):
            basket = Basket.from_json(json.loads(row[3]))
            try:
                total = self._price(basket).total_minor
            except InvalidInput:
                total = 0
            out.append(
                ParkedBasket(
                    park_id=str(row[0]),
                    label=str(row[2]),
                    created_at=datetime.fromisoformat(row[1]),
                    line_count=len(basket.lines),
                    total_minor=total,
                )
            )
        return out

    # -- returns -------------------------------------------------------------------------------

    def start_return(self, receipt_number: str) -> ReturnDraft:
        """A return against a sale made at this till (works offline)."""
        number = receipt_number.strip().upper()
        row = self.store.query_one(
            "SELECT payload FROM sales WHERE receipt_number = ? AND kind = 'sale'", (number,)
        )
        if row is None:
            raise NotFound(
                f"Receipt {number} is not a sale in this till's records: returns against "
                "another till's sales need the connection to HQ"
            )
        sale = Sale.model_validate_json(row[0])
        return ReturnDraft(sale=sale, returned_before=self._returned(sale.sale_id, None))

    def complete_return(
        self,
        draft: ReturnDraft,
        *,
        tender_kind: TenderChoice = "cash",
        reason: str = "",
        reference: str | None = None,
    ) -> Return:
        """Refund the selected lines; writes the return, its outbox op and print job at once."""
        if tender_kind not in ("cash", "card"):
            raise InvalidInput(f"Refunds are paid in cash or to a card, not {tender_kind!r}")
        if not draft.selected:
            raise InvalidInput("Select at least one line to return")
        sale = draft.sale
        with self._writing("The return was not saved") as db:
            # Another return of this sale may have been written since the draft was made.
            draft.returned_before = self._returned(sale.sale_id, db)
            for line_no, quantity in list(draft.selected.items()):
                draft.select(line_no, quantity)
            lines = draft.lines()
            amount = sum(line.amount_minor for line in lines)
            tax = sum(line.tax_minor for line in lines)
            total = amount + (tax if sale.tax_mode == "exclusive" else 0)
            if total <= 0:
                raise InvalidInput("The selected lines cost nothing: there is nothing to refund")
            number = self._next_receipt_number(db)
            try:
                ret = Return(
                    return_id=uuid.uuid4(),
                    original_sale_id=sale.sale_id,
                    receipt_number=number,
                    store_id=sale.store_id,
                    till_id=self.till_id,
                    cashier_id=self.cashier_id,
                    customer_id=sale.customer_id,
                    created_at=self.clock(),
                    currency=sale.currency,
                    lines=tuple(lines),
                    total_minor=total,
                    tax_minor=tax,
                    refund_tenders=(
                        Tender(kind=tender_kind, amount_minor=total, reference=reference),
                    ),
                    reason=reason.strip(),
                )
            except ValidationError as exc:
                raise InvalidInput(
                    f"The return is not valid: {describe_validation_error(exc)}"
                ) from exc
            check_return_totals(ret)
            text = ret.model_dump_json()
            db.execute(
                "INSERT INTO sales(sale_id, receipt_number, kind, created_at, customer_id, "
                "total_minor, payload) VALUES (?, ?, 'return', ?, ?, ?, ?)",
                [
                    str(ret.return_id),
                    number,
                    ret.created_at.isoformat(),
                    None if ret.customer_id is None else str(ret.customer_id),
                    ret.total_minor,
                    text,
                ],
            )
            outbox.enqueue(db, "return", text)
            receipt = receipt_from_return(
                ret,
                self.shop,
                original_receipt_number=sale.receipt_number,
                tax_mode=sale.tax_mode,
            )
            self._print_job(db, ret.return_id, "return", receipt.model_dump_json(by_alias=True))
        log.info("return %s against %s: %s", number, sale.receipt_number, self._money(total))
        self.last_return = ret
        return ret

    # -- internals -----------------------------------------------------------------------------

    def _price(self, basket: Basket) -> BasketTotals:
        return price_basket(basket, tax_mode=self.shop.tax_mode, currency=self.shop.currency)

    def _editable(self) -> None:
        if self.basket.tenders:
            raise InvalidInput(
                "Payment has started: the items cannot change now; complete the sale or cancel it"
            )

    def _quantity(self, quantity: int) -> int:
        count = _checked_quantity(quantity) * (self._pending_quantity or 1)
        return _checked_quantity(count)

    def _check_sellable(self, item: CatalogueItem) -> None:
        if item.currency != self.shop.currency:
            raise InvalidInput(
                f"{item.name} is priced in {item.currency} but this store sells in "
                f"{self.shop.currency}: ask HQ to fix the product's price"
            )

    def _add_item(self, item: CatalogueItem, count: int, *, barcode: str | None) -> BasketLine:
        for line in self.basket.lines:
            if (
                line.sku == item.sku
                and not line.open_price
                and not line.price_embedded
                and line.weight_g is None
                and not line.discounts
                and line.unit_price_minor == item.price_minor
            ):
                new_quantity = _checked_quantity(line.quantity + count)
                line.quantity = new_quantity
                self._touch(item.sku)
                self._pending_quantity = None
                return line
        return self._new_line(item, count, unit_price=item.price_minor, barcode=barcode)

    def _add_weighed(
        self, item: CatalogueItem, count: int, weight_g: int, *, barcode: str | None
    ) -> BasketLine:
        if count != 1:
            raise InvalidInput(f"{item.name} is weighed: scan each package on its own")
        if isinstance(weight_g, bool) or not isinstance(weight_g, int) or weight_g < 1:
            raise InvalidInput(
                f"The weight of {item.name} must be at least 1 g, not {weight_g!r}: weigh it again"
            )
        return self._new_line(
            item, 1, unit_price=item.price_minor, barcode=barcode, weight_g=weight_g
        )

    def _new_line(
        self,
        item: CatalogueItem,
        count: int,
        *,
        unit_price: int,
        barcode: str | None,
        weight_g: int | None = None,
        price_embedded: bool = False,
    ) -> BasketLine:
        line = BasketLine(
            line_no=self.basket.next_line_no,
            sku=item.sku,
            name=item.name,
            quantity=count,
            unit_price_minor=unit_price,
            tax_rate=item.tax_rate,
            weight_g=weight_g,
            barcode=barcode,
            price_embedded=price_embedded,
        )
        self._append(line)
        return line

    def _append(self, line: BasketLine) -> None:
        if len(self.basket.lines) >= 1000:
            raise InvalidInput("A sale has at most 1000 lines: complete this one and start another")
        self.basket.lines.append(line)
        self.basket.next_line_no += 1
        self._touch(line.sku)
        self._pending_quantity = None

    def _touch(self, sku: str) -> None:
        order = self.basket.scan_order
        if order and order[-1] == sku:
            return
        if sku in order:
            order.remove(sku)
        order.append(sku)

    def _check_or_undo(self, undo: Callable[[], object]) -> None:
        try:
            self.totals()
        except InvalidInput:
            undo()
            raise

    def _check_tender_amount(self, amount_minor: int) -> int:
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise InvalidInput(
                f"A payment is a whole number of minor units (cents), not {amount_minor!r}"
            )
        if amount_minor <= 0:
            raise InvalidInput(f"A payment must be more than 0, not {amount_minor}")
        if not self.basket.lines:
            raise InvalidInput("The basket is empty: there is nothing to pay for")
        due = self.totals().due_minor
        if due == 0:
            raise InvalidInput("Nothing is due: complete the sale")
        return due

    def _sale_draft(self, totals: BasketTotals) -> Sale:
        """The sale without its receipt number (which is taken inside the transaction)."""
        change = totals.change_minor
        tenders = list(self.basket.tenders)
        if change:
            # Change comes out of the cash taken last.
            for index in range(len(tenders) - 1, -1, -1):
                tender = tenders[index]
                if tender.kind == "cash":
                    give = min(change, tender.amount_minor)
                    tenders[index] = tender.model_copy(update={"change_minor": give})
                    change -= give
                    if not change:
                        break
            if change:
                raise InvalidInput("Only cash gives change: take less on the card")
        card = self.basket.customer
        customer_id = None
        identifier = self.basket.customer_identifier
        if card is not None:
            if card.provisional:
                identifier = identifier or next(
                    (f"{i.kind}:{i.value}" for i in card.identifiers if i.kind == "till_local"),
                    None,
                )
            else:
                customer_id = card.customer_id
                identifier = None
        lines = tuple(
            SaleLine(
                line_no=number,
                sku=p.line.sku,
                name=p.line.name,
                barcode=p.line.barcode,
                quantity=p.line.quantity,
                weight_g=p.line.weight_g,
                unit_price_minor=p.line.unit_price_minor,
                discounts=p.discounts,
                tax_rate=p.line.tax_rate,
                amount_minor=p.amount_minor,
                tax_minor=p.tax.tax,
                open_price=p.line.open_price,
            )
            for number, p in enumerate(totals.lines, start=1)
        )
        try:
            sale = Sale(
                sale_id=uuid.uuid4(),
                receipt_number="PENDING",
                store_id=self.shop.store_id,
                till_id=self.till_id,
                cashier_id=self.cashier_id,
                customer_id=customer_id,
                customer_identifier=identifier,
                created_at=self.clock(),
                currency=self.shop.currency,
                tax_mode=self.shop.tax_mode,
                lines=lines,
                basket_discounts=totals.basket_discounts,
                subtotal_minor=totals.subtotal_minor,
                tax_minor=totals.tax_minor,
                total_minor=totals.total_minor,
                tenders=tuple(tenders),
            )
        except ValidationError as exc:
            raise InvalidInput(f"The sale is not valid: {describe_validation_error(exc)}") from exc
        check_totals(sale)
        return sale

    def _next_receipt_number(self, db: sqlite_utils.Database) -> str:
        row = db.execute(
            "SELECT value FROM sync_state WHERE key = ?", [RECEIPT_COUNTER_KEY]
        ).fetchone()
        counter = (int(row[0]) if row else 0) + 1
        db.execute(
            "INSERT INTO sync_state(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [RECEIPT_COUNTER_KEY, str(counter)],
        )
        return f"{self._receipt_prefix}-{counter:06d}"

    def _print_job(
        self, db: sqlite_utils.Database, sale_id: uuid.UUID, kind: str, document: str
    ) -> None:
        db.execute(
            "INSERT INTO print_jobs(job_id, sale_id, kind, status, created_at, document) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            [str(uuid.uuid4()), str(sale_id), kind, self.clock().isoformat(), document],
        )

    def _returned(self, sale_id: uuid.UUID, db: sqlite_utils.Database | None) -> dict[int, int]:
        sql = (
            "SELECT payload FROM sales WHERE kind = 'return' "
            "AND json_extract(payload, '$.original_sale_id') = ?"
        )
        params = [str(sale_id)]
        rows = (
            db.execute(sql, params).fetchall() if db is not None else self.store.query(sql, params)
        )
        returned: dict[int, int] = {}
        for row in rows:
            for line in json.loads(row[0])["lines"]:
                number = int(line["original_line_no"])
                returned[number] = returned.get(number, 0) + int(line["quantity"])
        return returned

    @contextmanager
    def _writing(self, what: str) -> Iterator[sqlite_utils.Database]:
        """A store transaction whose storage errors say what was not done."""
        try:
            with self.store.transaction() as db:
                yield db
        except StorageError as exc:
            log.error("%s: %s", what, exc.message)
            raise type(exc)(f"{what}: {exc.message}") from exc
