"""One error hierarchy for every part of Omnitill.

Foreign exceptions (pyserial, escpos, httpx, SQLAlchemy, sqlite3, OSError) are converted into
these where they enter our code, with ``raise Mapped(...) from exc``. The server maps them to HTTP
status codes in one place (``sync_server.api.errors``); the CLI maps them to exit messages.

::

    OmnitillError
    ├── InvalidInput                  bad data from a person, device, file or request (4xx)
    │   ├── BarcodeError              a scanned or typed code that is not a valid barcode
    │   │   ├── BarcodeFormatError    wrong characters or length for any known symbology
    │   │   └── CheckDigitError       right shape, wrong check digit
    │   ├── IdentifierError           an email, phone, loyalty number or id that is not valid
    │   ├── MoneyError                amounts in different currencies, unknown currency, bad amount
    │   ├── TaxError                  an impossible tax rate or mode
    │   └── ProtocolError             a sync message that breaks the protocol
    │       ├── BatchTooLarge         more ops in one push than allowed (413)
    │       └── UnknownOpType         an op type this side does not know
    ├── NotFound                      the thing asked for does not exist (404)
    ├── Conflict                      the request is valid but clashes with stored state (409)
    │   ├── SequenceGap               a till skipped seq numbers; the batch stops there
    │   ├── RestoredBackup            seq already used with an unknown op_id: quarantined
    │   └── CursorExpired             a pull cursor older than tombstone retention
    ├── AuthError                     no or bad credentials (401)
    │   └── PermissionDenied          valid credentials, not allowed for this (403)
    ├── DeviceError                   a till's hardware failed; the sale never waits for it
    │   ├── PrinterError
    │   │   ├── PrinterOffline
    │   │   ├── PaperOut
    │   │   └── CoverOpen
    │   ├── ScannerError
    │   └── MailError
    ├── TransportError                the network or the other side is unreachable (retry later)
    │   └── ServerUnavailable         5xx, timeout, refused connection
    └── StorageError                  the local or central database failed
        └── DiskFull
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BarcodeError",
    "BarcodeFormatError",
    "BatchTooLarge",
    "CheckDigitError",
    "Conflict",
    "CoverOpen",
    "CursorExpired",
    "DeviceError",
    "DiskFull",
    "IdentifierError",
    "InvalidInput",
    "MailError",
    "MoneyError",
    "NotFound",
    "OmnitillError",
    "PaperOut",
    "PermissionDenied",
    "PrinterError",
    "PrinterOffline",
    "ProtocolError",
    "RestoredBackup",
    "ScannerError",
    "SequenceGap",
    "ServerUnavailable",
    "StorageError",
    "TaxError",
    "TransportError",
    "UnknownOpType",
]


class OmnitillError(Exception):
    """Base of every error Omnitill raises on purpose.

    ``message`` is written for the person who will read it (a cashier, a store manager, an IT
    admin): it says what is wrong and, where it can, what to do.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(OmnitillError):
    """Bad data from a person, a device, a file or a request."""


class BarcodeError(InvalidInput):
    """A code that is not a valid barcode; ``code`` is what was read."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class BarcodeFormatError(BarcodeError):
    """Wrong characters or length for any known symbology."""


class CheckDigitError(BarcodeError):
    """The code has the right shape but its check digit is wrong."""

    def __init__(self, message: str, *, code: str, expected: int, found: int) -> None:
        super().__init__(message, code=code)
        self.expected = expected
        self.found = found


class IdentifierError(InvalidInput):
    """A customer identifier that cannot be normalized."""


class MoneyError(InvalidInput):
    """Amounts in different currencies, an unknown currency or an amount that is not whole."""


class TaxError(InvalidInput):
    """An impossible tax rate or mode."""


class ProtocolError(InvalidInput):
    """A sync message that breaks the protocol."""


class BatchTooLarge(ProtocolError):
    """More ops in one push than the server accepts."""


class UnknownOpType(ProtocolError):
    """An op type this side does not know."""


class NotFound(OmnitillError):
    """The thing asked for does not exist."""


class Conflict(OmnitillError):
    """A valid request that clashes with stored state."""


class SequenceGap(Conflict):
    """A till's ops skipped sequence numbers; nothing after the gap is applied."""

    def __init__(self, message: str, *, expected: int, found: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class RestoredBackup(Conflict):
    """A seq the server has already seen arrived with an unknown op_id: the till was restored."""


class CursorExpired(Conflict):
    """A pull cursor older than the tombstone retention: the till must refetch."""


class AuthError(OmnitillError):
    """No credentials, or credentials that are not valid."""


class PermissionDenied(AuthError):
    """Valid credentials that do not allow this action."""


class DeviceError(OmnitillError):
    """A till device failed. The sale never waits for a device."""


class PrinterError(DeviceError):
    """The receipt printer cannot print now."""


class PrinterOffline(PrinterError):
    """The printer does not answer: off, unplugged or unreachable."""


class PaperOut(PrinterError):
    """The printer reports its paper roll is empty."""


class CoverOpen(PrinterError):
    """The printer reports its cover is open."""


class ScannerError(DeviceError):
    """The barcode scanner is gone or sent something unreadable."""


class MailError(DeviceError):
    """The mail server refused or could not be reached."""


class TransportError(OmnitillError):
    """The network or the other side cannot be reached now; try again later."""


class ServerUnavailable(TransportError):
    """The server answered 5xx, timed out or refused the connection."""


class StorageError(OmnitillError):
    """The database failed."""


class DiskFull(StorageError):
    """No space left to write; nothing was written."""
