"""Decode an ESC/POS byte stream into the receipts a customer would hold in their hand.

This is the printer half of the protocol, written from the Epson *ESC/POS Application
Programming Guide* (TM-T88/TM-T20 family) rather than from any one driver, so it reads what
python-escpos, our own renderer or any other till software sends. It is pure: bytes in, decoded
receipts out; the TCP server around it is :mod:`hardware_sim.printer`.

Rules the decoder follows (each is how an Epson TM printer behaves in standard mode):

* **Text.** Bytes ``0x20``-``0xFF`` are characters. Bytes ``0x80``-``0xFF`` are decoded with the
  code page selected by ``ESC t n`` (Epson numbering: 0 = CP437, 2 = CP850, 16 = CP1252,
  18 = CP852, 19 = CP858, 40 = ISO-8859-15, and the rest of :data:`CODE_PAGES`). ``ESC @``
  selects page 0 again. A page without a Python codec decodes high bytes as U+FFFD.
* **Lines.** ``LF`` prints the line buffer; ``ESC d n`` prints it and feeds ``n`` lines in all
  (so ``n - 1`` blank lines follow a non-empty line); ``CR`` is ignored (auto line feed off, the
  factory setting of network printers). A line longer than the print area wraps where the next
  character no longer fits, the way the print head does; ``HT`` moves to the next tab stop
  (every 8 characters unless ``ESC D`` set others), ``ESC $``/``ESC \\`` move right.
* **Styles.** ``ESC !`` sets font, bold, double height, double width and underline at once;
  ``ESC E``/``ESC G`` bold, ``ESC -`` underline, ``GS !`` the size multipliers (1-8 each way),
  ``GS B`` white-on-black, ``ESC M`` the font, ``ESC {`` upside down. Styles apply to the
  characters that follow. ``ESC a`` (alignment) takes effect from the next line when the
  current line already holds characters, as the Epson guide says it is only honoured at the
  start of a line.
* **Codes.** ``GS ( k`` stores QR (and PDF417, DataMatrix, ...) data and prints it, with model,
  module size and error correction; ``GS k`` prints a 1-D barcode whose payload is decoded
  (CODE128 code sets ``{A``/``{B``/``{C`` and ``{{``, EAN/UPC check digits added by the printer,
  CODE39 start/stop stripped). ``GS v 0``, ``GS ( L``/``GS 8 L`` and ``ESC *`` print raster
  images; an image that is a clean QR code (python-escpos prints QR codes as images unless told
  ``native=True``) is read back to its payload by :func:`qr_payload_from_image`.
* **Paper and drawer.** ``GS V`` (and the legacy ``ESC i``/``ESC m``) cuts: everything since the
  previous cut is one receipt. ``ESC p`` and the real-time ``DLE DC4 1`` kick the cash drawer.
* **Status.** ``DLE EOT n``, ``GS r n`` and ``GS I n`` ask the printer to answer; the decoder
  reports them as :class:`StatusRequest` events in stream order and the server answers them.
  Because commands are parsed with their lengths, a ``10 04`` inside image or QR data is data,
  not a status request.
* **Garbage.** A command this decoder does not know is skipped as the two bytes of its prefix;
  a command whose declared length is impossible is skipped as its header. Nothing in a byte
  stream can make :meth:`EscPosDecoder.feed` raise.
"""

from __future__ import annotations

import codecs
import importlib
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Literal, TypeAlias

__all__ = [
    "CODE_PAGES",
    "Barcode",
    "Code2D",
    "DecodedReceipt",
    "DecoderEvent",
    "DrawerKick",
    "Element",
    "EscPosDecoder",
    "RasterImage",
    "ReceiptCut",
    "Span",
    "StatusRequest",
    "TextLine",
    "TextStyle",
    "code128_payload_from_image",
    "decode_receipts",
    "qr_payload_from_image",
    "render_text",
]

logger = logging.getLogger(__name__)

Align: TypeAlias = Literal["left", "center", "right"]

NUL, LF, HT, FF, CR = 0x00, 0x0A, 0x09, 0x0C, 0x0D
DLE, ESC, FS, GS = 0x10, 0x1B, 0x1C, 0x1D

#: Paper widths in dots at 203 dpi: the print area of 58 mm and 80 mm rolls.
DOTS_58MM = 384
DOTS_80MM = 576

#: ``ESC t n`` -> (name printed on the rendering, Python codec or None), Epson numbering.
CODE_PAGES: dict[int, tuple[str, str | None]] = {
    0: ("CP437", "cp437"),
    1: ("Katakana", "cp932"),
    2: ("CP850", "cp850"),
    3: ("CP860", "cp860"),
    4: ("CP863", "cp863"),
    5: ("CP865", "cp865"),
    11: ("CP851", None),
    12: ("CP853", None),
    13: ("CP857", "cp857"),
    14: ("CP737", "cp737"),
    15: ("ISO-8859-7", "iso8859_7"),
    16: ("CP1252", "cp1252"),
    17: ("CP866", "cp866"),
    18: ("CP852", "cp852"),
    19: ("CP858", "cp858"),
    21: ("CP874", "cp874"),
    32: ("CP720", "cp720"),
    33: ("CP775", "cp775"),
    34: ("CP855", "cp855"),
    35: ("CP861", "cp861"),
    36: ("CP862", "cp862"),
    37: ("CP864", "cp864"),
    38: ("CP869", "cp869"),
    39: ("ISO-8859-2", "iso8859_2"),
    40: ("ISO-8859-15", "iso8859_15"),
    44: ("CP1125", "cp1125"),
    45: ("CP1250", "cp1250"),
    46: ("CP1251", "cp1251"),
    47: ("CP1253", "cp1253"),
    48: ("CP1254", "cp1254"),
    49: ("CP1255", "cp1255"),
    50: ("CP1256", "cp1256"),
    51: ("CP1257", "cp1257"),
    52: ("CP1258", "cp1258"),
    53: ("KZ-1048", "kz1048"),
}

#: Character cell width in dots of fonts A, B and C (Epson TM: 12x24, 9x17, 9x17).
FONT_WIDTH = {"A": 12, "B": 9, "C": 9}
DEFAULT_TAB_CHARS = 8

#: ``GS k m`` symbologies: function A (``m`` 0-6, data ends with NUL) and B (``m`` 65-79).
BARCODE_SYMBOLOGIES: dict[int, str] = {
    0: "UPC-A",
    1: "UPC-E",
    2: "EAN13",
    3: "EAN8",
    4: "CODE39",
    5: "ITF",
    6: "CODABAR",
    65: "UPC-A",
    66: "UPC-E",
    67: "EAN13",
    68: "EAN8",
    69: "CODE39",
    70: "ITF",
    71: "CODABAR",
    72: "CODE93",
    73: "CODE128",
    74: "GS1-128",
    75: "GS1 DATABAR OMNIDIRECTIONAL",
    76: "GS1 DATABAR TRUNCATED",
    77: "GS1 DATABAR LIMITED",
    78: "GS1 DATABAR EXPANDED",
    79: "CODE128 AUTO",
}

#: ``GS ( k`` symbol types (``cn``).
SYMBOLS_2D = {
    48: "PDF417",
    49: "QR",
    50: "MaxiCode",
    51: "GS1 DataBar",
    52: "Composite",
    53: "Aztec",
    54: "DataMatrix",
}
QR_ERROR_LEVELS = {48: "L", 49: "M", 50: "Q", 51: "H"}
HRI_POSITIONS = {0: "none", 1: "above", 2: "below", 3: "both"}

# Limits that keep a hostile or corrupt stream from making us allocate without bound; they are
# at or above what any Epson TM model accepts.
MAX_RASTER_WIDTH_BYTES = 255
MAX_RASTER_HEIGHT = 4095
MAX_GRAPHICS_BYTES = 4 * 1024 * 1024
MAX_BARCODE_A_DATA = 255


# ---------------------------------------------------------------------------------------------
# The decoded receipt


@dataclass(frozen=True, slots=True)
class TextStyle:
    """How characters are printed; ``width``/``height`` are the ``GS !`` multipliers (1-8)."""

    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1
    inverse: bool = False
    font: str = "A"
    upside_down: bool = False

    @property
    def double_width(self) -> bool:
        return self.width >= 2

    @property
    def double_height(self) -> bool:
        return self.height >= 2

    @property
    def char_dots(self) -> int:
        """Width of one character cell in dots."""
        return FONT_WIDTH.get(self.font, 12) * self.width


@dataclass(frozen=True, slots=True)
class Span:
    """A run of characters printed with one style."""

    text: str
    style: TextStyle


@dataclass(frozen=True, slots=True)
class TextLine:
    """One printed line: its spans, its alignment and its width in dots."""

    spans: tuple[Span, ...] = ()
    align: Align = "left"
    width_dots: int = 0

    @property
    def text(self) -> str:
        return "".join(span.text for span in self.spans)

    @property
    def style(self) -> TextStyle:
        """The style of the first visible character (the default style on a blank line)."""
        for span in self.spans:
            if span.text.strip():
                return span.style
        return self.spans[0].style if self.spans else TextStyle()

    @property
    def bold(self) -> bool:
        return self.style.bold

    @property
    def height_dots(self) -> int:
        return max((24 * span.style.height for span in self.spans), default=24)


@dataclass(frozen=True, slots=True)
class Code2D:
    """A 2-D symbol printed by the printer itself (``GS ( k``); ``payload`` is ``data`` as text."""

    symbology: str
    data: bytes
    model: int = 2
    module_size: int = 3
    error_correction: str = "L"
    align: Align = "left"

    @property
    def payload(self) -> str:
        return _bytes_as_text(self.data)


@dataclass(frozen=True, slots=True)
class Barcode:
    """A 1-D barcode (``GS k``). ``payload`` is what a scanner reads; ``data`` what was sent."""

    symbology: str
    data: bytes
    payload: str
    valid: bool
    height: int = 162
    module_width: int = 3
    hri: str = "none"
    align: Align = "left"


@dataclass(frozen=True, slots=True)
class RasterImage:
    """A bit image: ``data`` holds ``height`` rows of ``width_bytes`` bytes, MSB left, 1 = black.

    ``scale_x``/``scale_y`` are the printer's enlargement; ``qr_payload`` is set when the image is a
    QR code that :func:`qr_payload_from_image` could read, ``barcode_payload`` when it is a
    CODE128 barcode that :func:`code128_payload_from_image` could read.
    """

    width: int
    height: int
    data: bytes = field(repr=False)
    scale_x: int = 1
    scale_y: int = 1
    align: Align = "left"
    source: str = "GS v 0"
    qr_payload: str | None = None
    barcode_payload: str | None = None

    @property
    def width_bytes(self) -> int:
        return (self.width + 7) // 8

    def pixel(self, x: int, y: int) -> bool:
        """True where the printer burns a dot."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return False
        byte = self.data[y * self.width_bytes + x // 8]
        return bool(byte & (0x80 >> (x % 8)))

    def rows(self) -> list[list[bool]]:
        return [[self.pixel(x, y) for x in range(self.width)] for y in range(self.height)]


@dataclass(frozen=True, slots=True)
class DrawerKick:
    """A pulse on the drawer kick-out connector: pin 2 or 5, on/off times in milliseconds."""

    pin: int
    on_ms: int
    off_ms: int
    realtime: bool = False


Element: TypeAlias = TextLine | Code2D | Barcode | RasterImage | DrawerKick


@dataclass(frozen=True, slots=True)
class DecodedReceipt:
    """Everything printed between two cuts, in paper order.

    ``cut`` is ``"full"`` or ``"partial"``, or None when the stream ended without a cut.
    """

    elements: tuple[Element, ...]
    cut: Literal["full", "partial"] | None
    code_pages: tuple[str, ...] = ()
    width_dots: int = DOTS_80MM

    @property
    def lines(self) -> list[TextLine]:
        return [e for e in self.elements if isinstance(e, TextLine)]

    @property
    def text_lines(self) -> list[str]:
        """The text of every printed line, blank lines included, without alignment padding."""
        return [line.text for line in self.lines]

    @property
    def text(self) -> str:
        return "\n".join(self.text_lines)

    @property
    def qr_codes(self) -> list[Code2D]:
        return [e for e in self.elements if isinstance(e, Code2D) and e.symbology == "QR"]

    @property
    def codes_2d(self) -> list[Code2D]:
        return [e for e in self.elements if isinstance(e, Code2D)]

    @property
    def qr_payloads(self) -> list[str]:
        """Payloads of every QR code, printed natively or as a raster image, in paper order."""
        found: list[str] = []
        for e in self.elements:
            if isinstance(e, Code2D) and e.symbology == "QR":
                found.append(e.payload)
            elif isinstance(e, RasterImage) and e.qr_payload is not None:
                found.append(e.qr_payload)
        return found

    @property
    def barcodes(self) -> list[Barcode]:
        return [e for e in self.elements if isinstance(e, Barcode)]

    @property
    def barcode_payloads(self) -> list[str]:
        """Payloads of every barcode, printed natively or as a CODE128 image, in paper order."""
        found: list[str] = []
        for e in self.elements:
            if isinstance(e, Barcode):
                found.append(e.payload)
            elif isinstance(e, RasterImage) and e.barcode_payload is not None:
                found.append(e.barcode_payload)
        return found

    @property
    def images(self) -> list[RasterImage]:
        return [e for e in self.elements if isinstance(e, RasterImage)]

    @property
    def drawer_kicks(self) -> list[DrawerKick]:
        return [e for e in self.elements if isinstance(e, DrawerKick)]

    @property
    def is_blank(self) -> bool:
        """True when nothing would show on paper (feeds, a lone cut or a drawer kick)."""
        for e in self.elements:
            if isinstance(e, TextLine):
                if e.text.strip():
                    return False
            elif not isinstance(e, DrawerKick):
                return False
        return True


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """A command that asks the printer to answer: ``DLE EOT n``, ``GS r n`` or ``GS I n``."""

    command: Literal["DLE EOT", "GS r", "GS I"]
    n: int


@dataclass(frozen=True, slots=True)
class ReceiptCut:
    """The paper was cut: ``receipt`` is complete."""

    receipt: DecodedReceipt


DecoderEvent: TypeAlias = StatusRequest | ReceiptCut


# ---------------------------------------------------------------------------------------------
# Decoding


class _Incomplete(Exception):
    """The command at the cursor needs more bytes; ``need`` is the total length if known."""

    def __init__(self, need: int | None = None) -> None:
        super().__init__()
        self.need = need


@dataclass(slots=True)
class _PrinterState:
    """Modes ``ESC @`` resets."""

    bold: bool = False
    double_strike: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1
    inverse: bool = False
    font: str = "A"
    upside_down: bool = False
    align: Align = "left"
    code_page: int = 0
    char_spacing: int = 0
    tab_stops: tuple[int, ...] = ()  # in dots; empty means every 8 characters
    left_margin: int = 0
    area_width: int | None = None
    barcode_height: int = 162
    barcode_width: int = 3
    hri: int = 0
    qr_model: int = 2
    qr_size: int = 3
    qr_error: str = "L"
    stored_2d: dict[int, bytes] = field(default_factory=dict)
    stored_graphics: RasterImage | None = None

    def style(self) -> TextStyle:
        return TextStyle(
            bold=self.bold or self.double_strike,
            underline=self.underline,
            width=self.width,
            height=self.height,
            inverse=self.inverse,
            font=self.font,
            upside_down=self.upside_down,
        )


_ALIGNMENTS: dict[int, Align] = {0: "left", 1: "center", 2: "right"}


def _align_from(n: int) -> Align | None:
    return _ALIGNMENTS.get(n - 48 if n >= 48 else n)


def _bytes_as_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@cache
def _decoding_table(page: int) -> str:
    """256 characters for ``charmap_decode``; bytes a page cannot show become U+FFFD."""
    codec = CODE_PAGES.get(page, ("", None))[1]
    chars: list[str] = []
    for b in range(256):
        if b < 0x80:
            chars.append(chr(b))
            continue
        char = "\ufffd"
        if codec is not None:
            try:
                decoded = bytes([b]).decode(codec)
            except UnicodeDecodeError:
                decoded = ""
            if len(decoded) == 1:
                char = decoded
        chars.append(char)
    return "".join(chars)


def _decode_text(data: bytes, page: int) -> str:
    return codecs.charmap_decode(data, "strict", _decoding_table(page))[0]


class EscPosDecoder:
    """Incremental decoder for one connection (a printer's receive buffer).

    :meth:`feed` takes bytes as they arrive and returns the events they complete, in stream
    order: status requests to answer and receipts finished by a cut. :meth:`finish` ends the
    stream and returns what was printed after the last cut, if anything.
    """

    def __init__(self, *, width_dots: int = DOTS_80MM) -> None:
        self.width_dots = width_dots
        self._buf = bytearray()
        self._need = 0
        self._state = _PrinterState()
        self._events: list[DecoderEvent] = []
        self._elements: list[Element] = []
        self._spans: list[Span] = []
        self._line_x = 0
        self._line_align: Align = "left"
        self._line_has_image = False
        self._pages_used: list[str] = []

    # -- public -------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[DecoderEvent]:
        """Consume ``data``; return the status requests and cuts it completes."""
        self._buf += data
        if len(self._buf) < self._need:
            return []
        self._need = 0
        buf = bytes(self._buf)
        i = 0
        while i < len(buf):
            try:
                i = self._step(buf, i)
            except _Incomplete as incomplete:
                # ``need`` counts from the start of ``buf``; what stays starts at ``i``.
                self._need = (incomplete.need - i) if incomplete.need else 0
                break
        del self._buf[:i]
        events, self._events = self._events, []
        return events

    def finish(self) -> DecodedReceipt | None:
        """End of stream: drop an unfinished command, return the uncut tail if it holds anything."""
        self._buf.clear()
        self._need = 0
        self._end_line(only_if_content=True)
        if not self._elements:
            return None
        return self._take_receipt(cut=None)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def _print_width(self) -> int:
        usable = self.width_dots - min(self._state.left_margin, self.width_dots - 12)
        if self._state.area_width:
            usable = min(usable, self._state.area_width)
        return max(usable, 12)

    def _take_receipt(self, cut: Literal["full", "partial"] | None) -> DecodedReceipt:
        elements = tuple(_with_qr_payload(e) for e in self._elements)
        receipt = DecodedReceipt(
            elements=elements,
            cut=cut,
            code_pages=tuple(dict.fromkeys(self._pages_used)),
            width_dots=self.width_dots,
        )
        self._elements = []
        self._pages_used = []
        return receipt

    def _end_line(self, *, only_if_content: bool = False) -> None:
        if self._line_has_image and not self._spans:
            self._line_has_image = False
            return
        if only_if_content and not self._spans:
            return
        self._elements.append(
            TextLine(spans=tuple(self._spans), align=self._line_align, width_dots=self._line_x)
        )
        self._spans = []
        self._line_x = 0
        self._line_has_image = False
        self._line_align = self._state.align

    def _add_block(self, element: Element) -> None:
        """A code or image starts on a fresh line, like the printer's own line buffer does."""
        self._end_line(only_if_content=True)
        self._line_has_image = False
        self._elements.append(element)
        self._line_align = self._state.align

    def _append_chars(self, text: str, style: TextStyle) -> None:
        if not text:
            return
        if self._spans and self._spans[-1].style == style:
            self._spans[-1] = Span(self._spans[-1].text + text, style)
        else:
            self._spans.append(Span(text, style))

    def _add_text(self, text: str) -> None:
        style = self._state.style()
        cell = style.char_dots + self._state.char_spacing * style.width
        while text:
            room = (self._print_width - self._line_x) // cell
            if room <= 0:
                if self._line_x == 0:
                    room = 1  # a character wider than the paper still prints, clipped
                else:
                    self._end_line()
                    continue
            chunk, text = text[:room], text[room:]
            if not self._spans:
                self._line_align = self._state.align
            self._append_chars(chunk, style)
            self._line_x += cell * len(chunk)

    def _move_to(self, x: int) -> None:
        """Pad with spaces up to dot position ``x`` (``HT``, ``ESC $``, ``ESC \\``)."""
        x = min(x, self._print_width)
        if x <= self._line_x:
            return
        base = FONT_WIDTH.get(self._state.font, 12)
        count = (x - self._line_x) // base
        if not self._spans:
            self._line_align = self._state.align
        self._append_chars(" " * count, replace(self._state.style(), width=1, underline=0))
        self._line_x = x

    def _select_page(self, n: int) -> None:
        self._state.code_page = n
        self._pages_used.append(CODE_PAGES.get(n, (f"page {n}", None))[0])

    def _cut(self, mode: Literal["full", "partial"]) -> None:
        self._end_line(only_if_content=True)
        self._events.append(ReceiptCut(self._take_receipt(cut=mode)))

    def _kick(self, pin_byte: int, t1: int, t2: int, *, realtime: bool = False) -> None:
        pin = 5 if pin_byte in (1, 49) else 2
        self._elements.append(DrawerKick(pin=pin, on_ms=t1 * 2, off_ms=t2 * 2, realtime=realtime))

    # -- the command table ---------------------------------------------------------------------

    def _step(self, buf: bytes, i: int) -> int:
        b = buf[i]
        if b >= 0x20:
            j = i + 1
            n = len(buf)
            while j < n and buf[j] >= 0x20:
                j += 1
            self._add_text(_decode_text(buf[i:j], self._state.code_page))
            return j
        if b == LF:
            self._end_line()
            return i + 1
        if b == HT:
            self._tab()
            return i + 1
        if b == ESC:
            return self._esc(buf, i)
        if b == GS:
            return self._gs(buf, i)
        if b == DLE:
            return self._dle(buf, i)
        if b == FS:
            return self._fs(buf, i)
        # CR (auto line feed off), FF in standard mode, NUL, BEL, CAN and the other C0 controls
        # print nothing.
        return i + 1

    def _tab(self) -> None:
        base = FONT_WIDTH.get(self._state.font, 12)
        stops = self._state.tab_stops or tuple(
            range(base * DEFAULT_TAB_CHARS, self._print_width + 1, base * DEFAULT_TAB_CHARS)
        )
        for stop in stops:
            if stop > self._line_x:
                self._move_to(stop)
                return

    @staticmethod
    def _require(buf: bytes, i: int, length: int) -> None:
        if len(buf) < i + length:
            raise _Incomplete(i + length)

    def _esc(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 2)
        c = buf[i + 1]
        st = self._state
        if c == 0x40:  # ESC @ initialise: modes reset, the unprinted line is discarded
            self._state = _PrinterState()
            self._spans = []
            self._line_x = 0
            self._line_has_image = False
            self._line_align = "left"
            return i + 2
        if c in (0x69, 0x6D):  # ESC i / ESC m: legacy full / partial cut
            self._cut("full" if c == 0x69 else "partial")
            return i + 2
        if c in (0x32, 0x3C, 0x4C, 0x53):  # ESC 2, ESC <, ESC L, ESC S
            return i + 2
        if c == 0x70:  # ESC p m t1 t2: drawer kick
            self._require(buf, i, 5)
            self._end_line(only_if_content=True)
            self._kick(buf[i + 2], buf[i + 3], buf[i + 4])
            return i + 5
        if c == 0x2A:  # ESC * m nL nH d...: column bit image
            return self._column_image(buf, i)
        if c == 0x44:  # ESC D n1 ... nk NUL: tab positions
            return self._tab_positions(buf, i)
        if c == 0x26:  # ESC & y c1 c2 [x d1 ... d(y*x)]k: user-defined characters
            return self._user_chars(buf, i)
        if c in (0x24, 0x5C):  # ESC $ / ESC \ nL nH: absolute / relative position
            self._require(buf, i, 4)
            value = buf[i + 2] + 256 * buf[i + 3]
            if c == 0x24:
                self._move_to(value)
            elif value < 0x8000:
                self._move_to(self._line_x + value)
            return i + 4
        if c in (0x42, 0x63):  # ESC B n t (buzzer), ESC c x n (panel, paper sensors)
            self._require(buf, i, 4)
            return i + 4
        if c == 0x57:  # ESC W: print area in page mode
            self._require(buf, i, 10)
            return i + 10
        if c == 0x28:  # ESC ( x pL pH ...: beeper and friends
            self._require(buf, i, 5)
            return self._skip_counted(buf, i, 5, buf[i + 3] + 256 * buf[i + 4])
        # Every other ESC command this decoder knows takes exactly one parameter byte.
        self._require(buf, i, 3)
        n = buf[i + 2]
        if c == 0x21:  # ESC ! n: print mode
            st.font = "B" if n & 0x01 else "A"
            st.bold = bool(n & 0x08)
            st.height = 2 if n & 0x10 else 1
            st.width = 2 if n & 0x20 else 1
            st.underline = 1 if n & 0x80 else 0
        elif c == 0x45:  # ESC E n
            st.bold = bool(n & 1)
        elif c == 0x47:  # ESC G n: double strike prints like bold
            st.double_strike = bool(n & 1)
        elif c == 0x2D:  # ESC - n
            st.underline = n % 48 if n >= 48 else n
            if st.underline > 2:
                st.underline = 0
        elif c == 0x61:  # ESC a n
            align = _align_from(n)
            if align is not None:
                st.align = align
                if not self._spans:
                    self._line_align = align
        elif c == 0x4D:  # ESC M n
            st.font = {0: "A", 1: "B", 2: "C", 48: "A", 49: "B", 50: "C"}.get(n, st.font)
        elif c == 0x74:  # ESC t n
            self._select_page(n)
        elif c == 0x7B:  # ESC { n
            st.upside_down = bool(n & 1)
        elif c == 0x20:  # ESC SP n: right-side character spacing
            st.char_spacing = n
        elif c == 0x64:  # ESC d n: print and feed n lines
            if self._spans or self._line_has_image:
                self._end_line()
                n -= 1
            for _ in range(max(n, 0)):
                self._end_line()
        elif c == 0x4A:  # ESC J n: print and feed n dots
            self._end_line(only_if_content=True)
        elif c in (0x33, 0x41, 0x2B, 0x3D, 0x3F, 0x25, 0x52, 0x55, 0x56, 0x72, 0x65, 0x4B):
            pass  # line spacing, peripheral, user chars, international set, rotation, colour...
        elif c in (0x75, 0x76):
            pass  # ESC u / ESC v: obsolete status transmissions, answered by DLE EOT instead
        else:
            return i + 2  # unknown: skip the prefix and resync on the next byte
        return i + 3

    def _gs(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 2)
        c = buf[i + 1]
        st = self._state
        if c == 0x28:  # GS ( x pL pH ...
            self._require(buf, i, 5)
            size = buf[i + 3] + 256 * buf[i + 4]
            kind = buf[i + 2]
            if kind == 0x6B:  # GS ( k: 2-D codes
                return self._code_2d(buf, i, size)
            if kind == 0x4C:  # GS ( L: graphics
                return self._graphics(buf, i, 5, size)
            return self._skip_counted(buf, i, 5, size)
        if c == 0x38:  # GS 8 L p1 p2 p3 p4: graphics with a 4-byte length
            self._require(buf, i, 7)
            if buf[i + 2] != 0x4C:
                return i + 3
            size = int.from_bytes(buf[i + 3 : i + 7], "little")
            return self._graphics(buf, i, 7, size)
        if c == 0x56:  # GS V m [n]: cut
            self._require(buf, i, 3)
            m = buf[i + 2]
            partial = m in (1, 49, 66, 98, 104)
            length = 4 if m in (65, 66, 97, 98, 103, 104) else 3
            self._require(buf, i, length)
            self._cut("partial" if partial else "full")
            return i + length
        if c == 0x6B:  # GS k: barcode
            return self._barcode(buf, i)
        if c == 0x76:  # GS v 0: raster bit image
            return self._raster(buf, i)
        if c == 0x2A:  # GS * x y d...: define downloaded bit image
            self._require(buf, i, 4)
            return self._skip_counted(buf, i, 4, buf[i + 2] * buf[i + 3] * 8)
        if c in (0x4C, 0x57, 0x24, 0x5C, 0x50):  # GS L, GS W, GS $, GS \, GS P: two parameters
            self._require(buf, i, 4)
            value = buf[i + 2] + 256 * buf[i + 3]
            if c == 0x4C:
                st.left_margin = value
            elif c == 0x57:
                st.area_width = value or None
            return i + 4
        if c == 0x5E:  # GS ^ r t m: execute macro
            self._require(buf, i, 5)
            return i + 5
        if c in (0x3A,):  # GS : start/end macro definition
            return i + 2
        self._require(buf, i, 3)
        n = buf[i + 2]
        if c == 0x21:  # GS ! n: character size
            st.width = ((n >> 4) & 0x07) + 1
            st.height = (n & 0x07) + 1
        elif c == 0x42:  # GS B n
            st.inverse = bool(n & 1)
        elif c == 0x68:  # GS h n
            st.barcode_height = max(n, 1)
        elif c == 0x77:  # GS w n
            st.barcode_width = n if 1 <= n <= 6 else (n - 64 if 68 <= n <= 76 else st.barcode_width)
        elif c == 0x48:  # GS H n
            st.hri = n % 48 if n >= 48 else n
        elif c == 0x72:  # GS r n: transmit status
            self._events.append(StatusRequest("GS r", n))
        elif c == 0x49:  # GS I n: transmit printer ID
            self._events.append(StatusRequest("GS I", n))
        elif c in (0x66, 0x61, 0x62, 0x7C, 0x2F, 0x54, 0x63, 0x67, 0x7A, 0x51):
            pass  # HRI font, ASB, smoothing, density, print downloaded image, ...
        else:
            return i + 2
        return i + 3

    def _dle(self, buf: bytes, i: int) -> int:
        if len(buf) < i + 2:
            raise _Incomplete(i + 2)
        c = buf[i + 1]
        if c == 0x04:  # DLE EOT n [a]
            self._require(buf, i, 3)
            n = buf[i + 2]
            if n in (7, 8):
                self._require(buf, i, 4)
                self._events.append(StatusRequest("DLE EOT", n))
                return i + 4
            self._events.append(StatusRequest("DLE EOT", n))
            return i + 3
        if c == 0x05:  # DLE ENQ n: real-time request, no answer
            self._require(buf, i, 3)
            return i + 3
        if c == 0x14:  # DLE DC4 fn ...
            self._require(buf, i, 3)
            fn = buf[i + 2]
            if fn == 1:  # real-time drawer pulse: m t
                self._require(buf, i, 5)
                t = buf[i + 4]
                self._kick(buf[i + 3], t * 50, t * 50, realtime=True)
                return i + 5
            if fn in (2, 3):
                self._require(buf, i, 5)
                return i + 5
            if fn == 7:
                self._require(buf, i, 4)
                return i + 4
            if fn == 8:  # clear buffers: d1..d7
                self._require(buf, i, 10)
                return i + 10
            return i + 3
        return i + 1  # a lone DLE is a control byte that prints nothing

    def _fs(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 2)
        c = buf[i + 1]
        if c in (0x26, 0x2E):  # FS & / FS .: Kanji mode on/off
            return i + 2
        if c in (0x21, 0x2D, 0x43, 0x57):  # FS ! n, FS - n, FS C n, FS W n
            self._require(buf, i, 3)
            return i + 3
        if c in (0x53, 0x3F, 0x70):  # FS S n1 n2, FS ? c1 c2, FS p n m
            self._require(buf, i, 4)
            return i + 4
        if c == 0x32:  # FS 2 c1 c2 d1..d72
            self._require(buf, i, 76)
            return i + 76
        if c == 0x28:  # FS ( x pL pH ...
            self._require(buf, i, 5)
            return self._skip_counted(buf, i, 5, buf[i + 3] + 256 * buf[i + 4])
        return i + 2

    @staticmethod
    def _skip_counted(buf: bytes, i: int, header: int, size: int) -> int:
        if len(buf) < i + header + size:
            raise _Incomplete(i + header + size)
        return i + header + size

    # -- variable-length commands ---------------------------------------------------------------

    def _tab_positions(self, buf: bytes, i: int) -> int:
        base = FONT_WIDTH.get(self._state.font, 12) * self._state.width
        stops: list[int] = []
        j = i + 2
        # At most 32 positions, each greater than the last; a NUL or a smaller value ends it.
        while True:
            if j >= len(buf):
                raise _Incomplete()
            n = buf[j]
            j += 1
            if n == 0 or (stops and n * base <= stops[-1]) or len(stops) == 32:
                break
            stops.append(n * base)
        self._state.tab_stops = tuple(stops)
        return j

    def _user_chars(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 5)
        y, c1, c2 = buf[i + 2], buf[i + 3], buf[i + 4]
        j = i + 5
        if not (32 <= c1 <= c2 <= 126) or y > 3:
            return j
        for _ in range(c2 - c1 + 1):
            if j >= len(buf):
                raise _Incomplete()
            x = buf[j]
            j += 1 + y * x
            if j > len(buf):
                raise _Incomplete(j)
        return j

    def _code_2d(self, buf: bytes, i: int, size: int) -> int:
        end = self._skip_counted(buf, i, 5, size)
        if size < 2:
            return end
        cn, fn = buf[i + 5], buf[i + 6]
        params = buf[i + 7 : end]
        st = self._state
        if cn == 49 and fn == 65 and params:  # QR model
            st.qr_model = {49: 1, 50: 2, 51: 3}.get(params[0], st.qr_model)
        elif cn == 49 and fn == 67 and params:  # QR module size
            st.qr_size = max(1, min(params[0], 16))
        elif cn == 49 and fn == 69 and params:  # QR error correction
            st.qr_error = QR_ERROR_LEVELS.get(params[0], st.qr_error)
        elif fn == 80:  # store data: m then data
            st.stored_2d[cn] = bytes(params[1:])
        elif fn == 81:  # print stored symbol
            data = st.stored_2d.get(cn)
            if data is not None:
                qr = cn == 49
                self._add_block(
                    Code2D(
                        symbology=SYMBOLS_2D.get(cn, f"2D symbol {cn}"),
                        data=data,
                        model=st.qr_model if qr else 0,
                        module_size=st.qr_size if qr else 0,
                        error_correction=st.qr_error if qr else "",
                        align=st.align,
                    )
                )
        return end

    def _barcode(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 3)
        m = buf[i + 2]
        st = self._state
        if m <= 6:
            nul = buf.find(b"\x00", i + 3, i + 3 + MAX_BARCODE_A_DATA + 1)
            if nul < 0:
                if len(buf) < i + 3 + MAX_BARCODE_A_DATA + 1:
                    raise _Incomplete()
                return i + 3  # no terminator where one must be: not a barcode
            data, end = bytes(buf[i + 3 : nul]), nul + 1
        elif 65 <= m <= 79:
            self._require(buf, i, 4)
            n = buf[i + 3]
            self._require(buf, i, 4 + n)
            data, end = bytes(buf[i + 4 : i + 4 + n]), i + 4 + n
        else:
            return i + 3
        symbology = BARCODE_SYMBOLOGIES[m]
        payload, valid = _barcode_payload(symbology, data)
        self._add_block(
            Barcode(
                symbology=symbology,
                data=data,
                payload=payload,
                valid=valid,
                height=st.barcode_height,
                module_width=st.barcode_width,
                hri=HRI_POSITIONS.get(st.hri, "none"),
                align=st.align,
            )
        )
        return end

    def _raster(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 8)
        if buf[i + 2] not in (0x00, 0x30):
            return i + 3
        m = buf[i + 3] & 0x03
        xb = buf[i + 4] + 256 * buf[i + 5]
        y = buf[i + 6] + 256 * buf[i + 7]
        if not (1 <= xb <= MAX_RASTER_WIDTH_BYTES and 1 <= y <= MAX_RASTER_HEIGHT):
            return i + 8
        end = self._skip_counted(buf, i, 8, xb * y)
        self._add_block(
            RasterImage(
                width=xb * 8,
                height=y,
                data=bytes(buf[i + 8 : end]),
                scale_x=2 if m & 1 else 1,
                scale_y=2 if m & 2 else 1,
                align=self._state.align,
                source="GS v 0",
            )
        )
        return end

    def _graphics(self, buf: bytes, i: int, header: int, size: int) -> int:
        if size > MAX_GRAPHICS_BYTES:
            return i + header
        end = self._skip_counted(buf, i, header, size)
        body = buf[i + header : end]
        if len(body) < 2:
            return end
        fn = body[1]
        if fn in (112, 113) and len(body) >= 10:  # store raster graphics: a bx by c xL xH yL yH
            bx, by = body[3], body[4]
            width = body[6] + 256 * body[7]
            height = body[8] + 256 * body[9]
            width_bytes = (width + 7) // 8
            data = bytes(body[10 : 10 + width_bytes * height])
            if width and height and len(data) == width_bytes * height:
                self._state.stored_graphics = RasterImage(
                    width=width,
                    height=height,
                    data=data,
                    scale_x=2 if bx == 2 else 1,
                    scale_y=2 if by == 2 else 1,
                    source="GS ( L",
                )
        elif fn in (50, 2) and self._state.stored_graphics is not None:  # print stored graphics
            self._add_block(replace(self._state.stored_graphics, align=self._state.align))
        return end

    def _column_image(self, buf: bytes, i: int) -> int:
        self._require(buf, i, 5)
        m = buf[i + 2]
        n = buf[i + 3] + 256 * buf[i + 4]
        if m not in (0, 1, 32, 33) or not 1 <= n <= 4 * DOTS_80MM:
            return i + 3
        rows = 24 if m >= 32 else 8
        column_bytes = rows // 8
        end = self._skip_counted(buf, i, 5, n * column_bytes)
        columns = buf[i + 5 : end]
        width_bytes = (n + 7) // 8
        bitmap = bytearray(width_bytes * rows)
        for x in range(n):
            for k in range(column_bytes):
                byte = columns[x * column_bytes + k]
                if not byte:
                    continue
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        y = k * 8 + bit
                        bitmap[y * width_bytes + x // 8] |= 0x80 >> (x % 8)
        strip = RasterImage(
            width=n,
            height=rows,
            data=bytes(bitmap),
            align=self._state.align,
            source="ESC *",
        )
        previous = self._elements[-1] if self._elements else None
        # python-escpos and most drivers send a tall image as 24-dot strips, each ended by LF:
        # on paper they join up, so join them here too.
        if (
            isinstance(previous, RasterImage)
            and previous.source == "ESC *"
            and previous.width == n
            and not self._spans
        ):
            self._elements[-1] = replace(
                previous, height=previous.height + rows, data=previous.data + strip.data
            )
        else:
            self._add_block(strip)
        self._line_has_image = True
        return end


def _with_qr_payload(element: Element) -> Element:
    if isinstance(element, RasterImage) and element.qr_payload is None:
        payload = qr_payload_from_image(element)
        if payload is not None:
            return replace(element, qr_payload=payload)
        code128 = code128_payload_from_image(element)
        if code128 is not None:
            return replace(element, barcode_payload=code128)
    return element


def decode_receipts(data: bytes, *, width_dots: int = DOTS_80MM) -> list[DecodedReceipt]:
    """Every receipt in ``data``: one per cut, plus the uncut tail when it printed anything."""
    decoder = EscPosDecoder(width_dots=width_dots)
    receipts = [e.receipt for e in decoder.feed(data) if isinstance(e, ReceiptCut)]
    tail = decoder.finish()
    if tail is not None:
        receipts.append(tail)
    return receipts


# ---------------------------------------------------------------------------------------------
# Barcode payloads


def _ean_check_digit(digits: str) -> str:
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def _barcode_payload(symbology: str, data: bytes) -> tuple[str, bool]:
    """What a scanner reads from the printed symbol, and whether the printer would print it."""
    text = data.decode("latin-1")
    if symbology in ("CODE128", "GS1-128"):
        return _code128_payload(data)
    if symbology in ("EAN13", "UPC-A", "EAN8"):
        length = {"EAN13": 12, "UPC-A": 11, "EAN8": 7}[symbology]
        if not text.isdigit() or len(text) not in (length, length + 1):
            return text, False
        # The printer computes the check digit from the first digits and prints that one.
        body = text[:length]
        return body + _ean_check_digit(body), True
    if symbology == "CODE39":
        stripped = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "*" else text
        return stripped, bool(stripped) and "*" not in stripped
    if symbology == "ITF":
        return text, text.isdigit() and len(text) % 2 == 0 and len(text) >= 2
    return text, bool(text)


def _code128_payload(data: bytes) -> tuple[str, bool]:
    """Decode Epson CODE128 data: ``{A``/``{B``/``{C`` select code sets, ``{{`` is a brace.

    In code set C each byte is a value 0-99 printed as two digits. ``{1`` (FNC1) reads as the
    GS separator except at the start, where it marks GS1-128 and reads as nothing.
    """
    out: list[str] = []
    code_set: str | None = None
    valid = len(data) >= 2 and data[0] == 0x7B and data[1] in b"ABC"
    k = 0
    while k < len(data):
        byte = data[k]
        if byte == 0x7B and k + 1 < len(data):
            nxt = data[k + 1]
            k += 2
            if nxt in b"ABC":
                code_set = chr(nxt)
            elif nxt == 0x7B:
                out.append("{")
            elif nxt == ord("1"):
                if out:
                    out.append("\x1d")
            elif nxt == ord("S") and k < len(data):  # SHIFT: one character of the other set
                out.append(chr(data[k]))
                k += 1
            elif nxt in b"234":
                pass  # FNC2-4 carry no data
            else:
                valid = False
            continue
        if code_set == "C":
            if byte > 99:
                valid = False
            out.append(f"{byte % 100:02d}")
        else:
            out.append(chr(byte))
        k += 1
    return "".join(out), valid


# ---------------------------------------------------------------------------------------------
# Reading a QR code back from a clean raster image


_QR_ERROR_FROM_FORMAT = {0b01: "L", 0b00: "M", 0b11: "Q", 0b10: "H"}
_QR_QRCODE_EC = {"L": 1, "M": 0, "Q": 3, "H": 2}  # the ``qrcode`` package's constants


def _format_codeword(data: int) -> int:
    d = data << 10
    for shift in range(4, -1, -1):
        if d & (1 << (shift + 10)):
            d ^= 0x537 << shift
    return ((data << 10) | d) ^ 0x5412


_FORMAT_CODEWORDS = {_format_codeword(d): d for d in range(32)}

_MASKS: dict[int, Callable[[int, int], bool]] = {
    0: lambda r, c: (r + c) % 2 == 0,
    1: lambda r, c: r % 2 == 0,
    2: lambda r, c: c % 3 == 0,
    3: lambda r, c: (r + c) % 3 == 0,
    4: lambda r, c: (r // 2 + c // 3) % 2 == 0,
    5: lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    6: lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    7: lambda r, c: ((r * c) % 3 + (r + c) % 2) % 2 == 0,
}


def _gf_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for k in range(255):
        exp[k] = x
        log[x] = k
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    for k in range(255, 512):
        exp[k] = exp[k - 255]
    return exp, log


_GF_EXP, _GF_LOG = _gf_tables()


def _rs_remainder(data: Sequence[int], ec_count: int) -> list[int]:
    """Reed-Solomon error-correction codewords of ``data`` (QR's generator, GF(256)/0x11D)."""
    generator = [1]
    for k in range(ec_count):
        nxt = [0] * (len(generator) + 1)
        for j, coef in enumerate(generator):
            nxt[j] ^= coef
            if coef:
                nxt[j + 1] ^= _GF_EXP[_GF_LOG[coef] + k]
        generator = nxt
    remainder = list(data) + [0] * ec_count
    for k in range(len(data)):
        coef = remainder[k]
        if coef:
            for j in range(1, len(generator)):
                if generator[j]:
                    remainder[k + j] ^= _GF_EXP[_GF_LOG[coef] + _GF_LOG[generator[j]]]
    return remainder[len(data) :]


def _qr_tables() -> tuple[Any, Any] | None:
    """The version tables of the ``qrcode`` package, when it is installed."""
    try:
        base = importlib.import_module("qrcode.base")
        util = importlib.import_module("qrcode.util")
    except ImportError:  # pragma: no cover - python-escpos installs qrcode
        return None
    return base, util


def _qr_matrix(image: RasterImage) -> list[list[bool]] | None:
    """Sample the module grid of an image that holds one QR code on white, or None."""
    min_x, min_y, max_x, max_y = image.width, image.height, -1, -1
    for y in range(image.height):
        row = image.data[y * image.width_bytes : (y + 1) * image.width_bytes]
        if not any(row):
            continue
        first = next(k for k, b in enumerate(row) if b)
        last = max(k for k, b in enumerate(row) if b)
        x0 = first * 8 + (8 - row[first].bit_length() if row[first] else 0)
        x1 = last * 8 + 7 - ((row[last] & -row[last]).bit_length() - 1)
        min_x, max_x = min(min_x, x0), max(max_x, x1)
        min_y = min(min_y, y)
        max_y = y
    if max_x < 0:
        return None
    width, height = max_x - min_x + 1, max_y - min_y + 1
    run = 0
    while image.pixel(min_x + run, min_y):
        run += 1
    module = run / 7
    if module < 1 or abs(width - height) > module:
        return None
    size = round(width / module)
    if size < 21 or size > 177 or (size - 17) % 4:
        return None
    if abs(size * module - width) > module / 2:
        return None
    return [
        [
            image.pixel(min_x + int((c + 0.5) * module), min_y + int((r + 0.5) * module))
            for c in range(size)
        ]
        for r in range(size)
    ]


def _reserved_modules(version: int, size: int, util: Any) -> list[list[bool]]:
    reserved = [[False] * size for _ in range(size)]

    def mark(r0: int, r1: int, c0: int, c1: int) -> None:
        for r in range(max(r0, 0), min(r1, size)):
            for c in range(max(c0, 0), min(c1, size)):
                reserved[r][c] = True

    mark(0, 9, 0, 9)
    mark(0, 9, size - 8, size)
    mark(size - 8, size, 0, 9)
    mark(6, 7, 0, size)
    mark(0, size, 6, 7)
    positions: list[int] = list(util.pattern_position(version))
    for r in positions:
        for c in positions:
            corner = (r <= 8 and c <= 8) or (r <= 8 and c >= size - 9) or (r >= size - 9 and c <= 8)
            if not corner:
                mark(r - 2, r + 3, c - 2, c + 3)
    if version >= 7:
        mark(0, 6, size - 11, size - 8)
        mark(size - 11, size - 8, 0, 6)
    return reserved


def _qr_format(matrix: list[list[bool]]) -> tuple[str, int] | None:
    size = len(matrix)
    bits_v = 0
    bits_h = 0
    for k in range(15):
        if k < 6:
            v = matrix[k][8]
        elif k < 8:
            v = matrix[k + 1][8]
        else:
            v = matrix[size - 15 + k][8]
        if k < 8:
            h = matrix[8][size - k - 1]
        elif k < 9:
            h = matrix[8][15 - k]
        else:
            h = matrix[8][14 - k]
        bits_v |= int(v) << k
        bits_h |= int(h) << k
    best = min(
        _FORMAT_CODEWORDS,
        key=lambda cw: min(bin(cw ^ bits_v).count("1"), bin(cw ^ bits_h).count("1")),
    )
    if min(bin(best ^ bits_v).count("1"), bin(best ^ bits_h).count("1")) > 3:
        return None
    data = _FORMAT_CODEWORDS[best]
    return _QR_ERROR_FROM_FORMAT[data >> 3], data & 0x07


def _qr_codewords(matrix: list[list[bool]], reserved: list[list[bool]], mask: int) -> Iterator[int]:
    size = len(matrix)
    masked = _MASKS[mask]
    byte = 0
    count = 0
    col = size - 1
    upward = True
    while col > 0:
        if col == 6:
            col -= 1
        for step in range(size):
            r = size - 1 - step if upward else step
            for c in (col, col - 1):
                if reserved[r][c]:
                    continue
                byte = (byte << 1) | int(matrix[r][c] ^ masked(r, c))
                count += 1
                if count == 8:
                    yield byte
                    byte = 0
                    count = 0
        upward = not upward
        col -= 2


class _BitReader:
    def __init__(self, data: Sequence[int]) -> None:
        self._data = data
        self._pos = 0

    @property
    def left(self) -> int:
        return len(self._data) * 8 - self._pos

    def read(self, bits: int) -> int:
        if bits > self.left:
            raise ValueError("out of bits")
        value = 0
        for _ in range(bits):
            byte = self._data[self._pos // 8]
            value = (value << 1) | ((byte >> (7 - self._pos % 8)) & 1)
            self._pos += 1
        return value


_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def _qr_segments(data: Sequence[int], version: int) -> bytes | None:
    reader = _BitReader(data)
    out = bytearray()
    size_class = 0 if version < 10 else (1 if version < 27 else 2)
    count_bits = {1: (10, 12, 14), 2: (9, 11, 13), 4: (8, 16, 16), 8: (8, 10, 12)}
    try:
        while reader.left >= 4:
            mode = reader.read(4)
            if mode == 0:
                break
            if mode == 7:  # ECI designator: the payload is read as bytes regardless
                first = reader.read(8)
                if first & 0x80:
                    reader.read(8 if first & 0x40 == 0 else 16)
                continue
            if mode in (3,):  # structured append header
                reader.read(16)
                continue
            if mode == 5:  # FNC1 first position
                continue
            if mode == 9:  # FNC1 second position
                reader.read(8)
                continue
            if mode not in count_bits:
                return None
            count = reader.read(count_bits[mode][size_class])
            if mode == 1:
                while count >= 3:
                    out += f"{reader.read(10):03d}".encode()
                    count -= 3
                if count == 2:
                    out += f"{reader.read(7):02d}".encode()
                elif count == 1:
                    out += f"{reader.read(4):01d}".encode()
            elif mode == 2:
                while count >= 2:
                    value = reader.read(11)
                    out += (_ALPHANUMERIC[value // 45] + _ALPHANUMERIC[value % 45]).encode()
                    count -= 2
                if count:
                    out += _ALPHANUMERIC[reader.read(6)].encode()
            elif mode == 4:
                out += bytes(reader.read(8) for _ in range(count))
            else:  # Kanji: 13 bits per character, Shift JIS
                for _ in range(count):
                    value = reader.read(13)
                    sjis = (value // 0xC0) << 8 | (value % 0xC0)
                    sjis += 0x8140 if sjis < 0x1F00 else 0xC140
                    out += sjis.to_bytes(2, "big")
    except (ValueError, IndexError):
        return None
    return bytes(out)


def qr_payload_from_image(image: RasterImage) -> str | None:
    """The text of the QR code that fills ``image``, or None when it is not a clean QR code.

    Printed QR images are exact (no blur, no rotation), so this samples the module grid, reads
    the format, unmasks, de-interleaves and checks every block's Reed-Solomon codewords; a
    symbol whose codewords do not check is rejected rather than guessed at (no error
    correction is attempted).
    """
    tables = _qr_tables()
    if tables is None or image.width * image.height > 4_000_000:
        return None
    base, util = tables
    try:
        matrix = _qr_matrix(image)
        if matrix is None:
            return None
        size = len(matrix)
        version = (size - 17) // 4
        fmt = _qr_format(matrix)
        if fmt is None:
            return None
        level, mask = fmt
        blocks = [
            (int(b.total_count), int(b.data_count))
            for b in base.rs_blocks(version, _QR_QRCODE_EC[level])
        ]
        reserved = _reserved_modules(version, size, util)
        codewords = list(_qr_codewords(matrix, reserved, mask))
        total = sum(t for t, _ in blocks)
        if len(codewords) < total:
            return None
        data_blocks: list[list[int]] = [[] for _ in blocks]
        ec_blocks: list[list[int]] = [[] for _ in blocks]
        pos = 0
        for k in range(max(d for _, d in blocks)):
            for b, (_, d) in enumerate(blocks):
                if k < d:
                    data_blocks[b].append(codewords[pos])
                    pos += 1
        for k in range(max(t - d for t, d in blocks)):
            for b, (t, d) in enumerate(blocks):
                if k < t - d:
                    ec_blocks[b].append(codewords[pos])
                    pos += 1
        for b, (t, d) in enumerate(blocks):
            if _rs_remainder(data_blocks[b], t - d) != ec_blocks[b]:
                return None
        payload = _qr_segments([cw for block in data_blocks for cw in block], version)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError):
        logger.debug("raster image is not a readable QR code", exc_info=True)
        return None
    if payload is None:
        return None
    return _bytes_as_text(payload)


# ---------------------------------------------------------------------------------------------
# Reading a CODE128 barcode back from a raster image


def _element_widths(pattern: str) -> list[int]:
    widths = [1]
    for prev, bit in itertools.pairwise(pattern):
        if bit == prev:
            widths[-1] += 1
        else:
            widths.append(1)
    return widths


def _shape(widths: Sequence[float]) -> tuple[float, ...]:
    """Element widths and edge-to-similar-edge distances, in modules of ``sum / modules``."""
    module = sum(widths) / (11 if len(widths) == 6 else 13)
    scaled = [w / module for w in widths]
    return (*scaled, *(scaled[k] + scaled[k + 1] for k in range(len(scaled) - 2)))


@cache
def _code128_shapes() -> tuple[tuple[int, tuple[float, ...]], ...] | None:
    try:
        charset = importlib.import_module("barcode.charsets.code128")
    except ImportError:  # pragma: no cover - python-escpos installs python-barcode
        return None
    return tuple(
        (value, _shape(_element_widths(str(pattern))))
        for value, pattern in enumerate(charset.CODES)
    )


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def _nearest_symbol(
    shape: tuple[float, ...], shapes: Sequence[tuple[int, tuple[float, ...]]]
) -> int:
    best, best_distance = 0, math.inf
    for value, candidate in shapes:
        d = _distance(shape, candidate)
        if d < best_distance:
            best, best_distance = value, d
    return best


_CODE128_STOP = "1100011101011"


def _code128_text(values: Sequence[int]) -> str | None:
    """Characters of CODE128 symbol values (start code first, check value and stop removed)."""
    sets = {103: "A", 104: "B", 105: "C"}
    code_set = sets.get(values[0])
    if code_set is None:
        return None
    out: list[str] = []
    shift = False
    for value in values[1:]:
        current = ("B" if code_set == "A" else "A") if shift else code_set
        shift = False
        if current == "C":
            if value < 100:
                out.append(f"{value:02d}")
            elif value == 100:
                code_set = "B"
            elif value == 101:
                code_set = "A"
            elif value == 102:
                out.append("\x1d" if out else "")
            else:
                return None
            continue
        if value < 96:
            if current == "B":
                out.append(chr(value + 32))
            else:
                out.append(chr(value + 32) if value < 64 else chr(value - 64))
        elif value == 98:
            shift = True
        elif value == 99:
            code_set = "C"
        elif value == 100 and current == "A":
            code_set = "B"
        elif value == 101 and current == "B":
            code_set = "A"
        elif value == 102:
            out.append("\x1d" if out else "")
        # FNC2-4 (96, 97, and 100/101 in their own set) carry no characters.
    return "".join(out)


def code128_payload_from_image(image: RasterImage) -> str | None:
    """The text of a CODE128 barcode drawn as an image, or None.

    Reads rows across the bars and takes, for each six-element symbol, the pattern nearest in
    element widths and edge-to-similar-edge distances, as a scanner does; so a barcode whose
    bars are drawn a dot too wide here and there (python-barcode's image writer does that)
    still reads. The result counts only when the stop pattern is there and the check value
    matches, which a misread symbol breaks.
    """
    shapes = _code128_shapes()
    if shapes is None or image.height == 0:
        return None
    stop_shape = _shape(_element_widths(_CODE128_STOP))
    for y in (image.height // 2, image.height // 3, 2 * image.height // 3):
        row = [image.pixel(x, y) for x in range(image.width)]
        if True not in row:
            continue
        first = row.index(True)
        last = len(row) - 1 - row[::-1].index(True)
        runs: list[int] = [1]
        for x in range(first + 1, last + 1):
            if row[x] == row[x - 1]:
                runs[-1] += 1
            else:
                runs.append(1)
        # Six elements (11 modules) per symbol, then the stop: seven elements, 13 modules.
        if len(runs) < 25 or (len(runs) - 7) % 6:
            continue
        if _distance(_shape(runs[-7:]), stop_shape) > 2.0:
            continue
        values = [
            _nearest_symbol(_shape(runs[k : k + 6]), shapes) for k in range(0, len(runs) - 7, 6)
        ]
        body, check = values[:-1], values[-1]
        if sum(v * max(k, 1) for k, v in enumerate(body)) % 103 != check:
            continue
        text = _code128_text(body)
        if text is not None:
            return text
    return None


# ---------------------------------------------------------------------------------------------
# Text rendering


_ANSI = {"bold": "\x1b[1m", "underline": "\x1b[4m", "inverse": "\x1b[7m", "reset": "\x1b[0m"}


def _styled(span: Span, ansi: bool) -> str:
    if not ansi:
        return span.text
    codes = ""
    if span.style.bold or span.style.double_height or span.style.double_width:
        codes += _ANSI["bold"]
    if span.style.underline:
        codes += _ANSI["underline"]
    if span.style.inverse:
        codes += _ANSI["inverse"]
    return f"{codes}{span.text}{_ANSI['reset']}" if codes else span.text


def _aligned(text: str, visible: int, align: Align, columns: int) -> str:
    pad = max(columns - visible, 0)
    if align == "center":
        return " " * (pad // 2) + text
    if align == "right":
        return " " * pad + text
    return text


def render_text(receipt: DecodedReceipt, *, columns: int | None = None, ansi: bool = False) -> str:
    """The receipt as plain text, one line per printed line, alignment applied.

    Codes, images and drawer kicks appear as bracketed notes (``[QR: ...]``), the cut as a
    dashed line. ``ansi`` adds terminal bold/underline/inverse for the simulator's console.
    """
    columns = columns or receipt.width_dots // 12
    out: list[str] = []
    for e in receipt.elements:
        if isinstance(e, TextLine):
            text = "".join(_styled(s, ansi) for s in e.spans).rstrip(" ") if e.spans else ""
            visible = len(e.text.rstrip(" "))
            out.append(_aligned(text, visible, e.align, columns).rstrip(" ") if text else "")
            continue
        if isinstance(e, Code2D):
            note = f"[{e.symbology}: {e.payload}]"
            align: Align = e.align
        elif isinstance(e, Barcode):
            note = f"[{e.symbology}: {e.payload}]" + ("" if e.valid else " (invalid)")
            align = e.align
        elif isinstance(e, RasterImage):
            size = f"{e.width}x{e.height}"
            if e.qr_payload is not None:
                note = f"[QR (raster image {size}): {e.qr_payload}]"
            elif e.barcode_payload is not None:
                note = f"[CODE128 (raster image {size}): {e.barcode_payload}]"
            else:
                note = f"[raster image {size}]"

            align = e.align
        else:
            note = f"[cash drawer kick: pin {e.pin}, {e.on_ms} ms]"
            align = "left"
        out.append(_aligned(note, len(note), align, columns))
    if receipt.cut is not None:
        label = f" {receipt.cut} cut "
        side = max((columns - len(label)) // 2, 1)
        out.append(("-" * side + label + "-" * side)[:columns] if columns > len(label) else label)
    return "\n".join(out) + "\n"


def width_dots_for_paper(paper_mm: int) -> int:
    """Print width in dots of a 58 mm or 80 mm roll at 203 dpi."""
    return DOTS_58MM if paper_mm <= 58 else DOTS_80MM
