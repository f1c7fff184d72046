"""Customer identifiers: what the single customer view joins people on, and how each is normalized.

A customer is known by identifiers from every channel: the email typed at the till or in the web
shop, a phone number, a loyalty card, the web shop's visitor and account ids, and, for a
customer created offline at a till, a provisional till-local id. HQ joins identifiers into one
customer when they are seen together, so two spellings of the same identifier must normalize to
the same string, and two different people's identifiers must never do so. Every identifier is
written ``kind:value`` (``Identifier.__str__`` and ``Identifier.parse_key``).

The rules, per kind:

- ``email``: spaces at the ends and around ``@`` are dropped (people type ``maria @ gmail.com``),
  then the whole address is lowercased. The part before ``@`` is case-sensitive in theory
  (RFC 5321), but no real mail provider treats it so, and people type their address with
  whatever capitals their phone suggests; matching must ignore case to join identities.
  Unicode is kept (NFC-composed, lowercased), not IDNA-encoded: ``josé@café.fr`` is stored as
  typed. Gmail dots and ``+tags`` are *not* removed: that would merge different people at
  providers where ``j.smith`` and ``jsmith`` are two mailboxes.
- ``phone``: parsed with ``phonenumbers`` in the store's region (``GB``, ``DE``, ``US``; numbers
  that start with ``+`` or an international prefix such as ``00`` need none), must be a valid
  number for its country, and is stored in E.164 (``+447400123456``). Extensions are dropped:
  the identifier is the line, not the desk.
- ``loyalty``: a loyalty card number, checked by ``shared.barcodes`` (prefix, length and Luhn
  check digit); spaces and dashes people type are ignored.
- ``web_anon`` / ``web_user``: the web shop's anonymous visitor id and account id (Segment's
  ``anonymousId`` and ``userId``). Opaque: trimmed, 1 to 200 printable characters, case kept.
- ``till_local``: ``TL-`` and a UUID, made by a till for a customer it created offline
  (``new_till_local_id``); HQ merges it into the real customer when the till syncs.

``guess_identifier`` decides what a cashier typed or scanned into the customer search box.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Final, Literal, get_args

import phonenumbers

from shared.barcodes import DEFAULT_LOYALTY_FORMAT, LoyaltyFormat, parse_loyalty_number
from shared.errors import BarcodeError, IdentifierError

__all__ = [
    "IDENTIFIER_KINDS",
    "Identifier",
    "IdentifierKind",
    "guess_identifier",
    "new_till_local_id",
    "normalize_email",
    "normalize_identifier",
    "normalize_loyalty",
    "normalize_phone",
    "normalize_till_local",
    "normalize_web_id",
]

IdentifierKind = Literal["email", "phone", "loyalty", "web_anon", "web_user", "till_local"]

#: Every identifier kind, in the order a till shows them.
IDENTIFIER_KINDS: Final[tuple[IdentifierKind, ...]] = get_args(IdentifierKind)

#: RFC 5321 limits: a path of 256 octets less the angle brackets, a local part of 64.
_EMAIL_MAX: Final = 254
_EMAIL_LOCAL_MAX: Final = 64
_WEB_ID_MAX: Final = 200
_TILL_LOCAL_PREFIX: Final = "TL-"

_SPACES_AROUND_AT: Final = re.compile(r"\s*@\s*")
#: Characters that never appear in an address people use and usually mean a paste went wrong.
_EMAIL_FORBIDDEN: Final = frozenset('(),:;<>[]\\"')
_DOMAIN_LABEL_MAX: Final = 63

#: What a typed phone number may contain besides digits.
_PHONE_CHARS: Final = re.compile(r"\+?[\d\s().\-/]+")
#: A phone number has at most 15 digits (E.164) plus a two-digit international prefix.
_PHONE_DIGITS: Final = range(5, 18)
_CARD_SEPARATORS: Final = re.compile(r"[\s\-]+")


def _shown(raw: str) -> str:
    """The input as quoted in an error message: trimmed, and short enough to read."""
    text = raw.strip()
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _unknown_kind(kind: str) -> IdentifierError:
    return IdentifierError(
        f"Unknown identifier kind {kind!r}; expected one of {', '.join(IDENTIFIER_KINDS)}"
    )


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalized customer identifier. Build one with ``normalize_identifier`` or ``parse_key``.

    The constructor checks the kind and that the value is not blank, not that it is normalized.
    """

    kind: IdentifierKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in IDENTIFIER_KINDS:
            raise _unknown_kind(self.kind)
        if not self.value or self.value != self.value.strip():
            raise IdentifierError(
                f"An identifier of kind {self.kind} needs a value without spaces at the ends"
            )

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def parse_key(
        cls, key: str, *, loyalty_format: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT
    ) -> Identifier:
        """Read ``"kind:value"`` (as written by ``str()``), checking the value for its kind.

        Phone numbers in keys are E.164, so they must start with ``+``: no region is guessed.
        """
        kind, sep, value = key.partition(":")
        if not sep:
            raise IdentifierError(
                f"{_shown(key)} is not an identifier key like 'email:maria@example.com'"
            )
        if kind not in IDENTIFIER_KINDS:
            raise IdentifierError(
                f"{_shown(key)} has an unknown identifier kind {kind!r}; "
                f"expected one of {', '.join(IDENTIFIER_KINDS)}"
            )
        if kind == "phone" and not value.startswith("+"):
            raise IdentifierError(
                f"{_shown(key)} must hold a phone number in E.164 form, like +447400123456"
            )
        return normalize_identifier(kind, value, loyalty_format=loyalty_format)


def normalize_email(raw: str) -> str:
    """The address lowercased and without stray spaces; ``IdentifierError`` if it is not one."""
    text = _SPACES_AROUND_AT.sub("@", raw.strip())
    if text[:7].lower() == "mailto:":
        # What a QR code on a business card or a pasted link starts with.
        text = text[7:].strip()
    # Composed before and after lowercasing so "é" typed as e + accent matches "é" typed as one
    # character, and lowercasing cannot leave an uncomposed pair behind.
    email = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())
    shown = _shown(raw)
    if not email:
        raise IdentifierError("The email address is empty")
    if any(c.isspace() for c in email):
        raise IdentifierError(f"{shown} is not an email address: it contains a space")
    if email.count("@") != 1:
        raise IdentifierError(f"{shown} is not an email address: it needs exactly one @")
    local, _, domain = email.partition("@")
    if not local:
        raise IdentifierError(f"{shown} is not an email address: nothing before the @")
    if not domain:
        raise IdentifierError(f"{shown} is not an email address: nothing after the @")
    if len(email) > _EMAIL_MAX or len(local) > _EMAIL_LOCAL_MAX:
        raise IdentifierError(
            f"{shown} is too long for an email address "
            f"(at most {_EMAIL_LOCAL_MAX} characters before the @ and {_EMAIL_MAX} in all)"
        )
    bad = sorted({c for c in email if c in _EMAIL_FORBIDDEN or not c.isprintable()})
    if bad:
        raise IdentifierError(f"{shown} is not an email address: it contains {''.join(bad)!r}")
    labels = domain.split(".")
    if len(labels) < 2:
        raise IdentifierError(
            f"{shown} is not an email address: the part after the @ needs a dot, like example.com"
        )
    if not all(_is_domain_label(label) for label in labels):
        raise IdentifierError(
            f"{shown} is not an email address: {domain!r} is not a valid domain "
            "(letters, digits and hyphens between dots)"
        )
    if labels[-1].isdigit():
        # An IP address, or a typo: no top-level domain is a number.
        raise IdentifierError(
            f"{shown} is not an email address: {domain!r} does not end in a domain name "
            "like .com or .de"
        )
    return email


def _is_domain_label(label: str) -> bool:
    """Letters of any script (with their combining marks), digits and inner hyphens."""
    return (
        0 < len(label) <= _DOMAIN_LABEL_MAX
        and not label.startswith("-")
        and not label.endswith("-")
        and all(c.isalnum() or c == "-" or unicodedata.category(c)[0] == "M" for c in label)
    )


def normalize_phone(raw: str, default_region: str) -> str:
    """The number in E.164 (``+447400123456``); ``IdentifierError`` if it is not a valid one.

    ``default_region`` (ISO 3166 alpha-2, the store's country) is used for numbers written
    without a country code.
    """
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise IdentifierError(
            f"{default_region!r} is not a country code for phone numbers; "
            "set a two-letter code like GB, DE or US"
        )
    text = raw.strip()
    if not text:
        raise IdentifierError("The phone number is empty")
    number = _valid_phone_number(text, region)
    if number is None and re.match(r"\s*00", text):
        # "00" is the international prefix in most of the world but not everywhere (011 in
        # North America), and people abroad type it anyway.
        number = _valid_phone_number("+" + text.lstrip()[2:], region)
    if number is None:
        raise IdentifierError(f"{_shown(raw)} is not a valid phone number for region {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _valid_phone_number(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def normalize_loyalty(raw: str, fmt: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT) -> str:
    """The loyalty card number, checked against ``fmt``; spaces and dashes are ignored."""
    try:
        return parse_loyalty_number(raw, fmt)
    except BarcodeError as exc:
        # The barcode message already names the number and what is wrong with it.
        raise IdentifierError(exc.message) from exc


def normalize_web_id(raw: str, kind: Literal["web_anon", "web_user"] = "web_anon") -> str:
    """A web shop visitor or account id: trimmed, 1 to 200 printable characters, case kept."""
    what = "web shop visitor id" if kind == "web_anon" else "web shop account id"
    value = raw.strip()
    if not value:
        raise IdentifierError(f"The {what} is empty")
    if len(value) > _WEB_ID_MAX:
        raise IdentifierError(
            f"The {what} {_shown(raw)} is too long ({len(value)} characters, at most {_WEB_ID_MAX})"
        )
    if not value.isprintable():
        raise IdentifierError(
            f"The {what} {_shown(raw)} contains characters that cannot be printed"
        )
    return value


def normalize_till_local(raw: str) -> str:
    """``TL-`` and the UUID in its usual lowercase form; ``IdentifierError`` otherwise."""
    text = raw.strip()
    if text[: len(_TILL_LOCAL_PREFIX)].upper() != _TILL_LOCAL_PREFIX:
        raise IdentifierError(
            f"{_shown(raw)} is not a till-local customer id: "
            f"it must start with {_TILL_LOCAL_PREFIX}"
        )
    try:
        value = uuid.UUID(text[len(_TILL_LOCAL_PREFIX) :])
    except ValueError:
        raise IdentifierError(
            f"{_shown(raw)} is not a till-local customer id: {_TILL_LOCAL_PREFIX} must be followed "
            "by a UUID like 1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
        ) from None
    return f"{_TILL_LOCAL_PREFIX}{value}"


def new_till_local_id() -> Identifier:
    """A fresh provisional identifier for a customer created at a till (offline or not)."""
    return Identifier("till_local", f"{_TILL_LOCAL_PREFIX}{uuid.uuid4()}")


def normalize_identifier(
    kind: str,
    raw: str,
    *,
    default_region: str = "GB",
    loyalty_format: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT,
) -> Identifier:
    """The identifier of ``kind`` that ``raw`` stands for, normalized by that kind's rules."""
    if kind == "email":
        return Identifier("email", normalize_email(raw))
    if kind == "phone":
        return Identifier("phone", normalize_phone(raw, default_region))
    if kind == "loyalty":
        return Identifier("loyalty", normalize_loyalty(raw, loyalty_format))
    if kind == "web_anon":
        return Identifier("web_anon", normalize_web_id(raw, "web_anon"))
    if kind == "web_user":
        return Identifier("web_user", normalize_web_id(raw, "web_user"))
    if kind == "till_local":
        return Identifier("till_local", normalize_till_local(raw))
    raise _unknown_kind(kind)


def guess_identifier(
    raw: str,
    *,
    default_region: str = "GB",
    loyalty_format: LoyaltyFormat = DEFAULT_LOYALTY_FORMAT,
) -> Identifier:
    """What a cashier typed or scanned into the customer search box, as an identifier.

    An ``@`` means an email; ``TL-`` a till-local id; digits with the loyalty prefix and length
    a loyalty card (or, if its check digit fails, a phone number that happens to look like
    one); other digits with ``+``, spaces, dashes, dots, slashes or brackets a phone number.
    Web ids are never typed at a till, so they are never guessed. Once the kind is clear, the
    error is that kind's own (a bad email says what is wrong with the email).
    """
    text = raw.strip()
    if not text:
        raise IdentifierError(
            "The customer search is empty: type an email, a phone number or scan a card"
        )
    if "@" in text:
        return Identifier("email", normalize_email(text))
    if text[: len(_TILL_LOCAL_PREFIX)].upper() == _TILL_LOCAL_PREFIX:
        return Identifier("till_local", normalize_till_local(text))
    compact = _CARD_SEPARATORS.sub("", text)
    if (
        compact.isascii()
        and compact.isdigit()
        and len(compact) == loyalty_format.length
        and compact.startswith(loyalty_format.prefix)
    ):
        try:
            return Identifier("loyalty", normalize_loyalty(compact, loyalty_format))
        except IdentifierError as loyalty_error:
            try:
                return Identifier("phone", normalize_phone(text, default_region))
            except IdentifierError:
                raise loyalty_error from None
    digits = sum(c.isdigit() for c in text)
    if _PHONE_CHARS.fullmatch(text) and text.isascii() and digits in _PHONE_DIGITS:
        return Identifier("phone", normalize_phone(text, default_region))
    raise IdentifierError(f"Not an email, phone number or loyalty card: {_shown(raw)}")
