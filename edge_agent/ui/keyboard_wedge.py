"""A keyboard-wedge scanner, simulated: codes typed into a window as key events, with timing.

A wedge scanner is a keyboard to the computer: it "types" each code into whatever has the focus,
a character every few milliseconds, then Enter. :func:`wedge_scan` does the same with Qt key
events (press and release, as a keyboard sends them) so the till window's wedge detector sees
what it would see from a real scanner; :func:`type_text` types at a person's pace. Tests, the
screenshots and demos use them.

Time is either real (the events are sent ``interval_ms`` apart, the Qt event loop running in
between) or a :class:`ManualClock` that the window also reads (``TillWindow(clock_ms=clock)``):
the clock moves by ``interval_ms`` before each key and no time passes at all, so a test plays
scanner or human timing exactly and fast.
"""

from __future__ import annotations

import time
from typing import Final

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget

__all__ = [
    "HUMAN_INTERVAL_MS",
    "SCANNER_INTERVAL_MS",
    "ManualClock",
    "key_events",
    "type_text",
    "wedge_scan",
]

#: A wedge scanner sends a character every 1 to 15 ms.
SCANNER_INTERVAL_MS: Final = 4.0
#: A quick typist: about seven keys a second.
HUMAN_INTERVAL_MS: Final = 140.0
#: The pause before a scan (the trigger is pulled well after the last key).
_PAUSE_MS: Final = 500.0


class ManualClock:
    """Milliseconds that move only when told to; pass it as the window's ``clock_ms``."""

    def __init__(self, start_ms: float = 10_000.0) -> None:
        self.now = start_ms

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


def key_events(char: str) -> tuple[QKeyEvent, QKeyEvent]:
    """The press and release a keyboard sends for ``char`` (``\\r`` or ``\\n``: Enter)."""
    if char in "\r\n":
        key, text = Qt.Key.Key_Return, "\r"
    elif char == "\t":
        key, text = Qt.Key.Key_Tab, "\t"
    else:
        key = Qt.Key(ord(char.upper())) if ord(char) < 0x7F else Qt.Key.Key_unknown
        text = char
    return (
        QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text),
        QKeyEvent(QEvent.Type.KeyRelease, key, Qt.KeyboardModifier.NoModifier, text),
    )


def type_text(
    text: str,
    *,
    target: QWidget | None = None,
    interval_ms: float = HUMAN_INTERVAL_MS,
    clock: ManualClock | None = None,
) -> None:
    """Type ``text`` into ``target`` (default: the focused widget), one key every
    ``interval_ms``; ``\\r`` is the Enter key."""
    for char in text:
        _wait(interval_ms, clock)
        widget = target or QApplication.focusWidget()
        if widget is None:
            raise RuntimeError("nothing has the keyboard focus: show and activate the window")
        for event in key_events(char):
            QApplication.sendEvent(widget, event)


def wedge_scan(
    code: str,
    *,
    target: QWidget | None = None,
    interval_ms: float = SCANNER_INTERVAL_MS,
    clock: ManualClock | None = None,
    pause_ms: float = _PAUSE_MS,
) -> None:
    """``code`` as a wedge scanner sends it: a pause, the characters at scanner speed, Enter."""
    _wait(pause_ms, clock)
    type_text(code + "\r", target=target, interval_ms=interval_ms, clock=clock)


def _wait(ms: float, clock: ManualClock | None) -> None:
    if clock is not None:
        clock.advance(ms)
        return
    deadline = time.monotonic() + ms / 1000.0
    while (left := deadline - time.monotonic()) > 0:
        QApplication.processEvents()
        time.sleep(min(left, 0.002))
