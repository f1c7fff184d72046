"""A network ESC/POS receipt printer on TCP port 9100: ``omnitill sim printer``.

It behaves like an Epson TM printer with an Ethernet card ("raw" port 9100, also called
JetDirect or AppSocket): a till connects, writes ESC/POS bytes and may ask for status with
``DLE EOT``. For each receipt (everything up to a cut, or up to the end of a connection when
no cut came) the simulator writes ``receipt-NNNN.txt`` (the text a customer reads, see
:func:`hardware_sim.escpos_decoder.render_text`) and ``receipt-NNNN.png`` (a picture of the paper
strip, 384 dots wide for 58 mm paper and 576 for 80 mm) into the output directory, and echoes
the text to the terminal. Numbering continues after the highest ``receipt-NNNN`` already there.

Faults, switched at start (``--fault``) or while running (:meth:`PrinterSimulator.set_fault`,
or typing ``paper-out``/``cover-open``/``offline``/``ok`` on the command's stdin):

``paper-out``
    ``DLE EOT`` reports paper end (roll sensor ``0x7E``, offline, "printing stopped by paper
    end"). Receipts still arrive but are **held** in the printer's buffer, not printed; they
    print, in order and once, when the fault is cleared. That is what a TM printer does when
    the roll runs out mid-job: it stops, keeps what it received, and resumes with a new roll.
``cover-open``
    ``DLE EOT`` reports the cover open (offline, cover bit set); printing is held the same way.
``offline``
    The printer is unplugged from the network: the port stops listening, so connections are
    refused and open ones are dropped. Receipts already held stay held (the printer keeps its
    buffer) and print when the fault is cleared; a connection dropped mid-receipt prints what
    had arrived.

Status answers (Epson ``DLE EOT n``, one byte each; every byte has bits 1 and 4 set):

===============  ==========  ============  ===========  ===========
fault            n=1 printer n=2 offline   n=3 error    n=4 paper
===============  ==========  ============  ===========  ===========
none             ``0x12``    ``0x12``      ``0x12``     ``0x12``
paper-out        ``0x1A``    ``0x32``      ``0x12``     ``0x7E``
cover-open       ``0x1A``    ``0x16``      ``0x12``     ``0x12``
===============  ==========  ============  ===========  ===========

``GS r 1`` answers ``0x0F`` with paper out (``0x00`` otherwise), ``GS r 2`` the drawer
(``0x00``, closed) and ``GS I`` a printer id. ``DLE EOT`` is answered at once, even while
printing is held, as real-time commands are.

With ``advertise=True`` the printer announces itself with zeroconf as a
``_pdl-datastream._tcp.local.`` service, the type network printers use for port 9100.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast, get_args

import click
from PIL import Image, ImageDraw, ImageFont, ImageOps

from hardware_sim.escpos_decoder import (
    Align,
    Barcode,
    Code2D,
    DecodedReceipt,
    DrawerKick,
    Element,
    EscPosDecoder,
    RasterImage,
    ReceiptCut,
    StatusRequest,
    TextLine,
    TextStyle,
    render_text,
    width_dots_for_paper,
)

__all__ = [
    "FAULTS",
    "SERVICE_TYPE",
    "Fault",
    "PrintedReceipt",
    "PrinterSimulator",
    "printer_command",
    "receipt_image",
    "status_response",
]

logger = logging.getLogger(__name__)

Fault: TypeAlias = Literal["paper-out", "offline", "cover-open"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
SERVICE_TYPE = "_pdl-datastream._tcp.local."

_RECEIPT_FILE = re.compile(r"^receipt-(\d+)\.(?:txt|png)$")


# ---------------------------------------------------------------------------------------------
# Status


def status_response(request: StatusRequest, fault: Fault | None) -> bytes:
    """The bytes an Epson TM printer sends back for ``request`` in the given fault state."""
    paper_out = fault == "paper-out"
    cover_open = fault == "cover-open"
    if request.command == "DLE EOT":
        if request.n == 1:  # printer: bit 3 offline
            return bytes([0x12 | (0x08 if fault else 0)])
        if request.n == 2:  # offline cause: bit 2 cover open, bit 5 stopped by paper end
            return bytes([0x12 | (0x04 if cover_open else 0) | (0x20 if paper_out else 0)])
        if request.n == 3:  # errors: none of ours is an error, the printer recovers by itself
            return b"\x12"
        if request.n == 4:  # roll sensor: bits 2-3 near end, bits 5-6 paper end
            return b"\x7e" if paper_out else b"\x12"
        return b""
    if request.command == "GS r":
        if request.n in (1, 49):  # paper: bits 0-1 near end, bits 2-3 end
            return b"\x0f" if paper_out else b"\x00"
        if request.n in (2, 50):  # drawer kick connector: low, drawer closed
            return b"\x00"
        return b""
    # GS I: printer id
    if request.n in (1, 49):
        return b"\x20"  # model id
    if request.n in (2, 50):
        return b"\x02"  # type: autocutter fitted, no multi-byte font
    if request.n in (3, 51):
        return b"\x10"  # ROM version
    if 65 <= request.n <= 69:
        names = {65: b"1.00", 66: b"OMNITILL", 67: b"SIM-TM", 68: b"000001", 69: b""}
        return b"_" + names[request.n] + b"\x00"
    return b""


# ---------------------------------------------------------------------------------------------
# The paper strip


_FONT_FILES = {
    False: ("DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
    True: ("DejaVuSansMono-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"),
}
_CELL = {"A": (12, 24, 20), "B": (9, 17, 15), "C": (9, 17, 15)}  # width, height, font size
LINE_SPACING = 6
TOP_MARGIN = 12
#: A strip longer than this (about 8 m of paper) is cut short in the picture, not in the text.
MAX_STRIP_DOTS = 64_000
CUT_MARGIN = 24
QUIET_ZONE = 10


@cache
def _font(bold: bool, size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """A monospaced font and whether it is really bold (else bold is drawn twice)."""
    for candidate in _FONT_FILES[bold]:
        try:
            # One glyph at a time needs no text shaping: the basic engine is faster and has no
            # trouble with the odd characters a code page can produce.
            return ImageFont.truetype(candidate, size, layout_engine=ImageFont.Layout.BASIC), bold
        except OSError:
            continue
    if bold:
        regular, _ = _font(False, size)
        return regular, False
    return ImageFont.load_default(size=size), False


def _span_image(text: str, style: TextStyle) -> Image.Image:
    cell_w, cell_h, size = _CELL.get(style.font, _CELL["A"])
    tile = Image.new("L", (max(cell_w * len(text), 1), cell_h), 255)
    draw = ImageDraw.Draw(tile)
    font, real_bold = _font(style.bold, size)
    for k, char in enumerate(text):
        if char == " " or not char.isprintable():
            continue
        try:
            draw.text((k * cell_w, 0), char, font=font, fill=0)
            if style.bold and not real_bold:
                draw.text((k * cell_w + 1, 0), char, font=font, fill=0)
        except (RuntimeError, OSError, ValueError, UnicodeError):
            logger.debug("printer: cannot draw %r", char, exc_info=True)
    if style.underline:
        draw.rectangle(
            (0, cell_h - style.underline - 1, tile.width, cell_h - 2), fill=0, outline=None
        )
    if style.inverse:
        tile = ImageOps.invert(tile)
    if style.upside_down:
        tile = tile.rotate(180)
    if style.width > 1 or style.height > 1:
        tile = tile.resize(
            (tile.width * style.width, tile.height * style.height), Image.Resampling.NEAREST
        )
    return tile


def _line_image(line: TextLine, width: int) -> Image.Image:
    height = line.height_dots
    image = Image.new("L", (width, height + LINE_SPACING), 255)
    tiles = [_span_image(span.text, span.style) for span in line.spans if span.text]
    used = sum(t.width for t in tiles)
    x = _x_for(line.align, used, width)
    for tile in tiles:
        # Characters of different sizes on one line share their bottom edge, as on paper.
        image.paste(tile, (x, height - tile.height))
        x += tile.width
    return image


def _x_for(align: Align, used: int, width: int) -> int:
    if align == "center":
        return max((width - used) // 2, 0)
    if align == "right":
        return max(width - used, 0)
    return 0


def _placed(block: Image.Image, align: Align, width: int, pad: int = 4) -> Image.Image:
    row = Image.new("L", (width, block.height + 2 * pad), 255)
    row.paste(block, (_x_for(align, block.width, width), pad))
    return row


def _note_image(text: str, width: int) -> Image.Image:
    """A boxed label for something the simulator cannot draw (an unknown symbology)."""
    label = _span_image(text[: max(width // 12 - 2, 1)], TextStyle())
    box = Image.new("L", (label.width + 12, label.height + 12), 255)
    box.paste(label, (6, 6))
    ImageDraw.Draw(box).rectangle((0, 0, box.width - 1, box.height - 1), outline=0)
    return box


def _qr_image(code: Code2D) -> Image.Image | None:
    try:
        qrcode = importlib.import_module("qrcode")
        levels = {
            "L": qrcode.constants.ERROR_CORRECT_L,
            "M": qrcode.constants.ERROR_CORRECT_M,
            "Q": qrcode.constants.ERROR_CORRECT_Q,
            "H": qrcode.constants.ERROR_CORRECT_H,
        }
        qr = qrcode.QRCode(
            version=None,
            error_correction=levels.get(code.error_correction, levels["L"]),
            box_size=1,
            border=0,
        )
        qr.add_data(code.data)
        qr.make(fit=True)
        matrix: list[list[bool]] = qr.get_matrix()
    except Exception:  # the package's errors have no common base; any failure means "cannot draw"
        logger.debug("cannot draw QR code %r", code.payload, exc_info=True)
        return None
    module = max(code.module_size, 1)
    size = len(matrix) * module
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                draw.rectangle(
                    (c * module, r * module, (c + 1) * module - 1, (r + 1) * module - 1), fill=0
                )
    return image


_PYTHON_BARCODE = {
    "CODE128": "code128",
    "GS1-128": "code128",
    "CODE128 AUTO": "code128",
    "EAN13": "ean13",
    "EAN8": "ean8",
    "UPC-A": "upca",
    "CODE39": "code39",
    "ITF": "itf",
    "CODABAR": "codabar",
}


def _barcode_modules(code: Barcode) -> str | None:
    name = _PYTHON_BARCODE.get(code.symbology)
    if name is None or not code.valid:
        return None
    payload = code.payload
    kwargs: dict[str, Any] = {}
    if code.symbology in ("EAN13", "EAN8", "UPC-A"):
        payload = payload[:-1]  # python-barcode adds the check digit itself
    if code.symbology == "CODE39":
        kwargs["add_checksum"] = False
    try:
        module = importlib.import_module("barcode")
        built: list[str] = module.get_barcode_class(name)(payload, **kwargs).build()
    except Exception:  # python-barcode raises several unrelated types for bad input
        logger.debug("cannot draw %s %r", code.symbology, payload, exc_info=True)
        return None
    return built[0] if built else None


def _barcode_image(code: Barcode, width: int) -> Image.Image:
    modules = _barcode_modules(code)
    if modules is None:
        return _note_image(f"{code.symbology}: {code.payload}", width)
    module_w = max(code.module_width, 1)
    while module_w > 1 and (len(modules) + 2 * QUIET_ZONE) * module_w > width:
        module_w -= 1
    bars_w = len(modules) * module_w
    hri = _span_image(code.payload, TextStyle()) if code.hri != "none" else None
    above = hri is not None and code.hri in ("above", "both")
    below = hri is not None and code.hri in ("below", "both")
    hri_h = hri.height + 4 if hri is not None else 0
    total_h = code.height + hri_h * (int(above) + int(below))
    image = Image.new("L", (max(bars_w, hri.width if hri else 0), total_h), 255)
    draw = ImageDraw.Draw(image)
    top = hri_h if above else 0
    x0 = (image.width - bars_w) // 2
    for k, bit in enumerate(modules):
        if bit == "1":
            x = x0 + k * module_w
            draw.rectangle((x, top, x + module_w - 1, top + code.height - 1), fill=0)
    if hri is not None:
        hx = (image.width - hri.width) // 2
        if above:
            image.paste(hri, (hx, 0))
        if below:
            image.paste(hri, (hx, top + code.height + 4))
    return image


def _raster_image(picture: RasterImage) -> Image.Image:
    packed = Image.frombytes("1", (picture.width_bytes * 8, picture.height), picture.data)
    image = ImageOps.invert(packed.convert("L")).crop((0, 0, picture.width, picture.height))
    if picture.scale_x > 1 or picture.scale_y > 1:
        image = image.resize(
            (image.width * picture.scale_x, image.height * picture.scale_y),
            Image.Resampling.NEAREST,
        )
    return image


def _element_image(element: Element, width: int) -> Image.Image | None:
    if isinstance(element, TextLine):
        return _line_image(element, width)
    if isinstance(element, Code2D):
        drawn = _qr_image(element) if element.symbology == "QR" else None
        block = drawn or _note_image(f"{element.symbology}: {element.payload}", width)
        return _placed(block, element.align, width)
    if isinstance(element, Barcode):
        return _placed(_barcode_image(element, width), element.align, width)
    if isinstance(element, RasterImage):
        return _placed(_raster_image(element), element.align, width, pad=0)
    return None  # a drawer kick leaves nothing on paper


def receipt_image(receipt: DecodedReceipt, *, width_dots: int | None = None) -> Image.Image:
    """A greyscale picture of the printed strip: ``width_dots`` wide (the print area)."""
    width = width_dots or receipt.width_dots
    rows: list[Image.Image] = [Image.new("L", (width, TOP_MARGIN), 255)]
    used = TOP_MARGIN
    for index, element in enumerate(receipt.elements):
        if used > MAX_STRIP_DOTS:
            left = len(receipt.elements) - index
            rows.append(_placed(_note_image(f"... {left} more", width), "center", width))
            break
        row = _element_image(element, width)
        if row is not None:
            rows.append(row)
            used += row.height
    rows.append(Image.new("L", (width, CUT_MARGIN), 255))
    height = sum(r.height for r in rows)
    strip = Image.new("L", (width, height), 255)
    y = 0
    for row in rows:
        strip.paste(row.crop((0, 0, width, row.height)), (0, y))
        y += row.height
    if receipt.cut is not None:
        draw = ImageDraw.Draw(strip)
        dash = 8 if receipt.cut == "full" else 3
        for x in range(0, width, 2 * dash):
            draw.line((x, height - 2, x + dash - 1, height - 2), fill=96)
    return strip


# ---------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True, slots=True)
class PrintedReceipt:
    """A receipt that came out of the simulated printer, and where it was written."""

    number: int
    receipt: DecodedReceipt
    text: str
    text_path: Path
    png_path: Path
    printed_at: datetime


class _Connection(asyncio.Protocol):
    def __init__(self, sim: PrinterSimulator) -> None:
        self._sim = sim
        self._decoder = EscPosDecoder(width_dots=sim.width_dots)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._sim._connections.add(self)
        logger.debug("printer: connection from %s", transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if isinstance(event, StatusRequest):
                answer = status_response(event, self._sim.fault)
                if answer and self.transport is not None:
                    self.transport.write(answer)
            elif isinstance(event, ReceiptCut):
                self._sim._arrived(event.receipt)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sim._connections.discard(self)
        tail = self._decoder.finish()
        if tail is not None:
            self._sim._arrived(tail)


class PrinterSimulator:
    """The simulated printer: a TCP server on its own thread, the decoder and the paper.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`). ``width`` is the paper
    in millimetres (58 or 80). ``echo`` receives each printed receipt's text and every status
    change (the CLI passes ``click.echo``); without it they are logged.
    """

    def __init__(
        self,
        *,
        port: int = 9100,
        out_dir: Path | str,
        width: int = 80,
        fault: Fault | None = None,
        host: str = "127.0.0.1",
        advertise: bool = False,
        name: str | None = None,
        echo: Callable[[str], None] | None = None,
        ansi: bool = False,
    ) -> None:
        if width not in (58, 80):
            raise ValueError(f"paper width must be 58 or 80 mm, not {width}")
        self._check_fault(fault)
        self.host = host
        self.out_dir = Path(out_dir)
        self.width = width
        self.width_dots = width_dots_for_paper(width)
        self.columns = self.width_dots // 12
        self.advertise = advertise
        self.name = name or f"Omnitill printer on {socket.gethostname()}"
        self._requested_port = port
        self._port: int | None = None
        self._fault: Fault | None = fault
        self._echo = echo
        self._ansi = ansi
        self.receipts: list[PrintedReceipt] = []
        self.drawer_kicks: list[DrawerKick] = []
        self._held: list[DecodedReceipt] = []
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._paper_lock = threading.Condition()
        self._next_number = 1
        # Drawing the PNG takes tens of milliseconds: the paper has its own thread so status
        # requests are answered at once while a receipt is being "printed".
        self._paper_queue: queue.Queue[DecodedReceipt | None] = queue.Queue()
        self._paper_thread: threading.Thread | None = None
        self._zeroconf: Any = None
        self._service: Any = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the printer simulator is not started")
        return self._port

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @property
    def held(self) -> list[DecodedReceipt]:
        """Receipts received while a fault stopped printing, oldest first."""
        return list(self._held)

    def start(self) -> PrinterSimulator:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._next_number = _next_receipt_number(self.out_dir)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._loop_thread = threading.Thread(target=run, name="printer-sim", daemon=True)
        self._loop_thread.start()
        ready.wait()
        try:
            self._call(self._listen(self._requested_port))
        except OSError:
            self._shutdown_loop()
            raise
        self._paper_thread = threading.Thread(
            target=self._paper_worker, name="printer-sim-paper", daemon=True
        )
        self._paper_thread.start()
        if self._fault == "offline":
            self._call(self._unlisten())
        if self.advertise:
            try:
                self._start_advertising()
            except Exception as exc:  # zeroconf's errors share no base; printing goes on
                logger.warning("printer: cannot advertise with zeroconf", exc_info=True)
                self._say(f"printer: not advertised on the network ({exc})")
        self._say(
            f"printer: listening on {self.host}:{self.port}, {self.width} mm paper "
            f"({self.columns} columns), receipts in {self.out_dir}"
            + (f", fault: {self._fault}" if self._fault else "")
        )
        return self

    def stop(self) -> None:
        """Close every connection (what they sent prints, or stays held) and stop listening."""
        if self._loop is None:
            return
        self._stop_advertising()
        self._call(self._close_all())
        self._shutdown_loop()
        if self._held:
            self._say(f"printer: {len(self._held)} held receipt(s) never printed")
        if self._paper_thread is not None:
            self._paper_queue.put(None)
            self._paper_thread.join(timeout=30)
            self._paper_thread = None

    def __enter__(self) -> PrinterSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, fault: Fault | None) -> None:
        """Switch the fault while running; ``None`` clears it and prints what was held."""
        self._check_fault(fault)
        if self._loop is None:
            self._fault = fault
            return
        self._call(self._apply_fault(fault))

    def wait_for_receipts(self, count: int, timeout: float = 5.0) -> list[PrintedReceipt]:
        """Block until at least ``count`` receipts printed; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._paper_lock:
            while len(self.receipts) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.receipts)} receipt(s) printed, expected {count}")
                self._paper_lock.wait(remaining)
            return list(self.receipts)

    # -- inside the event loop ------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._loop_thread
        self._loop = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, port, reuse_address=True
        )
        sockets: Sequence[Any] = self._server.sockets
        self._port = int(sockets[0].getsockname()[1])

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        # Let connection_lost run for the aborted transports.
        await asyncio.sleep(0)

    async def _close_all(self) -> None:
        await self._unlisten()
        await asyncio.sleep(0)

    async def _apply_fault(self, fault: Fault | None) -> None:
        previous = self._fault
        if fault == "offline" and previous != "offline":
            self._fault = fault
            await self._unlisten()
        elif previous == "offline" and fault != "offline":
            await self._listen(self.port)  # may raise if the port was taken meanwhile
        self._fault = fault
        self._say(f"printer: {_fault_label(fault)}")
        if fault is None and self._held:
            held, self._held = self._held, []
            self._say(f"printer: printing {len(held)} held receipt(s)")
            for receipt in held:
                self._print(receipt)

    def _arrived(self, receipt: DecodedReceipt) -> None:
        if self._fault is not None:
            self._held.append(receipt)
            self._say(f"printer: receipt held ({_fault_label(self._fault)})")
            return
        self._print(receipt)

    def _print(self, receipt: DecodedReceipt) -> None:
        self._paper_queue.put(receipt)

    def _paper_worker(self) -> None:
        while (receipt := self._paper_queue.get()) is not None:
            try:
                self._put_on_paper(receipt)
            except Exception:  # a drawing bug must not stop the printer
                logger.exception("printer: cannot print a receipt")

    def _put_on_paper(self, receipt: DecodedReceipt) -> None:
        kicks = receipt.drawer_kicks
        for kick in kicks:
            self._say(f"printer: cash drawer kick on pin {kick.pin} ({kick.on_ms} ms)")
        if receipt.is_blank:
            with self._paper_lock:
                self.drawer_kicks.extend(kicks)
                self._paper_lock.notify_all()
            return
        number = self._next_number
        self._next_number += 1
        text = render_text(receipt, columns=self.columns)
        text_path = self.out_dir / f"receipt-{number:04d}.txt"
        png_path = self.out_dir / f"receipt-{number:04d}.png"
        try:
            text_path.write_text(text, encoding="utf-8")
            receipt_image(receipt, width_dots=self.width_dots).save(png_path)
        except OSError:
            logger.exception("printer: cannot write %s", text_path)
        printed = PrintedReceipt(
            number=number,
            receipt=receipt,
            text=text,
            text_path=text_path,
            png_path=png_path,
            printed_at=datetime.now(UTC),
        )
        shown = render_text(receipt, columns=self.columns, ansi=True) if self._ansi else text
        self._say(f"printer: receipt {number:04d}\n{shown}")
        with self._paper_lock:
            self.receipts.append(printed)
            self.drawer_kicks.extend(kicks)
            self._paper_lock.notify_all()

    def _say(self, message: str) -> None:
        if self._echo is not None:
            self._echo(message)
        else:
            logger.info("%s", message)

    @staticmethod
    def _check_fault(fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown printer fault {fault!r}: use one of {', '.join(FAULTS)}")

    # -- zeroconf -------------------------------------------------------------------------------

    def _start_advertising(self) -> None:
        from zeroconf import ServiceInfo, Zeroconf

        info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=_lan_addresses(self.host),
            port=self.port,
            properties={
                "ty": "Omnitill simulated ESC/POS printer",
                "product": "(Omnitill Sim Printer)",
                "pdl": "application/vnd.epson.escpos",
                "paper": f"{self.width}mm",
            },
        )
        zc = Zeroconf()
        try:
            zc.register_service(info)
        except Exception:
            zc.close()
            raise
        self._zeroconf, self._service = zc, info
        logger.info("printer: advertising %s as %r", SERVICE_TYPE, self.name)

    def _stop_advertising(self) -> None:
        if self._zeroconf is not None:
            self._zeroconf.unregister_service(self._service)
            self._zeroconf.close()
        self._zeroconf = self._service = None


def _lan_addresses(host: str) -> list[bytes]:
    if host not in ("0.0.0.0", ""):
        return [socket.inet_aton(socket.gethostbyname(host))]
    from zeroconf._utils.net import get_all_addresses

    found = [a for a in get_all_addresses() if not a.startswith("127.")]
    return [socket.inet_aton(a) for a in found] or [socket.inet_aton("127.0.0.1")]


def _next_receipt_number(out_dir: Path) -> int:
    numbers = [
        int(m.group(1)) for p in out_dir.iterdir() if (m := _RECEIPT_FILE.match(p.name)) is not None
    ]
    return max(numbers, default=0) + 1


def _fault_label(fault: Fault | None) -> str:
    return {
        None: "online, printing",
        "paper-out": "paper out, printing held",
        "cover-open": "cover open, printing held",
        "offline": "offline, connections refused",
    }[fault]


# ---------------------------------------------------------------------------------------------
# The command


_CYCLE: tuple[Fault | None, ...] = (None, "paper-out", "cover-open", "offline")
_HELP_LINE = (
    "type paper-out, cover-open, offline or ok to switch faults, status to show the state, "
    "quit to stop (SIGUSR1 cycles the faults)"
)


def _stdin_commands(sim: PrinterSimulator, stop: threading.Event) -> None:
    for raw in sys.stdin:
        word = raw.strip().lower()
        if not word:
            continue
        if word in ("quit", "exit", "q"):
            break
        if word == "status":
            click.echo(f"printer: {_fault_label(sim.fault)}; {len(sim.held)} held")
        elif word in ("ok", "none", "clear"):
            sim.set_fault(None)
        elif word in FAULTS:
            sim.set_fault(cast(Fault, word))
        else:
            click.echo(f"printer: unknown command {word!r}; {_HELP_LINE}", err=True)
    else:
        # End of input: Ctrl-D at a terminal means quit; a closed pipe or /dev/null (the
        # simulator started in the background) means keep printing until a signal.
        if not sys.stdin.isatty():
            return
    stop.set()


@click.command("printer")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9100,
    show_default=True,
    help="TCP port to listen on (0 picks a free one and prints it).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for receipt-NNNN.txt and receipt-NNNN.png (created if missing).",
)
@click.option(
    "--width",
    type=click.Choice(["58", "80"]),
    default="80",
    show_default=True,
    help="Paper width in mm: 58 (384 dots, 32 columns) or 80 (576 dots, 48 columns).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets tills on other machines print.",
)
@click.option(
    "--advertise",
    is_flag=True,
    help="Announce the printer with zeroconf as a _pdl-datastream._tcp service.",
)
@click.option(
    "--fault",
    type=click.Choice(list(FAULTS)),
    default=None,
    help="Start with this fault; switch later by typing on stdin.",
)
def printer_command(
    port: int, out_dir: Path, width: str, host: str, advertise: bool, fault: str | None
) -> None:
    """Simulate a network ESC/POS receipt printer (TCP 9100).

    Decodes what tills send (text, styles, code pages, QR codes, barcodes, cuts, drawer kicks)
    into one text file and one PNG per receipt in --out, shows each receipt here, and answers
    DLE EOT status requests. Switch faults while it runs by typing paper-out, cover-open,
    offline or ok (SIGUSR1 cycles through them); quit, Ctrl-D or Ctrl-C stops it.
    """
    sim = PrinterSimulator(
        port=port,
        out_dir=out_dir,
        width=int(width),
        fault=cast(Fault | None, fault),
        host=host,
        advertise=advertise,
        echo=click.echo,
        ansi=sys.stdout.isatty(),
    )
    try:
        sim.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    click.echo(f"printer: {_HELP_LINE}")
    stop = threading.Event()

    def cycle(signum: int, frame: object) -> None:
        current = _CYCLE.index(sim.fault)
        sim.set_fault(_CYCLE[(current + 1) % len(_CYCLE)])

    def terminate(signum: int, frame: object) -> None:
        stop.set()

    handlers: dict[signal.Signals, Callable[[int, object], None]] = {signal.SIGTERM: terminate}
    if hasattr(signal, "SIGUSR1"):  # not on Windows
        handlers[signal.SIGUSR1] = cycle
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    reader = threading.Thread(target=_stdin_commands, args=(sim, stop), daemon=True)
    reader.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sim.stop()
        click.echo(f"printer: stopped after {len(sim.receipts)} receipt(s)")
