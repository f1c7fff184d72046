"""The receipt printer, chosen by URL: send it bytes, ask it how it is.

Printer URLs
------------
=======================================  =========================================================
``tcp://host:9100``                      a network printer's raw port (9100 when left out)
``serial:///dev/ttyS0?baudrate=38400``   a serial printer (also ``rtscts``, ``dsrdtr``,
                                         ``xonxoff`` = 1 for hardware or software flow control)
``usb://04b8:0202``                      a USB printer by vendor and product id (hex), through
                                         pyusb; where pyusb is missing, use ``file://`` instead
``file:///dev/usb/lp0``                  a device file (the Linux USB printer class driver), or
                                         any file the bytes should be appended to
``none``                                 no printer
=======================================  =========================================================

Every URL also takes ``profile`` (``58mm``, ``80mm-42``, ``80mm-48``; default ``80mm-42``, see
:mod:`~edge_agent.printing.profiles`) and ``timeout`` (seconds to connect and to send, default
5); ``tcp`` and ``serial`` take ``status=0`` for a printer that does not answer status requests.
For example ``tcp://10.0.0.31:9100?profile=80mm-48``.

Status
------
Where the connection can read (``tcp``, ``serial``), :meth:`PrinterConnection.status` asks the
printer with the real-time requests ``DLE EOT n`` (``10 04 n``) for n = 1 to 4: online or
offline, cover open, paper end, paper near end, cutter and other errors. Printers answer these
even while offline, which is when they matter. ``usb``, ``file`` and ``none`` cannot read: their
status is None and a fault shows only when sending fails.

Errors
------
Socket, serial, USB and file errors are converted here, at the boundary, into
:class:`shared.errors.PrinterOffline` (off, unplugged, unreachable, refused),
:class:`~shared.errors.PaperOut`, :class:`~shared.errors.CoverOpen` and
:class:`~shared.errors.PrinterError`, with a message for the cashier. A bad URL is
:class:`shared.errors.InvalidInput`, raised when the URL is read (at start-up), not at the
first receipt.

:meth:`PrinterConnection.status` opens the connection: a printer that cannot be reached fails
there, before a byte of the receipt has left. An error from :meth:`PrinterConnection.send`
means the receipt may be partly printed (see :mod:`~edge_agent.printing.jobs`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from edge_agent.printing.profiles import DEFAULT_PROFILE, PrinterProfile, profile_named
from shared.errors import CoverOpen, InvalidInput, PaperOut, PrinterError, PrinterOffline

__all__ = [
    "DEFAULT_TCP_PORT",
    "FileConnection",
    "NullConnection",
    "PrinterConnection",
    "PrinterStatus",
    "PrinterUrl",
    "SerialConnection",
    "TcpConnection",
    "UsbConnection",
    "connection_factory",
    "open_connection",
    "parse_printer_url",
    "status_from_replies",
]

log = logging.getLogger(__name__)

DEFAULT_TCP_PORT: Final = 9100
DEFAULT_TIMEOUT_S: Final = 5.0
#: How long a printer may take to answer one DLE EOT request.
STATUS_TIMEOUT_S: Final = 1.0

_COMMON = {"profile", "timeout"}
_PARAMS: Final[dict[str, set[str]]] = {
    "tcp": _COMMON | {"status"},
    "serial": _COMMON | {"status", "baudrate", "rtscts", "dsrdtr", "xonxoff"},
    "usb": _COMMON,
    "file": _COMMON,
    "none": _COMMON,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# -- status -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the printer said about itself (DLE EOT 1 to 4)."""

    online: bool
    cover_open: bool = False
    paper_end: bool = False
    paper_near_end: bool = False
    cutter_error: bool = False
    error: bool = False

    def fault(self) -> PrinterError | None:
        """The reason the printer cannot print now, as the error to raise, or None."""
        if self.cover_open:
            return CoverOpen("The printer's cover is open: close it to print the receipt")
        if self.paper_end:
            return PaperOut("The printer is out of paper: put in a new roll to print the receipt")
        if self.cutter_error:
            return PrinterError(
                "The printer's cutter is jammed: open the cover, clear the paper, close it"
            )
        if self.error:
            return PrinterError("The printer reports an error: switch it off and on again")
        if not self.online:
            return PrinterOffline("The printer is offline: check its lights and its paper")
        return None

    @property
    def message(self) -> str:
        """One line for the cashier's status bar."""
        fault = self.fault()
        if fault is not None:
            return fault.message
        if self.paper_near_end:
            return "The printer's paper roll is nearly empty: have a new one ready"
        return "The printer is ready"


def _valid(reply: int) -> bool:
    # Every DLE EOT reply byte has bits 0 and 7 clear and bits 1 and 4 set.
    return reply & 0x93 == 0x12


def status_from_replies(replies: Mapping[int, int]) -> PrinterStatus:
    """The status from the reply bytes to DLE EOT n (n = 1..4; missing ones count as fine)."""
    printer = replies.get(1, 0x12)
    offline_cause = replies.get(2, 0x12)
    error_cause = replies.get(3, 0x12)
    paper = replies.get(4, 0x12)
    return PrinterStatus(
        online=not printer & 0x08,
        cover_open=bool(offline_cause & 0x04),
        paper_end=bool(offline_cause & 0x20) or paper & 0x60 == 0x60,
        paper_near_end=paper & 0x0C == 0x0C,
        cutter_error=bool(error_cause & 0x04),
        error=bool(error_cause & 0x28) or bool(offline_cause & 0x40),
    )


# -- the interface ------------------------------------------------------------------------------


@runtime_checkable
class PrinterConnection(Protocol):
    """A receipt printer's link: one instance per print attempt, closed after it.

    ``status()`` connects and returns the printer's status, or None where this kind of
    connection cannot read it; ``send()`` writes the bytes (connecting first if needed). Both
    raise :class:`shared.errors.PrinterError` subclasses only.
    """

    def status(self) -> PrinterStatus | None: ...

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


# -- URLs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrinterUrl:
    """A parsed printer URL."""

    scheme: str
    target: str
    params: Mapping[str, str] = field(default_factory=dict)
    profile: PrinterProfile = field(default_factory=lambda: profile_named(DEFAULT_PROFILE))
    timeout: float = DEFAULT_TIMEOUT_S

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InvalidInput(f"Printer URL option {name}={value!r}: use 1 or 0")


def parse_printer_url(url: str) -> PrinterUrl:
    """Read a printer URL (see the module docstring); raise InvalidInput naming the mistake."""
    text = url.strip()
    if text.lower() in ("", "none"):
        return PrinterUrl(scheme="none", target="")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "none":
        target = ""
    elif scheme not in _PARAMS:
        raise InvalidInput(
            f"Printer URL {url!r}: unknown kind {parts.scheme or '(none)'!r}; use tcp://host:9100, "
            "serial:///dev/ttyS0?baudrate=38400, usb://VID:PID, file:///dev/usb/lp0 or none"
        )
    elif scheme == "tcp":
        target = parts.netloc
    elif scheme in ("serial", "file"):
        target = parts.netloc + parts.path  # serial://COM3 as well as serial:///dev/ttyS0
    else:
        target = parts.netloc
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - _PARAMS[scheme])
    if unknown:
        raise InvalidInput(
            f"Printer URL {url!r}: unknown option {', '.join(unknown)}; {scheme} printers take "
            + ", ".join(sorted(_PARAMS[scheme]))
        )
    if scheme != "none" and not target:
        raise InvalidInput(f"Printer URL {url!r} names no {_WHAT[scheme]}")
    profile = profile_named(params.get("profile", DEFAULT_PROFILE))
    timeout = _number(url, params, "timeout", DEFAULT_TIMEOUT_S)
    return PrinterUrl(scheme=scheme, target=target, params=params, profile=profile, timeout=timeout)


_WHAT: Final = {"tcp": "host", "serial": "serial port", "usb": "vendor:product id", "file": "file"}


def _number(url: str, params: Mapping[str, str], name: str, default: float) -> float:
    value = params.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number <= 3600:
        raise InvalidInput(f"Printer URL {url!r}: {name}={value!r} is not a number of seconds")
    return number


def open_connection(url: str | PrinterUrl) -> PrinterConnection:
    """A new, not yet connected, connection to the printer at ``url``."""
    return connection_factory(url)()


def connection_factory(url: str | PrinterUrl) -> Callable[[], PrinterConnection]:
    """Check ``url`` now and return a function making a fresh connection per print attempt."""
    parsed = url if isinstance(url, PrinterUrl) else parse_printer_url(url)
    timeout = parsed.timeout
    if parsed.scheme == "tcp":
        host, port = _host_port(parsed.target)
        status = parsed.flag("status", True)
        return lambda: TcpConnection(host=host, port=port, timeout=timeout, read_status=status)
    if parsed.scheme == "serial":
        options = _serial_options(parsed)
        return lambda: SerialConnection(port=parsed.target, timeout=timeout, **options)
    if parsed.scheme == "usb":
        vendor, product = _usb_ids(parsed.target)
        if importlib.util.find_spec("usb") is None:
            raise PrinterError(
                f"usb://{parsed.target} needs pyusb, which is not installed: `pip install "
                "pyusb` (and libusb), or use the kernel's printer device, e.g. "
                "file:///dev/usb/lp0"
            )
        return lambda: UsbConnection(vendor=vendor, product=product, timeout=timeout)
    if parsed.scheme == "file":
        path = Path(parsed.target)
        return lambda: FileConnection(path=path)
    return NullConnection


def _host_port(target: str) -> tuple[str, int]:
    parts = urlsplit(f"//{target}")
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError as exc:
        raise InvalidInput(f"Printer URL tcp://{target}: the port is not a number 1-65535") from exc
    if not parts.hostname:
        raise InvalidInput(f"Printer URL tcp://{target} names no host")
    return parts.hostname, port


def _usb_ids(target: str) -> tuple[int, int]:
    vendor, sep, product = target.partition(":")
    try:
        ids = (int(vendor, 16), int(product, 16)) if sep else None
    except ValueError:
        ids = None
    if ids is None or not all(0 <= i <= 0xFFFF for i in ids):
        raise InvalidInput(
            f"Printer URL usb://{target}: give the vendor and product id in hex, e.g. "
            "usb://04b8:0202 (lsusb shows them)"
        )
    return ids


def _serial_options(parsed: PrinterUrl) -> dict[str, Any]:
    raw = parsed.params.get("baudrate", "9600")
    if not raw.isdigit() or not 50 <= int(raw) <= 4_000_000:
        raise InvalidInput(
            f"Printer URL serial://{parsed.target}: baudrate={raw!r} is not a baud rate "
            "(9600, 19200, 38400, 115200...)"
        )
    return {
        "baudrate": int(raw),
        "rtscts": parsed.flag("rtscts"),
        "dsrdtr": parsed.flag("dsrdtr"),
        "xonxoff": parsed.flag("xonxoff"),
        "read_status": parsed.flag("status", True),
    }


def _dle_eot(n: int) -> bytes:
    return bytes((0x10, 0x04, n))


# -- connections --------------------------------------------------------------------------------


class TcpConnection:
    """A network printer's raw port (``tcp://host:9100``)."""

    def __init__(
        self,
        *,
        host: str,
        port: int = DEFAULT_TCP_PORT,
        timeout: float = DEFAULT_TIMEOUT_S,
        status_timeout: float = STATUS_TIMEOUT_S,
        read_status: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.status_timeout = status_timeout
        self.read_status = read_status
        self._sock: socket.socket | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError as exc:
            raise PrinterOffline(
                f"The printer at {self.where} refused the connection: is it switched on and "
                "connected to the network?"
            ) from exc
        except TimeoutError as exc:
            raise PrinterOffline(
                f"The printer at {self.where} did not answer within {self.timeout:g} s: is it "
                "switched on and its network cable plugged in?"
            ) from exc
        except socket.gaierror as exc:
            raise PrinterOffline(
                f"The printer's address {self.host!r} cannot be found on the network ({exc})"
            ) from exc
        except OSError as exc:
            raise PrinterOffline(f"Cannot reach the printer at {self.where}: {exc}") from exc
        return self._sock

    def status(self) -> PrinterStatus | None:
        sock = self._connect()
        if not self.read_status:
            return None
        replies: dict[int, int] = {}
        try:
            sock.settimeout(self.status_timeout)
            for n in (1, 2, 3, 4):
                sock.sendall(_dle_eot(n))
                try:
                    reply = sock.recv(1)
                except TimeoutError:
                    break
                if not reply:
                    raise PrinterOffline(
                        f"The printer at {self.where} closed the connection when asked its status"
                    )
                if not _valid(reply[0]):
                    log.debug("printer %s: %r is not a status reply", self.where, reply)
                    break
                replies[n] = reply[0]
        except OSError as exc:
            raise PrinterOffline(
                f"The connection to the printer at {self.where} broke: {exc}"
            ) from exc
        finally:
            sock.settimeout(self.timeout)
        if 1 not in replies:
            log.debug("printer %s does not answer status requests", self.where)
            return None
        return status_from_replies(replies)

    def send(self, data: bytes) -> None:
        sock = self._connect()
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise PrinterOffline(
                f"The printer at {self.where} stopped taking data: it may be out of paper or "
                "offline"
            ) from exc
        except OSError as exc:
            raise PrinterOffline(
                f"The connection to the printer at {self.where} broke while printing: {exc}"
            ) from exc

    def close(self) -> None:
        if self._sock is not None:
            # Say we are done so the printer prints what it has before the socket goes.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
            self._sock.close()
            self._sock = None


class SerialConnection:
    """A serial printer (``serial:///dev/ttyS0?baudrate=38400``), through pyserial."""

    def __init__(
        self,
        *,
        port: str,
        baudrate: int = 9600,
        timeout: float = DEFAULT_TIMEOUT_S,
        status_timeout: float = STATUS_TIMEOUT_S,
        rtscts: bool = False,
        dsrdtr: bool = False,
        xonxoff: bool = False,
        read_status: bool = True,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.status_timeout = status_timeout
        self.flow = {"rtscts": rtscts, "dsrdtr": dsrdtr, "xonxoff": xonxoff}
        self.read_status = read_status
        self._serial: Any = None

    def _open(self) -> Any:
        if self._serial is not None:
            return self._serial
        import serial

        try:
            self._serial = serial.Serial(
                port=self.port,
                baudrate=self.baudrate,
                timeout=self.status_timeout,
                write_timeout=self.timeout,
                **self.flow,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PrinterOffline(
                f"Cannot open the printer's serial port {self.port}: {exc}. Is the printer "
                "plugged in and switched on?"
            ) from exc
        return self._serial

    def status(self) -> PrinterStatus | None:
        import serial

        port = self._open()
        if not self.read_status:
            return None
        replies: dict[int, int] = {}
        try:
            port.reset_input_buffer()
            for n in (1, 2, 3, 4):
                port.write(_dle_eot(n))
                port.flush()
                reply = port.read(1)
                if not reply:
                    break
                if not _valid(reply[0]):
                    log.debug("printer %s: %r is not a status reply", self.port, reply)
                    break
                replies[n] = reply[0]
        except (serial.SerialException, OSError) as exc:
            raise PrinterOffline(f"The printer's serial port {self.port} failed: {exc}") from exc
        if 1 not in replies:
            log.debug("printer %s does not answer status requests", self.port)
            return None
        return status_from_replies(replies)

    def send(self, data: bytes) -> None:
        import serial

        port = self._open()
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException as exc:
            raise PrinterOffline(
                f"The printer on {self.port} stopped taking data for {self.timeout:g} s: it may "
                "be out of paper or offline"
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise PrinterOffline(
                f"The printer's serial port {self.port} failed while printing: {exc}"
            ) from exc

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except OSError:
                log.debug("closing %s failed", self.port, exc_info=True)
            self._serial = None


class UsbConnection:
    """A USB printer by vendor and product id, through python-escpos's pyusb driver."""

    def __init__(self, *, vendor: int, product: int, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.vendor = vendor
        self.product = product
        self.timeout = timeout
        self._printer: Any = None

    @property
    def where(self) -> str:
        return f"usb://{self.vendor:04x}:{self.product:04x}"

    def _open(self) -> Any:
        if self._printer is None:
            from escpos.printer import Usb

            printer = Usb(self.vendor, self.product, timeout=int(self.timeout * 1000))
            try:
                printer.open()
            except Exception as exc:  # DeviceNotFoundError, USBError, a missing libusb
                raise PrinterOffline(
                    f"The USB printer {self.where} is not there ({exc}): is it plugged in and "
                    "switched on?"
                ) from exc
            self._printer = printer
        return self._printer

    def status(self) -> PrinterStatus | None:
        self._open()
        return None

    def send(self, data: bytes) -> None:
        printer = self._open()
        try:
            printer._raw(data)
        except Exception as exc:  # usb.core.USBError and its timeouts
            raise PrinterOffline(
                f"The USB printer {self.where} failed while printing: {exc}"
            ) from exc

    def close(self) -> None:
        if self._printer is not None:
            try:
                self._printer.close()
            except Exception:  # releasing a vanished device
                log.debug("closing %s failed", self.where, exc_info=True)
            self._printer = None


class FileConnection:
    """A device file (``file:///dev/usb/lp0``) or a plain file the bytes are appended to."""

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            # A device that vanished (a USB printer unplugged) must not come back as a plain
            # file that swallows every receipt: under /dev the file is never created.
            create = 0 if self.path.is_relative_to("/dev") else os.O_CREAT
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | create, 0o644)
                self._file = os.fdopen(fd, "ab", buffering=0)
            except FileNotFoundError as exc:
                raise PrinterOffline(
                    f"The printer device {self.path} is not there: is the printer plugged in "
                    "and switched on?"
                ) from exc
            except PermissionError as exc:
                raise PrinterError(
                    f"The till may not write to the printer device {self.path}: add its user "
                    "to the 'lp' group"
                ) from exc
            except OSError as exc:
                raise PrinterOffline(f"Cannot open the printer device {self.path}: {exc}") from exc
        return self._file

    def status(self) -> PrinterStatus | None:
        self._open()
        return None

    def send(self, data: bytes) -> None:
        handle = self._open()
        try:
            view = memoryview(data)
            while view:
                written = handle.write(view)
                if not written:
                    raise OSError("the device took no data")
                view = view[written:]
        except OSError as exc:
            raise PrinterOffline(
                f"The printer device {self.path} failed while printing: {exc}"
            ) from exc

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                log.debug("closing %s failed", self.path, exc_info=True)
            self._file = None


class NullConnection:
    """No printer (``none``): nothing is sent anywhere and there is no status."""

    def status(self) -> PrinterStatus | None:
        return None

    def send(self, data: bytes) -> None:
        log.debug("no printer: %d bytes not printed", len(data))

    def close(self) -> None:
        return None
