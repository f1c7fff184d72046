"""``omnitill kiosk``: the admin PIN is required for kiosk mode, ``--hash-pin`` makes one, and
the options reach the kiosk."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.kiosk import CardLookup, KioskSettings, verify_pin
from edge_agent.scanner import Scanner
from edge_agent.till import Till
from edge_agent.ui import kiosk as ui_kiosk
from omnitill.cli import main
from tests.edge_agent.kiosk_support import PIN, PIN_HASH

Opened = tuple[Till, KioskSettings, Scanner | None, CardLookup | None, bool]


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMNITILL_TILL_CONFIG", str(tmp_path / "none.toml"))
    for name in ("SCANNER", "SERVER_URL", "TOKEN"):
        monkeypatch.delenv(f"OMNITILL_TILL_{name}", raising=False)
    for name in ("PIN_HASH", "IDLE_TIMEOUT_S"):
        monkeypatch.delenv(f"OMNITILL_KIOSK_{name}", raising=False)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Opened]:
    calls: list[Opened] = []

    def fake_run_kiosk(
        till: Till,
        settings: KioskSettings,
        scanner: Scanner | None,
        *,
        lookup: CardLookup | None = None,
        kiosk_mode: bool = True,
    ) -> int:
        calls.append((till, settings, scanner, lookup, kiosk_mode))
        return 0

    monkeypatch.setattr(ui_kiosk, "run_kiosk", fake_run_kiosk)
    return calls


def test_kiosk_mode_needs_an_admin_pin(tmp_path: Path, opened: list[Opened]) -> None:
    result = CliRunner().invoke(main, ["kiosk", "--db", str(tmp_path / "k.db")])
    assert result.exit_code == 2
    assert "No admin PIN" in result.output and "omnitill kiosk --hash-pin" in result.output
    assert not opened and not (tmp_path / "k.db").exists()


def test_hash_pin_prints_a_hash_that_checks(opened: list[Opened]) -> None:
    result = CliRunner().invoke(main, ["kiosk", "--hash-pin"], input="12\n12\n2468\n2468\n")
    assert result.exit_code == 0, result.output
    assert "4 to 12 digits" in result.output  # the first PIN was too short
    line = next(x for x in result.output.splitlines() if x.startswith("pin_hash = "))
    stored = line.split('"')[1]
    assert verify_pin(PIN, stored) and not verify_pin("1234", stored)
    assert PIN not in line
    assert not opened


def test_options_reach_the_kiosk(tmp_path: Path, opened: list[Opened]) -> None:
    args = ["kiosk", "--db", str(tmp_path / "k.db"), "--till", "S001-K1", "--pin-hash", PIN_HASH]
    result = CliRunner().invoke(main, [*args, "--idle-timeout", "12"])
    assert result.exit_code == 0, result.output
    [(till, settings, scanner, lookup, kiosk_mode)] = opened
    assert till.settings.db_path == tmp_path / "k.db" and till.settings.till_id == "S001-K1"
    assert settings.idle_timeout_s == 12.0 and settings.pin_hash is not None
    assert scanner is None and lookup is None and kiosk_mode is True


def test_windowed_needs_no_pin_and_a_configured_hq_gives_a_lookup(
    tmp_path: Path, opened: list[Opened]
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "kiosk",
            "--windowed",
            "--db",
            str(tmp_path / "k.db"),
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t0k3n",
        ],
    )
    assert result.exit_code == 0, result.output
    [(_, settings, _, lookup, kiosk_mode)] = opened
    assert settings.pin_hash is None and kiosk_mode is False and lookup is not None


def test_a_bad_pin_hash_or_scanner_is_a_usage_error(tmp_path: Path, opened: list[Opened]) -> None:
    db = ["--db", str(tmp_path / "k.db")]
    result = CliRunner().invoke(main, ["kiosk", *db, "--pin-hash", "1234"])
    assert result.exit_code == 2 and "Bad kiosk setting" in result.output
    assert "omnitill kiosk --hash-pin" in result.output
    result = CliRunner().invoke(
        main, ["kiosk", *db, "--pin-hash", PIN_HASH, "--scanner", "carrier-pigeon://x"]
    )
    assert result.exit_code == 2
    assert not opened


def test_a_bad_till_setting_is_a_usage_error_that_names_it(
    tmp_path: Path, opened: list[Opened]
) -> None:
    args = ["kiosk", "--db", str(tmp_path / "k.db"), "--till", "bad till!", "--pin-hash", PIN_HASH]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Bad till setting" in result.output and "till_id" in result.output
    assert not opened and not (tmp_path / "k.db").exists()
