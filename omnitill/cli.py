"""The ``omnitill`` command: one entry point, each package adds its own subcommands.

Subcommands are registered in :data:`COMMANDS` as ``"module:attribute"`` strings and imported
only when they run (or when ``--help`` lists them), so ``omnitill till`` never pays for importing
the server and ``omnitill server`` never imports Qt.
"""

from __future__ import annotations

import logging

import click

from omnitill import __version__
from omnitill.lazy import LazyGroup

#: name -> (import path of a click command, one-line help shown by ``omnitill --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("sync_server.cli:server", "Run the HQ sync server."),
    "sim": (
        "hardware_sim.cli:sim",
        "Hardware simulators: ESC/POS printer, serial scanner, SMTP and SMS sinks.",
    ),
    "admin": (
        "sync_server.cli:admin",
        "HQ administration: enrol and revoke tills, import data.",
    ),
    "till": (
        "edge_agent.cli:till",
        "Run a till: the cashier's screen, or headless with --headless.",
    ),
    "kiosk": (
        "edge_agent.kiosk_cli:kiosk",
        "Run the in-store kiosk: price check, bestsellers and personal picks, full screen.",
    ),
    "demo": (
        "omnitill.demo:demo",
        "Run the whole store on this machine: HQ, a till and Maria's story.",
    ),
    "demo-data": (
        "hardware_sim.demo_data_cli:demo_data",
        "Generate a deterministic demo chain: stores, catalogue, customers, orders, web events.",
    ),
    "eval-recs": (
        "sync_server.recs_cli:eval_recs",
        "Evaluate recommendations offline against popularity, co-occurrence and mlxtend rules.",
    ),
}


@click.group(
    cls=LazyGroup,
    registry=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="omnitill")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    envvar="OMNITILL_LOG_LEVEL",
    help="How much to log to stderr.",
)
def main(log_level: str) -> None:
    """Omnitill: one customer across tills, web shop and email.

    Run `omnitill COMMAND --help` for the options of each command.
    """
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if log_level.upper() != "DEBUG":
        # One line per HTTP request drowns what matters; --log-level DEBUG shows them.
        logging.getLogger("httpx").setLevel(logging.WARNING)
