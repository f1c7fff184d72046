"""``omnitill kiosk``: the in-store kiosk (price check, bestsellers, personal picks).

The kiosk is a till without a basket: it runs on its own local database, enrolled at HQ like a
till (``omnitill admin enroll-till --till S001-K1``), whose sync worker keeps the catalogue,
customer cards and recommendation lists current. Options override the till's settings
(``edge_agent.config``) and the kiosk's own (``edge_agent.kiosk.KioskSettings``). Errors that
stop the start become exit messages here: 2 for a usage or configuration mistake (no admin PIN
for the full-screen kiosk among them), 1 for a database that cannot be opened.
"""

from __future__ import annotations

import logging
import sqlite3
from functools import partial
from pathlib import Path

import click
from pydantic import ValidationError

from edge_agent.cli import till_settings
from edge_agent.hq_client import HQClient
from edge_agent.kiosk import (
    PIN_LENGTH,
    CardLookup,
    KioskSettings,
    check_pin_format,
    hash_pin,
    load_kiosk_settings,
)
from edge_agent.scanner import Scanner, scanner_from_url
from edge_agent.till import Till
from shared.customer import CustomerCard
from shared.errors import InvalidInput, OmnitillError, ScannerError
from shared.protocol import describe_validation_error

__all__ = ["kiosk"]

log = logging.getLogger(__name__)


def _hq_lookup(client: HQClient, timeout: float, identifier: str) -> CustomerCard | None:
    return client.lookup(identifier, timeout)


def _prompt_pin_hash() -> str:
    low, high = PIN_LENGTH
    while True:
        pin = click.prompt(
            f"New kiosk admin PIN ({low} to {high} digits)",
            hide_input=True,
            confirmation_prompt="Repeat the PIN",
        )
        try:
            return hash_pin(check_pin_format(str(pin)))
        except InvalidInput as exc:
            click.echo(exc.message, err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    "server_url",
    metavar="URL",
    help="HQ base URL (env OMNITILL_TILL_SERVER_URL); unset: find HQ with zeroconf.",
)
@click.option("--token", metavar="TOKEN", help="This kiosk's till token (env OMNITILL_TILL_TOKEN).")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The kiosk's SQLite file (env OMNITILL_TILL_DB_PATH, default till.db).",
)
@click.option(
    "--scanner",
    metavar="URL",
    help="Serial scanner URL, e.g. serial:///dev/ttyUSB0?suffix=CR (env OMNITILL_TILL_SCANNER).",
)
@click.option("--store", "store_id", metavar="S", help="Store code (env OMNITILL_TILL_STORE_ID).")
@click.option(
    "--till",
    "till_id",
    metavar="T",
    help="The kiosk's code as enrolled at HQ (env OMNITILL_TILL_TILL_ID).",
)
@click.option(
    "--pin-hash",
    metavar="HASH",
    help="Hash of the admin PIN that leaves the kiosk (env OMNITILL_KIOSK_PIN_HASH).",
)
@click.option(
    "--idle-timeout",
    "idle_timeout_s",
    metavar="S",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    help="Seconds without a touch or scan before the idle slides "
    "(env OMNITILL_KIOSK_IDLE_TIMEOUT_S, default 45).",
)
@click.option(
    "--windowed",
    is_flag=True,
    help="An ordinary window with a cursor that closes without a PIN (trying it out).",
)
@click.option(
    "--hash-pin",
    "make_hash",
    is_flag=True,
    help="Ask for a new admin PIN, print its hash for the settings, and exit.",
)
@click.pass_context
def kiosk(
    ctx: click.Context,
    server_url: str | None,
    token: str | None,
    db_path: Path | None,
    scanner: str | None,
    store_id: str | None,
    till_id: str | None,
    pin_hash: str | None,
    idle_timeout_s: float | None,
    windowed: bool,
    make_hash: bool,
) -> None:
    """Run the in-store kiosk: full screen, price check and personal picks.

    Idle, it rotates the store's bestsellers. A scanned product shows its price, description
    and what others also bought; a loyalty card greets the customer by first name with their
    picks; the on-screen keyboard searches the catalogue. Everything comes from the local
    cache, so it works offline. It leaves full screen only with the admin PIN (set it with
    --hash-pin); SIGTERM stops it too.
    """
    if make_hash:
        click.echo(f'pin_hash = "{_prompt_pin_hash()}"')
        click.echo(
            "Put this line in the [kiosk] table of the kiosk's omnitill-till.toml, or set "
            "OMNITILL_KIOSK_PIN_HASH to the quoted value.",
            err=True,
        )
        return
    settings = till_settings(
        server_url=server_url,
        token=token,
        db_path=db_path,
        scanner=scanner,
        store_id=store_id,
        till_id=till_id,
    )
    try:
        kiosk_settings: KioskSettings = load_kiosk_settings(
            pin_hash=pin_hash, idle_timeout_s=idle_timeout_s
        )
    except ValidationError as exc:
        raise click.UsageError(f"Bad kiosk setting: {describe_validation_error(exc)}") from exc
    if kiosk_settings.pin_hash is None and not windowed:
        raise click.UsageError(
            "No admin PIN: the full-screen kiosk can only be left with one. Run "
            "`omnitill kiosk --hash-pin` and put the hash in the [kiosk] table of "
            "omnitill-till.toml (or OMNITILL_KIOSK_PIN_HASH), or try it with --windowed"
        )

    source: Scanner | None = None
    if settings.scanner:
        try:
            source = scanner_from_url(settings.scanner)
        except ScannerError as exc:
            raise click.UsageError(exc.message) from exc

    try:
        running = Till.from_settings(settings)
    except (OmnitillError, sqlite3.Error, OSError) as exc:
        message = exc.message if isinstance(exc, OmnitillError) else str(exc)
        raise click.ClickException(
            f"Cannot open the kiosk's database {settings.db_path}: {message}"
        ) from exc

    client: HQClient | None = None
    lookup: CardLookup | None = None
    if settings.server_url is not None and settings.token is not None:
        # Cards not in the cache are asked of HQ on the kiosk's worker thread (a lookup writes
        # nothing at HQ); without a configured URL the kiosk answers from its cache alone.
        client = HQClient(
            settings.server_url,
            settings.token.get_secret_value(),
            till_id=settings.till_id,
            timeout=kiosk_settings.lookup_timeout_s,
        )
        lookup = partial(_hq_lookup, client, kiosk_settings.lookup_timeout_s)

    # Imported here: the rest of omnitill must run where Qt cannot.
    from edge_agent.ui.kiosk import run_kiosk

    try:
        code = run_kiosk(running, kiosk_settings, source, lookup=lookup, kiosk_mode=not windowed)
    finally:
        running.close()
        if client is not None:
            client.close()
    ctx.exit(code)
