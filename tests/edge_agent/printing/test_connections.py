"""Printer connections by URL: tcp against a small socket server that answers DLE EOT, file://
into a temporary file, serial over a pty, none, and bad URLs refused with clear messages."""

from __future__ import annotations

import importlib.util
import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.printing.connections import (
    FileConnection,
    NullConnection,
    PrinterStatus,
    SerialConnection,
    TcpConnection,
    connection_factory,
    open_connection,
    parse_printer_url,
    status_from_replies,
)
from shared.errors import CoverOpen, InvalidInput, PaperOut, PrinterError, PrinterOffline
from tests.edge_agent.printing.support import (
    COVER_OPEN,
    PAPER_LOW,
    PAPER_OUT,
    READY,
    FakeTcpPrinter,
    free_port,
)

RECEIPT = b"\x1b@Hello \xd5\n\x1bd\x06\x1dV\x00"


@pytest.fixture
def printer() -> Iterator[FakeTcpPrinter]:
    fake = FakeTcpPrinter()
    yield fake
    fake.close()


def wait_until(probe: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- status bytes --------------------------------------------------------------------------------


def test_status_bytes_are_read_as_the_esc_pos_manual_says() -> None:
    assert status_from_replies(READY) == PrinterStatus(online=True)
    paper = status_from_replies(PAPER_OUT)
    assert paper.paper_end and not paper.online and not paper.cover_open
    assert isinstance(paper.fault(), PaperOut)
    cover = status_from_replies(COVER_OPEN)
    assert cover.cover_open and isinstance(cover.fault(), CoverOpen)
    low = status_from_replies(PAPER_LOW)
    assert low.paper_near_end and low.fault() is None and "nearly empty" in low.message
    assert isinstance(status_from_replies({1: 0x1A}).fault(), PrinterOffline)
    cutter = status_from_replies({1: 0x1A, 2: 0x52, 3: 0x16})
    assert cutter.cutter_error and "cutter" in str(cutter.fault())
    assert status_from_replies({}).fault() is None  # nothing said: nothing wrong


# -- tcp -------------------------------------------------------------------------------------------


def test_tcp_sends_the_bytes_after_asking_the_status(printer: FakeTcpPrinter) -> None:
    connection = open_connection(printer.url)
    assert connection.status() == PrinterStatus(online=True)
    connection.send(RECEIPT)
    connection.close()
    wait_until(lambda: printer.received == [RECEIPT])
    assert printer.queries == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [(PAPER_OUT, PaperOut, "out of paper"), (COVER_OPEN, CoverOpen, "cover is open")],
)
def test_tcp_status_reports_paper_and_cover(
    printer: FakeTcpPrinter, status: dict[int, int], error: type[PrinterError], words: str
) -> None:
    printer.status = status
    connection = open_connection(printer.url)
    try:
        found = connection.status()
    finally:
        connection.close()
    assert found is not None
    fault = found.fault()
    assert isinstance(fault, error) and words in fault.message


def test_a_printer_that_does_not_answer_status_has_none(printer: FakeTcpPrinter) -> None:
    printer.status = None
    connection = TcpConnection(host="127.0.0.1", port=printer.port, status_timeout=0.1)
    started = time.monotonic()
    assert connection.status() is None
    assert time.monotonic() - started < 1.0
    connection.send(RECEIPT)
    connection.close()
    wait_until(lambda: printer.received == [RECEIPT])


def test_status_can_be_switched_off_in_the_url(printer: FakeTcpPrinter) -> None:
    connection = open_connection(f"{printer.url}?status=0")
    assert connection.status() is None
    connection.close()
    assert printer.queries == []


def test_tcp_refused_is_printer_offline() -> None:
    port = free_port()
    connection = open_connection(f"tcp://127.0.0.1:{port}")
    with pytest.raises(PrinterOffline, match=f"127.0.0.1:{port} refused the connection"):
        connection.status()
    with pytest.raises(PrinterOffline):
        connection.send(RECEIPT)
    connection.close()


def test_tcp_unknown_host_is_printer_offline() -> None:
    connection = open_connection("tcp://printer.invalid:9100?timeout=2")
    with pytest.raises(PrinterOffline, match=r"printer\.invalid"):
        connection.status()


def test_tcp_defaults_to_port_9100() -> None:
    factory = connection_factory("tcp://10.0.0.31")
    connection = factory()
    assert isinstance(connection, TcpConnection)
    assert (connection.host, connection.port) == ("10.0.0.31", 9100)
    assert factory() is not connection  # one fresh connection per attempt


# -- file ------------------------------------------------------------------------------------------


def test_file_appends_every_receipt(tmp_path: Path) -> None:
    target = tmp_path / "lp0"
    for _ in range(2):
        connection = open_connection(f"file://{target}")
        assert connection.status() is None
        connection.send(RECEIPT)
        connection.close()
    assert target.read_bytes() == RECEIPT * 2


def test_a_missing_device_is_offline_and_never_created(tmp_path: Path) -> None:
    connection = open_connection(f"file://{tmp_path}/gone/lp0")
    with pytest.raises(PrinterOffline, match="is not there"):
        connection.status()
    device = Path("/dev/usb/omnitill-test-lp9")
    connection = FileConnection(path=device)
    with pytest.raises(PrinterOffline):
        connection.send(RECEIPT)
    assert not device.exists()  # an unplugged printer must not become a file swallowing receipts


# -- serial ----------------------------------------------------------------------------------------


class PtyPrinter:
    """The printer's end of a pty: answers DLE EOT and records the rest."""

    def __init__(self, status: dict[int, int]) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.status = status
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                pending += os.read(self.master, 4096)
            except OSError:
                return
            while pending:
                if pending[:1] == b"\x10":
                    if len(pending) < 3:
                        break
                    os.write(self.master, bytes([self.status[pending[2]]]))
                    pending = pending[3:]
                else:
                    self.received += pending[:1]
                    pending = pending[1:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


def test_serial_over_a_pty_reads_the_status_and_prints() -> None:
    pty = PtyPrinter(dict(PAPER_LOW))
    try:
        connection = open_connection(f"serial://{pty.path}?baudrate=38400")
        assert isinstance(connection, SerialConnection) and connection.baudrate == 38400
        status = connection.status()
        assert status is not None and status.paper_near_end and status.fault() is None
        connection.send(RECEIPT)
        connection.close()
        wait_until(lambda: bytes(pty.received) == RECEIPT)
        pty.status = dict(PAPER_OUT)
        connection = open_connection(f"serial://{pty.path}?baudrate=38400")
        status = connection.status()
        connection.close()
        assert status is not None and isinstance(status.fault(), PaperOut)
    finally:
        pty.close()


def test_a_missing_serial_port_is_offline(tmp_path: Path) -> None:
    connection = open_connection(f"serial://{tmp_path}/ttyUSB9")
    with pytest.raises(PrinterOffline, match="Cannot open the printer's serial port"):
        connection.status()


# -- none ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["none", "", "  NONE "])
def test_none_prints_nowhere(url: str) -> None:
    connection = open_connection(url)
    assert isinstance(connection, NullConnection)
    assert connection.status() is None
    connection.send(RECEIPT)
    connection.close()


# -- URLs ------------------------------------------------------------------------------------------


def test_the_url_chooses_the_profile_and_timeout() -> None:
    parsed = parse_printer_url("tcp://10.0.0.31:9100?profile=58mm&timeout=2.5")
    assert (parsed.scheme, parsed.target, parsed.profile.columns, parsed.timeout) == (
        "tcp",
        "10.0.0.31:9100",
        32,
        2.5,
    )
    assert parse_printer_url("file:///dev/usb/lp0").profile.columns == 42
    assert parse_printer_url("serial:///dev/ttyS0?profile=80mm-48").profile.columns == 48


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("lpt://printer", "unknown kind 'lpt'"),
        ("192.168.1.50:9100", "unknown kind"),
        ("tcp://", "names no host"),
        ("tcp://printer:99999", "port is not a number"),
        ("tcp://printer?colour=red", "unknown option colour; tcp printers take"),
        ("tcp://printer?profile=112mm", "Unknown printer profile '112mm'"),
        ("tcp://printer?timeout=soon", "timeout='soon' is not a number of seconds"),
        ("tcp://printer?status=maybe", "status='maybe': use 1 or 0"),
        ("serial:///dev/ttyS0?baudrate=fast", "baudrate='fast' is not a baud rate"),
        ("serial://", "names no serial port"),
        ("usb://epson", "vendor and product id in hex"),
        ("usb://04b8:zzzz", "vendor and product id in hex"),
        ("file://", "names no file"),
    ],
)
def test_bad_urls_are_refused_with_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        connection_factory(url)


@pytest.mark.skipif(importlib.util.find_spec("usb") is not None, reason="pyusb is installed")
def test_usb_without_pyusb_says_what_to_install() -> None:
    with pytest.raises(PrinterError, match=r"needs pyusb.*file:///dev/usb/lp0"):
        connection_factory("usb://04b8:0202")
