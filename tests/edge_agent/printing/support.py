"""Fixed receipts for the printing tests, and a small ESC/POS reader that turns the renderer's
bytes back into the text a customer reads (code pages applied) plus what else was printed."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from edge_agent.printing.profiles import WESTERN_CODE_PAGES
from shared.catalogue import Store
from shared.receipt import Receipt, ReceiptSuggestion, receipt_from_return, receipt_from_sale
from shared.sale import (
    Discount,
    Return,
    ReturnLine,
    Sale,
    SaleLine,
    Tender,
    TenderKind,
    check_totals,
)
from shared.tax import line_tax

NOW = datetime(2026, 11, 24, 15, 4, 5, tzinfo=UTC)  # 16:04 in Berlin
SALE_ID = uuid.UUID("7d1c5a52-0c4e-4a43-9d0f-3c3b8f1d2e01")
RETURN_ID = uuid.UUID("7d1c5a52-0c4e-4a43-9d0f-3c3b8f1d2e02")
RECEIPT_URL = f"https://receipts.omnitill.example/r/{SALE_ID}"
ITEM_NAMES = {
    "GRO-MILK": "Alpenhof Fresh Milk 1 l",
    "APP-TSHIRT": "Nordkind Organic Cotton T-Shirt Navy, extra long",
}


def shop(**over: Any) -> Store:
    data: dict[str, Any] = {
        "store_id": "S001",
        "name": "Omnitill Café Köpenick",
        "city": "Berlin",
        "currency": "EUR",
        "tax_mode": "inclusive",
        "timezone": "Europe/Berlin",
        "locale": "en",
    }
    data.update(over)
    return Store(**data)


def _line(
    line_no: int,
    sku: str,
    name: str,
    unit: int,
    rate: str,
    *,
    quantity: int = 1,
    weight_g: int | None = None,
    discount: tuple[int, str] | None = None,
) -> SaleLine:
    base = unit * weight_g // 1000 if weight_g is not None else unit * quantity
    discounts: tuple[Discount, ...] = ()
    amount = base
    if discount is not None:
        discounts = (
            Discount(
                kind="amount",
                value=Decimal(discount[0]),
                amount_minor=discount[0],
                reason=discount[1],
            ),
        )
        amount -= discount[0]
    tax = line_tax(amount, Decimal(rate), "inclusive")
    return SaleLine(
        line_no=line_no,
        sku=sku,
        name=name,
        quantity=quantity,
        weight_g=weight_g,
        unit_price_minor=unit,
        discounts=discounts,
        tax_rate=Decimal(rate),
        amount_minor=amount,
        tax_minor=tax.tax,
    )


def sample_lines() -> tuple[SaleLine, ...]:
    return (
        _line(1, "GRO-MILK", "Alpenhof Fresh Milk 1 l", 129, "7", quantity=2),
        _line(
            2,
            "APP-TSHIRT",
            "Nordkind Organic Cotton T-Shirt Navy, extra long",
            1999,
            "19",
            discount=(200, "Summer sale -10%"),
        ),
        _line(3, "VEG-CARROTS", "Carrots loose", 199, "7", weight_g=532),
        _line(4, "DELI-PIEROGI", "Łukasz’s Pierogi – ruskie", 450, "7"),
        _line(5, "GRO-CREME", "Crème brûlée 2×", 399, "7"),
        _line(6, "GRO-MATCHA", "抹茶 Matcha Latte", 349, "19"),
    )


def sample_sale(
    *, tenders: tuple[Tender, ...] | None = None, lines: tuple[SaleLine, ...] | None = None
) -> Sale:
    lines = lines or sample_lines()
    total = sum(line.amount_minor for line in lines)
    if tenders is None:
        tenders = (Tender(kind="cash", amount_minor=5000, change_minor=5000 - total),)
    sale = Sale(
        sale_id=SALE_ID,
        receipt_number="S001-T1-000042",
        store_id="S001",
        till_id="S001-T1",
        cashier_id="Zoë",
        created_at=NOW,
        currency="EUR",
        tax_mode="inclusive",
        lines=lines,
        subtotal_minor=total,
        tax_minor=sum(line.tax_minor for line in lines),
        total_minor=total,
        tenders=tenders,
        loyalty_points_earned=14,
    )
    check_totals(sale)
    return sale


SUGGESTIONS = (
    ReceiptSuggestion(
        sku="GRO-COFFEE",
        name="Hochland Coffee Beans 1 kg",
        price_minor=1299,
        because_of="GRO-MILK",
    ),
    ReceiptSuggestion(
        sku="GRO-BREAD", name="Backstube Rye Bread 500 g", price_minor=299, because_of="GRO-MILK"
    ),
    ReceiptSuggestion(
        sku="APP-BELT",
        name="Nordkind Leather Belt Cognac",
        price_minor=2999,
        because_of="APP-TSHIRT",
    ),
)


def sample_receipt(*, copy: bool = False, store: Store | None = None, **sale: Any) -> Receipt:
    return receipt_from_sale(
        sample_sale(**sale),
        store or shop(),
        customer_name="Zoë Müller",
        loyalty_points=120,
        suggestions=SUGGESTIONS,
        receipt_url=RECEIPT_URL,
        copy=copy,
    )


def sample_return_receipt(*, refund: TenderKind = "cash") -> Receipt:
    sale = sample_sale()
    line = sale.lines[1]
    ret = Return(
        return_id=RETURN_ID,
        original_sale_id=sale.sale_id,
        receipt_number="S001-T1-000043",
        store_id="S001",
        till_id="S001-T1",
        cashier_id="Zoë",
        created_at=NOW,
        currency="EUR",
        lines=(
            ReturnLine(
                original_line_no=line.line_no,
                sku=line.sku,
                name=line.name,
                quantity=1,
                amount_minor=line.amount_minor,
                tax_minor=line.tax_minor,
                tax_rate=line.tax_rate,
            ),
        ),
        total_minor=line.amount_minor,
        tax_minor=line.tax_minor,
        refund_tenders=(Tender(kind=refund, amount_minor=line.amount_minor),),
    )
    return receipt_from_return(ret, shop(), original_receipt_number=sale.receipt_number)


# -- a small ESC/POS reader -----------------------------------------------------------------


@dataclass
class Printed:
    """What a printer would have done with the bytes."""

    text: str = ""
    qr: list[str] = field(default_factory=list)
    barcodes: list[str] = field(default_factory=list)
    images: list[tuple[int, int]] = field(default_factory=list)  # (width dots, height dots)
    cuts: int = 0
    drawer_kicks: int = 0
    code_pages: list[int] = field(default_factory=list)  # every ESC t n, in order
    layout: str = ""  # the text with [QR ...], [CODE128 ...], [image], [cut], [drawer] inline

    @property
    def rows(self) -> list[str]:
        return self.text.split("\n")


_PAGES = {number: name.lower() for number, name in WESTERN_CODE_PAGES}
# Commands with a fixed number of parameter bytes after ESC x / GS x.
_ESC_ARGS = {
    b"!": 1,
    b"-": 1,
    b"2": 0,
    b"3": 1,
    b"E": 1,
    b"G": 1,
    b"M": 1,
    b"a": 1,
    b"d": 1,
    b"t": 1,
    b"{": 1,
    b"V": 1,
    b"J": 1,
    b"c": 2,
}
_GS_ARGS = {b"!": 1, b"B": 1, b"H": 1, b"f": 1, b"h": 1, b"w": 1}


def read_escpos(data: bytes) -> Printed:
    """Decode the commands the renderer uses; anything else fails the test that calls it."""
    out = Printed()
    text: list[str] = []
    layout: list[str] = []
    page = "cp437"
    i = 0
    while i < len(data):
        byte = data[i : i + 1]
        if byte == b"\x1b":
            cmd = data[i + 1 : i + 2]
            if cmd == b"@":
                i += 2
            elif cmd == b"p":
                out.drawer_kicks += 1
                layout.append("[drawer kick]\n")
                i += 5
            elif cmd in _ESC_ARGS:
                if cmd == b"t":
                    out.code_pages.append(data[i + 2])
                    page = _PAGES[data[i + 2]]
                i += 2 + _ESC_ARGS[cmd]
            else:
                raise AssertionError(f"unknown ESC {cmd!r} at {i}")
        elif byte == b"\x1d":
            cmd = data[i + 1 : i + 2]
            if cmd == b"V":
                out.cuts += 1
                layout.append("[cut]\n")
                i += 3 if data[i + 2] in (0, 1, 48, 49) else 4
            elif cmd == b"k":
                kind, length = data[i + 2], data[i + 3]
                assert kind == 73, "the renderer draws CODE128 only"
                payload = data[i + 4 : i + 4 + length].decode("ascii")
                assert payload.startswith("{B")
                out.barcodes.append(payload[2:])
                layout.append(f"[CODE128 {payload[2:]}]")
                i += 4 + length
            elif cmd == b"(" and data[i + 2 : i + 3] == b"k":
                size = data[i + 3] + 256 * data[i + 4]
                body = data[i + 5 : i + 5 + size]
                if body[:2] == b"1P":  # store the symbol data (after cn fn m)
                    out.qr.append(body[3:].decode("utf-8"))
                    layout.append(f"[QR {out.qr[-1]}]")
                i += 5 + size
            elif cmd == b"v" and data[i + 2 : i + 3] == b"0":
                width = data[i + 4] + 256 * data[i + 5]
                height = data[i + 6] + 256 * data[i + 7]
                out.images.append((width * 8, height))
                layout.append(f"[image {width * 8}x{height} dots]")
                i += 8 + width * height
            elif cmd in _GS_ARGS:
                i += 2 + _GS_ARGS[cmd]
            else:
                raise AssertionError(f"unknown GS {cmd!r} at {i}")
        elif byte in (b"\x10", b"\x1c"):
            raise AssertionError(f"unexpected command byte {byte!r} at {i}")
        else:
            text.append(byte.decode(page))
            layout.append(text[-1])
            i += 1
    out.text = "".join(text)
    out.layout = "\n".join(row.rstrip() for row in "".join(layout).split("\n"))
    return out


# -- a network printer on 127.0.0.1 -------------------------------------------------------------

READY = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}
PAPER_OUT = {1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x7E}  # offline, stopped at paper end, roll empty
COVER_OPEN = {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12}
PAPER_LOW = {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeTcpPrinter:
    """A raw-port printer: records what it is sent and answers DLE EOT n from ``status``
    (``status = None``: it never answers, like a printer without status support)."""

    def __init__(self, port: int = 0) -> None:
        self.status: dict[int, int] | None = dict(READY)
        self.connections: list[bytes] = []  # everything but the status requests, per connection
        self.queries: list[int] = []
        self._sock = socket.create_server(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        received = bytearray()
        with self._lock:
            index = len(self.connections)
            self.connections.append(b"")
        held = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                data, held = held + chunk, b""
                i = 0
                while i < len(data):
                    if data[i] == 0x10 and i + 2 >= len(data):
                        held = data[i:]  # a request split across reads
                        break
                    if data[i] == 0x10 and data[i + 1] == 0x04:
                        n = data[i + 2]
                        self.queries.append(n)
                        if self.status is not None:
                            conn.sendall(bytes([self.status.get(n, 0x12)]))
                        i += 3
                        continue
                    received.append(data[i])
                    i += 1
                with self._lock:
                    self.connections[index] = bytes(received)
            received.extend(held)
            with self._lock:
                self.connections[index] = bytes(received)

    @property
    def received(self) -> list[bytes]:
        """What each connection sent besides status requests (empty ones left out)."""
        with self._lock:
            return [data for data in self.connections if data]

    def close(self) -> None:
        self._sock.close()
        for thread in self._threads[1:]:
            thread.join(timeout=2)
