"""Keyboard-wedge scanner detection: tell a scanner's keystrokes from a person's.

A keyboard-wedge scanner "types" its code into whatever has the focus, one character every few
milliseconds, and ends it with Enter. A person types at best one character every 50 to 100 ms.
:class:`WedgeDetector` watches the characters the window receives and their times:

- a *burst* is a run of characters each arriving at most ``max_interval_ms`` after the one
  before it;
- a burst of at least ``min_length`` characters ended by the terminator (Enter), itself within
  ``max_interval_ms``, is a **scan**: it goes to the scan handler, whichever field has the focus,
  and none of its characters reach that field;
- anything else is typing: the characters are handed back to be delivered to the focused field.

A character may be the start of a burst, so the detector holds it back until it knows: at the
next character (a slow one releases what is held), at :meth:`WedgeDetector.flush` once
``max_interval_ms`` have passed without another character (the window runs a short timer for
this), or at :meth:`WedgeDetector.release` when a key that is not a character (Backspace, an
arrow, a shortcut) arrives. A person therefore sees their typing at most ``max_interval_ms``
late, far below what an eye notices.

The detector is pure (no Qt, no clock of its own): timestamps come with the characters, so tests
feed synthetic timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.errors import InvalidInput

__all__ = ["DEFAULT_MAX_INTERVAL_MS", "DEFAULT_MIN_LENGTH", "WedgeDetector", "WedgeOutcome"]

#: Scanners send a character every 1 to 15 ms; people need 50 ms or more.
DEFAULT_MAX_INTERVAL_MS: Final = 30.0
#: The shortest code the till scans is an EAN-8; command barcodes are longer.
DEFAULT_MIN_LENGTH: Final = 4


@dataclass(frozen=True, slots=True)
class WedgeOutcome:
    """What one character did: a complete ``scan``, and/or characters to ``deliver`` to the
    focused field (in order, possibly including an Enter for a person's Enter key)."""

    scan: str | None = None
    deliver: str = ""


_NOTHING: Final = WedgeOutcome()


class WedgeDetector:
    """Splits a stream of ``(character, timestamp_ms)`` into scans and typing."""

    def __init__(
        self,
        *,
        max_interval_ms: float = DEFAULT_MAX_INTERVAL_MS,
        min_length: int = DEFAULT_MIN_LENGTH,
        terminator: str = "\r",
    ) -> None:
        if terminator not in ("\r", "\n"):
            raise InvalidInput(
                f"The scanner's terminator must be CR or LF, not {terminator!r}: set the "
                "scanner's suffix to Enter"
            )
        if max_interval_ms <= 0:
            raise InvalidInput(f"max_interval_ms must be positive, not {max_interval_ms}")
        if min_length < 1:
            raise InvalidInput(f"min_length must be at least 1, not {min_length}")
        self.max_interval_ms = float(max_interval_ms)
        self.min_length = min_length
        self.terminator = terminator
        self._held: list[str] = []
        self._last_ms: float | None = None

    @property
    def pending(self) -> str:
        """The characters held back while it is not known whether they are a scan."""
        return "".join(self._held)

    @property
    def deadline_ms(self) -> float | None:
        """When :meth:`flush` releases the held characters (None: nothing is held)."""
        if not self._held or self._last_ms is None:
            return None
        return self._last_ms + self.max_interval_ms

    def feed(self, char: str, timestamp_ms: float) -> WedgeOutcome:
        """Take one character (or the terminator) received at ``timestamp_ms``."""
        if len(char) != 1:
            raise InvalidInput(f"feed takes one character at a time, not {char!r}")
        fast = self._last_ms is not None and timestamp_ms - self._last_ms <= self.max_interval_ms
        if char == self.terminator:
            if fast and len(self._held) >= self.min_length:
                code = "".join(self._held)
                self._reset()
                return WedgeOutcome(scan=code)
            # A person's Enter: what was held, then the Enter itself, go to the field.
            return WedgeOutcome(deliver=self.release() + char)
        if not char.isprintable():
            return WedgeOutcome(deliver=self.release() + char)
        released = "" if fast else self.release()
        self._held.append(char)
        self._last_ms = timestamp_ms
        return WedgeOutcome(deliver=released) if released else _NOTHING

    def flush(self, now_ms: float) -> str:
        """Release the held characters if no character came for ``max_interval_ms``."""
        deadline = self.deadline_ms
        if deadline is None or now_ms < deadline:
            return ""
        return self.release()

    def release(self) -> str:
        """Release every held character now (a key that is not a character arrived)."""
        text = "".join(self._held)
        self._reset()
        return text

    def _reset(self) -> None:
        self._held.clear()
        self._last_ms = None
