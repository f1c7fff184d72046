"""A till screen must outlive a day of scans: PySide6 6.12.0 drops a reference to None on every
Qt call that returns nothing, which aborts CPython 3.11 after a thousand-odd scans (see
``edge_agent/ui/__init__.py``); the PySide6 we install must not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CALLS = """
import sys
import edge_agent.ui
from PySide6.QtWidgets import QApplication, QLabel

app = QApplication([])
label = QLabel()
before = sys.getrefcount(None)
for _ in range(300_000):  # more references than None has in a fresh interpreter
    label.setText("x")
    label.update()
print(before - sys.getrefcount(None))
"""


def test_none_outlives_hundreds_of_thousands_of_qt_calls() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", CALLS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dropped = int(result.stdout.strip().splitlines()[-1])
    assert abs(dropped) < 1_000  # no reference leaked or lost per call
