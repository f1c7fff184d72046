"""``omnitill till`` without --headless opens the window; the window's event loop ends cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from edge_agent.scanner import Scanner
from edge_agent.till import Till
from edge_agent.ui import app as ui_app
from edge_agent.ui.main_window import TillWindow
from omnitill.cli import main


def test_till_without_headless_opens_the_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OMNITILL_TILL_CONFIG", str(tmp_path / "none.toml"))
    for name in ("SCANNER", "SERVER_URL", "TOKEN"):
        monkeypatch.delenv(f"OMNITILL_TILL_{name}", raising=False)
    opened: list[tuple[Till, Scanner | None]] = []

    def fake_run_window(till: Till, scanner: Scanner | None) -> int:
        opened.append((till, scanner))
        return 0

    monkeypatch.setattr(ui_app, "run_window", fake_run_window)
    result = CliRunner().invoke(main, ["till", "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 0, result.output
    [(till, scanner)] = opened
    assert scanner is None and till.settings.db_path == tmp_path / "t.db"


def test_run_window_shows_the_till_and_returns_when_closed(qtbot: QtBot, till: Till) -> None:
    seen: list[str] = []

    def close_it() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, TillWindow) and widget.isVisible():
                seen.append(widget.windowTitle())
                widget.close()

    QTimer.singleShot(100, close_it)
    assert ui_app.run_window(till, None) == 0
    assert seen == ["Omnitill till S001-T1 | store S001"]
