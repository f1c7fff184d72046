"""The network printer simulator: receipts over TCP, files, status answers and faults."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner
from escpos.printer import Network
from PIL import Image

from hardware_sim.cli import sim
from hardware_sim.escpos_decoder import DrawerKick, StatusRequest
from hardware_sim.printer import FAULTS, SERVICE_TYPE, Fault, PrinterSimulator, status_response

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[PrinterSimulator]:
    with PrinterSimulator(port=0, out_dir=tmp_path / "paper") as simulator:
        yield simulator


def send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)


def ask(sock: socket.socket, n: int) -> int:
    sock.sendall(bytes((0x10, 0x04, n)))
    reply = sock.recv(1)
    assert len(reply) == 1
    return reply[0]


def statuses(port: int) -> tuple[int, ...]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return tuple(ask(s, n) for n in (1, 2, 3, 4))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# -- python-escpos writing to the simulator over TCP -------------------------------------------


def test_receipt_from_python_escpos_over_tcp(
    printer: PrinterSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Network("127.0.0.1", printer.port, timeout=5)
    p.open()
    p.hw("INIT")
    p.set(align="center", bold=True, double_height=True)
    p.textln("Omnitill Café Köpenick")
    p.set(align="left", bold=False, normal_textsize=True)
    p.textln("Crème brûlée            4,50 €")
    p.textln("Łukasz's pierogi        £3.00")
    p.qr("https://receipts.example/r/1", native=True)
    p.barcode("{BR12345678", "CODE128", function_type="B")
    assert p.is_online() and p.paper_status() == 2  # status asked mid-receipt
    p.cashdraw(2)
    p.cut()
    p.close()

    [printed] = printer.wait_for_receipts(1)
    capsys.readouterr()
    receipt = printed.receipt
    lines = [line for line in receipt.lines if line.text.strip()]
    assert [line.text for line in lines] == [
        "Omnitill Café Köpenick",
        "Crème brûlée            4,50 €",
        "Łukasz's pierogi        £3.00",
    ]
    assert lines[0].align == "center" and lines[0].bold and lines[0].style.double_height
    assert not lines[1].bold and lines[1].align == "left"
    assert receipt.qr_payloads == ["https://receipts.example/r/1"]
    assert [(b.symbology, b.payload) for b in receipt.barcodes] == [("CODE128", "R12345678")]
    assert receipt.drawer_kicks == [DrawerKick(pin=2, on_ms=100, off_ms=100)]
    assert printer.drawer_kicks == receipt.drawer_kicks
    assert receipt.cut == "full"

    assert printed.number == 1
    assert printed.text_path == printer.out_dir / "receipt-0001.txt"
    assert printed.text_path.read_text(encoding="utf-8") == printed.text
    assert "       Omnitill Café Köpenick" in printed.text
    assert "[QR: https://receipts.example/r/1]" in printed.text
    assert "[CODE128: R12345678]" in printed.text
    assert printed.text.rstrip().endswith("full cut -------------------")
    with Image.open(printed.png_path) as png:
        assert png.format == "PNG"
        assert png.width == 576
        assert png.height > 300
        # Ink on the paper: the title, the codes.
        assert png.convert("L").getextrema() == (0, 255)


def test_58mm_paper_is_384_dots_wide(tmp_path: Path) -> None:
    with PrinterSimulator(port=0, out_dir=tmp_path, width=58) as printer:
        send(printer.port, b"x" * 40 + b"\n\x1dV\x00")
        [printed] = printer.wait_for_receipts(1)
    assert printed.receipt.text_lines == ["x" * 32, "x" * 8]
    with Image.open(printed.png_path) as png:
        assert png.width == 384


def test_receipts_split_at_cuts_and_at_the_end_of_a_connection(printer: PrinterSimulator) -> None:
    send(printer.port, b"one\n\x1dV\x00two\n\x1dV\x01three\n")
    first, second, third = printer.wait_for_receipts(3)
    assert [r.receipt.text_lines for r in (first, second, third)] == [["one"], ["two"], ["three"]]
    assert [r.receipt.cut for r in (first, second, third)] == ["full", "partial", None]
    assert sorted(p.name for p in printer.out_dir.iterdir()) == [
        f"receipt-000{n}.{ext}" for n in (1, 2, 3) for ext in ("png", "txt")
    ]


def test_status_only_and_drawer_only_connections_print_nothing(printer: PrinterSimulator) -> None:
    assert statuses(printer.port) == (0x12, 0x12, 0x12, 0x12)
    send(printer.port, b"\x1b@\x1bp\x00\x19\xfa")
    wait_until(lambda: len(printer.drawer_kicks) == 1)
    assert printer.receipts == []
    assert list(printer.out_dir.iterdir()) == []


def test_numbering_continues_after_receipts_already_in_the_directory(tmp_path: Path) -> None:
    (tmp_path / "receipt-0041.txt").write_text("old\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a receipt\n", encoding="utf-8")
    with PrinterSimulator(port=0, out_dir=tmp_path) as printer:
        send(printer.port, b"new\n\x1dV\x00")
        [printed] = printer.wait_for_receipts(1)
    assert printed.number == 42
    assert (tmp_path / "receipt-0041.txt").read_text(encoding="utf-8") == "old\n"
    assert (tmp_path / "receipt-0042.png").exists()


def test_echo_shows_each_receipt_as_it_prints(tmp_path: Path) -> None:
    shown: list[str] = []
    with PrinterSimulator(port=0, out_dir=tmp_path, echo=shown.append) as printer:
        send(printer.port, b"\x1bE\x01hello\n\x1dV\x00")
        printer.wait_for_receipts(1)
    assert shown[0].startswith(f"printer: listening on 127.0.0.1:{printer.port}")
    assert any("receipt 0001" in message and "hello" in message for message in shown)


# -- status answers and faults -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (None, (0x12, 0x12, 0x12, 0x12)),
        ("paper-out", (0x1A, 0x32, 0x12, 0x7E)),
        ("cover-open", (0x1A, 0x16, 0x12, 0x12)),
    ],
)
def test_dle_eot_answers_per_fault(
    tmp_path: Path, fault: Fault | None, expected: tuple[int, ...]
) -> None:
    with PrinterSimulator(port=0, out_dir=tmp_path, fault=fault) as printer:
        assert statuses(printer.port) == expected
        # python-escpos reads the same bytes the way Epson documents them.
        p = Network("127.0.0.1", printer.port, timeout=5)
        p.open()
        try:
            assert p.is_online() is (fault is None)
            assert p.paper_status() == (0 if fault == "paper-out" else 2)
        finally:
            p.close()


def test_status_bytes_follow_the_epson_bit_layout() -> None:
    for fault in (None, *FAULTS):
        for n in (1, 2, 3, 4):
            [byte] = status_response(StatusRequest("DLE EOT", n), fault)
            assert byte & 0x93 == 0x12, (fault, n)  # bits 1 and 4 set, bits 0 and 7 clear
    paper = status_response(StatusRequest("GS r", 1), "paper-out")
    assert paper == b"\x0f" and status_response(StatusRequest("GS r", 1), None) == b"\x00"
    assert status_response(StatusRequest("GS I", 66), None) == b"_OMNITILL\x00"
    assert status_response(StatusRequest("DLE EOT", 9), None) == b""


def test_offline_refuses_connections(tmp_path: Path) -> None:
    with PrinterSimulator(port=0, out_dir=tmp_path, fault="offline") as printer:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", printer.port), timeout=2)
        printer.set_fault(None)
        assert statuses(printer.port)[0] == 0x12


def test_paper_out_while_running_holds_the_receipt_and_prints_it_once(
    printer: PrinterSimulator,
) -> None:
    with socket.create_connection(("127.0.0.1", printer.port), timeout=5) as s:
        assert ask(s, 4) == 0x12
        printer.set_fault("paper-out")
        assert ask(s, 4) == 0x7E  # the same connection sees the change at once
        s.sendall(b"first sale\n\x1dV\x00")
        assert ask(s, 1) == 0x1A  # still answered while the receipt is held
    wait_until(lambda: len(printer.held) == 1)
    assert printer.receipts == [] and list(printer.out_dir.iterdir()) == []

    printer.set_fault("cover-open")  # another fault: still held
    send(printer.port, b"second sale\n\x1dV\x00")
    wait_until(lambda: len(printer.held) == 2)
    assert printer.receipts == []

    printer.set_fault(None)
    first, second = printer.wait_for_receipts(2)
    assert first.receipt.text_lines == ["first sale"]
    assert second.receipt.text_lines == ["second sale"]
    assert printer.held == []
    time.sleep(0.1)
    assert len(printer.receipts) == 2  # printed once, never again
    assert len(list(printer.out_dir.glob("*.txt"))) == 2
    assert statuses(printer.port) == (0x12, 0x12, 0x12, 0x12)


def test_going_offline_drops_open_connections_and_keeps_what_arrived(
    printer: PrinterSimulator,
) -> None:
    s = socket.create_connection(("127.0.0.1", printer.port), timeout=5)
    with s:
        s.sendall(b"half a receipt\n")
        assert ask(s, 1) == 0x12
        printer.set_fault("offline")
        assert s.recv(1) == b""  # the printer hung up
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", printer.port), timeout=2)
    assert [r.text_lines for r in printer.held] == [["half a receipt"]]
    printer.set_fault(None)
    [printed] = printer.wait_for_receipts(1)
    assert printed.receipt.cut is None


def test_unknown_fault_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="paper-jam"):
        PrinterSimulator(port=0, out_dir=tmp_path, fault="paper-jam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="58 or 80"):
        PrinterSimulator(port=0, out_dir=tmp_path, width=76)


def test_a_port_in_use_is_an_os_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            PrinterSimulator(port=taken.getsockname()[1], out_dir=tmp_path).start()


def test_the_till_printer_connection_reads_each_fault(printer: PrinterSimulator) -> None:
    from edge_agent.printing.connections import TcpConnection
    from shared.errors import CoverOpen, PaperOut, PrinterOffline

    def fault_seen() -> type[Exception] | None:
        connection = TcpConnection(host="127.0.0.1", port=printer.port, timeout=2)
        try:
            status = connection.status()
            assert status is not None
            found = status.fault()
            return None if found is None else type(found)
        except PrinterOffline:
            return PrinterOffline
        finally:
            connection.close()

    expected: dict[Fault | None, type[Exception] | None] = {
        None: None,
        "paper-out": PaperOut,
        "cover-open": CoverOpen,
        "offline": PrinterOffline,
    }
    for fault, error in expected.items():
        printer.set_fault(fault)
        assert fault_seen() is error, fault


# -- the round trip with our own renderer --------------------------------------------------------


def sample_receipt(*, copy: bool = False) -> Any:
    from shared.catalogue import Store
    from shared.receipt import Receipt, ReceiptLine, ReceiptSuggestion, TaxBreakdownRow
    from shared.sale import Tender

    return Receipt(
        kind="sale",
        copy=copy,
        store=Store(
            store_id="S001",
            name="Omnitill Café Köpenick",
            city="Berlin",
            currency="EUR",
            tax_mode="inclusive",
            timezone="Europe/Berlin",
            locale="en",
        ),
        receipt_number="S001-T1-000007",
        created_at=datetime(2026, 11, 24, 15, 4, 5, tzinfo=UTC),
        till_id="S001-T1",
        cashier_id="Zoë",
        currency="EUR",
        lines=(
            ReceiptLine(
                name="Alpenhof Fresh Milk 1 l",
                quantity=2,
                unit_price_minor=129,
                amount_minor=258,
                tax_rate=Decimal("7"),
            ),
            ReceiptLine(
                name="Crème brûlée",
                quantity=1,
                unit_price_minor=399,
                amount_minor=399,
                tax_rate=Decimal("7"),
            ),
            ReceiptLine(
                name="Łukasz's Pierogi",
                quantity=1,
                unit_price_minor=450,
                amount_minor=400,
                discount_minor=50,
                discount_reasons=("Staff",),
                tax_rate=Decimal("19"),
            ),
        ),
        tax_breakdown=(
            TaxBreakdownRow(rate=Decimal("7"), net_minor=614, tax_minor=43, gross_minor=657),
            TaxBreakdownRow(rate=Decimal("19"), net_minor=336, tax_minor=64, gross_minor=400),
        ),
        subtotal_minor=1057,
        tax_minor=107,
        total_minor=1057,
        tenders=(Tender(kind="cash", amount_minor=2000, change_minor=943),),
        change_minor=943,
        customer_name="Zoë Müller",
        loyalty_points=120,
        loyalty_points_earned=10,
        suggestions=(
            ReceiptSuggestion(
                sku="GRO-COFFEE",
                name="Hochland Coffee Beans",
                price_minor=1299,
                because_of="Alpenhof Fresh Milk 1 l",
            ),
            ReceiptSuggestion(
                sku="GRO-BREAD", name="Rye Bread", price_minor=299, because_of="Crème brûlée"
            ),
        ),
        receipt_url="https://receipts.omnitill.example/r/7d1c5a52",
    )


def words(lines: list[str]) -> str:
    """The receipt as one run of words: what a customer reads, whatever the wrapping."""
    return " ".join(" ".join(lines).split())


@pytest.mark.parametrize("profile_name", ["80mm-48", "80mm-42", "58mm"])
def test_round_trip_of_our_receipt_through_the_simulator(tmp_path: Path, profile_name: str) -> None:
    render = pytest.importorskip("edge_agent.printing.render")
    from edge_agent.printing.profiles import profile_named

    profile = profile_named(profile_name)
    receipt = sample_receipt()
    data = render.render_receipt(receipt, profile)
    width = 58 if profile.paper_mm == 58 else 80
    with PrinterSimulator(port=0, out_dir=tmp_path, width=width) as printer:
        send(printer.port, data)
        [printed] = printer.wait_for_receipts(1)
    decoded = printed.receipt
    lines = decoded.text_lines
    text = words(lines)

    assert all(len(line) <= profile.columns for line in lines)
    first = next(line for line in decoded.lines if line.text.strip())
    assert first.text == "Omnitill Café Köpenick" and first.bold and first.align == "center"
    for expected in (
        "Receipt S001-T1-000007",
        "Date 2026-11-24 16:04",  # Berlin time
        "Cashier Zoë",
        "Alpenhof Fresh Milk 1 l 2 x €1.29 €2.58 A",
        "Crème brûlée €3.99 A",
        "Łukasz's Pierogi €4.50 B Staff -€0.50",
        "TOTAL €10.57",
        "Cash €20.00",
        "Change €9.43",
        "Customer Zoë Müller",
        "Customers who bought Alpenhof Fresh Milk 1 l also bought: Hochland Coffee Beans €12.99",
        "Customers who bought Crème brûlée also bought: Rye Bread €2.99",
        "Thank you!",
    ):
        assert expected in text, expected
    total = next(line for line in decoded.lines if line.text.startswith("TOTAL"))
    assert total.bold
    assert "COPY" not in text
    assert decoded.qr_payloads == [receipt.receipt_url]
    assert decoded.barcode_payloads == ["RS001-T1-000007"]
    assert decoded.drawer_kicks and decoded.drawer_kicks[0].pin == 2  # paid in cash
    assert decoded.cut == ("full" if profile.cut else None)
    with Image.open(printed.png_path) as png:
        assert png.width == profile.dots if profile.dots in (384, 576) else png.width == 576


def test_round_trip_of_a_reprint_says_copy_and_keeps_the_drawer_shut(tmp_path: Path) -> None:
    render = pytest.importorskip("edge_agent.printing.render")
    from edge_agent.printing.profiles import profile_named

    with PrinterSimulator(port=0, out_dir=tmp_path) as printer:
        send(printer.port, render.render_receipt(sample_receipt(copy=True), profile_named("80mm")))
        [printed] = printer.wait_for_receipts(1)
    visible = [line for line in printed.receipt.lines if line.text.strip()]
    assert visible[0].text == "COPY" and visible[0].style.double_width
    assert visible[-1].text == "COPY"
    assert printed.receipt.drawer_kicks == []


# -- the command ------------------------------------------------------------------------------


def test_sim_group_lists_the_printer() -> None:
    result = CliRunner().invoke(sim, ["--help"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s+printer\s+Network ESC/POS receipt printer", result.output, re.M)
    result = CliRunner().invoke(sim, ["printer", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--out", "--width", "--host", "--advertise", "--fault"):
        assert option in result.output


def test_every_option_is_documented() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = docs.split("## omnitill sim printer\n", 1)[1].split("\n## ", 1)[0]
    for option in ("--port", "--out", "--width", "--host", "--advertise", "--fault"):
        assert f"`{option}" in section, option


class Running:
    """``omnitill sim printer`` in a child process, with its output read on a thread."""

    def __init__(self, *args: str) -> None:
        code = "from hardware_sim.printer import printer_command; printer_command()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        for line in out:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if (found := re.search(pattern, line)) is not None:
                    return found
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} in {self.lines}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return code


def test_command_switches_faults_from_stdin_and_signals(tmp_path: Path) -> None:
    running = Running("--port", "0", "--out", str(tmp_path), "--fault", "cover-open")
    try:
        port = int(running.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        running.wait_for("fault: cover-open")
        assert statuses(port)[1] == 0x16
        running.type("paper-out")
        running.wait_for("paper out, printing held")
        assert statuses(port)[3] == 0x7E
        send(port, b"waiting\n\x1dV\x00")
        running.wait_for("receipt held")
        running.type("ok")
        running.wait_for("receipt 0001")
        running.wait_for("^waiting$")
        if hasattr(signal, "SIGUSR1"):
            running.proc.send_signal(signal.SIGUSR1)  # ok -> paper-out
            running.wait_for("printer: paper out")
            assert statuses(port)[3] == 0x7E
        running.type("quit")
        assert running.proc.wait(timeout=20) == 0
        running.wait_for("stopped after 1 receipt")
    finally:
        running.close()
    assert (tmp_path / "receipt-0001.txt").read_text(encoding="utf-8").startswith("waiting\n")


def test_command_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = CliRunner().invoke(
            sim, ["printer", "--port", str(taken.getsockname()[1]), "--out", str(tmp_path)]
        )
    assert result.exit_code == 1
    assert "cannot listen on 127.0.0.1:" in result.output


def test_advertise_registers_a_pdl_datastream_service(tmp_path: Path) -> None:
    zeroconf = pytest.importorskip("zeroconf")
    from tests.support.till import multicast_loopback_problem

    problem = multicast_loopback_problem()
    if problem is not None:
        pytest.skip(problem)
    with PrinterSimulator(port=0, out_dir=tmp_path, advertise=True, name="Test printer") as printer:
        zc = zeroconf.Zeroconf(interfaces=["127.0.0.1"])
        try:
            info = zc.get_service_info(SERVICE_TYPE, f"Test printer.{SERVICE_TYPE}", timeout=3000)
        finally:
            zc.close()
        if info is None:
            pytest.skip("mDNS answers do not come back on this system")
        assert info.port == printer.port
        assert info.properties[b"pdl"] == b"application/vnd.epson.escpos"
