"""`omnitill demo` runs the whole store and tells Maria's story (small sizes)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_demo_runs_the_store_end_to_end(tmp_path: Path) -> None:
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
    assert "customer Maria" in out and "from cache" in out
    assert "sale complete S001-T1-000001" in out
    assert "What HQ knows about Maria now" in out
    assert '"sales": ' in out
    assert (tmp_path / "store" / "hq.db").exists()
