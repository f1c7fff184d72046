"""``omnitill till`` with a screen: the Qt application around :class:`TillWindow`.

The caller (``edge_agent.cli``) owns the till and closes it afterwards. This starts the till's
sync worker, runs a configured serial scanner on its own thread (its lines reach the window
through a queued signal), shows the window and runs the Qt event loop until the window is
closed or SIGTERM / SIGINT arrives (exit code 0).

Ready for the first scan
------------------------
The window is ready once it has been painted for the first time with the scan field focused
(the till, its store and its workers are all up by then). When the environment variable
``OMNITILL_READY_FILE`` names a file, that moment is written to it as one JSON object
(``{"pid": ..., "ready_at": <Unix time>, "scan_field_focused": true}``, written to a temporary
file and renamed, so a reader never sees half of it). Supervisors and the start-up benchmark
(``python -m bench gui``) wait for it; nothing else changes when it is set.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Final

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from edge_agent.scanner import Scanner
from edge_agent.till import Till
from edge_agent.ui.main_window import ScannerBridge, TillWindow
from edge_agent.ui.presenters import TillPresenter

__all__ = ["READY_FILE_ENV", "run_window"]

log = logging.getLogger(__name__)

#: The environment variable naming the file written when the window is ready (see above).
READY_FILE_ENV: Final = "OMNITILL_READY_FILE"


class _FirstPaint(QObject):
    """Calls ``on_ready`` once, as soon as the window's first paint has finished."""

    def __init__(self, window: TillWindow, on_ready: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._on_ready = on_ready
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and event.type() == QEvent.Type.Paint:
            self._window.removeEventFilter(self)
            # The paint event of the window comes first; its children paint after it.
            QTimer.singleShot(0, self._on_ready)
        return False


def _write_ready_file(path: Path, window: TillWindow) -> None:
    data = {
        "pid": os.getpid(),
        "ready_at": time.time(),
        "scan_field_focused": window.scan_field.hasFocus(),
    }
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        part.write_text(json.dumps(data), encoding="utf-8")
        part.replace(path)
    except OSError as exc:  # a bad path must not stop the till
        log.warning("cannot write the ready file %s (%s): %s", path, READY_FILE_ENV, exc)


def run_window(till: Till, scanner: Scanner | None, *, fullscreen: bool = False) -> int:
    """Show the cashier's window over ``till`` until it is closed; returns the exit code."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Omnitill till")
    presenter = TillPresenter(till)
    window = TillWindow(presenter)
    bridge: ScannerBridge | None = None
    if scanner is not None:
        bridge = ScannerBridge(scanner, window)
        bridge.scanned.connect(presenter.scan)
        bridge.failed.connect(presenter.scan_failed)

    def ready() -> None:
        log.debug("the till window is ready for the first scan")
        ready_file = os.environ.get(READY_FILE_ENV)
        if ready_file:
            _write_ready_file(Path(ready_file), window)

    _FirstPaint(window, ready)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        window.close()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    # Python runs signal handlers only between bytecodes: wake the interpreter now and then.
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    till.start()
    if bridge is not None:
        bridge.start()
    try:
        if fullscreen:
            window.showFullScreen()
        else:
            window.showMaximized()
        # A wedge scanner types into whatever has the keyboard focus: ask for it.
        window.activateWindow()
        app.exec()
    finally:
        wake.stop()
        if bridge is not None:
            bridge.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
