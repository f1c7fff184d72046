"""Scanners: URLs, the line rules, and a real serial scanner on a pty (noise, silence,
overlong lines, and a device that vanishes and comes back)."""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.scanner import (
    LineAssembler,
    ScanRead,
    SerialScanner,
    SerialScannerConfig,
    StreamScanner,
    parse_scanner_url,
    scanner_from_url,
)
from shared.errors import ScannerError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="ptys are POSIX")

EAN = "4006381333931"
EAN_2 = "96385074"
SUFFIXES = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}


# --- URLs --------------------------------------------------------------------------------------


def test_url_defaults() -> None:
    config = parse_scanner_url("serial:///dev/ttyUSB0")
    assert config == SerialScannerConfig(port="/dev/ttyUSB0")
    assert (config.baudrate, config.parity, config.bytesize, config.stopbits) == (9600, "N", 8, 1)
    assert config.suffix_bytes == b"\r"


def test_url_with_every_parameter() -> None:
    config = parse_scanner_url(
        "serial:///dev/ttyACM1?baudrate=115200&parity=e&bytesize=7&stopbits=2&suffix=crlf"
    )
    assert config.port == "/dev/ttyACM1"
    assert (config.baudrate, config.parity, config.bytesize, config.stopbits) == (115200, "E", 7, 2)
    assert config.suffix_bytes == b"\r\n"
    assert parse_scanner_url("serial://COM3?stopbits=1.5&suffix=TAB").port == "COM3"
    assert parse_scanner_url("serial://COM3?stopbits=1.5").stopbits == 1.5


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("tcp://10.0.0.5:9100", "not supported"),
        ("serial://", "names no port"),
        ("serial:///dev/ttyUSB0?baud=9600", "'baud' is unknown"),
        ("serial:///dev/ttyUSB0?baudrate=fast", "baudrate='fast' must be a whole number"),
        ("serial:///dev/ttyUSB0?baudrate=0", "baudrate must be positive"),
        ("serial:///dev/ttyUSB0?parity=X", "parity 'X' is not one of N, E, O, M, S"),
        ("serial:///dev/ttyUSB0?bytesize=9", "bytesize must be 5, 6, 7 or 8"),
        ("serial:///dev/ttyUSB0?stopbits=3", "stopbits must be 1, 1.5 or 2"),
        ("serial:///dev/ttyUSB0?suffix=ETX", "suffix 'ETX' is not one of CR, LF, CRLF, TAB"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(ScannerError, match=words):
        scanner_from_url(url)


@given(
    port=st.sampled_from(["/dev/ttyUSB0", "/dev/serial/by-id/usb-Honeywell_1900-if00", "COM7"]),
    baudrate=st.sampled_from([1200, 9600, 38400, 115200]),
    parity=st.sampled_from(["N", "E", "O", "M", "S"]),
    bytesize=st.sampled_from([5, 6, 7, 8]),
    stopbits=st.sampled_from([1.0, 1.5, 2.0]),
    suffix=st.sampled_from(list(SUFFIXES)),
)
def test_url_round_trip(
    port: str, baudrate: int, parity: str, bytesize: int, stopbits: float, suffix: str
) -> None:
    config = SerialScannerConfig(
        port=port,
        baudrate=baudrate,
        parity=parity,  # type: ignore[arg-type]
        bytesize=bytesize,
        stopbits=stopbits,
        suffix=suffix,  # type: ignore[arg-type]
    )
    assert parse_scanner_url(config.url) == config


# --- the line rules, without a device ----------------------------------------------------------


def test_codes_noise_and_framing() -> None:
    lines = LineAssembler()
    reads = lines.feed(
        b"\x02" + EAN.encode() + b"\x03\r\x00\xff\x81\r  " + EAN_2.encode() + b"\r", 0
    )
    assert reads[0] == ScanRead(True, EAN)
    assert not reads[1].ok and "unreadable bytes (0x00, 0x81, 0xff)" in reads[1].text
    assert reads[2] == ScanRead(True, EAN_2)
    assert lines.feed(b"\r\n\r\n", 0.1) == []  # blank lines are nothing


def test_a_code_split_over_reads_is_one_code() -> None:
    lines = LineAssembler(suffix=b"\r\n")
    assert lines.feed(EAN[:5].encode(), 0.0) == []
    assert lines.tick(0.5) == []
    assert lines.feed(EAN[5:].encode() + b"\r", 0.6) == [ScanRead(True, EAN)]
    assert lines.feed(b"\n", 0.6) == []


def test_silence_after_a_fragment_is_a_failed_scan() -> None:
    lines = LineAssembler(silence_s=1.0)
    assert lines.feed(b"400638", 10.0) == []
    assert lines.tick(10.9) == []
    [failed] = lines.tick(11.1)
    assert not failed.ok and "Only part of a code arrived ('400638')" in failed.text
    assert lines.pending == b""
    # The fragment is not glued to the next code, even when no tick came in between.
    lines.feed(b"4006", 20.0)
    reads = lines.feed(EAN.encode() + b"\r", 22.0)
    assert [r.ok for r in reads] == [False, True] and reads[1].text == EAN


def test_overlong_line_is_dropped_up_to_its_end() -> None:
    lines = LineAssembler(max_length=20)
    reads = lines.feed(b"9" * 25, 0.0)
    assert len(reads) == 1 and not reads[0].ok
    assert "More than 20 characters arrived without an end of line (the till expects CR)" in (
        reads[0].text
    )
    assert lines.feed(b"9" * 50 + b"\r" + EAN_2.encode() + b"\r", 0.1) == [ScanRead(True, EAN_2)]


garbage = st.binary(min_size=1, max_size=40).filter(
    lambda b: (
        any(c not in range(0x20, 0x7F) and c not in b"\r\n\t\x02\x03" for c in b)
        and not (set(b) & set(b"\r\n\t"))
    )
)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just(True), st.sampled_from([EAN, EAN_2, "CMD-TOTAL", "RS001-T1-000042"])),
            st.tuples(st.just(False), garbage),
        ),
        max_size=12,
    ),
    st.sampled_from(list(SUFFIXES.values())),
)
def test_good_codes_survive_any_noise_between_them(
    items: list[tuple[bool, str | bytes]], suffix: bytes
) -> None:
    lines = LineAssembler(suffix=suffix)
    stream = b"".join(
        (item.encode() if isinstance(item, str) else item) + suffix for _, item in items
    )
    reads = lines.feed(stream, 0.0)
    assert [r.text for r in reads if r.ok] == [item for ok, item in items if ok]
    assert sum(not r.ok for r in reads) == sum(not ok for ok, _ in items)


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_never_raise(chunks: list[bytes]) -> None:
    lines = LineAssembler()
    for i, chunk in enumerate(chunks):
        for read in lines.feed(chunk, float(i)):
            assert read.text
    lines.tick(1000.0)


def test_stream_scanner_passes_lines_on() -> None:
    got: list[tuple[str, str]] = []
    stream = io.BytesIO(f"{EAN}\r\n\n  \nCMD-TOTAL\n9900\xc3\xa9\xff\n".encode("latin-1"))
    StreamScanner(stream).run(
        lambda s: got.append(("scan", s)), lambda e: got.append(("error", e)), threading.Event()
    )
    assert got[:2] == [("scan", EAN), ("scan", "CMD-TOTAL")]
    assert got[2] == ("scan", "9900é\ufffd")  # the till refuses it as unreadable
    assert len(got) == 3


def test_stream_scanner_on_a_pipe_stops_when_asked_and_at_the_end() -> None:
    read_end, write_end = os.pipe()
    got: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    with os.fdopen(read_end, "rb") as stream:
        thread = threading.Thread(target=StreamScanner(stream).run, args=(got.put, got.put, stop))
        thread.start()
        os.write(write_end, EAN.encode() + b"\nCMD-TO")
        os.write(write_end, b"TAL\n")
        assert [got.get(timeout=5), got.get(timeout=5)] == [EAN, "CMD-TOTAL"]
        stop.set()  # nothing more comes, yet the reader is not stuck in a read
        thread.join(2)
        assert not thread.is_alive()

        stop.clear()
        thread = threading.Thread(target=StreamScanner(stream).run, args=(got.put, got.put, stop))
        thread.start()
        os.write(write_end, EAN_2.encode())  # the last line needs no newline
        os.close(write_end)
        thread.join(5)
        assert not thread.is_alive() and got.get(timeout=1) == EAN_2


# --- a real serial line on a pty ---------------------------------------------------------------


class Pty:
    """A pseudo-terminal standing in for a USB-serial scanner; ``path`` is a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug_in()

    def plug_in(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR -> LF translation before the scanner opens it
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()


class Collected:
    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, str]] = queue.Queue()

    def next(self, timeout: float = 5.0) -> tuple[str, str]:
        try:
            return self.items.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing from the scanner within {timeout} s") from None

    def quiet(self, seconds: float) -> None:
        try:
            item = self.items.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {item}")

    def wait_connected(self, pty: Pty) -> None:
        """Send a probe until it comes back: pyserial flushes input when it opens the port."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pty.write(b"PROBE\r")
            try:
                kind, text = self.items.get(timeout=0.15)
            except queue.Empty:
                continue
            if (kind, text) == ("scan", "PROBE"):
                time.sleep(0.1)
                while not self.items.empty():
                    assert self.items.get() == ("scan", "PROBE")
                return
        raise AssertionError("the scanner never opened the pty")


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    device = Pty(tmp_path / "scanner")
    yield device
    device.close()


@contextmanager
def scanning(config: SerialScannerConfig) -> Iterator[Collected]:
    collected = Collected()
    stop = threading.Event()
    thread = threading.Thread(
        target=SerialScanner(config).run,
        args=(
            lambda s: collected.items.put(("scan", s)),
            lambda e: collected.items.put(("error", e)),
            stop,
        ),
        daemon=True,
    )
    thread.start()
    try:
        yield collected
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the scanner thread did not stop"


def config_for(pty: Pty, suffix: str = "CR") -> SerialScannerConfig:
    url = f"serial://{pty.link}?baudrate=9600&parity=N&bytesize=8&stopbits=1&suffix={suffix}"
    return replace(parse_scanner_url(url), silence_s=0.3, retry_s=0.2)


@pytest.mark.parametrize("suffix", list(SUFFIXES))
def test_good_codes_with_each_suffix(pty: Pty, suffix: str) -> None:
    end = SUFFIXES[suffix]
    with scanning(config_for(pty, suffix)) as got:
        got.wait_connected(pty)
        pty.write(EAN.encode() + end + EAN_2.encode() + end)
        pty.write(b"CMD-")  # a code split over two writes
        pty.write(b"TOTAL" + end)
        # CR and LF end a code whatever the suffix is.
        pty.write(b"RS001-T1-000042\r\n")
        assert [got.next() for _ in range(4)] == [
            ("scan", EAN),
            ("scan", EAN_2),
            ("scan", "CMD-TOTAL"),
            ("scan", "RS001-T1-000042"),
        ]
        got.quiet(0.2)


def test_garbage_between_good_codes(pty: Pty) -> None:
    with scanning(config_for(pty)) as got:
        got.wait_connected(pty)
        pty.write(EAN.encode() + b"\r" + b"\x00\xfe\x1b[\x7f\xff\r" + EAN_2.encode() + b"\r")
        assert got.next() == ("scan", EAN)
        kind, message = got.next()
        assert kind == "error"
        assert "unreadable bytes (0x00, 0x1b, 0x7f, 0xfe, 0xff)" in message
        assert "check the scanner's baud rate and parity" in message
        assert got.next() == ("scan", EAN_2)


def test_partial_line_then_silence(pty: Pty) -> None:
    with scanning(config_for(pty)) as got:
        got.wait_connected(pty)
        pty.write(b"40063813")
        kind, message = got.next()
        assert kind == "error" and "Only part of a code arrived ('40063813')" in message
        pty.write(EAN.encode() + b"\r")
        assert got.next() == ("scan", EAN)


def test_overlong_line(pty: Pty) -> None:
    with scanning(config_for(pty)) as got:
        got.wait_connected(pty)
        pty.write(b"7" * 300 + b"\r")
        kind, message = got.next()
        assert kind == "error" and "More than 128 characters" in message
        pty.write(EAN.encode() + b"\r")
        assert got.next() == ("scan", EAN)
        got.quiet(0.2)  # the rest of the long line was dropped, not reported again


def test_device_vanishes_and_comes_back(pty: Pty) -> None:
    with scanning(config_for(pty)) as got:
        got.wait_connected(pty)
        pty.write(EAN.encode() + b"\r")
        assert got.next() == ("scan", EAN)
        pty.unplug()
        kind, message = got.next()
        assert kind == "error" and f"The scanner at {pty.link} was disconnected" in message
        got.quiet(0.5)  # reported once, not at every retry
        pty.plug_in()
        got.wait_connected(pty)
        pty.write(EAN_2.encode() + b"\r")
        assert got.next() == ("scan", EAN_2)


def test_missing_device_is_reported_once_and_waited_for(pty: Pty, tmp_path: Path) -> None:
    pty.unplug()
    with scanning(config_for(pty)) as got:
        kind, message = got.next()
        assert kind == "error" and "cannot be opened" in message and "plugged in" in message
        got.quiet(0.5)
        pty.plug_in()
        got.wait_connected(pty)
        pty.write(EAN.encode() + b"\r")
        assert got.next() == ("scan", EAN)
