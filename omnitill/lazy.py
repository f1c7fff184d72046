"""A click group whose subcommands are imported only when they run or are listed with help."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """Subcommands come from ``registry``: name -> ("module:attribute", one-line help).

    ``--help`` shows the one-line help from the registry, so listing the commands imports
    nothing heavy (``omnitill till`` never imports FastAPI, ``omnitill server`` never Qt).
    """

    def __init__(
        self,
        *args: Any,
        registry: Mapping[str, tuple[str, str]],
        section: str = "Commands",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.registry = registry
        self.section = section

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.registry)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.registry.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.registry[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section(self.section):
                formatter.write_dl(rows)
