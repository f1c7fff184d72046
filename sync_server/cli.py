"""``omnitill server`` and ``omnitill admin ...``: thin over the library; only here do errors
become exit messages."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from shared.errors import OmnitillError
from sync_server.config import Settings, load_settings
from sync_server.db.engine import Database

log = logging.getLogger(__name__)

#: Files with more rows than this show a progress bar on a terminal.
PROGRESS_MIN_ROWS = 10_000

db_option = click.option(
    "--db",
    "db_url",
    metavar="URL",
    envvar="OMNITILL_DB_URL",
    help="Database URL (default: sqlite:///data/omnitill.db; "
    "PostgreSQL: postgresql+psycopg://user:pass@host/db).",
)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        raise click.ClickException(f"Bad configuration: {exc}") from exc


@contextmanager
def errors_as_exit() -> Iterator[None]:
    try:
        yield
    except OmnitillError as exc:
        raise click.ClickException(exc.message) from exc


@contextmanager
def open_db(db_url: str | None) -> Iterator[Database]:
    settings = _settings(db_url=db_url)
    db = Database(settings.database_url)
    try:
        with errors_as_exit():
            db.migrate()
            yield db
    finally:
        db.dispose()


@click.command()
@db_option
@click.option("--host", envvar="OMNITILL_HOST", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, envvar="OMNITILL_PORT", help="Port [default: 8700].")
@click.option(
    "--advertise/--no-advertise",
    default=None,
    help="Announce the server on the LAN with zeroconf (_omnitill._tcp) so tills find it.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes. On SQLite they take turns writing (a file lock beside the "
    "database); 2 on a 2-core machine.",
)
def server(
    db_url: str | None, host: str | None, port: int | None, advertise: bool | None, workers: int
) -> None:
    """Run the HQ sync server (migrates the database on start)."""
    import uvicorn

    settings = _settings(db_url=db_url, host=host, port=port, advertise=advertise)
    try:
        settings.check_can_listen()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if (
        workers > 1
        and settings.database_url.startswith("sqlite")
        and ":memory:" in (settings.database_url)
    ):
        raise click.ClickException("--workers > 1 needs a database file: :memory: is per process")
    announcer = None
    if settings.advertise:
        from sync_server.discovery import Advertiser

        announcer = Advertiser(port=settings.port, host=settings.host)
        announcer.start()
    try:
        if workers > 1:
            import os

            os.environ["OMNITILL_DB_URL"] = settings.database_url
            uvicorn.run(
                "sync_server.main:create_app",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=workers,
                log_level="info",
                access_log=False,  # lookup URLs carry emails and phone numbers: never log them
            )
        else:
            from sync_server.main import create_app

            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level="info",
                access_log=False,  # lookup URLs carry emails and phone numbers: never log them
            )
    finally:
        if announcer is not None:
            announcer.stop()


@click.group()
def admin() -> None:
    """HQ administration: enrol tills, import data, inspect the database."""


@admin.command("enroll-till")
@click.option("--store", "store_id", required=True, help="Store code, e.g. S001.")
@click.option("--till", "till_id", required=True, help="Till code, e.g. S001-T1.")
@click.option("--rotate", is_flag=True, help="Issue a new token for an enrolled till.")
@db_option
def enroll_till(store_id: str, till_id: str, rotate: bool, db_url: str | None) -> None:
    """Enrol a till; its token is printed on the last line of stdout (shown once)."""
    from sync_server.services.tills import enroll_till as enroll

    with open_db(db_url) as db, errors_as_exit():
        token = enroll(db, store_id=store_id, till_id=till_id, rotate=rotate)
    click.echo(f"Enrolled till {till_id} in store {store_id}. Its token (shown once):", err=True)
    click.echo(token)


@admin.command("revoke-till")
@click.argument("till_id")
@db_option
def revoke_till(till_id: str, db_url: str | None) -> None:
    """Revoke a till's token; it must be enrolled again to sync."""
    from sync_server.services.tills import revoke_till as revoke

    with open_db(db_url) as db, errors_as_exit():
        revoke(db, till_id)
    click.echo(f"Revoked till {till_id}")


@admin.command("list-tills")
@db_option
def list_tills(db_url: str | None) -> None:
    """List enrolled tills with their last seq and when they were last seen."""
    from sync_server.services.tills import list_tills as tills

    with open_db(db_url) as db:
        rows = tills(db)
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(
            f"{row['till_id']}\t{row['store_id']}\t{state}\tseq={row['last_seq']}\t"
            f"last_seen={row['last_seen_at'] or '-'}"
        )
    if not rows:
        click.echo("No tills enrolled", err=True)


@admin.command("import")
@click.argument(
    "kind", type=click.Choice(["stores", "products", "customers", "orders", "web-events"])
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@db_option
def import_data(kind: str, file: Path, db_url: str | None) -> None:
    """Import stores, products, customers, orders or web-events from FILE (see
    docs/data-formats.md).

    Good rows are imported; each bad row is reported on stderr as FILE:LINE: reason. Prints
    `imported N, rejected M` and exits with 1 when any row was rejected. Safe to run again.
    """
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    from sync_server.services import importer

    # click.Choice checked it; web-events is the web_events kind
    what: importer.ImportKind = kind.replace("-", "_")  # type: ignore[assignment]
    threshold = _settings(db_url=db_url).merge_protection_threshold
    total = importer.count_data_rows(file, what)
    # disable=None: the bar shows only on a terminal, never in logs or pipes.
    bar = tqdm(
        total=total,
        unit=" rows",
        desc=kind,
        file=sys.stderr,
        disable=None if total > PROGRESS_MIN_ROWS else True,
        dynamic_ncols=True,
    )

    def report_error(line: int, reason: str) -> None:
        message = f"{file}:{line}: {reason}"
        if bar.disable:
            click.echo(message, err=True)
        else:
            bar.write(message, file=sys.stderr)

    try:
        with open_db(db_url) as db, errors_as_exit():
            report = importer.import_file(
                db, what, file, threshold=threshold, on_error=report_error, progress=bar.update
            )
    finally:
        bar.close()
    click.echo(report.summary())
    if report.rejected:
        raise click.exceptions.Exit(1)


@admin.command("rebuild-recs")
@db_option
def rebuild_recs(db_url: str | None) -> None:
    """Recount every order and recompute every recommendation list (also-bought, bestsellers,
    personal); lists that changed go to the tills on the feed."""
    from sync_server.services import recs

    with open_db(db_url) as db, errors_as_exit():
        report = recs.rebuild(db)
    click.echo(report.summary())
