"""How fast `omnitill demo-data` builds a chain."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from omnitill.cli import main


def _generate(out: Path, *args: str) -> float:
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["demo-data", "--out", str(out), *args])
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(result.output)
    return elapsed


def run(*, full: bool) -> dict[str, float]:
    orders = 1_000_000 if full else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        default_s = _generate(Path(tmp) / "default")
        big_s = _generate(
            Path(tmp) / "big",
            "--products",
            "20000",
            "--customers",
            "100000",
            "--orders",
            str(orders),
        )
    return {"demo_data_default_s": round(default_s, 2), "demo_data_orders_per_s": orders / big_s}
