from __future__ import annotations

import dataclasses
import re
import uuid

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.barcodes import DEFAULT_LOYALTY_FORMAT, LoyaltyFormat, make_loyalty_number
from shared.errors import CheckDigitError, IdentifierError
from shared.identifiers import (
    IDENTIFIER_KINDS,
    Identifier,
    guess_identifier,
    new_till_local_id,
    normalize_email,
    normalize_identifier,
    normalize_loyalty,
    normalize_phone,
    normalize_till_local,
    normalize_web_id,
)

CARD = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 12345)  # 9900000123457
TILL_LOCAL = "TL-1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


def error_of(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(IdentifierError) as caught:
        call(*args, **kwargs)
    return caught.value.message


# --- Email ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("maria.lopez@example.com", "maria.lopez@example.com"),
        ("Maria.Lopez@Example.COM", "maria.lopez@example.com"),
        ("  maria@example.com \n", "maria@example.com"),
        ("maria @ example.com", "maria@example.com"),
        ("maria@ example.co.uk", "maria@example.co.uk"),
        ("maria\t@example.com", "maria@example.com"),
        ("MAILTO:Maria@Example.com", "maria@example.com"),
        # dots and +tags are kept: at most providers they are different mailboxes
        ("J.Smith+Shoes@GMail.com", "j.smith+shoes@gmail.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("first_last-99@sub.example-shop.de", "first_last-99@sub.example-shop.de"),
        # unicode is kept as typed, lowercased and composed; punycode is kept too
        ("José@Café.fr", "josé@café.fr"),
        ("jose\u0301@cafe\u0301.fr", "jos\u00e9@caf\u00e9.fr"),
        ("ВАСЯ@ПОЧТА.РФ", "вася@почта.рф"),
        ("info@xn--caf-dma.fr", "info@xn--caf-dma.fr"),
        ("a@b.co", "a@b.co"),
    ],
)
def test_emails_are_trimmed_and_lowercased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


def test_gmail_dots_and_tags_do_not_merge_people() -> None:
    assert normalize_email("j.smith@gmail.com") != normalize_email("jsmith@gmail.com")
    assert normalize_email("jsmith+a@gmail.com") != normalize_email("jsmith@gmail.com")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "The email address is empty"),
        ("   ", "The email address is empty"),
        ("maria", "'maria' is not an email address: it needs exactly one @"),
        ("maria@@example.com", "exactly one @"),
        ("maria@home@example.com", "exactly one @"),
        ("@example.com", "'@example.com' is not an email address: nothing before the @"),
        ("maria@", "nothing after the @"),
        (
            "maria@example",
            "'maria@example' is not an email address: the part after the @ needs a dot",
        ),
        (
            "maria lopez@example.com",
            "'maria lopez@example.com' is not an email address: it contains a space",
        ),
        ("maria@exam ple.com", "contains a space"),
        ("maria@example..com", "'example..com' is not a valid domain"),
        ("maria@.example.com", "is not a valid domain"),
        ("maria@example.com.", "is not a valid domain"),
        ("maria@-example.com", "is not a valid domain"),
        ("maria@example-.com", "is not a valid domain"),
        ("maria@exa_mple.com", "is not a valid domain"),
        ("maria@exa!mple.com", "is not a valid domain"),
        ("maria@192.168.0.1", "'192.168.0.1' does not end in a domain name like .com"),
        ("<maria@example.com>", "it contains '<>'"),
        ("maria,lopez@example.com", "it contains ','"),
        ("maria@example.com;", "it contains ';'"),
        ("maria\x00@example.com", "it contains '\\x00'"),
        ("a" * 65 + "@example.com", "too long for an email address (at most 64 characters"),
        ("a" * 60 + "@" + "b.c" * 65, "too long for an email address"),
    ],
)
def test_bad_emails_say_what_is_wrong(raw: str, message: str) -> None:
    assert message in error_of(normalize_email, raw)


def test_long_input_is_shortened_in_the_message() -> None:
    message = error_of(normalize_email, "x" * 500)
    assert len(message) < 150
    assert "'xxxxx" in message and "...'" in message


def test_an_address_of_254_characters_is_accepted() -> None:
    address = "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".cde"
    assert len(address) == 254
    assert normalize_email(address) == address
    assert "too long" in error_of(normalize_email, "a" + address)


local_parts = st.from_regex(r"[a-z0-9]([a-z0-9._+'-]{0,20}[a-z0-9])?", fullmatch=True)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)
clean_emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
blanks = st.sampled_from(["", " ", "  ", "\t", " \n"])


@st.composite
def noisy_emails(draw: st.DrawFn) -> tuple[str, str]:
    """A clean address and the same address as someone might type it."""
    clean = draw(clean_emails)
    flips = draw(st.lists(st.booleans(), min_size=len(clean), max_size=len(clean)))
    cased = "".join(c.upper() if flip else c for c, flip in zip(clean, flips, strict=True))
    local, domain = cased.split("@")
    noisy = f"{draw(blanks)}{local}{draw(blanks)}@{draw(blanks)}{domain}{draw(blanks)}"
    return clean, noisy


@given(noisy_emails())
def test_typed_emails_normalize_to_the_clean_address_idempotently(pair: tuple[str, str]) -> None:
    clean, noisy = pair
    once = normalize_email(noisy)
    assert once == clean
    assert normalize_email(once) == once


# Letters whose case mapping is tricky (dotted I, sharp s, final sigma, titlecase digraphs),
# combining accents, and any letter, mark or digit.
unicode_chars = st.one_of(
    st.sampled_from("aZ09-_.+'İıßẞΣσςÅÉǅǄﬁ\u0301\u0307\u0345"),
    st.characters(codec="utf-8", categories=("L", "M", "N")),
)


@given(
    st.text(unicode_chars, min_size=1, max_size=12),
    st.lists(st.text(unicode_chars, min_size=1, max_size=8), min_size=2, max_size=3),
)
def test_any_accepted_unicode_email_is_a_fixed_point(local: str, parts: list[str]) -> None:
    try:
        once = normalize_email(f"{local}@{'.'.join(parts)}")
    except IdentifierError:
        return
    assert normalize_email(once) == once
    assert once == once.lower()


# --- Phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 7400 123456", "GB", "+447400123456"),
        ("07400 123456", "GB", "+447400123456"),
        ("07400-123-456", "GB", "+447400123456"),
        ("(07400) 123456", "GB", "+447400123456"),
        ("00 44 7400 123456", "GB", "+447400123456"),
        ("0044 7400 123456", "US", "+447400123456"),  # 00 typed where the prefix is 011
        ("011 44 7400 123456", "US", "+447400123456"),
        ("+44 (0)20 7946 0958", "GB", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("  +44 7400 123456 ext. 12  ", "GB", "+447400123456"),
        ("tel:+44-7400-123456", "DE", "+447400123456"),
        ("+1 (201) 555-0123", "GB", "+12015550123"),
        ("201-555-0123", "US", "+12015550123"),
        ("(201) 555 0123", "us", "+12015550123"),
        ("030 123456", "DE", "+4930123456"),
        ("0170/1234567", "DE", "+491701234567"),
        ("+49 1512 3456789", "FR", "+4915123456789"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("06.12.34.56.78", "FR", "+33612345678"),
        ("090-1234-5678", "JP", "+819012345678"),
        ("0412 345 678", "AU", "+61412345678"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("12345", "GB", "'12345' is not a valid phone number for region GB"),
        ("07400 123456", "US", "'07400 123456' is not a valid phone number for region US"),
        ("+44 7400 123456 7777777", "GB", "is not a valid phone number for region GB"),
        ("call me", "DE", "'call me' is not a valid phone number for region DE"),
        ("+99 123 456 789", "GB", "not a valid phone number"),
        # Ofcom's range for drama is never assigned, and phonenumbers knows it.
        ("+44 7700 900123", "GB", "'+44 7700 900123' is not a valid phone number"),
        ("", "GB", "The phone number is empty"),
        ("07400 123456", "UK", "'UK' is not a country code for phone numbers"),
        ("07400 123456", "", "is not a country code for phone numbers"),
    ],
)
def test_bad_phone_numbers_say_what_is_wrong(raw: str, region: str, message: str) -> None:
    assert message in error_of(normalize_phone, raw, region)


REGIONS = ("GB", "DE", "US", "FR", "JP", "AU", "IN", "BR", "ES", "NL", "IE")
TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
FORMATS = (
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@given(st.sampled_from(REGIONS), st.sampled_from(TYPES), st.sampled_from(FORMATS), blanks)
def test_valid_numbers_in_any_format_normalize_idempotently(
    region: str, kind: int, fmt: int, blank: str
) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    typed = f"{blank}{phonenumbers.format_number(number, fmt)}{blank}"
    once = normalize_phone(typed, region)
    assert once == e164
    assert normalize_phone(once, region) == once
    # In E.164 the region no longer matters.
    assert normalize_phone(once, "US" if region != "US" else "GB") == once


# --- Loyalty, web and till-local ids ----------------------------------------------------------


@pytest.mark.parametrize("raw", [CARD, f" {CARD} ", "9900 0001 23457", "9900-0001-2345-7"])
def test_loyalty_numbers_are_checked_and_compacted(raw: str) -> None:
    assert normalize_loyalty(raw) == CARD


def test_a_chain_can_use_its_own_loyalty_format() -> None:
    fmt = LoyaltyFormat(prefix="42", length=10)
    card = make_loyalty_number(fmt, 7)
    assert normalize_loyalty(card, fmt) == card
    assert "start with 9900" in error_of(normalize_loyalty, card)


def test_a_bad_loyalty_check_digit_is_an_identifier_error_from_the_barcode_error() -> None:
    wrong = CARD[:-1] + "0"
    with pytest.raises(IdentifierError, match=f"Check digit of loyalty card number {wrong}") as e:
        normalize_loyalty(wrong)
    assert isinstance(e.value.__cause__, CheckDigitError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("99000001234", "has 11 digits; ours have 13"),
        ("1234567890123", "start with 9900"),
        ("9900ABC", "letters"),
    ],
)
def test_bad_loyalty_numbers_say_what_is_wrong(raw: str, message: str) -> None:
    assert message in error_of(normalize_loyalty, raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a1b2c3d4-e5f6-4789-abcd-ef0123456789", "a1b2c3d4-e5f6-4789-abcd-ef0123456789"),
        ("  AjS0MmF-xyz  ", "AjS0MmF-xyz"),
        ("user 42", "user 42"),
        ("x" * 200, "x" * 200),
    ],
)
def test_web_ids_are_trimmed_and_keep_their_case(raw: str, expected: str) -> None:
    assert normalize_web_id(raw, "web_anon") == expected
    assert normalize_web_id(raw, "web_user") == expected


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ("", "web_anon", "The web shop visitor id is empty"),
        ("  ", "web_user", "The web shop account id is empty"),
        ("x" * 201, "web_anon", "is too long (201 characters, at most 200)"),
        ("abc\x00def", "web_user", "The web shop account id 'abc\\x00def' contains characters"),
        ("abc\ndef", "web_anon", "contains characters that cannot be printed"),
    ],
)
def test_bad_web_ids_are_refused(raw: str, kind: str, message: str) -> None:
    assert kind in ("web_anon", "web_user")
    assert message in error_of(normalize_web_id, raw, kind)


def test_new_till_local_ids_are_fresh_and_valid() -> None:
    ids = {new_till_local_id() for _ in range(100)}
    assert len(ids) == 100
    for ident in ids:
        assert ident.kind == "till_local"
        assert re.fullmatch(
            r"TL-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ident.value
        )
        assert normalize_till_local(ident.value) == ident.value


@pytest.mark.parametrize(
    "raw",
    [
        TILL_LOCAL,
        TILL_LOCAL.upper(),
        f"  tl-{TILL_LOCAL[3:]} ",
        "TL-" + TILL_LOCAL[3:].replace("-", ""),
        "TL-{" + TILL_LOCAL[3:] + "}",
    ],
)
def test_till_local_ids_take_one_canonical_form(raw: str) -> None:
    assert normalize_till_local(raw) == TILL_LOCAL


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (TILL_LOCAL[3:], "is not a till-local customer id: it must start with TL-"),
        ("TL-", "TL- must be followed by a UUID"),
        ("TL-1b4e28ba-2fa1-4d3b-a3f5", "'TL-1b4e28ba-2fa1-4d3b-a3f5' is not a till-local"),
        ("TL-" + "g" * 32, "must be followed by a UUID"),
    ],
)
def test_bad_till_local_ids_are_refused(raw: str, message: str) -> None:
    assert message in error_of(normalize_till_local, raw)


# --- Identifier, keys and dispatch ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("email", " Maria@Example.com", "maria@example.com"),
        ("phone", "07400 123456", "+447400123456"),
        ("loyalty", "9900 0001 23457", CARD),
        ("web_anon", " anon-123 ", "anon-123"),
        ("web_user", "User-42", "User-42"),
        ("till_local", TILL_LOCAL.upper(), TILL_LOCAL),
    ],
)
def test_every_kind_normalizes_and_round_trips_through_its_key(
    kind: str, raw: str, value: str
) -> None:
    ident = normalize_identifier(kind, raw)
    assert ident == Identifier(kind, value)  # type: ignore[arg-type]
    assert str(ident) == f"{kind}:{value}"
    assert Identifier.parse_key(str(ident)) == ident
    assert {ident, Identifier.parse_key(str(ident))} == {ident}


def test_kinds_match_the_wire_model() -> None:
    from typing import get_args

    from shared.customer import IdentifierKindName

    assert get_args(IdentifierKindName) == IDENTIFIER_KINDS


def test_the_region_is_used_for_national_phone_numbers() -> None:
    assert normalize_identifier("phone", "030 123456", default_region="DE").value == "+4930123456"
    with pytest.raises(IdentifierError, match="for region GB"):
        normalize_identifier("phone", "030 123456")


def test_parse_key_checks_the_value() -> None:
    assert Identifier.parse_key("email:Maria@Example.com").value == "maria@example.com"
    assert Identifier.parse_key("web_user:a:b:c") == Identifier("web_user", "a:b:c")
    assert "needs a dot" in error_of(Identifier.parse_key, "email:maria@example")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("maria@example.com", "is not an identifier key like 'email:maria@example.com'"),
        ("fax:0123", "'fax:0123' has an unknown identifier kind 'fax'"),
        ("phone:07400123456", "must hold a phone number in E.164 form"),
        ("email:", "The email address is empty"),
    ],
)
def test_bad_keys_are_refused(key: str, message: str) -> None:
    assert message in error_of(Identifier.parse_key, key)


def test_identifiers_are_frozen_and_check_their_kind() -> None:
    ident = Identifier("email", "maria@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ident.value = "other@example.com"  # type: ignore[misc]
    assert "Unknown identifier kind 'fax'" in error_of(Identifier, "fax", "1")
    assert "needs a value" in error_of(Identifier, "email", "")
    assert "needs a value" in error_of(Identifier, "email", " maria@example.com")
    assert "Unknown identifier kind 'fax'" in error_of(normalize_identifier, "fax", "1")


# --- What the cashier typed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maria.Lopez @ Example.com", Identifier("email", "maria.lopez@example.com")),
        ("+44 7400 123456", Identifier("phone", "+447400123456")),
        ("07400 123456", Identifier("phone", "+447400123456")),
        ("(020) 7946-0958", Identifier("phone", "+442079460958")),
        ("0044 20 7946 0958", Identifier("phone", "+442079460958")),
        (CARD, Identifier("loyalty", CARD)),
        ("9900 0001 23457", Identifier("loyalty", CARD)),
        (f"\n{CARD}\r", Identifier("loyalty", CARD)),
        (TILL_LOCAL.upper(), Identifier("till_local", TILL_LOCAL)),
    ],
)
def test_guess_routes_what_was_typed_or_scanned(raw: str, expected: Identifier) -> None:
    assert guess_identifier(raw) == expected


def test_guess_uses_the_store_region_and_loyalty_format() -> None:
    assert guess_identifier("030 123456", default_region="DE") == Identifier("phone", "+4930123456")
    fmt = LoyaltyFormat(prefix="42", length=10)
    card = make_loyalty_number(fmt, 7)
    assert guess_identifier(card, loyalty_format=fmt) == Identifier("loyalty", card)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "The customer search is empty"),
        ("   ", "The customer search is empty"),
        ("Maria Lopez", "Not an email, phone number or loyalty card: 'Maria Lopez'"),
        ("hello", "Not an email, phone number or loyalty card: 'hello'"),
        ("1234", "Not an email, phone number or loyalty card: '1234'"),
        ("AB-1234567", "Not an email, phone number or loyalty card"),
        # once the kind is clear, the error is that kind's own
        ("maria@example", "the part after the @ needs a dot"),
        ("12345", "'12345' is not a valid phone number for region GB"),
        (CARD[:-1] + "0", "Check digit of loyalty card number"),
        ("TL-123", "TL- must be followed by a UUID"),
    ],
)
def test_guess_explains_what_it_could_not_read(raw: str, message: str) -> None:
    assert message in error_of(guess_identifier, raw)


phone_examples = st.builds(
    lambda region, kind: (region, phonenumbers.example_number_for_type(region, kind)),
    st.sampled_from(REGIONS),
    st.sampled_from(TYPES),
)


@given(
    noisy_emails(),
    st.integers(0, 10**DEFAULT_LOYALTY_FORMAT.serial_digits - 1),
    st.sampled_from(["", " ", "-"]),
    phone_examples,
    st.sampled_from(FORMATS[:3]),
)
def test_guess_routes_generated_inputs_to_their_kind(
    email: tuple[str, str],
    serial: int,
    separator: str,
    phone: tuple[str, phonenumbers.PhoneNumber],
    fmt: int,
) -> None:
    clean, noisy = email
    assert guess_identifier(noisy) == Identifier("email", clean)

    card = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, serial)
    typed_card = separator.join([card[:4], card[4:8], card[8:]])
    assert guess_identifier(typed_card) == Identifier("loyalty", card)

    region, number = phone
    typed = phonenumbers.format_number(number, fmt)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert guess_identifier(typed, default_region=region) == Identifier("phone", e164)


def test_till_local_ids_are_uuids() -> None:
    assert uuid.UUID(new_till_local_id().value[3:]).version == 4
