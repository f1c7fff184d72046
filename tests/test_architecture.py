"""Import rules that keep the layers honest (see docs/architecture.md).

- ``shared`` is pure: it never imports Qt, FastAPI, SQLAlchemy, sqlite-utils, httpx, serial,
  escpos or anything else that does I/O.
- ``edge_agent`` and ``sync_server`` never import each other; both may import ``shared``.
- ``shared`` imports neither of them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN_IN_SHARED = {
    "PySide6",
    "PyQt5",
    "PyQt6",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "sqlite_utils",
    "sqlite3",
    "httpx",
    "requests",
    "serial",
    "escpos",
    "psycopg",
    "socket",
    "smtplib",
    "aiosmtpd",
    "zeroconf",
    "edge_agent",
    "sync_server",
    "hardware_sim",
    "omnitill",
}


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, module in imported_modules(path):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return found


def test_shared_is_pure() -> None:
    assert violations("shared", FORBIDDEN_IN_SHARED) == []


@pytest.mark.parametrize(
    ("package", "other"), [("edge_agent", "sync_server"), ("sync_server", "edge_agent")]
)
def test_till_and_server_do_not_import_each_other(package: str, other: str) -> None:
    assert violations(package, {other}) == []


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom sqlalchemy import select\nimport PySide6.QtCore\n")
    found = [m for _, m in imported_modules(bad) if m.split(".")[0] in FORBIDDEN_IN_SHARED]
    assert found == ["sqlalchemy", "PySide6.QtCore"]


#: Standard-library modules may be pulled in indirectly by the standard library itself (uuid
#: imports socket), so the run-time check looks at third-party and project packages only.
STDLIB = {"socket", "sqlite3", "smtplib"}


def test_importing_shared_loads_no_io_library() -> None:
    forbidden = sorted(FORBIDDEN_IN_SHARED - STDLIB)
    code = (
        "import sys, importlib, pkgutil, shared\n"
        "for m in pkgutil.iter_modules(shared.__path__):\n"
        "    importlib.import_module('shared.' + m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
