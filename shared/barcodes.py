"""Barcodes a till reads: product GTINs, weighed and priced labels, loyalty cards, receipts.

Everything here is pure: text in, values or :mod:`shared.errors` out.

Product barcodes (GTIN)
-----------------------
A GTIN is 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 (GTIN-14) digits, the last of which is the
GS1 mod-10 check digit: weight the other digits 3, 1, 3, 1, ... starting from the digit next to
the check digit, sum, and the check digit brings the sum up to a multiple of 10. Because the
weights start from the right, a GTIN keeps its check digit when zeros are added on the left, so
every GTIN is stored by its 14-digit zero-padded form (``Gtin.gtin14``): the UPC-A 036000291452
and the EAN-13 0036000291452 printed on the same can are one catalogue key.

Mod-10 with weights 3 and 1 catches every single wrong digit (3 and 1 are coprime to 10) and
every swap of two neighbouring digits *except* when they differ by 5 (swapping ``a`` and ``b``
changes the sum by ``2(a - b)``, a multiple of 10 exactly when ``|a - b| == 5``). A scan with a
good check digit can still be wrong; that is what the catalogue lookup is for.

Weighed and priced labels (GS1 variable measure)
------------------------------------------------
EAN-13 codes whose first two digits are 02 or 20-29 are *restricted circulation numbers*: they
never identify a product worldwide, and each country (or chain) decides what they carry. Scales
and label printers use them for loose goods: an item reference plus the price or the weight of
this one package. The common layout is::

    PP IIIII VVVVV K        prefix, item reference, value, EAN check digit
    PP IIII C VVVVV K       the same with a price/weight check digit C over the value

and some countries use four-digit values (``PP IIIII C VVVV K``). Whether the value is a price or
a weight, how many decimals it has and whether ``C`` is present are set per prefix by the
country's GS1 organisation, and chains often configure their own: :class:`VariableMeasureRule`
describes one prefix and :data:`DEFAULT_RULES` is only a starting point (02 and 20-24 price in
minor units, 25-29 weight in grams, five-digit item and value, no ``C``). Configure the rules the
store's scales actually print.

The price/weight check digit ``C`` (GS1 General Specifications 7.9.3) guards the value, which
the EAN check digit alone guards weakly on labels printed in store. Each value digit is mapped
through a *weighting factor*, a fixed permutation of 0-9:

- ``2-``: multiply by 2, subtract the tens digit from the units digit, keep the units digit;
- ``3``: multiply by 3, keep the whole product;
- ``5+``: multiply by 5, add the tens digit to the units digit, keep the units digit;
- ``5-``: multiply by 5, subtract the tens digit from the units digit, keep the units digit.

For a four-digit value the factors are ``2-, 2-, 3, 5-``; ``C`` is the units digit of three
times the sum. For a five-digit value the factors are ``5+, 2-, 5-, 5+, 2-``; take what brings
the sum up to a multiple of 10, and ``C`` is the digit whose ``5-`` product equals it. Each factor
is a permutation and the last step is a bijection, so any single wrong value digit changes ``C``.
GS1 examples: 2875 has ``C`` = 9, 14685 has ``C`` = 6.

Loyalty cards
-------------
The chain's loyalty numbers are a fixed prefix, a serial and a Luhn check digit (the check used
by payment cards), ``LoyaltyFormat(prefix="9900", length=13)`` by default. Luhn catches every
single wrong digit and every neighbouring swap except 09 <-> 90. A 13-digit loyalty number has
the shape of an EAN-13 (GS1 prefix 99 is for coupons), and its Luhn digit is usually *not* a
valid mod-10 digit, so scans are classified by the loyalty prefix before they are read as GTINs.

What the till scanned
---------------------
:func:`classify_scan` turns one scanner line into a :data:`ScanKind`, checked in this order:
till command (``CMD-TOTAL``), receipt barcode (``R`` + receipt number, CODE128), loyalty prefix,
variable-measure prefix, plain GTIN. Scanners end lines with CR, LF or TAB and some frame them
with STX/ETX, so control characters and whitespace are stripped at both ends; a control
character *inside* the code means the serial line garbled it and the scan is refused. Letters
are matched case-insensitively because keyboard-wedge scanners invert case when Caps Lock is on.

Errors
------
Text that is not a valid code raises :class:`~shared.errors.BarcodeFormatError` (wrong
characters or length) or :class:`~shared.errors.CheckDigitError` (right shape, wrong check
digit), with a message naming the code and the problem. The builders (:func:`make_gtin`,
:func:`encode_variable_measure`, :func:`make_loyalty_number`) raise ``ValueError`` for numbers
that cannot fit in the code, and the rule and format classes raise ``ValueError`` for layouts
that cannot exist, since those are configuration or programming mistakes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from shared.errors import BarcodeError, BarcodeFormatError, CheckDigitError

__all__ = [
    "COMMAND_PREFIX",
    "DEFAULT_LOYALTY_FORMAT",
    "DEFAULT_RULES",
    "RESTRICTED_CIRCULATION_PREFIXES",
    "CommandScan",
    "Gtin",
    "GtinSymbology",
    "LoyaltyFormat",
    "LoyaltyScan",
    "ProductScan",
    "ReceiptScan",
    "ScanKind",
    "VariableMeasure",
    "VariableMeasureKind",
    "VariableMeasureRule",
    "VariableMeasureScan",
    "classify_scan",
    "decode_variable_measure",
    "encode_variable_measure",
    "gtin_check_digit",
    "is_loyalty_number",
    "is_valid_gtin",
    "loyalty_check_digit",
    "make_gtin",
    "make_loyalty_number",
    "parse_gtin",
    "parse_loyalty_number",
    "price_weight_check_digit",
]

GtinSymbology = Literal["EAN-8", "UPC-A", "EAN-13", "GTIN-14"]
VariableMeasureKind = Literal["price", "weight"]

_SYMBOLOGY_BY_LENGTH: Final[dict[int, GtinSymbology]] = {
    8: "EAN-8",
    12: "UPC-A",
    13: "EAN-13",
    14: "GTIN-14",
}

#: How the GTIN-13 of a GS1 restricted-circulation prefix begins: 020-029 and 200-299 are left
#: to each country's GS1 office (variable-measure labels), 040-049 to companies' internal use.
#: 400-440 is Germany's ordinary prefix, not restricted: a rule there would misread real EANs.
RESTRICTED_CIRCULATION_PREFIXES: Final[frozenset[str]] = frozenset(
    ["02", "04", *(str(n) for n in range(20, 30))]
)

#: Barcodes the till prints for its own buttons ("CMD-TOTAL", "CMD-VOID"...).
COMMAND_PREFIX: Final = "CMD-"

# [0-9] and not \d or str.isdigit(): those accept Arabic-Indic and superscript digits.
_DIGITS: Final = re.compile(r"[0-9]+")
_TYPED_DIGITS: Final = re.compile(r"[0-9][0-9 -]*[0-9]")
_RECEIPT_NUMBER: Final = re.compile(r"[A-Z0-9-]{4,40}")
_COMMAND: Final = re.compile(r"[A-Z0-9_-]{1,40}")
# What a serial line decoded with errors="replace" leaves where a byte was garbled.
_REPLACEMENT_CHARACTER: Final = "\ufffd"


def _is_digits(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


def _describe_non_digits(text: str) -> str:
    """'letters and spaces ('A', ' ')' for the characters of ``text`` that are not digits."""
    foreign = [c for c in dict.fromkeys(text) if c not in "0123456789"]
    kinds = []
    if any(c.isalpha() for c in foreign):
        kinds.append("letters")
    if any(c.isspace() for c in foreign):
        kinds.append("spaces")
    if any(not c.isalpha() and not c.isspace() for c in foreign):
        kinds.append("other characters")
    shown = ", ".join(repr(c) for c in foreign[:5])
    more = ", ..." if len(foreign) > 5 else ""
    return f"{' and '.join(kinds)} ({shown}{more})"


def _require_digits(text: str, *, what: str) -> None:
    if not text:
        raise BarcodeFormatError(f"The {what} is empty", code=text)
    if not _is_digits(text):
        raise BarcodeFormatError(
            f"The {what} {text!r} contains {_describe_non_digits(text)}; it must be digits only",
            code=text,
        )


# --------------------------------------------------------------------------------------------
# GTIN
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gtin:
    """A product barcode with a valid check digit.

    ``digits`` is the code as printed; ``gtin14`` is the same number zero-padded to 14 digits,
    the form catalogues store and look up.
    """

    symbology: GtinSymbology
    digits: str
    gtin14: str

    def __str__(self) -> str:
        return self.digits


def _mod10(body: str) -> int:
    """The GS1 mod-10 check digit for ``body``, which must be ASCII digits (not checked here)."""
    # The digit next to the check digit has weight 3, whatever the length. Summing the ASCII
    # codes and taking off 48 ("0") per digit is exact and several times faster than int() per
    # digit, which counts on a scan.
    codes = body.encode("ascii")
    weighted = 3 * sum(codes[-1::-2]) + sum(codes[-2::-2])
    total = weighted - 48 * (3 * ((len(codes) + 1) // 2) + len(codes) // 2)
    return -total % 10


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body``, the code without its check digit."""
    _require_digits(body, what="number to compute a check digit for")
    return _mod10(body)


def make_gtin(body: str) -> str:
    """``body`` (7, 11, 12 or 13 digits) followed by its check digit."""
    _require_digits(body, what="GTIN body")
    if len(body) + 1 not in _SYMBOLOGY_BY_LENGTH:
        raise BarcodeFormatError(
            f"A GTIN body has 7, 11, 12 or 13 digits before the check digit; {body} has "
            f"{len(body)}",
            code=body,
        )
    return f"{body}{gtin_check_digit(body)}"


def parse_gtin(code: str) -> Gtin:
    """The GTIN in ``code`` (surrounding whitespace ignored).

    Raises BarcodeFormatError for anything but 8, 12, 13 or 14 digits, and CheckDigitError when
    the last digit does not match the others.
    """
    text = code.strip()
    if not text:
        raise BarcodeFormatError("The barcode is empty: nothing was scanned or typed", code=text)
    if not _is_digits(text):
        raise BarcodeFormatError(
            f"Barcode {text!r} contains {_describe_non_digits(text)}; a product barcode has "
            "digits only",
            code=text,
        )
    return _gtin_of_digits(text)


def _gtin_of_digits(text: str) -> Gtin:
    """:func:`parse_gtin` of ``text`` once it is known to be ASCII digits, nothing around them."""
    symbology = _SYMBOLOGY_BY_LENGTH.get(len(text))
    if symbology is None:
        raise BarcodeFormatError(
            f"Barcode {text} has {len(text)} digits; a product barcode has 8, 12, 13 or 14",
            code=text,
        )
    expected = _mod10(text[:-1])
    found = int(text[-1])
    if found != expected:
        raise CheckDigitError(
            f"Check digit of {text} is {found} but should be {expected}: the code was misread "
            "or mistyped",
            code=text,
            expected=expected,
            found=found,
        )
    return Gtin(symbology=symbology, digits=text, gtin14=text.zfill(14))


def is_valid_gtin(code: str) -> bool:
    """Whether ``code`` is a GTIN of a valid length with the right check digit."""
    try:
        parse_gtin(code)
    except BarcodeError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# GS1 variable measure
# --------------------------------------------------------------------------------------------

_TWO_MINUS: Final = (0, 2, 4, 6, 8, 9, 1, 3, 5, 7)
_THREE: Final = (0, 3, 6, 9, 12, 15, 18, 21, 24, 27)
_FIVE_PLUS: Final = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
_FIVE_MINUS: Final = (0, 5, 9, 4, 8, 3, 7, 2, 6, 1)
_FIVE_MINUS_INVERSE: Final = tuple(_FIVE_MINUS.index(n) for n in range(10))


def price_weight_check_digit(value: str) -> int:
    """The GS1 price/weight check digit of a four- or five-digit value (GenSpecs 7.9.3).

    The algorithm is described in the module docstring.
    """
    _require_digits(value, what="price or weight")
    digits = [int(d) for d in value]
    if len(digits) == 4:
        total = (
            _TWO_MINUS[digits[0]]
            + _TWO_MINUS[digits[1]]
            + _THREE[digits[2]]
            + _FIVE_MINUS[digits[3]]
        )
        return (total * 3) % 10
    if len(digits) == 5:
        total = (
            _FIVE_PLUS[digits[0]]
            + _TWO_MINUS[digits[1]]
            + _FIVE_MINUS[digits[2]]
            + _FIVE_PLUS[digits[3]]
            + _TWO_MINUS[digits[4]]
        )
        return _FIVE_MINUS_INVERSE[(10 - total % 10) % 10]
    raise BarcodeFormatError(
        f"A price/weight check digit is defined for 4 or 5 digits; {value} has {len(value)}",
        code=value,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableMeasureRule:
    """How EAN-13 codes starting with ``prefix`` carry an item and a price or weight.

    The layout is ``prefix (2) + item reference (item_digits) + [price/weight check digit (1)] +
    value (value_digits) + EAN check digit (1)`` and must add up to 13. ``price_check_digit``
    turns on the GS1 price/weight check digit, which despite its name guards weights too; it is
    defined for four- and five-digit values only.

    ``value_decimals`` is how many decimals the printed value has, of the currency's major unit
    for a price and of a kilogram for a weight. ``None`` means the value is already in our units:
    minor units (``currency_decimals`` decimals) for a price, grams (3 decimals) for a weight.
    Swedish prefix 22 prints whole kronor: ``value_decimals=0`` makes 00125 mean 12500 öre.
    """

    prefix: str
    kind: VariableMeasureKind
    item_digits: int = 5
    value_digits: int = 5
    price_check_digit: bool = False
    value_decimals: int | None = None
    currency_decimals: int = 2

    def __post_init__(self) -> None:
        if self.prefix not in RESTRICTED_CIRCULATION_PREFIXES:
            raise ValueError(
                f"Variable-measure prefix {self.prefix!r} is not a GS1 restricted circulation "
                "prefix (02, 04 or 20-29)"
            )
        if self.kind not in ("price", "weight"):
            raise ValueError(
                f"Variable-measure kind must be 'price' or 'weight', not {self.kind!r}"
            )
        if self.item_digits < 1 or self.value_digits < 1:
            raise ValueError("A variable-measure code needs at least one item and one value digit")
        check = 1 if self.price_check_digit else 0
        if 2 + self.item_digits + check + self.value_digits + 1 != 13:
            raise ValueError(
                f"Prefix {self.prefix} rule: 2 prefix + {self.item_digits} item + {check} "
                f"price check + {self.value_digits} value + 1 check digits is not the 13 of an "
                "EAN-13"
            )
        if self.price_check_digit and self.value_digits not in (4, 5):
            raise ValueError(
                f"Prefix {self.prefix} rule: the GS1 price/weight check digit needs a 4- or "
                f"5-digit value, not {self.value_digits}"
            )
        if not 0 <= self.currency_decimals <= 4:
            raise ValueError(f"currency_decimals must be 0 to 4, not {self.currency_decimals}")
        finest = self.currency_decimals if self.kind == "price" else 3
        if self.value_decimals is not None and not 0 <= self.value_decimals <= finest:
            unit = "minor units" if self.kind == "price" else "grams"
            raise ValueError(
                f"Prefix {self.prefix} rule: {self.value_decimals} decimals is finer than "
                f"{unit}; use 0 to {finest}"
            )

    @property
    def unit_multiplier(self) -> int:
        """Minor units (price) or grams (weight) in one step of the printed value."""
        finest = self.currency_decimals if self.kind == "price" else 3
        decimals = finest if self.value_decimals is None else self.value_decimals
        return int(10 ** (finest - decimals))


#: A starting point only: every country (and many chains) lays these prefixes out differently.
DEFAULT_RULES: Final[tuple[VariableMeasureRule, ...]] = (
    VariableMeasureRule(prefix="02", kind="price"),
    *(VariableMeasureRule(prefix=str(p), kind="price") for p in range(20, 25)),
    *(VariableMeasureRule(prefix=str(p), kind="weight") for p in range(25, 30)),
)


@dataclass(frozen=True, slots=True)
class VariableMeasure:
    """A weighed or priced label: which item, and its price or weight.

    Exactly one of ``price_minor`` (for ``kind == "price"``) and ``weight_g`` is set. ``code`` is
    the label's 13-digit EAN.
    """

    prefix: str
    item_reference: str
    kind: VariableMeasureKind
    price_minor: int | None
    weight_g: int | None
    code: str


def _rule_for(prefix: str, rules: Sequence[VariableMeasureRule]) -> VariableMeasureRule | None:
    # The first rule wins, so a chain can put its own rules in front of a country's.
    if type(rules) is tuple:
        return _rule_index(rules).get(prefix)
    return next((rule for rule in rules if rule.prefix == prefix), None)


# Rule tuples by id, with each prefix's first rule: a till passes the same tuple with every scan.
# An entry holds its tuple, so the id cannot be reused while it is here; tuples of frozen rules
# cannot change, lists can (they are searched every time).
_RULE_INDEXES: dict[
    int, tuple[tuple[VariableMeasureRule, ...], dict[str, VariableMeasureRule]]
] = {}


def _rule_index(rules: tuple[VariableMeasureRule, ...]) -> dict[str, VariableMeasureRule]:
    entry = _RULE_INDEXES.get(id(rules))
    if entry is not None and entry[0] is rules:
        return entry[1]
    index: dict[str, VariableMeasureRule] = {}
    for rule in rules:
        index.setdefault(rule.prefix, rule)
    if len(_RULE_INDEXES) >= 16:
        _RULE_INDEXES.clear()
    _RULE_INDEXES[id(rules)] = (rules, index)
    return index


def _measure_of(gtin: Gtin, rules: Sequence[VariableMeasureRule]) -> VariableMeasure | None:
    # A non-zero GTIN-14 indicator digit marks a trade unit (a case), never a weighed item.
    if gtin.gtin14[0] != "0":
        return None
    ean13 = gtin.gtin14[1:]
    # Every rule's prefix is a restricted circulation prefix (VariableMeasureRule checks it), so
    # the other codes, nearly every product scanned, need not look through the rules.
    if ean13[:2] not in RESTRICTED_CIRCULATION_PREFIXES:
        return None
    rule = _rule_for(ean13[:2], rules)
    if rule is None:
        return None
    start = 2 + rule.item_digits
    item_reference = ean13[2:start]
    if rule.price_check_digit:
        found = int(ean13[start])
        start += 1
    value_text = ean13[start : start + rule.value_digits]
    if rule.price_check_digit:
        expected = price_weight_check_digit(value_text)
        if found != expected:
            raise CheckDigitError(
                f"Price/weight check digit of {ean13} is {found} but should be {expected} for "
                f"the {rule.kind} {value_text}: the label was misread or misprinted",
                code=ean13,
                expected=expected,
                found=found,
            )
    value = int(value_text) * rule.unit_multiplier
    return VariableMeasure(
        prefix=rule.prefix,
        item_reference=item_reference,
        kind=rule.kind,
        price_minor=value if rule.kind == "price" else None,
        weight_g=value if rule.kind == "weight" else None,
        code=ean13,
    )


def decode_variable_measure(
    code: str, rules: Sequence[VariableMeasureRule] = DEFAULT_RULES
) -> VariableMeasure | None:
    """The item and price or weight on a scale label, or None for an ordinary GTIN.

    A UPC-A starting with 2 is the EAN-13 starting with 02 and decodes the same way. Raises what
    :func:`parse_gtin` raises for a code that is not a GTIN at all, and CheckDigitError for a
    wrong price/weight check digit.
    """
    return _measure_of(parse_gtin(code), rules)


def encode_variable_measure(rule: VariableMeasureRule, item_reference: str, value: int) -> str:
    """The 13-digit label for ``item_reference`` with ``value`` in minor units or grams."""
    _require_digits(item_reference, what="item reference")
    if len(item_reference) != rule.item_digits:
        raise BarcodeFormatError(
            f"Item reference {item_reference} has {len(item_reference)} digits; labels with "
            f"prefix {rule.prefix} have {rule.item_digits}",
            code=item_reference,
        )
    unit = "minor units" if rule.kind == "price" else "g"
    steps, remainder = divmod(value, rule.unit_multiplier)
    if value < 0 or remainder:
        raise ValueError(
            f"A {rule.kind} of {value} {unit} cannot be printed on prefix {rule.prefix} labels: "
            f"it must be a non-negative multiple of {rule.unit_multiplier}"
        )
    if steps >= 10**rule.value_digits:
        raise ValueError(
            f"A {rule.kind} of {value} {unit} does not fit the {rule.value_digits} value digits "
            f"of prefix {rule.prefix} labels"
        )
    value_text = str(steps).zfill(rule.value_digits)
    check = str(price_weight_check_digit(value_text)) if rule.price_check_digit else ""
    return make_gtin(f"{rule.prefix}{item_reference}{check}{value_text}")


# --------------------------------------------------------------------------------------------
# Loyalty cards
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyFormat:
    """The chain's loyalty numbers: ``prefix``, a serial, a Luhn check digit; ``length`` in all."""

    prefix: str = "9900"
    length: int = 13

    def __post_init__(self) -> None:
        if not _is_digits(self.prefix):
            raise ValueError(f"A loyalty prefix is one or more digits, not {self.prefix!r}")
        if self.serial_digits < 1 or self.length > 19:
            raise ValueError(
                f"A loyalty number of {self.length} digits cannot hold prefix {self.prefix}, a "
                "serial and a check digit (and at most 19 digits fit a card)"
            )

    @property
    def serial_digits(self) -> int:
        """Digits between the prefix and the check digit."""
        return self.length - len(self.prefix) - 1


DEFAULT_LOYALTY_FORMAT: Final = LoyaltyFormat()


def loyalty_check_digit(body: str) -> int:
    """The Luhn check digit for ``body``, the number without its check digit."""
    _require_digits(body, what="number to compute a check digit for")
    total = 0
    # The digit next to the check digit is doubled.
    for i, d in enumerate(reversed(body)):
        n = int(d)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return (10 - total % 10) % 10


def make_loyalty_number(fmt: LoyaltyFormat, serial: int) -> str:
    """The loyalty number with serial ``serial`` (0 <= serial < 10 ** fmt.serial_digits)."""
    if not 0 <= serial < 10**fmt.serial_digits:
        raise ValueError(
            f"Loyalty serial {serial} does not fit the {fmt.serial_digits} serial digits of "
            f"{fmt.length}-digit numbers with prefix {fmt.prefix}"
        )
    body = f"{fmt.prefix}{serial:0{fmt.serial_digits}d}"
    return f"{body}{loyalty_check_digit(body)}"


def parse_loyalty_number(code: str, fmt: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT) -> str:
    """The normalized loyalty number in ``code``; spaces and dashes people type are dropped."""
    text = code.strip()
    compact = "".join(text.split()).replace("-", "")
    if not compact:
        raise BarcodeFormatError("The loyalty card number is empty", code=text)
    if not _is_digits(compact):
        raise BarcodeFormatError(
            f"Loyalty card number {text!r} contains {_describe_non_digits(compact)}; it has "
            "digits only",
            code=text,
        )
    if not compact.startswith(fmt.prefix):
        raise BarcodeFormatError(
            f"{compact} is not one of our loyalty card numbers: they start with {fmt.prefix}",
            code=text,
        )
    if len(compact) != fmt.length:
        raise BarcodeFormatError(
            f"Loyalty card number {compact} has {len(compact)} digits; ours have {fmt.length}",
            code=text,
        )
    expected = loyalty_check_digit(compact[:-1])
    found = int(compact[-1])
    if found != expected:
        raise CheckDigitError(
            f"Check digit of loyalty card number {compact} is {found} but should be "
            f"{expected}: the number was misread or mistyped",
            code=text,
            expected=expected,
            found=found,
        )
    return compact


def is_loyalty_number(code: str, fmt: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT) -> bool:
    """Whether ``code`` is a valid loyalty number of format ``fmt``."""
    try:
        parse_loyalty_number(code, fmt)
    except BarcodeError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Scan classification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductScan:
    """A product barcode: look ``gtin.gtin14`` up in the catalogue."""

    gtin: Gtin


@dataclass(frozen=True, slots=True)
class VariableMeasureScan:
    """A weighed or priced label."""

    measure: VariableMeasure


@dataclass(frozen=True, slots=True)
class LoyaltyScan:
    """A loyalty card; ``number`` is normalized."""

    number: str


@dataclass(frozen=True, slots=True)
class ReceiptScan:
    """A receipt's barcode, for returns and reprints; ``receipt_number`` without the prefix."""

    receipt_number: str


@dataclass(frozen=True, slots=True)
class CommandScan:
    """A till command barcode; ``command`` is upper case without ``CMD-``. The till decides
    which commands exist."""

    command: str


ScanKind: TypeAlias = ProductScan | VariableMeasureScan | LoyaltyScan | ReceiptScan | CommandScan


def _is_scanner_noise(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("C")


def _strip_scanner_noise(code: str) -> str:
    start, end = 0, len(code)
    while start < end and _is_scanner_noise(code[start]):
        start += 1
    while end > start and _is_scanner_noise(code[end - 1]):
        end -= 1
    return code[start:end]


def classify_scan(
    code: str,
    *,
    loyalty: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT,
    rules: Sequence[VariableMeasureRule] = DEFAULT_RULES,
    receipt_prefix: str = "R",
) -> ScanKind:
    """What one scanner line is: command, receipt, loyalty card, scale label or product.

    The order and the rules are in the module docstring. Digits typed with spaces or dashes
    (as printed under a barcode) are read as the digits.
    """
    if not receipt_prefix or _is_digits(receipt_prefix):
        # A numeric prefix would swallow the GTINs that start with it.
        raise ValueError(f"The receipt prefix must contain a letter, not {receipt_prefix!r}")
    if code.isdigit() and code.isascii():
        # The common scan, a bare product barcode. For ASCII digits the general path below does
        # nothing until the loyalty prefix: there is no noise to strip nor unreadable character,
        # and neither "CMD-" nor a receipt prefix (which has a non-digit, and no character
        # upper-cases to a digit) can start them. Property-tested equal to _classify_text.
        return _classify_digits(code, loyalty, rules)
    return _classify_text(code, loyalty, rules, receipt_prefix)


def _classify_text(
    code: str, loyalty: LoyaltyFormat, rules: Sequence[VariableMeasureRule], receipt_prefix: str
) -> ScanKind:
    """:func:`classify_scan` for any line, by the general rules (``receipt_prefix`` checked)."""
    text = _strip_scanner_noise(code)
    if not text:
        raise BarcodeFormatError("Nothing was scanned: the code is empty", code=text)
    unreadable = [
        c for c in dict.fromkeys(text) if not c.isprintable() or c == _REPLACEMENT_CHARACTER
    ]
    if unreadable:
        shown = ", ".join(repr(c) for c in unreadable)
        raise BarcodeFormatError(
            f"The scanner sent unreadable characters ({shown}) in {text!r}: scan again; if it "
            "keeps happening, check the scanner's connection settings",
            code=text,
        )

    upper = text.upper()
    if upper.startswith(COMMAND_PREFIX):
        command = upper[len(COMMAND_PREFIX) :]
        if _COMMAND.fullmatch(command) is None:
            raise BarcodeFormatError(
                f"{text!r} starts like a till command code but {command!r} is not a command "
                "name (1 to 40 letters, digits, dashes or underscores)",
                code=text,
            )
        return CommandScan(command)
    if upper.startswith(receipt_prefix.upper()):
        number = upper[len(receipt_prefix) :]
        if _RECEIPT_NUMBER.fullmatch(number) is None:
            raise BarcodeFormatError(
                f"{text!r} starts like a receipt barcode but {number!r} is not a receipt "
                "number (4 to 40 letters, digits or dashes)",
                code=text,
            )
        return ReceiptScan(number)

    if _TYPED_DIGITS.fullmatch(text) is not None:
        text = text.replace(" ", "").replace("-", "")
    if not _is_digits(text):
        raise BarcodeFormatError(
            f"{text!r} is not a product, loyalty card, receipt or command code", code=text
        )
    return _classify_digits(text, loyalty, rules)


def _classify_digits(
    text: str, loyalty: LoyaltyFormat, rules: Sequence[VariableMeasureRule]
) -> ScanKind:
    """What a scan of ASCII digits (and nothing else) is: loyalty card, scale label or product."""
    # Loyalty first: its Luhn digit would fail as a GTIN. A GTIN of another length that merely
    # starts with the loyalty prefix stays a product.
    if text.startswith(loyalty.prefix) and (len(text) == loyalty.length or not is_valid_gtin(text)):
        return LoyaltyScan(parse_loyalty_number(text, loyalty))
    gtin = _gtin_of_digits(text)
    measure = _measure_of(gtin, rules)
    if measure is not None:
        return VariableMeasureScan(measure)
    return ProductScan(gtin)
