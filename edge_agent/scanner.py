"""Barcode scanners: where the till's scans come from.

A scanner is anything with one method, :meth:`Scanner.run`: it calls ``on_scan(text)`` for every
code read and ``on_error(message)`` for every failed read, until ``stop`` is set (or its input
ends). It never raises for bad input and never dies because a device went away: a failed scan
is a message for the cashier, not an exception. It runs on a thread of its own; the till
handles the callbacks (the headless loop queues them for its main thread).

Two scanners exist:

- :class:`SerialScanner`, a serial (RS-232 or USB-serial) scanner over pyserial, chosen by a
  URL in the till's settings;
- :class:`StreamScanner`, lines from a byte stream (``omnitill till --headless --stdin``), for
  scripts and tests. Its lines are passed on as typed; ``shared.barcodes.classify_scan`` refuses
  what is not a code.

Scanner URLs
------------
::

    serial:///dev/ttyUSB0?baudrate=9600&parity=N&bytesize=8&stopbits=1&suffix=CR
    serial://COM3?baudrate=115200&suffix=CRLF

``baudrate`` (default 9600), ``parity`` (``N`` none, ``E`` even, ``O`` odd, ``M`` mark, ``S``
space; default N), ``bytesize`` (5-8, default 8), ``stopbits`` (1, 1.5 or 2, default 1) and
``suffix`` (what the scanner sends after each code: ``CR``, ``LF``, ``CRLF`` or ``TAB``; default
CR) must match the scanner's own configuration. Unknown parameters are refused, so a typo is
not silently ignored.

Reading a serial line
---------------------
Bytes are collected into a line until a terminator: the configured suffix, and CR or LF
whatever the suffix is (a scanner reset to its factory settings often sends CRLF; blank lines
are skipped). STX/ETX framing and spaces around the code are dropped. Everything else is a
*failed scan*, reported through ``on_error`` (a message for the cashier, which the till shows
as "failed scan: ...") and thrown away, while the codes before and after
it still come through:

- a line with bytes that are not printable ASCII (line noise, a wrong baud rate or parity);
- more than ``max_length`` (128) bytes without a terminator (a wrong suffix setting, or a
  stream of noise); the rest of that line, up to its terminator, is dropped too;
- a partial line followed by ``silence_s`` (1 s) of silence: a scanner sends a whole code in a
  few milliseconds, so a fragment that stops is a code cut off (a cable pulled mid-scan).

Bytes are read as Latin-1, which decodes any byte, so decoding itself never fails.

Reconnecting
------------
When the port cannot be opened or fails while reading (USB scanner unplugged,
``serial.SerialException``), the scanner reports it once through ``on_error``, closes the port
and tries to open it again every ``retry_s`` (1 s) until it succeeds or ``stop`` is set. pyserial
and OS errors are turned into :class:`shared.errors.ScannerError` where they enter this module.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal, NamedTuple, Protocol, get_args
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from shared.errors import ScannerError

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_SILENCE_S",
    "LineAssembler",
    "Parity",
    "ScanRead",
    "Scanner",
    "SerialScanner",
    "SerialScannerConfig",
    "StreamScanner",
    "Suffix",
    "parse_scanner_url",
    "scanner_from_url",
]

log = logging.getLogger(__name__)

Parity = Literal["N", "E", "O", "M", "S"]
Suffix = Literal["CR", "LF", "CRLF", "TAB"]

SUFFIX_BYTES: Final[dict[str, bytes]] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}
#: Longest code accepted; longer means a wrong suffix setting or noise.
DEFAULT_MAX_LENGTH: Final = 128
#: Seconds of silence after which a partial line is a failed scan.
DEFAULT_SILENCE_S: Final = 1.0
#: Seconds between attempts to reopen a port that is gone.
DEFAULT_RETRY_S: Final = 1.0
#: How long one read waits for bytes (bounds how late ``stop`` and silence are noticed).
_READ_TIMEOUT_S: Final = 0.1

_STOPBITS: Final[dict[str, float]] = {"1": 1.0, "1.5": 1.5, "2": 2.0}
_PRINTABLE: Final = range(0x20, 0x7F)
_FRAMING: Final = b" \t\x02\x03"  # spaces, tabs, STX and ETX around a code
_URL_PARAMS: Final = ("baudrate", "parity", "bytesize", "stopbits", "suffix")


class Scanner(Protocol):
    """Where scans come from: one method, run on a thread of its own."""

    def run(
        self,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        """Call ``on_scan`` for each code and ``on_error`` for each failed read until ``stop``
        is set or the input ends. Never raises for bad input or a lost device."""
        ...


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialScannerConfig:
    """A serial scanner's port settings, as parsed from its URL (see the module docstring)."""

    port: str
    baudrate: int = 9600
    parity: Parity = "N"
    bytesize: int = 8
    stopbits: float = 1.0
    suffix: Suffix = "CR"
    max_length: int = DEFAULT_MAX_LENGTH
    silence_s: float = DEFAULT_SILENCE_S
    retry_s: float = DEFAULT_RETRY_S

    def __post_init__(self) -> None:
        if not self.port:
            raise ScannerError("A serial scanner needs a port, e.g. serial:///dev/ttyUSB0")
        if self.baudrate < 1:
            raise ScannerError(f"Scanner baudrate must be positive, not {self.baudrate}")
        if self.parity not in get_args(Parity):
            raise ScannerError(
                f"Scanner parity {self.parity!r} is not one of N, E, O, M, S "
                "(none, even, odd, mark, space)"
            )
        if self.bytesize not in (5, 6, 7, 8):
            raise ScannerError(f"Scanner bytesize must be 5, 6, 7 or 8, not {self.bytesize}")
        if self.stopbits not in _STOPBITS.values():
            raise ScannerError(f"Scanner stopbits must be 1, 1.5 or 2, not {self.stopbits}")
        if self.suffix not in SUFFIX_BYTES:
            raise ScannerError(
                f"Scanner suffix {self.suffix!r} is not one of {', '.join(SUFFIX_BYTES)}"
            )
        if self.max_length < 1 or self.silence_s <= 0 or self.retry_s <= 0:
            raise ScannerError("Scanner max_length, silence_s and retry_s must be positive")

    @property
    def suffix_bytes(self) -> bytes:
        return SUFFIX_BYTES[self.suffix]

    @property
    def url(self) -> str:
        """The URL that parses back to this configuration's port settings."""
        stopbits = f"{self.stopbits:g}"
        return (
            f"serial://{quote(self.port, safe='/:')}?baudrate={self.baudrate}&parity={self.parity}"
            f"&bytesize={self.bytesize}&stopbits={stopbits}&suffix={self.suffix}"
        )


def _int_param(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScannerError(
            f"Scanner URL parameter {name}={text!r} must be a whole number"
        ) from None


def parse_scanner_url(url: str) -> SerialScannerConfig:
    """The port settings in a ``serial://`` URL; :class:`ScannerError` says what is wrong."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() != "serial":
        raise ScannerError(
            f"Scanner URL {url!r} is not supported: use serial:///dev/ttyUSB0?baudrate=9600 "
            "(or --stdin to read scans from standard input)"
        )
    # serial:///dev/ttyUSB0 has the port in the path; serial://COM3 in the host part.
    port = unquote(parts.netloc + parts.path)
    if not port:
        raise ScannerError(f"Scanner URL {url!r} names no port, e.g. serial:///dev/ttyUSB0")
    values: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        key = name.lower()
        if key not in _URL_PARAMS:
            raise ScannerError(
                f"Scanner URL parameter {name!r} is unknown; known: {', '.join(_URL_PARAMS)}"
            )
        values[key] = value.strip()
    parity = values.get("parity", "N").upper()
    suffix = values.get("suffix", "CR").upper()
    stopbits_text = values.get("stopbits", "1")
    stopbits = _STOPBITS.get(stopbits_text.removesuffix(".0"))
    if stopbits is None:
        raise ScannerError(f"Scanner stopbits must be 1, 1.5 or 2, not {stopbits_text!r}")
    if parity not in get_args(Parity):
        raise ScannerError(
            f"Scanner parity {parity!r} is not one of N, E, O, M, S (none, even, odd, mark, space)"
        )
    if suffix not in SUFFIX_BYTES:
        raise ScannerError(f"Scanner suffix {suffix!r} is not one of {', '.join(SUFFIX_BYTES)}")
    return SerialScannerConfig(
        port=port,
        baudrate=_int_param("baudrate", values.get("baudrate", "9600")),
        parity=parity,  # type: ignore[arg-type]  # checked against Parity above
        bytesize=_int_param("bytesize", values.get("bytesize", "8")),
        stopbits=stopbits,
        suffix=suffix,  # type: ignore[arg-type]  # checked against SUFFIX_BYTES above
    )


def scanner_from_url(url: str) -> SerialScanner:
    """The scanner a settings URL names."""
    return SerialScanner(parse_scanner_url(url))


# ---------------------------------------------------------------------------------------------
# Turning bytes into codes


class ScanRead(NamedTuple):
    """One result of reading: a code (``ok``) or a failed scan's message for the cashier."""

    ok: bool
    text: str


def _shown(raw: bytes, limit: int = 40) -> str:
    text = raw[:limit].decode("latin-1")
    return repr(text) + ("..." if len(raw) > limit else "")


class LineAssembler:
    """Collects bytes into codes and failed scans (the rules are in the module docstring).

    Pure and single-threaded: ``feed`` what was read with the time it was read, ``tick`` when
    nothing came, and act on the results in order.
    """

    def __init__(
        self,
        *,
        suffix: bytes = b"\r",
        max_length: int = DEFAULT_MAX_LENGTH,
        silence_s: float = DEFAULT_SILENCE_S,
    ) -> None:
        self._terminators = frozenset(b"\r\n" + suffix)
        self._suffix_name = next(
            (name for name, value in SUFFIX_BYTES.items() if value == suffix), repr(suffix)
        )
        self._max = max_length
        self._silence = silence_s
        self._buffer = bytearray()
        self._discarding = False  # dropping the rest of an overlong line
        self._last_at = 0.0

    @property
    def pending(self) -> bytes:
        """Bytes of a line not finished yet."""
        return bytes(self._buffer)

    def feed(self, data: bytes, now: float) -> list[ScanRead]:
        out: list[ScanRead] = []
        if not data:
            return out
        # A gap before these bytes counts even if tick() was not called in between.
        out.extend(self.tick(now))
        self._last_at = now
        for byte in data:
            if byte in self._terminators:
                if self._discarding:
                    self._discarding = False
                else:
                    found = self._line(bytes(self._buffer))
                    if found is not None:
                        out.append(found)
                self._buffer.clear()
                continue
            if self._discarding:
                continue
            self._buffer.append(byte)
            if len(self._buffer) > self._max:
                out.append(
                    ScanRead(
                        False,
                        f"More than {self._max} characters arrived without an end "
                        f"of line (the till expects {self._suffix_name}): check the scanner's "
                        f"suffix setting, then scan again (started {_shown(bytes(self._buffer))})",
                    )
                )
                self._buffer.clear()
                self._discarding = True
        return out

    def tick(self, now: float) -> list[ScanRead]:
        """Report a partial line the scanner went quiet on."""
        if now - self._last_at <= self._silence:
            return []
        if self._discarding:
            self._discarding = False
            return []
        if not self._buffer:
            return []
        partial = bytes(self._buffer)
        self._buffer.clear()
        return [
            ScanRead(
                False,
                f"Only part of a code arrived ({_shown(partial)}) and the scanner "
                "went quiet: scan again",
            )
        ]

    def _line(self, raw: bytes) -> ScanRead | None:
        code = raw.strip(_FRAMING)
        if not code:
            return None  # a blank line, or the LF of a CRLF
        if len(code) > self._max:
            return ScanRead(
                False,
                f"A line of {len(code)} characters is longer than any code "
                f"({self._max} at most): scan again",
            )
        bad = sorted({b for b in code if b not in _PRINTABLE})
        if bad:
            shown = ", ".join(f"0x{b:02x}" for b in bad[:6]) + (", ..." if len(bad) > 6 else "")
            return ScanRead(
                False,
                f"The scanner sent unreadable bytes ({shown}) in {_shown(code)}: "
                "scan again; if it keeps happening, check the scanner's baud rate and parity",
            )
        return ScanRead(True, code.decode("ascii"))


def _deliver(
    read: ScanRead, on_scan: Callable[[str], None], on_error: Callable[[str], None]
) -> None:
    try:
        (on_scan if read.ok else on_error)(read.text)
    except Exception:  # the till's problem must not kill the scanner thread
        log.exception("handling a scan failed")


# ---------------------------------------------------------------------------------------------
# Scanners


class SerialScanner:
    """A serial barcode scanner over pyserial; reconnects when the device comes back."""

    def __init__(self, config: SerialScannerConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock

    def __repr__(self) -> str:
        return f"SerialScanner({self.config.url!r})"

    def run(
        self,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        """Read codes until ``stop`` is set, reopening the port whenever it is lost."""
        missing = False  # reported once per outage, not every second
        while not stop.is_set():
            try:
                port = self._open()
            except ScannerError as exc:
                if not missing:
                    log.warning("%s; retrying every %.0f s", exc.message, self.config.retry_s)
                    _deliver(ScanRead(False, exc.message), on_scan, on_error)
                    missing = True
                stop.wait(self.config.retry_s)
                continue
            if missing:
                log.info("scanner at %s is back", self.config.port)
            else:
                log.info("scanner at %s open (%s)", self.config.port, self.config.url)
            missing = False
            try:
                self._read(port, on_scan, on_error, stop)
            except ScannerError as exc:
                log.warning("%s; reconnecting every %.0f s", exc.message, self.config.retry_s)
                _deliver(ScanRead(False, exc.message), on_scan, on_error)
                missing = True
                stop.wait(self.config.retry_s)
            finally:
                _close_quietly(port)

    def _open(self) -> _Port:
        import serial

        cfg = self.config
        try:
            port: _Port = serial.Serial(
                port=cfg.port,
                baudrate=cfg.baudrate,
                parity=cfg.parity,
                bytesize=cfg.bytesize,
                stopbits=cfg.stopbits,
                timeout=_READ_TIMEOUT_S,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScannerError(
                f"The scanner at {cfg.port} cannot be opened ({_reason(exc)}): is it plugged in?"
            ) from exc
        return port

    def _read(
        self,
        port: _Port,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        import serial

        cfg = self.config
        lines = LineAssembler(
            suffix=cfg.suffix_bytes, max_length=cfg.max_length, silence_s=cfg.silence_s
        )
        while not stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise ScannerError(
                    f"The scanner at {cfg.port} was disconnected ({_reason(exc)})"
                ) from exc
            now = self._clock()
            reads = lines.feed(data, now) if data else lines.tick(now)
            for read in reads:
                _deliver(read, on_scan, on_error)


class _Port(Protocol):
    """The part of ``serial.Serial`` used here."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


def _close_quietly(port: _Port) -> None:
    try:
        port.close()
    except Exception as exc:  # closing a vanished device may fail; it is gone either way
        log.debug("closing the scanner port failed: %s", exc)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


class StreamScanner:
    """Scan lines from a byte stream (standard input): one code per line, UTF-8.

    Lines are passed on as typed (blank lines skipped); the till refuses what is not a code.
    ``run`` returns when the stream ends or ``stop`` is set. A stream with a file descriptor
    (a pipe, a terminal) is read with ``select`` and ``os.read``, so ``stop`` is seen within a
    fraction of a second and no thread is left blocked inside a buffered reader (which makes
    the interpreter abort at exit); other streams are read line by line.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def run(
        self,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None
        try:
            if fd is not None and os.name == "posix":
                self._run_fd(fd, on_scan, stop)
            else:
                self._run_lines(on_scan, stop)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            _deliver(ScanRead(False, f"Scan input failed: {_reason(exc)}"), on_scan, on_error)

    def _run_fd(self, fd: int, on_scan: Callable[[str], None], stop: threading.Event) -> None:
        pending = b""
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], _READ_TIMEOUT_S)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._pass_on(raw, on_scan)
        if pending and not stop.is_set():
            self._pass_on(pending, on_scan)

    def _run_lines(self, on_scan: Callable[[str], None], stop: threading.Event) -> None:
        while not stop.is_set():
            raw = self._stream.readline()
            if not raw:
                return
            self._pass_on(raw, on_scan)

    @staticmethod
    def _pass_on(raw: bytes, on_scan: Callable[[str], None]) -> None:
        text = raw.decode("utf-8", errors="replace").strip("\r\n")
        if text.strip():
            _deliver(ScanRead(True, text), on_scan, lambda _: None)
