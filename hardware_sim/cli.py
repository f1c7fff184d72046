"""``omnitill sim ...``: the hardware simulators, each a subcommand imported when used."""

from __future__ import annotations

import click

from omnitill.lazy import LazyGroup

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


@click.group(cls=LazyGroup, registry=SIMULATORS, section="Simulators")
def sim() -> None:
    """Hardware simulators that speak the real protocols (for demos, tests and load)."""
