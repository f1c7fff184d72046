"""The ``omnitill`` command: every subcommand listed, documented and with help text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from omnitill.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name, (_, short_help) in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\s", result.output, re.M), name
        assert short_help.split()[0] in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_imports_and_has_help(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert (command.help or "").strip(), f"{name} has no help text"


def all_commands() -> list[tuple[str, click.Command]]:
    """Every command and subcommand, as ("admin enroll-till", command)."""
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, group: click.Group) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            full = f"{prefix} {name}".strip()
            found.append((full, command))
            if isinstance(command, click.Group):
                walk(full, command)

    walk("", main)
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda v: str(v))
def test_every_command_and_option_is_documented(name: str, command: click.Command) -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    heading = f"## omnitill {name}\n"
    assert heading in docs, f"docs/cli.md has no section '## omnitill {name}'"
    section = docs.split(heading, 1)[1].split("\n## ", 1)[0]
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in section, f"docs/cli.md: omnitill {name} misses {opt}"
        if isinstance(param, click.Argument):
            assert param.name is not None
            assert param.name.upper() in section, f"omnitill {name} misses {param.name}"


def test_unknown_subcommand_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "omnitill", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("omnitill, version ")
