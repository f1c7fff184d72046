"""``omnitill till`` with a screen: the Qt application around :class:`TillWindow`.

The caller (``edge_agent.cli``) owns the till and closes it afterwards. This starts the till's
sync worker, runs a configured serial scanner on its own thread (its lines reach the window
through a queued signal), shows the window and runs the Qt event loop until the window is
closed or SIGTERM / SIGINT arrives (exit code 0).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from edge_agent.scanner import Scanner
from edge_agent.till import Till
from edge_agent.ui.main_window import ScannerBridge, TillWindow
from edge_agent.ui.presenters import TillPresenter

__all__ = ["run_window"]


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
        app.exec()
    finally:
        wake.stop()
        if bridge is not None:
            bridge.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
