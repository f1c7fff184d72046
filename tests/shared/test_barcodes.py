from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.barcodes import (
    DEFAULT_LOYALTY_FORMAT,
    DEFAULT_RULES,
    CommandScan,
    Gtin,
    GtinSymbology,
    LoyaltyFormat,
    LoyaltyScan,
    ProductScan,
    ReceiptScan,
    VariableMeasure,
    VariableMeasureRule,
    VariableMeasureScan,
    classify_scan,
    decode_variable_measure,
    encode_variable_measure,
    gtin_check_digit,
    is_loyalty_number,
    is_valid_gtin,
    loyalty_check_digit,
    make_gtin,
    make_loyalty_number,
    parse_gtin,
    parse_loyalty_number,
    price_weight_check_digit,
)
from shared.errors import BarcodeFormatError, CheckDigitError, InvalidInput

DIGITS = "0123456789"

# --------------------------------------------------------------------------------------------
# GTIN
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "symbology"),
    [
        ("4006381333931", "EAN-13"),  # Stabilo Boss, the usual EAN-13 example
        ("5901234123457", "EAN-13"),  # GS1's sample EAN-13
        ("036000291452", "UPC-A"),  # Wrigley's gum, the usual UPC-A example
        ("96385074", "EAN-8"),
        ("10012345678902", "GTIN-14"),  # GS1 sample case code
    ],
)
def test_published_codes_are_valid(code: str, symbology: GtinSymbology) -> None:
    gtin = parse_gtin(code)
    assert gtin == Gtin(symbology=symbology, digits=code, gtin14=code.zfill(14))
    assert is_valid_gtin(code)
    assert gtin_check_digit(code[:-1]) == int(code[-1])
    assert make_gtin(code[:-1]) == code


def test_upc_a_and_its_ean_13_form_share_the_catalogue_key() -> None:
    upc = parse_gtin("036000291452")
    ean = parse_gtin("0036000291452")
    assert (upc.symbology, ean.symbology) == ("UPC-A", "EAN-13")
    assert upc.gtin14 == ean.gtin14 == "00036000291452"
    assert upc != ean


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_gtin("  4006381333931\r\n").digits == "4006381333931"


def test_wrong_check_digit_names_the_code_and_both_digits() -> None:
    with pytest.raises(CheckDigitError) as info:
        parse_gtin("4006381333932")
    assert str(info.value) == (
        "Check digit of 4006381333932 is 2 but should be 1: the code was misread or mistyped"
    )
    assert (info.value.expected, info.value.found, info.value.code) == (1, 2, "4006381333932")
    assert isinstance(info.value, InvalidInput)
    assert not is_valid_gtin("4006381333932")


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("40063813339A1", "contains letters ('A')"),
        ("4006381 333931", "contains spaces (' ')"),
        ("4006-381333931", "contains other characters ('-')"),
        ("400638133393١", "other characters"),  # an Arabic-Indic one is not an ASCII digit
        ("12345678901", "has 11 digits; a product barcode has 8, 12, 13 or 14"),
        ("123456789012345", "has 15 digits"),
        ("   ", "empty"),
    ],
)
def test_malformed_codes_say_what_is_wrong(code: str, fragment: str) -> None:
    with pytest.raises(BarcodeFormatError, match=re.escape(fragment)):
        parse_gtin(code)
    assert not is_valid_gtin(code)


def test_the_message_names_the_code() -> None:
    with pytest.raises(BarcodeFormatError, match="12345678901"):
        parse_gtin("12345678901")


def test_check_digit_of_non_digits_is_refused() -> None:
    with pytest.raises(BarcodeFormatError, match="'12a4'"):
        gtin_check_digit("12a4")
    with pytest.raises(BarcodeFormatError, match="empty"):
        gtin_check_digit("")


def test_make_gtin_refuses_a_body_of_the_wrong_length() -> None:
    with pytest.raises(BarcodeFormatError, match=r"7, 11, 12 or 13 digits.*has 10"):
        make_gtin("1234567890")


gtin_bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(alphabet=DIGITS, min_size=n, max_size=n)
)


@given(body=gtin_bodies)
def test_every_made_gtin_is_valid_and_padding_keeps_it_valid(body: str) -> None:
    code = make_gtin(body)
    gtin = parse_gtin(code)
    assert gtin.digits == code
    assert len(gtin.gtin14) == 14
    assert is_valid_gtin(gtin.gtin14)


@given(body=gtin_bodies, position=st.integers(min_value=0), replacement=st.sampled_from(DIGITS))
def test_mod_10_catches_every_single_digit_error(
    body: str, position: int, replacement: str
) -> None:
    code = make_gtin(body)
    i = position % len(code)
    assume(code[i] != replacement)
    wrong = code[:i] + replacement + code[i + 1 :]
    assert not is_valid_gtin(wrong)


def _swapped(code: str, i: int) -> str:
    return code[:i] + code[i + 1] + code[i] + code[i + 2 :]


@given(body=gtin_bodies, position=st.integers(min_value=0))
def test_mod_10_catches_adjacent_swaps_except_digits_differing_by_5(
    body: str, position: int
) -> None:
    code = make_gtin(body)
    i = position % (len(code) - 1)
    a, b = int(code[i]), int(code[i + 1])
    assume(a != b)
    assert is_valid_gtin(_swapped(code, i)) == (abs(a - b) == 5)


def _ean13_with(pair: str, at: int) -> str:
    """A valid EAN-13 with ``pair`` at positions ``at`` and ``at + 1``."""
    base = "400638133393"
    if at < 11:
        return make_gtin(base[:at] + pair + base[at + 2 :])
    # The pair ends on the check digit: the digit before it (weight 3) reaches every check digit.
    return next(code for d in DIGITS if (code := make_gtin(base[:10] + d + pair[0]))[-2:] == pair)


@pytest.mark.parametrize("at", range(12))
def test_mod_10_swap_characterisation_holds_for_every_digit_pair(at: int) -> None:
    # Exhaustive over all 90 pairs at every position of an EAN-13, check digit included.
    for a in range(10):
        for b in range(10):
            if a != b:
                code = _ean13_with(f"{a}{b}", at)
                assert is_valid_gtin(code)
                assert is_valid_gtin(_swapped(code, at)) == (abs(a - b) == 5), (code, at)


# --------------------------------------------------------------------------------------------
# Variable measure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "check"), [("2875", 9), ("14685", 6)])
def test_price_check_digit_matches_the_gs1_examples(value: str, check: int) -> None:
    assert price_weight_check_digit(value) == check


def test_price_check_digit_is_only_defined_for_four_or_five_digits() -> None:
    with pytest.raises(BarcodeFormatError, match="4 or 5 digits; 123 has 3"):
        price_weight_check_digit("123")


@given(
    value=st.sampled_from([4, 5]).flatmap(
        lambda n: st.text(alphabet=DIGITS, min_size=n, max_size=n)
    ),
    position=st.integers(min_value=0),
    replacement=st.sampled_from(DIGITS),
)
def test_price_check_digit_catches_every_single_digit_error(
    value: str, position: int, replacement: str
) -> None:
    i = position % len(value)
    assume(value[i] != replacement)
    wrong = value[:i] + replacement + value[i + 1 :]
    assert price_weight_check_digit(wrong) != price_weight_check_digit(value)


def test_default_rules_decode_a_price_label() -> None:
    # 20 | item 12345 | 001.99 | check
    code = make_gtin("201234500199")
    assert decode_variable_measure(code) == VariableMeasure(
        prefix="20",
        item_reference="12345",
        kind="price",
        price_minor=199,
        weight_g=None,
        code=code,
    )


def test_default_rules_decode_a_weight_label_and_upc_a_form() -> None:
    weight = make_gtin("280654301250")
    measure = decode_variable_measure(weight)
    assert measure is not None
    assert (measure.kind, measure.item_reference, measure.weight_g, measure.price_minor) == (
        "weight",
        "06543",
        1250,
        None,
    )
    # A US in-store UPC-A starting with 2 is the EAN-13 with prefix 02.
    upc = make_gtin("21234500499")
    measure = decode_variable_measure(upc)
    assert measure is not None
    assert (measure.prefix, measure.item_reference, measure.price_minor) == ("02", "12345", 499)
    assert measure.code == "0" + upc


@pytest.mark.parametrize("code", ["4006381333931", "96385074", "12012345678901"])
def test_ordinary_gtins_are_not_variable_measure(code: str) -> None:
    code = make_gtin(code[:-1])
    assert decode_variable_measure(code) is None


def test_a_wrong_ean_check_digit_on_a_label_is_refused() -> None:
    code = make_gtin("201234500199")
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    with pytest.raises(CheckDigitError, match=f"Check digit of {wrong}"):
        decode_variable_measure(wrong)


GERMAN_PRICE = VariableMeasureRule(prefix="22", kind="price", item_digits=4, price_check_digit=True)
GERMAN_WEIGHT = VariableMeasureRule(
    prefix="28", kind="weight", item_digits=4, price_check_digit=True
)
UK_PRICE = VariableMeasureRule(
    prefix="20", kind="price", item_digits=5, value_digits=4, price_check_digit=True
)
SWEDISH_WHOLE_KRONOR = VariableMeasureRule(
    prefix="22", kind="price", item_digits=6, value_digits=4, value_decimals=0
)
SWEDISH_10_G = VariableMeasureRule(
    prefix="24", kind="weight", item_digits=6, value_digits=4, value_decimals=2
)
ALL_RULES = (
    *DEFAULT_RULES,
    GERMAN_PRICE,
    GERMAN_WEIGHT,
    UK_PRICE,
    SWEDISH_WHOLE_KRONOR,
    SWEDISH_10_G,
)


@given(data=st.data(), rule=st.sampled_from(ALL_RULES))
def test_variable_measure_round_trip(data: st.DataObject, rule: VariableMeasureRule) -> None:
    item = data.draw(st.text(alphabet=DIGITS, min_size=rule.item_digits, max_size=rule.item_digits))
    steps = data.draw(st.integers(min_value=0, max_value=10**rule.value_digits - 1))
    value = steps * rule.unit_multiplier
    code = encode_variable_measure(rule, item, value)
    assert len(code) == 13
    assert is_valid_gtin(code)
    measure = decode_variable_measure(code, [rule])
    assert measure is not None
    assert (measure.prefix, measure.item_reference, measure.kind, measure.code) == (
        rule.prefix,
        item,
        rule.kind,
        code,
    )
    if rule.kind == "price":
        assert (measure.price_minor, measure.weight_g) == (value, None)
    else:
        assert (measure.weight_g, measure.price_minor) == (value, None)


def _value_slice(rule: VariableMeasureRule) -> slice:
    start = 2 + rule.item_digits + (1 if rule.price_check_digit else 0)
    return slice(start, start + rule.value_digits)


@given(
    data=st.data(),
    rule=st.sampled_from([GERMAN_PRICE, GERMAN_WEIGHT, UK_PRICE]),
    replacement=st.sampled_from(DIGITS),
)
def test_price_check_digit_catches_a_wrong_value_digit_even_with_a_good_ean_check(
    data: st.DataObject, rule: VariableMeasureRule, replacement: str
) -> None:
    item = "1" * rule.item_digits
    value = data.draw(st.integers(min_value=0, max_value=10**rule.value_digits - 1))
    code = encode_variable_measure(rule, item, value * rule.unit_multiplier)
    where = _value_slice(rule)
    i = data.draw(st.integers(min_value=where.start, max_value=where.stop - 1))
    assume(code[i] != replacement)
    # A misprinted value with an EAN check digit recomputed over it, as a broken scale would.
    forged = make_gtin(code[:i] + replacement + code[i + 1 : 12])
    with pytest.raises(CheckDigitError, match=f"Price/weight check digit of {forged}") as info:
        decode_variable_measure(forged, [rule])
    assert info.value.expected != info.value.found


def test_without_price_check_digit_a_recomputed_label_decodes_to_another_price() -> None:
    # Why chains whose scales print C turn it on: the EAN check alone is recomputed by the scale.
    rule = DEFAULT_RULES[1]
    code = encode_variable_measure(rule, "12345", 199)
    assert code[7:12] == "00199"
    forged = make_gtin(code[:8] + "5" + code[9:12])
    measure = decode_variable_measure(forged, [rule])
    assert measure is not None and measure.price_minor == 5199


def test_value_decimals_scale_to_minor_units_and_grams() -> None:
    assert SWEDISH_WHOLE_KRONOR.unit_multiplier == 100
    assert SWEDISH_10_G.unit_multiplier == 10
    measure = decode_variable_measure(make_gtin("220000420125"), [SWEDISH_WHOLE_KRONOR])
    assert measure is not None and measure.item_reference == "000042"
    assert measure.price_minor == 12500
    with pytest.raises(ValueError, match="multiple of 100"):
        encode_variable_measure(SWEDISH_WHOLE_KRONOR, "000042", 12550)


def test_first_matching_rule_wins() -> None:
    code = encode_variable_measure(DEFAULT_RULES[0], "12345", 499)  # prefix 02
    own = VariableMeasureRule(prefix="02", kind="weight")
    measure = decode_variable_measure(code, [own, *DEFAULT_RULES])
    assert measure is not None and measure.weight_g == 499


def test_encode_refuses_what_does_not_fit() -> None:
    rule = DEFAULT_RULES[1]
    with pytest.raises(BarcodeFormatError, match=r"Item reference 1234 has 4 digits.*have 5"):
        encode_variable_measure(rule, "1234", 100)
    with pytest.raises(BarcodeFormatError, match="item reference '12a45'"):
        encode_variable_measure(rule, "12a45", 100)
    with pytest.raises(ValueError, match="does not fit the 5 value digits"):
        encode_variable_measure(rule, "12345", 100_000)
    with pytest.raises(ValueError, match="non-negative"):
        encode_variable_measure(rule, "12345", -1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"prefix": "30", "kind": "price"}, "not a GS1 restricted circulation prefix"),
        ({"prefix": "2", "kind": "price"}, "not a GS1 restricted circulation prefix"),
        ({"prefix": "20", "kind": "count"}, "'price' or 'weight'"),
        ({"prefix": "20", "kind": "price", "price_check_digit": True}, "not the 13"),
        ({"prefix": "20", "kind": "price", "item_digits": 6, "value_digits": 3,
          "price_check_digit": True}, "4- or 5-digit value"),
        ({"prefix": "25", "kind": "weight", "value_decimals": 4}, "finer than grams"),
        ({"prefix": "20", "kind": "price", "value_decimals": 3}, "finer than minor units"),
    ],
)  # fmt: skip
def test_impossible_rules_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        VariableMeasureRule(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Loyalty
# --------------------------------------------------------------------------------------------


def _luhn_valid(number: str) -> bool:
    return loyalty_check_digit(number[:-1]) == int(number[-1])


def test_luhn_matches_the_published_example() -> None:
    assert loyalty_check_digit("7992739871") == 3
    assert _luhn_valid("4111111111111111")  # the well-known test card number


def test_make_and_parse_loyalty_numbers() -> None:
    number = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 12345)
    assert number == "9900000123457"
    assert parse_loyalty_number(number) == number
    assert parse_loyalty_number(" 9900-0001 2345 7 ") == number
    assert is_loyalty_number(number, DEFAULT_LOYALTY_FORMAT)
    # Luhn-valid, so (here) not a valid EAN-13: why scans are classified by prefix first.
    assert not is_valid_gtin(number)


def test_custom_loyalty_format() -> None:
    fmt = LoyaltyFormat(prefix="42", length=10)
    number = make_loyalty_number(fmt, 1)
    assert len(number) == 10 and number.startswith("420000001")
    assert parse_loyalty_number(number, fmt) == number
    assert not is_loyalty_number(number)
    with pytest.raises(ValueError, match="does not fit the 7 serial digits"):
        make_loyalty_number(fmt, 10**7)


@pytest.mark.parametrize(
    ("code", "error", "fragment"),
    [
        ("9900000123458", CheckDigitError, "Check digit of loyalty card number 9900000123458 is "
         "8 but should be 7"),
        ("990000012345", BarcodeFormatError, "Loyalty card number 990000012345 has 12 digits; "
         "ours have 13"),
        ("1234000123457", BarcodeFormatError, "1234000123457 is not one of our loyalty card "
         "numbers: they start with 9900"),
        ("9900O00123457", BarcodeFormatError, "contains letters \\('O'\\)"),
        (" - ", BarcodeFormatError, "empty"),
    ],
)  # fmt: skip
def test_bad_loyalty_numbers_say_what_is_wrong(
    code: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        parse_loyalty_number(code)
    assert not is_loyalty_number(code)


def test_impossible_loyalty_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        LoyaltyFormat(prefix="99A")
    with pytest.raises(ValueError, match="cannot hold prefix 9900"):
        LoyaltyFormat(prefix="9900", length=5)


luhn_numbers = st.text(alphabet=DIGITS, min_size=1, max_size=20).map(
    lambda body: body + str(loyalty_check_digit(body))
)


@given(number=luhn_numbers, position=st.integers(min_value=0), replacement=st.sampled_from(DIGITS))
def test_luhn_catches_every_single_digit_error(
    number: str, position: int, replacement: str
) -> None:
    assert _luhn_valid(number)
    i = position % len(number)
    assume(number[i] != replacement)
    assert not _luhn_valid(number[:i] + replacement + number[i + 1 :])


@given(number=luhn_numbers, position=st.integers(min_value=0))
def test_luhn_catches_adjacent_swaps_except_09_and_90(number: str, position: int) -> None:
    i = position % (len(number) - 1)
    pair = number[i : i + 2]
    assume(pair[0] != pair[1])
    assert _luhn_valid(_swapped(number, i)) == (pair in ("09", "90"))


def test_luhn_misses_the_09_swap() -> None:
    body = "990009"
    number = body + str(loyalty_check_digit(body))
    assert _luhn_valid(number)
    assert _luhn_valid(_swapped(number, 4))


# --------------------------------------------------------------------------------------------
# Scan classification
# --------------------------------------------------------------------------------------------

LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 424242)


@pytest.mark.parametrize("ending", ["", "\r\n", "\r", "\n", "\t", " "])
def test_each_kind_of_scan_is_classified(ending: str) -> None:
    def scan(code: str) -> object:
        return classify_scan(code + ending)

    assert scan("4006381333931") == ProductScan(parse_gtin("4006381333931"))
    assert scan("036000291452") == ProductScan(parse_gtin("036000291452"))
    label = encode_variable_measure(DEFAULT_RULES[-1], "00042", 1250)
    assert scan(label) == VariableMeasureScan(
        VariableMeasure(
            prefix="29", item_reference="00042", kind="weight", price_minor=None, weight_g=1250,
            code=label,
        )
    )  # fmt: skip
    assert scan(LOYALTY) == LoyaltyScan(LOYALTY)
    assert scan("R2026-0001-000123") == ReceiptScan("2026-0001-000123")
    assert scan("CMD-TOTAL") == CommandScan("TOTAL")


def test_framing_characters_are_stripped() -> None:
    assert classify_scan("\x024006381333931\x03\r\n") == ProductScan(parse_gtin("4006381333931"))
    assert classify_scan("\ufeffCMD-VOID") == CommandScan("VOID")


def test_case_is_ignored_for_letters() -> None:
    # Keyboard-wedge scanners invert case when Caps Lock is on.
    assert classify_scan("cmd-total") == CommandScan("TOTAL")
    assert classify_scan("r2026-abc1") == ReceiptScan("2026-ABC1")


def test_custom_receipt_prefix_and_loyalty_format() -> None:
    fmt = LoyaltyFormat(prefix="77", length=10)
    number = make_loyalty_number(fmt, 99)
    assert classify_scan(number, loyalty=fmt) == LoyaltyScan(number)
    assert classify_scan("RCPT-0042", receipt_prefix="RCPT-") == ReceiptScan("0042")
    with pytest.raises(ValueError, match="receipt prefix"):
        classify_scan("4006381333931", receipt_prefix="40")


def test_custom_rules_are_used() -> None:
    label = encode_variable_measure(GERMAN_WEIGHT, "0815", 480)
    scanned = classify_scan(label, rules=[GERMAN_WEIGHT])
    assert isinstance(scanned, VariableMeasureScan)
    assert scanned.measure.weight_g == 480
    # Without a rule for its prefix, a restricted number is just an in-store GTIN.
    assert classify_scan(label, rules=[]) == ProductScan(parse_gtin(label))


def test_typed_digits_with_spaces_or_dashes_are_read() -> None:
    assert classify_scan("4 006381 333931") == ProductScan(parse_gtin("4006381333931"))
    assert classify_scan("9900-0042-4242-" + LOYALTY[-1]) == LoyaltyScan(LOYALTY)


def test_loyalty_prefix_wins_over_gtin_shape() -> None:
    # A Luhn-invalid number with the loyalty prefix is a mistyped card, even if mod-10 is happy.
    gs1_valid = make_gtin(LOYALTY[:-1])
    assert gs1_valid != LOYALTY and not _luhn_valid(gs1_valid)
    with pytest.raises(CheckDigitError, match="loyalty card number"):
        classify_scan(gs1_valid)


def test_a_product_of_another_length_with_the_loyalty_prefix_stays_a_product() -> None:
    ean8 = make_gtin("9900123")
    assert classify_scan(ean8) == ProductScan(parse_gtin(ean8))


@pytest.mark.parametrize(
    ("code", "error", "fragment"),
    [
        ("40063\x0081333931", BarcodeFormatError, r"unreadable characters \('\\x00'\)"),
        ("4006\x1b381\x1b333931", BarcodeFormatError, r"unreadable characters \('\\x1b'\)"),
        ("40063\ufffd1333931", BarcodeFormatError, "unreadable characters"),
        ("hello world", BarcodeFormatError,
         "'hello world' is not a product, loyalty card, receipt or command code"),
        ("CMD-", BarcodeFormatError, "starts like a till command code"),
        ("R12", BarcodeFormatError,
         "'R12' starts like a receipt barcode but '12' is not a receipt number"),
        ("R12 34", BarcodeFormatError, "not a receipt number"),
        ("4006381333932", CheckDigitError, "Check digit of 4006381333932 is 2 but should be 1"),
        ("12345", BarcodeFormatError, "Barcode 12345 has 5 digits"),
        ("9900000123458", CheckDigitError, "loyalty card number 9900000123458"),
        ("\r\n", BarcodeFormatError, "Nothing was scanned"),
    ],
)  # fmt: skip
def test_bad_scans_say_what_is_wrong(code: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        classify_scan(code)


def test_a_garbled_scan_shows_the_whole_code_escaped() -> None:
    with pytest.raises(BarcodeFormatError) as info:
        classify_scan("4006\x07381333931\r\n")
    assert "'4006\\x07381333931'" in str(info.value)
    assert info.value.code == "4006\x07381333931"


@given(body=gtin_bodies, noise=st.sampled_from(["\r\n", "\n", "\t", "\x03", " \r\n"]))
def test_any_product_gtin_classifies_as_itself(body: str, noise: str) -> None:
    code = make_gtin(body)
    assume(not code.startswith(DEFAULT_LOYALTY_FORMAT.prefix))
    scanned = classify_scan(code + noise)
    if decode_variable_measure(code) is None:
        assert scanned == ProductScan(parse_gtin(code))
    else:
        assert isinstance(scanned, VariableMeasureScan)
        assert scanned.measure.code == parse_gtin(code).gtin14[1:]


@pytest.mark.parametrize("prefix", ["40", "43", "49", "00", "30"])
def test_a_scale_rule_on_an_ordinary_country_prefix_is_refused(prefix: str) -> None:
    # 400-440 is Germany: a rule there would read every German EAN as a price label.
    with pytest.raises(ValueError, match="restricted circulation"):
        VariableMeasureRule(prefix=prefix, kind="price")
