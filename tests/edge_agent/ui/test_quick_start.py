"""``omnitill till`` starts quickly (``edge_agent.cli.quick_start``): no collector passes while it
imports, sqlite-utils without pandas and numpy, escpos's printer database parsed once and kept
in the user's cache, written so that no process ever reads half of it. Each case runs in a
fresh interpreter, as a till starts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

START = """
import gc, importlib.util, json, os, sys
from edge_agent.cli import quick_start

with quick_start():
    collecting_while_starting = gc.isenabled()
    import edge_agent.till

print(json.dumps({
    "collecting_while_starting": collecting_while_starting,
    "collecting_after": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "dataframes_imported": [m for m in ("pandas", "numpy") if m in sys.modules],
    "pandas_importable": importlib.util.find_spec("pandas") is not None,
    "escpos_dir": os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR"),
    "escpos_loaded": "escpos.capabilities" in sys.modules,
}))
"""


def start(cache_home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCPOS_")}
    env["XDG_CACHE_HOME"] = str(cache_home)
    result = subprocess.run(
        [sys.executable, "-c", START],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_a_start_keeps_escpos_parsed_and_never_imports_dataframes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = start(cache)
    escpos = cache / "omnitill" / "escpos"
    assert first["escpos_dir"] == str(escpos) and first["escpos_loaded"]
    [parsed] = list(escpos.iterdir())  # the parsed copy, published whole; no private dir left
    assert parsed.name.endswith(".capabilities.pickle") and parsed.stat().st_size > 10_000
    written = parsed.stat().st_mtime_ns
    assert first["dataframes_imported"] == []
    # Hidden only while sqlite-utils was imported: still there for whoever needs them.
    assert first["pandas_importable"] == (importlib.util.find_spec("pandas") is not None)
    assert not first["collecting_while_starting"] and first["collecting_after"]
    assert first["frozen"] > 10_000  # what the start made is out of every later pass

    second = start(cache)  # the next start reads the copy and writes nothing
    assert second["escpos_dir"] == str(escpos)
    assert list(escpos.iterdir()) == [parsed] and parsed.stat().st_mtime_ns == written


def test_a_start_with_no_writable_cache_leaves_escpos_to_itself(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would go", encoding="utf-8")
    started = start(blocked)
    assert started["escpos_dir"] is None and started["escpos_loaded"]
    assert started["dataframes_imported"] == []
