"""A serial barcode scanner on a pseudo-terminal, for tills without the hardware.

``omnitill sim scanner`` opens a pty and prints the device path of its serial end
(``/dev/pts/5``); ``--link PATH`` also puts a symlink there, so a till can be configured once
with ``serial://PATH?suffix=CR`` whatever pts number the system hands out. Codes come from a
file (``--codes FILE``, one per line; blank lines and ``#`` comments skipped) or from standard
input, and go out the way a real scanner sends them:

- the characters of one code back to back at the line speed (``--baudrate``, 9600 by default:
  about a millisecond per character, so a 13-digit EAN and its suffix take 15 ms), then the
  suffix (``--suffix CR|LF|CRLF|TAB``, the scanner's configuration);
- codes from a file spaced by ``--interval`` seconds, like a cashier scanning item after item.

A scanner sends whether or not anybody listens, and what it sends while the till is not reading
is lost (pyserial also flushes the input when it opens the port). The simulator therefore waits
until a reader has the device open before it sends a code: on Linux a pty's control side reports
``POLLHUP`` while no process has the serial side open.

A keyboard-wedge mode (the scanner typing into the focused window) comes with the Qt till.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final, TextIO

import click

from shared.errors import ScannerError

__all__ = ["SUFFIXES", "ScannerSimulator", "codes_from_lines", "scanner_command"]

log = logging.getLogger(__name__)

SUFFIXES: Final[dict[str, bytes]] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}
#: After a reader opens the device, pyserial configures and flushes it; wait that out.
SETTLE_S: Final = 0.15


def codes_from_lines(lines: Iterable[str]) -> Iterator[str]:
    """The codes in a codes file: one per line, blank lines and ``#`` comments skipped."""
    for line in lines:
        code = line.strip()
        if code and not code.startswith("#"):
            yield code


class ScannerSimulator:
    """A serial scanner's sending side on a pty; :attr:`device` is the path a till opens."""

    def __init__(
        self,
        *,
        suffix: str = "CR",
        baudrate: int = 9600,
        link: Path | None = None,
    ) -> None:
        if suffix not in SUFFIXES:
            raise ScannerError(f"Scanner suffix {suffix!r} is not one of {', '.join(SUFFIXES)}")
        if baudrate < 1:
            raise ScannerError(f"Scanner baudrate must be positive, not {baudrate}")
        self.suffix = suffix
        self.baudrate = baudrate
        self.link = link
        self.device = ""
        self._master = -1
        self._poll: select.poll | None = None
        self._lock = threading.Lock()
        self._reader_since: float | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def open(self) -> ScannerSimulator:
        """Create the pty (and the symlink); returns self."""
        if self._master >= 0:
            return self
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no echo, no CR/LF translation before the till configures it
            self.device = os.ttyname(slave)
        finally:
            # Only the reader holds the serial side open, so POLLHUP tells whether there is one.
            os.close(slave)
        self._master = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLHUP)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.device)
            tmp.replace(self.link)  # atomic: a till never sees a missing link
        log.info("scanner simulator on %s", self.device)
        return self

    def close(self) -> None:
        """Close the pty (a reader sees the device go away) and remove the symlink."""
        if self._master < 0:
            return
        os.close(self._master)
        self._master = -1
        self._poll = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> ScannerSimulator:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------------

    @property
    def char_time_s(self) -> float:
        """Seconds per character on the line: start bit, 8 data bits, stop bit."""
        return 10 / self.baudrate

    @property
    def reader_connected(self) -> bool:
        if self._poll is None:
            raise ScannerError("The scanner simulator is not open")
        connected = not any(event & select.POLLHUP for _, event in self._poll.poll(0))
        if not connected:
            self._reader_since = None
        elif self._reader_since is None:
            self._reader_since = time.monotonic()
        return connected

    def wait_for_reader(self, timeout: float | None = None) -> bool:
        """Block until a reader has had the device open for a moment; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.reader_connected:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        assert self._reader_since is not None
        settle = self._reader_since + SETTLE_S - time.monotonic()
        if settle > 0:
            time.sleep(settle)
        return True

    def send(self, code: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """Send one code and the suffix at the line speed (after a reader is there, by default).

        Codes are ASCII, as a scanner sends them; anything else is refused.
        """
        if self._master < 0:
            raise ScannerError("The scanner simulator is not open")
        try:
            data = code.encode("ascii") + SUFFIXES[self.suffix]
        except UnicodeEncodeError as exc:
            raise ScannerError(f"{code!r} is not ASCII: a barcode scanner sends ASCII") from exc
        if wait and not self.wait_for_reader(timeout):
            raise ScannerError(f"Nobody opened {self.device} within {timeout} s")
        pace = self.char_time_s
        with self._lock:
            start = time.perf_counter()
            for index in range(len(data)):
                os.write(self._master, data[index : index + 1])
                # Sleep to the character's slot, not a fixed step, so the code keeps line speed.
                delay = start + (index + 1) * pace - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        log.debug("sent %r", code)

    def send_all(self, codes: Iterable[str], *, interval: float = 0.5) -> int:
        """Send codes spaced by ``interval`` seconds; returns how many were sent."""
        sent = 0
        for code in codes:
            if sent:
                time.sleep(interval)
            self.send(code)
            sent += 1
        return sent


@click.command("scanner")
@click.option(
    "--codes",
    "codes_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="File of codes, one per line ('#' comments); default: read standard input.",
)
@click.option(
    "--suffix",
    type=click.Choice(list(SUFFIXES), case_sensitive=False),
    default="CR",
    show_default=True,
    help="What the scanner sends after each code.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0, None),
    default=0.5,
    show_default=True,
    help="Seconds between two codes from --codes.",
)
@click.option(
    "--baudrate",
    type=click.IntRange(1, None),
    default=9600,
    show_default=True,
    help="Line speed: how fast the characters of one code follow each other.",
)
@click.option(
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also make a symlink to the device here (a stable name for the till's settings).",
)
@click.option(
    "--keep-open",
    is_flag=True,
    help="After the last code of --codes, keep the device open until Ctrl-C.",
)
def scanner_command(
    codes_file: TextIO | None,
    suffix: str,
    interval: float,
    baudrate: int,
    link: Path | None,
    keep_open: bool,
) -> None:
    """A serial barcode scanner on a pty: prints the device path, sends codes like a scanner."""
    if sys.platform == "win32":  # pragma: no cover - ptys are POSIX
        raise click.ClickException("The scanner simulator needs a POSIX pty (Linux or macOS)")
    stop = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt  # interrupts a blocking read of standard input

    signal.signal(signal.SIGTERM, finish)
    simulator = ScannerSimulator(suffix=suffix.upper(), baudrate=baudrate, link=link)
    with simulator, contextlib.suppress(KeyboardInterrupt):
        shown = f" (link {link})" if link else ""
        click.echo(f"{simulator.device}{shown} | suffix {simulator.suffix} | {baudrate} baud")
        lines = codes_file if codes_file is not None else sys.stdin
        sent = 0
        for code in codes_from_lines(lines):
            if stop.is_set():
                break
            if not simulator.reader_connected:
                click.echo(f"waiting for a reader on {simulator.device}")
            if sent and codes_file is not None:
                time.sleep(interval)
            try:
                simulator.send(code)
            except ScannerError as exc:
                click.echo(f"not sent: {exc.message}")
                continue
            sent += 1
            click.echo(f"sent {code}")
        if keep_open and codes_file is not None:
            click.echo("all codes sent; Ctrl-C closes the scanner")
            while not stop.wait(0.5):
                pass
