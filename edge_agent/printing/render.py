"""A receipt as ESC/POS bytes, written by python-escpos's own API on an ``escpos`` ``Dummy``.

:func:`render_receipt` lays a :class:`shared.receipt.Receipt` out for one
:class:`~edge_agent.printing.profiles.PrinterProfile` and returns the bytes to send; it does no
I/O. Every command comes from python-escpos (``hw``, ``set``, ``text``, ``qr``, ``image``,
``cut``, ``cashdraw``), so the bytes are what the library would send to a real printer.

What is printed, top to bottom
------------------------------
- ``COPY`` in large letters when the receipt is a reprint (again at the very bottom);
- the store's name (bold, tall, centred) and city; ``REFUND`` in large letters on a return;
- receipt number, date and time in the store's time zone (``Store.timezone``), till, cashier,
  and on a return the receipt it refunds;
- one block per line: the name wrapped to the paper's width with the amount right-aligned on
  its last row, ``2 x €1.99`` (or ``0.532 kg x €1.99/kg``) when there is more than one, and the
  discount with its reasons; each amount carries a tax letter (``A``, ``B``...) that the tax
  breakdown explains;
- subtotal and tax when tax is added on top, the total (bold, tall), the tenders (card
  references under them) and the change;
- the tax breakdown per rate (net, tax, gross);
- the customer's name and loyalty points;
- "Customers who bought <item> also bought" with up to three items and their prices;
- a QR code of the digital receipt's URL: drawn by the printer (``GS ( k``) where the profile
  says it can, else sent as a raster image (``GS v 0``);
- on a sale, a CODE128 barcode of ``R`` + receipt number (what the till scans to start a
  return), drawn by the printer when it fits the paper at 2 or 3 dots per module, else as a
  raster image with the number printed under it. A return receipt has none: scanning it would
  start a return of a return;
- the cut (or a feed to the tear bar on printers without a cutter).

A drawer kick (``ESC p``, pin 2) is sent first, so the drawer opens as the receipt starts, when
a tender is cash (a sale paid in cash or a cash refund). A reprint never opens the drawer, and
the print worker leaves the kick out of a receipt printed long after its sale.

Characters
----------
Text goes through python-escpos's "magic encode", with the encoder limited to the profile's
code page table (see :mod:`~edge_agent.printing.profiles`): each run of text is written in the
first page that has all its characters and an ``ESC t n`` switch is sent only when the page
changes. A fresh encoder per receipt (sharing only the character tables) makes the bytes depend
on nothing but the receipt. Before that, text is made printable: typographic quotes and dashes
become ASCII, combining accents are composed (NFC), control characters (an ``ESC`` hidden in a
product name would be a printer command) and characters no page has become ``?``, so one
character is always one column. python-escpos would otherwise send Chinese text as GB18030
bytes, which a Western printer prints as garbage.
"""

from __future__ import annotations

import functools
import logging
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from decimal import Decimal
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import barcode  # type: ignore[import-untyped]
import qrcode  # type: ignore[import-untyped]
from barcode.writer import ImageWriter  # type: ignore[import-untyped]
from escpos.capabilities import Profile
from escpos.magicencode import Encoder
from escpos.printer import Dummy

from edge_agent.printing.profiles import PrinterProfile
from shared.errors import OmnitillError
from shared.money import Money
from shared.receipt import Receipt, ReceiptLine, ReceiptSuggestion

__all__ = ["printable_text", "render_receipt", "tax_letters"]

log = logging.getLogger(__name__)

Align = Literal["left", "center", "right"]
Size = Literal["normal", "tall", "big"]

_TENDER_LABELS: Final = {"cash": "Cash", "card": "Card", "voucher": "Voucher", "other": "Other"}
_PUNCTUATION: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": ",",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2032": "'",
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2007": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\t": " ",
    }
)
#: python-escpos's character tables (128 characters per page), filled once per process and
#: shared by every receipt's encoder: they depend only on the code page.
_CHAR_MAPS: dict[str, dict[str, int]] = {}
#: Kick the drawer on pin 2 (the usual one) with python-escpos's default pulse.
DRAWER_PIN: Final = 2


# -- text ---------------------------------------------------------------------------------------


def printable_text(text: str, profile: PrinterProfile) -> str:
    """``text`` with one printable column per character on this profile's code pages."""
    if text.isascii() and text.isprintable():
        return text
    text = unicodedata.normalize("NFC", text.translate(_PUNCTUATION))
    out = []
    for char in text:
        if char.isascii():
            out.append(char if char.isprintable() else "?")
        elif not char.isprintable():
            category = unicodedata.category(char)
            if category[0] == "Z":  # other spaces and line separators
                out.append(" ")
            elif category != "Cf":  # zero-width and formatting characters take no column
                out.append("?")
        elif _encodable(char, profile.code_pages):
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _encodable(char: str, code_pages: tuple[tuple[int, str], ...]) -> bool:
    encoder = _encoder(code_pages)
    return any(encoder.can_encode(name, char) for _, name in code_pages)


def _encoder(code_pages: tuple[tuple[int, str], ...]) -> Any:
    """python-escpos's encoder for these pages (``ESC t`` number, name), with shared tables."""
    encoder = Encoder({name: number for number, name in code_pages})
    encoder.available_characters = _CHAR_MAPS
    return encoder


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _two_columns(left: str, right: str, width: int, indent: str = "") -> list[str]:
    """``left`` wrapped, with ``right`` right-aligned on its last row."""
    room = width - len(right) - 1
    if room < width // 3:  # a long right part gets a row of its own
        return [
            *textwrap.wrap(left, width, subsequent_indent=indent, break_on_hyphens=False),
            *(row.rjust(width) for row in _wrap(right, width)),
        ]
    rows = textwrap.wrap(left, room, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return [*rows[:-1], rows[-1].ljust(room) + " " + right]


def _rate_text(rate: Decimal) -> str:
    text = format(rate.normalize(), "f")
    return f"{text}%"


def tax_letters(receipt: Receipt) -> dict[Decimal, str]:
    """The letter marking each tax rate on the receipt's lines: A, B, C... in breakdown order."""
    rates = [row.rate for row in receipt.tax_breakdown]
    for line in receipt.lines:
        if line.tax_rate not in rates:
            rates.append(line.tax_rate)
    return {rate: chr(ord("A") + i) if i < 26 else "?" for i, rate in enumerate(rates)}


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown store time zone %r: receipts show UTC", name)
        return UTC


@functools.lru_cache(maxsize=64)
def _decimal_comma(locale: str) -> bool:
    return "," in Money(1, "EUR").format(locale)


# -- layout -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    align: Align = "left"
    bold: bool = False
    size: Size = "normal"


_NORMAL: Final = _Style()


@dataclass(frozen=True, slots=True)
class _Text:
    text: str  # whole rows, each ending in "\n"
    style: _Style


@dataclass(frozen=True, slots=True)
class _Qr:
    data: str


@dataclass(frozen=True, slots=True)
class _Barcode:
    data: str


_Item = _Text | _Qr | _Barcode


class _Layout:
    """The receipt as styled rows, QR codes and barcodes, before any byte is written."""

    def __init__(self, receipt: Receipt, profile: PrinterProfile, names: Mapping[str, str]):
        self.receipt = receipt
        self.profile = profile
        self.width = profile.columns
        self.items: list[_Item] = []
        self.names = names
        self.letters = tax_letters(receipt)
        self._decimal_comma = _decimal_comma(receipt.store.locale)

    # primitives

    def rows(self, rows: Sequence[str], style: _Style = _NORMAL) -> None:
        self.items.append(_Text("".join(f"{row}\n" for row in rows), style))

    def pair(self, left: str, right: str, style: _Style = _NORMAL, indent: str = "") -> None:
        self.rows(_two_columns(self.clean(left), self.clean(right), self.width, indent), style)

    def centred(self, text: str, style: _Style = _NORMAL) -> None:
        width = self.width // 2 if style.size == "big" else self.width
        self.rows(_wrap(self.clean(text), width), _Style("center", style.bold, style.size))

    def rule(self) -> None:
        self.rows(["-" * self.width])

    def blank(self) -> None:
        self.rows([""])

    def clean(self, text: str) -> str:
        return printable_text(text, self.profile)

    def money(self, amount: int) -> str:
        try:
            return Money(amount, self.receipt.currency).format(self.receipt.store.locale)
        except OmnitillError:
            return f"{amount} {self.receipt.currency}"

    def number(self, amount: int) -> str:
        """An amount without its currency symbol, for the tax table's narrow columns."""
        try:
            text = format(Money(amount, self.receipt.currency).to_decimal(), "f")
        except OmnitillError:
            return str(amount)
        return text.replace(".", ",") if self._decimal_comma else text

    # sections

    def build(self) -> list[_Item]:
        r = self.receipt
        big = _Style("center", True, "big")
        if r.copy_:
            self.centred("COPY", big)
            self.blank()
        self.centred(r.store.name, _Style("center", True, "tall"))
        if r.store.city:
            self.centred(r.store.city)
        if r.kind == "return":
            self.blank()
            self.centred("REFUND", big)
        self.blank()
        self.header()
        self.rule()
        for line in r.lines:
            self.line(line)
        self.rule()
        self.totals()
        self.tax_table()
        self.customer()
        self.suggestions()
        self.codes()
        if r.copy_:
            self.blank()
            self.centred("COPY", big)
        return self.items

    def header(self) -> None:
        r = self.receipt
        local = r.created_at.astimezone(_zone(r.store.timezone))
        self.pair("Receipt", r.receipt_number)
        self.pair("Date", local.strftime("%Y-%m-%d %H:%M"))
        self.pair("Till", r.till_id)
        self.pair("Cashier", r.cashier_id)
        if r.kind == "return" and r.original_receipt_number:
            self.pair("Refund of receipt", r.original_receipt_number)

    def line(self, line: ReceiptLine) -> None:
        letter = self.letters.get(line.tax_rate, "?")
        gross = line.amount_minor + line.discount_minor
        amount = f"{self.money(gross)} {letter}"
        if line.weight_g is not None:
            kilos = format(Decimal(line.weight_g) / 1000, ".3f")
            detail = f"{kilos} kg x {self.money(line.unit_price_minor)}/kg"
        elif line.quantity != 1:
            detail = f"{line.quantity} x {self.money(line.unit_price_minor)}"
        else:
            detail = ""
        if detail:
            self.rows(_wrap(self.clean(line.name), self.width))
            self.pair(f"  {detail}", amount, indent="  ")
        else:
            self.pair(line.name, amount, indent="  ")
        if line.discount_minor:
            reasons = ", ".join(dict.fromkeys(line.discount_reasons)) or "Discount"
            self.pair(f"  {reasons}", f"{self.money(-line.discount_minor)}  ", indent="  ")

    def totals(self) -> None:
        r = self.receipt
        refund = r.kind == "return"
        if r.subtotal_minor != r.total_minor:
            self.pair("Subtotal", self.money(r.subtotal_minor))
            self.pair("Tax", self.money(r.tax_minor))
        self.pair("REFUND" if refund else "TOTAL", self.money(r.total_minor), _Style("left", True))
        for tender in r.tenders:
            label = _TENDER_LABELS.get(tender.kind, tender.kind.title())
            self.pair(f"{label} refunded" if refund else label, self.money(tender.amount_minor))
            if tender.reference:
                self.rows(_wrap(self.clean(f"  Ref {tender.reference}"), self.width))
        if r.change_minor:
            self.pair("Change", self.money(r.change_minor))

    def tax_table(self) -> None:
        r = self.receipt
        if not r.tax_breakdown:
            return
        self.blank()
        labels = [f"{self.letters[row.rate]} {_rate_text(row.rate)}" for row in r.tax_breakdown]
        cells = [
            (self.number(row.net_minor), self.number(row.tax_minor), self.number(row.gross_minor))
            for row in r.tax_breakdown
        ]
        first = max(len("Rate"), *(len(label) for label in labels))
        column = (self.width - first) // 3
        widest = max(len(text) for row in cells for text in row)
        if widest + 1 > column:  # too narrow for a table: one block per rate
            for label, (net, tax, gross) in zip(labels, cells, strict=True):
                self.rows([label])
                self.pair("  Net", net)
                self.pair("  Tax", tax)
                self.pair("  Gross", gross)
            return
        self.rows(
            [
                "Rate".ljust(first)
                + "Net".rjust(column)
                + "Tax".rjust(column)
                + "Gross".rjust(column),
                *(
                    label.ljust(first) + "".join(text.rjust(column) for text in row)
                    for label, row in zip(labels, cells, strict=True)
                ),
            ]
        )

    def customer(self) -> None:
        r = self.receipt
        if r.customer_name is None and r.loyalty_points is None and not r.loyalty_points_earned:
            return
        self.rule()
        if r.customer_name:
            self.pair("Customer", r.customer_name)
        if r.loyalty_points_earned:
            self.pair("Points this visit", f"+{r.loyalty_points_earned}")
        if r.loyalty_points is not None:
            # The card's points as the till knew them, plus what this sale earns.
            self.pair("Points balance", str(r.loyalty_points + r.loyalty_points_earned))

    def suggestions(self) -> None:
        r = self.receipt
        if not r.suggestions:
            return
        self.rule()
        groups: dict[str | None, list[ReceiptSuggestion]] = {}
        for suggestion in r.suggestions[:3]:
            groups.setdefault(self.because_of(suggestion), []).append(suggestion)
        for index, (item, found) in enumerate(groups.items()):
            if index:
                self.blank()
            title = (
                f"Customers who bought {item} also bought:"
                if item
                else "Customers who bought your items also bought:"
            )
            self.rows(_wrap(self.clean(title), self.width), _Style("left", True))
            for suggestion in found:
                self.pair(suggestion.name, self.money(suggestion.price_minor), indent="  ")

    def because_of(self, suggestion: ReceiptSuggestion) -> str | None:
        key = suggestion.because_of
        if key is None:
            return None
        name = self.names.get(key)
        if name is not None:
            return name
        # ``because_of`` is a basket SKU; a receipt made elsewhere may carry the name itself.
        if any(line.name == key for line in self.receipt.lines):
            return key
        return None

    def codes(self) -> None:
        r = self.receipt
        if r.receipt_url:
            self.blank()
            self.centred("Your receipt online:")
            self.items.append(_Qr(r.receipt_url))
        if r.kind == "sale":
            self.blank()
            self.items.append(_Barcode(f"R{r.receipt_number}"))
        self.blank()
        self.centred("Thank you!")


# -- bytes --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _escpos_profile(profile: PrinterProfile) -> Any:
    features = {
        "barcodeA": profile.native_barcode,
        "barcodeB": profile.native_barcode,
        "bitImageRaster": True,
        "bitImageColumn": False,
        "graphics": False,
        "highDensity": True,
        "paperFullCut": profile.cut,
        "paperPartCut": False,
        "pulseStandard": True,
        "pulseBel": False,
        "qrCode": profile.native_qr,
        "pdf417Code": False,
        "starCommands": False,
    }
    data = {
        "name": f"Omnitill {profile.name}",
        "vendor": "Omnitill",
        "codePages": {str(number): name for number, name in profile.code_pages},
        "colors": {"0": "black"},
        "features": features,
        "fonts": {"0": {"columns": profile.columns, "name": "Font A"}},
        "media": {
            "dpi": profile.dpi,
            "width": {"mm": profile.paper_mm, "pixels": profile.dots},
        },
    }
    escpos_profile = Profile(columns=profile.columns, features=features)
    # python-escpos reads code pages, fonts and media from ``profile_data``.
    escpos_profile.profile_data = data
    return escpos_profile


def _sizes(size: Size) -> dict[str, bool]:
    if size == "big":
        return {"double_width": True, "double_height": True}
    if size == "tall":
        return {"double_height": True}
    return {"normal_textsize": True}


class _Writer:
    """Drives the ``Dummy`` printer, sending style changes only when the style changes."""

    def __init__(self, profile: PrinterProfile) -> None:
        self.profile = profile
        self.printer = Dummy(
            profile=_escpos_profile(profile),
            magic_encode_args={"encoder": _encoder(profile.code_pages), "defaultsymbol": "?"},
        )
        self.style = _NORMAL
        self.pending: list[str] = []

    def style_to(self, style: _Style) -> None:
        if style == self.style:
            return
        self.flush()
        old = self.style
        changes: dict[str, Any] = {}
        if style.size != old.size:
            changes.update(_sizes(style.size))
            # ESC ! (the size command) also clears bold: say bold again.
            changes["bold"] = style.bold
        elif style.bold != old.bold:
            changes["bold"] = style.bold
        if style.align != old.align:
            changes["align"] = style.align
        self.printer.set(**changes)
        self.style = style

    def text(self, text: str, style: _Style) -> None:
        self.style_to(style)
        self.pending.append(text)

    def flush(self) -> None:
        if self.pending:
            self.printer.text("".join(self.pending))
            self.pending.clear()

    def qr(self, data: str) -> None:
        self.flush()
        if self.profile.native_qr:
            # Native QR codes follow the justification (ESC a).
            self.style_to(_Style("center"))
            self.printer.qr(data, size=self.profile.qr_module, native=True)
            self.text("\n", _Style("center"))
            return
        self.style_to(_NORMAL)
        self.printer.qr(
            data,
            size=_raster_qr_module(data, self.profile),
            native=False,
            image_arguments={"impl": "bitImageRaster", "center": True},
        )

    def barcode(self, data: str) -> None:
        self.flush()
        width = _native_barcode_width(data, self.profile)
        if width is not None:
            self.style_to(_Style("center"))
            # _hw_barcode is what Escpos.barcode() calls for a printer-drawn barcode; calling
            # barcode() itself would print "Using hardware barcode renderer" on our stdout.
            self.printer._hw_barcode(
                "{B" + data,
                "CODE128",
                height=self.profile.barcode_height,
                width=width,
                pos="BELOW",
                font="A",
                align_ct=True,
                function_type="B",
                check=True,
            )
            self.text("\n", _Style("center"))
            return
        self.style_to(_NORMAL)
        self.printer.image(_barcode_image(data, self.profile), impl="bitImageRaster", center=True)
        self.text(f"{data}\n", _Style("center"))

    def bytes(self) -> bytes:
        self.flush()
        output: bytes = self.printer.output
        return output


def _native_barcode_width(data: str, profile: PrinterProfile) -> int | None:
    """Dots per module for a printer-drawn CODE128 (code set B) that fits the paper, or None."""
    if not profile.native_barcode:
        return None
    modules = 11 * (len(data) + 2) + 13  # start, data, check digit; the stop bar is 13
    for width in (3, 2):
        if modules * width <= profile.dots:
            return width
    return None


@functools.lru_cache(maxsize=256)
def _barcode_image(data: str, profile: PrinterProfile) -> Any:
    """CODE128 drawn by python-barcode (which packs digits in code set C), 2 dots per module."""
    # At 25.4 dpi one millimetre is one dot, so every bar is a whole number of dots.
    code = barcode.get_barcode_class("code128")(data, writer=ImageWriter())
    return code.render(
        writer_options={
            "module_width": 2 if len(code.build()[0]) * 2 <= profile.dots else 1,
            "module_height": profile.barcode_height,
            "quiet_zone": 0,
            "write_text": False,
            "dpi": 25.4,
        }
    )


@functools.lru_cache(maxsize=256)
def _raster_qr_module(data: str, profile: PrinterProfile) -> int:
    """The largest module size (up to the profile's) at which the QR image fits the paper."""
    # python-escpos draws it with error correction L (its default) and a one-module border.
    code = qrcode.QRCode(
        version=None, box_size=1, border=1, error_correction=qrcode.constants.ERROR_CORRECT_L
    )
    code.add_data(data)
    code.make(fit=True)
    modules = int(code.modules_count) + 2
    return max(1, min(profile.qr_module, profile.dots // modules))


def render_receipt(
    receipt: Receipt,
    profile: PrinterProfile,
    *,
    item_names: Mapping[str, str] | None = None,
    kick_drawer: bool | None = None,
    cut: bool = True,
) -> bytes:
    """The ESC/POS bytes of ``receipt`` for a printer with ``profile``.

    ``item_names`` maps basket SKUs to names for the "Customers who bought <item>" headings
    (a suggestion's ``because_of`` is a SKU). ``kick_drawer`` defaults to: a tender is cash
    and the receipt is not a copy.
    """
    if kick_drawer is None:
        kick_drawer = not receipt.copy_ and any(t.kind == "cash" for t in receipt.tenders)
    items = _Layout(receipt, profile, item_names or {}).build()
    writer = _Writer(profile)
    writer.printer.hw("INIT")
    if kick_drawer:
        writer.printer.cashdraw(DRAWER_PIN)
    for item in items:
        if isinstance(item, _Text):
            writer.text(item.text, item.style)
        elif isinstance(item, _Qr):
            writer.qr(item.data)
        else:
            writer.barcode(item.data)
    writer.style_to(_NORMAL)
    writer.flush()
    if cut:
        writer.printer.cut()
    return writer.bytes()
