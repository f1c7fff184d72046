"""`omnitill demo` runs the whole store and tells Maria's story (small sizes)."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from omnitill.demo import demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_demo_runs_the_store_end_to_end(tmp_path: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnitill",
            "demo",
            "--dir",
            str(tmp_path / "store"),
            "--port",
            str(free_port()),
            "--products",
            "300",
            "--customers",
            "200",
            "--orders",
            "1000",
            "--no-wait",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    days = {today, datetime.now(UTC).date().isoformat()}  # a run across midnight
    # The history ends now, so the trending lists have recent days to look at.
    assert any(f"a year of history up to {day}T" in out for day in days), out
    assert "customer Maria" in out and "from cache" in out
    assert "sale complete S001-T1-000001" in out
    assert "What HQ knows about Maria now" in out
    assert '"sales": ' in out
    assert (tmp_path / "store" / "hq.db").exists()


def test_the_demo_history_ends_now_unless_a_date_is_given() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    end = demo.make_context("demo", []).params["end_date"]
    assert before <= end <= datetime.now(UTC) + timedelta(seconds=1)
    assert end.tzinfo is not None
    given = demo.make_context("demo", ["--end-date", "2026-10-31"]).params["end_date"]
    assert given == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    exact = demo.make_context("demo", ["--end-date", "2026-06-01T12:00:00+02:00"])
    assert exact.params["end_date"] == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(click.BadParameter, match="no time zone"):
        demo.make_context("demo", ["--end-date", "2026-06-01T12:00:00"])


def test_a_bad_end_date_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        demo, ["--dir", str(tmp_path / "store"), "--end-date", "last tuesday", "--no-wait"]
    )
    assert result.exit_code == 2
    assert "'last tuesday' is not a date: use 2026-10-31" in result.output
    assert not (tmp_path / "store").exists()
