"""The scan classifier's fast path for bare digits gives exactly what the general rules give,
for every kind of input: valid and invalid EAN-8/13, UPC-A, GTIN-14, scale labels, loyalty
cards, commands, receipts and junk (same result, or the same error with the same message)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import barcodes
from shared.barcodes import (
    DEFAULT_LOYALTY_FORMAT,
    DEFAULT_RULES,
    LoyaltyFormat,
    ProductScan,
    VariableMeasureRule,
    VariableMeasureScan,
    classify_scan,
    encode_variable_measure,
    gtin_check_digit,
    make_gtin,
    make_loyalty_number,
    parse_gtin,
)
from shared.errors import BarcodeError, CheckDigitError

DIGITS = "0123456789"


def outcome(call: Callable[[], object]) -> tuple[object, ...]:
    """What ``call`` did: its result, or its error's type, message and attributes."""
    try:
        return ("ok", call())
    except BarcodeError as exc:
        extra = (exc.expected, exc.found) if isinstance(exc, CheckDigitError) else ()
        return ("error", type(exc), exc.message, exc.code, *extra)


def both_paths(
    code: str,
    loyalty: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT,
    rules: Sequence[VariableMeasureRule] = DEFAULT_RULES,
    receipt_prefix: str = "R",
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    fast = outcome(
        lambda: classify_scan(code, loyalty=loyalty, rules=rules, receipt_prefix=receipt_prefix)
    )
    general = outcome(lambda: barcodes._classify_text(code, loyalty, rules, receipt_prefix))
    return fast, general


def reference_check_digit(body: str) -> int:
    """The GS1 mod-10 digit as the GS1 General Specifications write it."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def with_check_digit(body: str, *, wrong: bool) -> str:
    digit = reference_check_digit(body)
    return f"{body}{(digit + 1) % 10 if wrong else digit}"


digit_text = st.text(DIGITS, min_size=1, max_size=20)
gtin_bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(DIGITS, min_size=n, max_size=n)
)
gtins = st.builds(with_check_digit, gtin_bodies, wrong=st.booleans())
loyalty_formats = st.builds(
    lambda prefix, extra: LoyaltyFormat(prefix=prefix, length=len(prefix) + 1 + extra),
    st.text(DIGITS, min_size=1, max_size=6),
    st.integers(1, 12),
)
rule_sets = st.lists(
    st.builds(
        VariableMeasureRule,
        prefix=st.sampled_from(sorted(barcodes.RESTRICTED_CIRCULATION_PREFIXES)),
        kind=st.sampled_from(["price", "weight"]),
        item_digits=st.just(4),
        value_digits=st.just(5),
        price_check_digit=st.just(True),
    )
    | st.sampled_from(DEFAULT_RULES),
    max_size=6,
)


@st.composite
def scale_labels(draw: st.DrawFn) -> str:
    """A label for one of the default rules, sometimes with a wrong EAN check digit."""
    rule = draw(st.sampled_from(DEFAULT_RULES))
    item = draw(st.text(DIGITS, min_size=rule.item_digits, max_size=rule.item_digits))
    value = draw(st.integers(0, 10**rule.value_digits - 1)) * rule.unit_multiplier
    code = encode_variable_measure(rule, item, value)
    if draw(st.booleans()):
        code = with_check_digit(code[:-1], wrong=True)
    return code


@st.composite
def loyalty_numbers(draw: st.DrawFn) -> str:
    fmt = DEFAULT_LOYALTY_FORMAT
    number = make_loyalty_number(fmt, draw(st.integers(0, 10**fmt.serial_digits - 1)))
    if draw(st.booleans()):  # a misread check digit
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return number


any_code = st.one_of(
    gtins,
    digit_text,
    scale_labels(),
    loyalty_numbers(),
    st.builds(lambda body: "9900" + body, st.text(DIGITS, max_size=12)),
    st.sampled_from(["CMD-TOTAL", "cmd-pay-cash", "R2026-000123", "r12", "CMD-", "R"]),
    st.text(max_size=20),  # junk: anything at all
    st.text("0123456789 -\r\n\t\x02\x03\ufffd٣²", max_size=16),  # digits near digits
)


@settings(max_examples=400)
@given(any_code)
def test_the_fast_path_gives_what_the_general_rules_give(code: str) -> None:
    fast, general = both_paths(code)
    assert fast == general


@settings(max_examples=300)
@given(st.one_of(gtins, digit_text, loyalty_numbers()), loyalty_formats, rule_sets)
def test_the_fast_path_follows_the_loyalty_format_and_rules_given(
    code: str, loyalty: LoyaltyFormat, rules: list[VariableMeasureRule]
) -> None:
    for rule_set in (rules, tuple(rules)):
        fast, general = both_paths(code, loyalty, rule_set)
        assert fast == general


@given(any_code, st.text(min_size=1, max_size=4).filter(lambda p: not p.isdigit()))
def test_no_receipt_prefix_catches_bare_digits_first(code: str, prefix: str) -> None:
    fast, general = both_paths(code, receipt_prefix=prefix)
    assert fast == general


@given(st.text(DIGITS, min_size=1, max_size=20))
def test_the_check_digit_is_the_gs1_one(body: str) -> None:
    assert gtin_check_digit(body) == reference_check_digit(body)
    if len(body) + 1 in (8, 12, 13, 14):
        assert make_gtin(body) == with_check_digit(body, wrong=False)
        assert parse_gtin(make_gtin(body)).gtin14 == make_gtin(body).zfill(14)


@given(rule_sets, st.sampled_from(sorted(barcodes.RESTRICTED_CIRCULATION_PREFIXES | {"40"})))
def test_the_first_rule_for_a_prefix_wins_in_tuples_and_lists(
    rules: list[VariableMeasureRule], prefix: str
) -> None:
    first = next((rule for rule in rules if rule.prefix == prefix), None)
    assert barcodes._rule_for(prefix, tuple(rules)) is first
    assert barcodes._rule_for(prefix, rules) is first


def test_plain_and_scale_label_scans_on_the_fast_path() -> None:
    ean = make_gtin("400638133393")
    assert classify_scan(ean) == ProductScan(parse_gtin(ean))
    label = encode_variable_measure(DEFAULT_RULES[1], "12345", 1234)
    scan = classify_scan(label)
    assert isinstance(scan, VariableMeasureScan)
    assert scan.measure.price_minor == 1234
    # A chain's own rule in front of the country's wins, also when the tuple is reused.
    chain = (VariableMeasureRule(prefix="20", kind="weight"), *DEFAULT_RULES)
    for _ in range(2):
        weighed = classify_scan(label, rules=chain)
        assert isinstance(weighed, VariableMeasureScan)
        assert weighed.measure.weight_g == 1234


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("12345", "Barcode 12345 has 5 digits; a product barcode has 8, 12, 13 or 14"),
        (
            "4006381333932",
            "Check digit of 4006381333932 is 2 but should be 1: the code was misread or mistyped",
        ),
        (
            "9900000042420",
            "Check digit of loyalty card number 9900000042420 is 0 but should be 6: the number "
            "was misread or mistyped",
        ),
    ],
)
def test_fast_path_errors_keep_their_messages(code: str, message: str) -> None:
    with pytest.raises(BarcodeError) as caught:
        classify_scan(code)
    assert caught.value.message == message
    assert caught.value.code == code
