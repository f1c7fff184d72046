"""``omnitill till``: run a till. Options override the till's settings (``edge_agent.config``).

Without ``--headless`` the cashier's screen opens (``edge_agent.ui``; Qt is imported only then);
with it, the headless till reads scans and writes one line per event. Errors that stop the
start are turned into exit messages here, and nowhere else: 2 for a usage or configuration
mistake, 1 for a database that cannot be opened (see ``edge_agent.headless`` for every exit
code).

Starting quickly
----------------
The till is imported and built inside :func:`quick_start`, which keeps three costs out of every
start (``python -m bench gui`` measures the start; see bench/NOTES.md):

- **No garbage collection while starting.** Importing the till, Qt and their libraries makes
  some 180,000 objects that live as long as the process, and the collector's passes over them
  while they are made took a tenth to a fifth of a second. It is paused until the till is
  built, then everything made so far is frozen (``gc.freeze``: out of every later pass, as
  ``Till.start`` does again), and collection resumes.
- **sqlite-utils without pandas and numpy.** sqlite-utils imports both when they are installed
  (a machine with HQ's extras has them) only to map their types to column types; the till never
  writes either, and the two imports took half a second. They are hidden while sqlite-utils is
  imported, and importable again afterwards.
- **python-escpos's printer database parsed once.** escpos parses its 100 kB capabilities file
  (YAML) at every import unless ``ESCPOS_CAPABILITIES_PICKLE_DIR`` names where to keep a parsed
  copy (without it, it makes a new temporary directory per process and leaves it behind). The
  copy is kept in ``$XDG_CACHE_HOME/omnitill/escpos`` (``~/.cache/...``), written to a private
  directory first and then renamed into place, so two processes starting together never read
  half a file; when that directory cannot be written, escpos is left to its default. A value
  set by the operator is left alone.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.resources
import logging
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from shared.errors import OmnitillError, ScannerError
from shared.protocol import MAX_PULL_LIMIT, describe_validation_error

if TYPE_CHECKING:
    from edge_agent.config import TillSettings
    from edge_agent.scanner import Scanner
    from edge_agent.till import Till

__all__ = ["quick_start", "till", "till_settings"]

log = logging.getLogger(__name__)

_ESCPOS_PICKLE_DIR = "ESCPOS_CAPABILITIES_PICKLE_DIR"


@contextlib.contextmanager
def quick_start() -> Iterator[None]:
    """Import and build the till inside this block (see "Starting quickly" above)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        _import_sqlite_utils_without_dataframes()
        _cache_escpos_capabilities()
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _import_sqlite_utils_without_dataframes() -> None:
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now fails
    try:
        importlib.import_module("sqlite_utils")
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]


def _cache_escpos_capabilities() -> None:
    if _ESCPOS_PICKLE_DIR in os.environ or "escpos.capabilities" in sys.modules:
        return
    if os.environ.get("ESCPOS_CAPABILITIES_FILE"):
        return  # a printer database of the operator's own: escpos decides
    try:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = Path(base) / "omnitill" / "escpos"
        source = Path(str(importlib.resources.files("escpos") / "capabilities.json"))
        parsed = cache / f"{platform.python_version()}.capabilities.pickle"
        if parsed.exists() and parsed.stat().st_mtime >= source.stat().st_mtime:
            os.environ[_ESCPOS_PICKLE_DIR] = str(cache)
            return
        cache.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix=".parse-", dir=cache))
    except (OSError, RuntimeError, ModuleNotFoundError) as exc:  # RuntimeError: no home
        log.debug("escpos parses its printer database at every start: %s", exc)
        return
    os.environ[_ESCPOS_PICKLE_DIR] = str(private)
    try:
        importlib.import_module("edge_agent.printing")  # escpos writes its copy into `private`
        (private / parsed.name).replace(parsed)
        os.environ[_ESCPOS_PICKLE_DIR] = str(cache)
    except OSError as exc:
        log.debug("could not keep escpos's parsed printer database in %s: %s", cache, exc)
    finally:
        with contextlib.suppress(OSError):
            for leftover in private.iterdir():
                leftover.unlink()
            private.rmdir()


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
    with quick_start():
        running, source, input_name = _build(
            headless=headless,
            server_url=server_url,
            token=token,
            db_path=db_path,
            scanner=scanner,
            store_id=store_id,
            till_id=till_id,
            cashier_id=cashier_id,
            pull_limit=pull_limit,
            use_stdin=use_stdin,
        )
        if not headless:
            # Imported here (and while starting): the headless till and its tests must run
            # where Qt cannot.
            from edge_agent.ui.app import run_window
    if not headless:
        try:
            code = run_window(running, source)
        finally:
            running.close()
        ctx.exit(code)
    assert source is not None
    from edge_agent.headless import run_headless

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


def till_settings(**overrides: object) -> TillSettings:
    """The till's settings with the command line's values on top; a bad one is a usage error."""
    from edge_agent.config import load_till_settings

    try:
        return load_till_settings(**overrides)
    except ValidationError as exc:
        raise click.UsageError(f"Bad till setting: {describe_validation_error(exc)}") from exc


def _build(
    *,
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
) -> tuple[Till, Scanner | None, str]:
    """The till the settings describe, its scan source and that source's name."""
    from edge_agent.scanner import StreamScanner, scanner_from_url
    from edge_agent.till import Till

    settings = till_settings(
        server_url=server_url,
        token=token,
        db_path=db_path,
        scanner=scanner,
        store_id=store_id,
        till_id=till_id,
        cashier_id=cashier_id,
        pull_limit=pull_limit,
    )

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
    return running, source, input_name
