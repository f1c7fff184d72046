"""``omnitill till``: run a till. Options override the till's settings (``edge_agent.config``).

Without ``--headless`` the cashier's screen opens (``edge_agent.ui``; Qt is imported only then);
with it, the headless till reads scans and writes one line per event. Errors that stop the
start are turned into exit messages here, and nowhere else: 2 for a usage or configuration
mistake, 1 for a database that cannot be opened (see ``edge_agent.headless`` for every exit
code).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

import click
from pydantic import ValidationError

from edge_agent.config import load_till_settings
from edge_agent.headless import run_headless
from edge_agent.scanner import Scanner, StreamScanner, scanner_from_url
from edge_agent.till import Till
from shared.errors import OmnitillError, ScannerError
from shared.protocol import MAX_PULL_LIMIT, describe_validation_error

__all__ = ["till"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--headless",
    is_flag=True,
    help="Run without a screen: scans in, one line per event on stdout.",
)
@click.option(
    "--server",
    "server_url",
    metavar="URL",
    help="HQ base URL (env OMNITILL_TILL_SERVER_URL); unset: find HQ with zeroconf.",
)
@click.option("--token", metavar="TOKEN", help="This till's token (env OMNITILL_TILL_TOKEN).")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The till's SQLite file (env OMNITILL_TILL_DB_PATH, default till.db).",
)
@click.option(
    "--scanner",
    metavar="URL",
    help="Scanner URL, e.g. serial:///dev/ttyUSB0?baudrate=9600&suffix=CR "
    "(env OMNITILL_TILL_SCANNER).",
)
@click.option("--store", "store_id", metavar="S", help="Store code (env OMNITILL_TILL_STORE_ID).")
@click.option(
    "--till", "till_id", metavar="T", help="Till code as enrolled (env OMNITILL_TILL_TILL_ID)."
)
@click.option(
    "--cashier", "cashier_id", metavar="C", help="Who sells (env OMNITILL_TILL_CASHIER_ID)."
)
@click.option(
    "--pull-limit",
    type=click.IntRange(1, MAX_PULL_LIMIT),
    help="Changes per pull page (env OMNITILL_TILL_PULL_LIMIT, default 500).",
)
@click.option(
    "--stdin",
    "use_stdin",
    is_flag=True,
    help="Read scans from standard input, one per line, instead of the scanner.",
)
@click.option(
    "--once",
    is_flag=True,
    help="With --stdin: when input ends, exit once everything reached HQ (or after --timeout).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="With --once: seconds to wait for HQ after input ends; then exit 3.",
)
@click.pass_context
def till(
    ctx: click.Context,
    headless: bool,
    server_url: str | None,
    token: str | None,
    db_path: Path | None,
    scanner: str | None,
    store_id: str | None,
    till_id: str | None,
    cashier_id: str | None,
    pull_limit: int | None,
    use_stdin: bool,
    once: bool,
    timeout_s: float,
) -> None:
    """Run a till.

    Without --headless the cashier's screen opens: scan (keyboard-wedge scanners work in any
    field, a serial scanner with --scanner), pay, choose the receipt. With --headless the till
    runs without a screen: scans come from the scanner (or standard input with --stdin);
    product, customer and command barcodes (CMD-TOTAL, CMD-PAY-CASH, CMD-PAY-CARD, CMD-CANCEL,
    CMD-REPRINT...) drive the sale, and every event is one line on stdout. Sales sync with HQ
    in the background. SIGTERM or Ctrl-C stops it cleanly.
    """
    if not headless and (use_stdin or once):
        raise click.UsageError(
            "--stdin and --once are for the headless till: run `omnitill till --headless --stdin`"
        )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per request every few seconds drowns what matters; DEBUG shows them.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if once and not use_stdin:
        raise click.UsageError("--once needs --stdin (it exits when standard input ends)")
    try:
        settings = load_till_settings(
            server_url=server_url,
            token=token,
            db_path=db_path,
            scanner=scanner,
            store_id=store_id,
            till_id=till_id,
            cashier_id=cashier_id,
            pull_limit=pull_limit,
        )
    except ValidationError as exc:
        raise click.UsageError(f"Bad till setting: {describe_validation_error(exc)}") from exc

    source: Scanner | None = None
    input_name = "keyboard"
    if use_stdin:
        source, input_name = StreamScanner(sys.stdin.buffer), "stdin"
    elif settings.scanner:
        try:
            source = scanner_from_url(settings.scanner)
        except ScannerError as exc:
            raise click.UsageError(exc.message) from exc
        input_name = settings.scanner
    elif headless:
        raise click.UsageError(
            "No scan input: give --scanner serial:///dev/ttyUSB0 (or set OMNITILL_TILL_SCANNER), "
            "or --stdin"
        )

    try:
        running = Till.from_settings(settings)
    except (OmnitillError, sqlite3.Error, OSError) as exc:
        message = exc.message if isinstance(exc, OmnitillError) else str(exc)
        raise click.ClickException(
            f"Cannot open the till's database {settings.db_path}: {message}"
        ) from exc

    if not headless:
        # Imported here: the headless till (and its tests) must run where Qt cannot.
        from edge_agent.ui.app import run_window

        try:
            code = run_window(running, source)
        finally:
            running.close()
        ctx.exit(code)
    assert source is not None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = run_headless(
            running,
            source,
            out=sys.stdout,
            stop=stop,
            input_name=input_name,
            once=once,
            timeout_s=timeout_s,
        )
    finally:
        running.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ctx.exit(code)
