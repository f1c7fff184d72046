"""The scanner simulator: the till's own SerialScanner reads its codes from the pty."""

from __future__ import annotations

import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.scanner import SerialScanner, parse_scanner_url
from hardware_sim.scanner import SUFFIXES, ScannerSimulator, codes_from_lines, scanner_command
from shared.errors import ScannerError
from tests.support.server import ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="ptys are POSIX")

SIM = [sys.executable, "-c", "from hardware_sim.cli import sim; sim()"]
CODES = ["4006381333931", "5901234123457", "CMD-PAY-CASH", "R S001-T1-000001".replace(" ", "")]


@contextmanager
def till_scanner(device: str, suffix: str) -> Iterator[queue.Queue[tuple[str, str]]]:
    """The till's SerialScanner reading ``device`` on a thread; yields what it reports."""
    got: queue.Queue[tuple[str, str]] = queue.Queue()
    config = replace(
        parse_scanner_url(f"serial://{device}?baudrate=9600&suffix={suffix}"),
        silence_s=0.5,
        retry_s=0.1,
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=SerialScanner(config).run,
        args=(lambda s: got.put(("scan", s)), lambda e: got.put(("error", e)), stop),
        daemon=True,
    )
    thread.start()
    try:
        yield got
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive()


def take(got: queue.Queue[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    return [got.get(timeout=5) for _ in range(n)]


@pytest.mark.parametrize("suffix", list(SUFFIXES))
def test_the_till_reads_every_code_through_the_link(tmp_path: Path, suffix: str) -> None:
    link = tmp_path / "scanner"
    with ScannerSimulator(suffix=suffix, link=link) as sim:
        assert link.is_symlink() and str(link.readlink()) == sim.device
        assert not sim.reader_connected
        with till_scanner(str(link), suffix) as got:
            assert sim.wait_for_reader(timeout=5)
            assert sim.send_all(CODES, interval=0.01) == len(CODES)
            assert take(got, len(CODES)) == [("scan", c) for c in CODES]
    assert not link.exists()


def test_codes_go_out_at_line_speed_and_spaced_by_the_interval(tmp_path: Path) -> None:
    """Read the raw bytes with their arrival times, as a scanner's cable would carry them."""
    with ScannerSimulator(suffix="CR", baudrate=9600) as sim:
        reader = os.open(sim.device, os.O_RDONLY | os.O_NOCTTY)
        arrivals: list[tuple[float, bytes]] = []
        try:
            sender = threading.Thread(
                target=sim.send_all,
                args=(["4006381333931", "5901234123457"],),
                kwargs={"interval": 0.3},
            )
            sender.start()
            poller = select.poll()
            poller.register(reader, select.POLLIN)
            while len(b"".join(b for _, b in arrivals)) < 28:
                if poller.poll(5000):
                    arrivals.append((time.monotonic(), os.read(reader, 64)))
            sender.join(5)
        finally:
            os.close(reader)
    stream = b"".join(b for _, b in arrivals)
    assert stream == b"4006381333931\r5901234123457\r"
    times = []
    for at, chunk in arrivals:
        times.extend([at] * len(chunk))
    first_code = times[13] - times[0]
    gap = times[14] - times[13]
    assert 0.005 <= first_code <= 0.1  # 14 characters at ~1 ms each, not all at once
    assert 0.25 <= gap <= 0.6


def test_what_a_scanner_cannot_send_is_refused() -> None:
    with pytest.raises(ScannerError, match="suffix 'ETX'"):
        ScannerSimulator(suffix="ETX")
    with ScannerSimulator() as sim:
        with pytest.raises(ScannerError, match="not ASCII"):
            sim.send("Äpfel", wait=False)
        with pytest.raises(ScannerError, match="Nobody opened"):
            sim.send("4006381333931", timeout=0.1)


def test_codes_file_skips_blanks_and_comments() -> None:
    lines = ["# breakfast\n", "4006381333931\n", "\n", "  CMD-TOTAL  \n"]
    assert list(codes_from_lines(lines)) == ["4006381333931", "CMD-TOTAL"]


def test_the_command_sends_a_codes_file_to_the_till(tmp_path: Path) -> None:
    codes = tmp_path / "codes.txt"
    codes.write_text("# a basket\n4006381333931\n5901234123457\n", encoding="utf-8")
    link = tmp_path / "scanner"
    with subprocess.Popen(
        [
            *SIM,
            "scanner",
            "--codes",
            str(codes),
            "--link",
            str(link),
            "--interval",
            "0.05",
            "--suffix",
            "CRLF",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            device = proc.stdout.readline().split()[0]
            assert device.startswith("/dev/") and str(link.readlink()) == device
            with till_scanner(str(link), "CRLF") as got:
                assert take(got, 2) == [("scan", "4006381333931"), ("scan", "5901234123457")]
            assert proc.wait(timeout=10) == 0
            out = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "sent 4006381333931" in out and "sent 5901234123457" in out
    assert not link.exists()


def test_the_command_refuses_an_unknown_suffix() -> None:
    result = CliRunner().invoke(scanner_command, ["--suffix", "ETX"])
    assert result.exit_code == 2
    assert "ETX" in result.output
