"""``omnitill sim ...``: the hardware simulators, each a subcommand imported when used."""

from __future__ import annotations

import importlib

import click

#: name -> ("module:attribute" of a click command, one-line help)
SIMULATORS: dict[str, tuple[str, str]] = {
    "smtp": ("hardware_sim.smtp:smtp_command", "SMTP server keeping every message as .eml."),
    "sms": ("hardware_sim.sms:sms_command", "HTTP SMS gateway keeping every message as JSON."),
    "scanner": ("hardware_sim.scanner:scanner_command", "Serial barcode scanner on a pty."),
    "printer": (
        "hardware_sim.printer:printer_command",
        "Network ESC/POS receipt printer on TCP 9100 (text + PNG per receipt, faults).",
    ),
}


class _LazySims(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SIMULATORS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SIMULATORS.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SIMULATORS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Simulators"):
                formatter.write_dl(rows)


@click.group(cls=_LazySims)
def sim() -> None:
    """Hardware simulators that speak the real protocols (for demos, tests and load)."""
