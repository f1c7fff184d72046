"""``omnitill demo``: the whole store on one machine.

It generates the demo chain, imports it into a fresh HQ database, starts the HQ server, enrols
a till and runs it headless through Maria's story (her loyalty card, the T-shirt she left in
her online cart, a card payment), then shows what HQ now knows about her. The server keeps
running for you to explore until Ctrl-C (``--no-wait`` stops right away).

Everything runs from one working directory (``demo-store/`` by default): the generated data is
kept between runs, the HQ and till databases are made anew each run.

The history ends now (``--end-date`` picks another moment): lists that look at the last days
(trending, Maria's recent cart, the web events of personal lists) then have something to show.
``omnitill demo-data`` keeps its fixed default end date, so its files stay reproducible.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx

log = logging.getLogger(__name__)

IMPORT_ORDER = (
    ("stores", "stores.json"),
    ("products", "products.csv"),
    ("customers", "customers.csv"),
    ("orders", "orders.jsonl"),
    ("web_events", "web_events.jsonl"),
)


def _say(text: str = "") -> None:
    click.echo(text)


def _step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


def _generate(data: Path, *, products: int, customers: int, orders: int, end_date: datetime) -> Any:
    from hardware_sim.demo_data import DemoConfig, generate_demo_data

    config = DemoConfig(products=products, customers=customers, orders=orders, end_date=end_date)
    summary = generate_demo_data(data, config)
    _say(
        f"wrote {summary.stats.get('orders', orders):,} orders, {customers:,} customers and "
        f"{products:,} products to {data} in {summary.seconds:.1f} s "
        f"(a year of history up to {config.end.strftime('%Y-%m-%dT%H:%M:%SZ')})"
    )
    return summary


def _end_date(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime:
    """The ``--end-date`` given (``omnitill demo-data``'s forms), else now in whole seconds."""
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    from hardware_sim.demo_data import parse_end_date

    try:
        return parse_end_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _import(db_url: str, data: Path) -> None:
    from sync_server.db.engine import Database
    from sync_server.services.importer import import_file

    db = Database(db_url)
    try:
        db.migrate()
        for kind, name in IMPORT_ORDER:
            report = import_file(db, kind, data / name)  # type: ignore[arg-type]
            _say(f"{kind:<10} {report.summary()} ({report.seconds:.1f} s)")
    finally:
        db.dispose()


def _enroll(db_url: str, store_id: str, till_id: str) -> str:
    from sync_server.db.engine import Database
    from sync_server.services.tills import enroll_till

    db = Database(db_url)
    try:
        return enroll_till(db, store_id=store_id, till_id=till_id, rotate=True)
    finally:
        db.dispose()


@contextmanager
def _server(db_url: str, port: int, admin_token: str, workdir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "OMNITILL_ADMIN_TOKEN": admin_token,
        "OMNITILL_CARD_WORKER_INTERVAL_S": "0.2",
    }
    log_file = (workdir / "hq.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "omnitill", "server", "--db", db_url, "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise click.ClickException(f"HQ server exited; see {workdir / 'hq.log'}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise click.ClickException(f"HQ server did not start; see {workdir / 'hq.log'}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def _wait_for_cards(url: str, admin: dict[str, str], timeout_s: float = 120) -> None:
    """Wait until HQ has built the imported customers' cards (its background worker)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        stats = httpx.get(f"{url}/api/v1/admin/stats", headers=admin, timeout=10).json()
        if stats.get("cards_pending", 0) == 0:
            return
        if stats["cards_pending"] != last:
            _say(f"HQ is building customer cards: {stats['cards_pending']:,} to go")
            last = stats["cards_pending"]
        time.sleep(0.5)


def _run_till(args: list[str], script: list[str], workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "omnitill", "--log-level", "WARNING", "till", "--headless", *args],
        input="".join(f"{line}\n" for line in script),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (workdir / "till.log").write_text(proc.stderr, encoding="utf-8")
    for line in proc.stdout.splitlines():
        _say(f"  till | {line}")
    if proc.returncode != 0:
        raise click.ClickException(
            f"the till exited with {proc.returncode}; see {workdir / 'till.log'}"
        )


def _gtin_of(data: Path, sku: str) -> str:
    with (data / "products.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["sku"] == sku:
                return row["gtin"].split()[0]
    raise click.ClickException(f"demo data has no product {sku}")


def _customer_row(data: Path, customer_id: str) -> dict[str, str]:
    with (data / "customers.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["customer_id"] == customer_id:
                return row
    raise click.ClickException(f"demo data has no customer {customer_id}")


@click.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-store"),
    show_default=True,
    help="Working directory: data, databases and logs.",
)
@click.option("--port", type=int, default=8700, show_default=True, help="Port of the HQ server.")
@click.option("--products", type=int, default=2000, show_default=True, help="Demo catalogue size.")
@click.option("--customers", type=int, default=5000, show_default=True, help="Demo customers.")
@click.option("--orders", type=int, default=30000, show_default=True, help="Demo order history.")
@click.option(
    "--end-date",
    metavar="DATE",
    callback=_end_date,
    default=None,
    help="Last moment of the demo history: 2026-10-31 or 2026-10-31T23:59:59Z (UTC). Default: now.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Keep HQ running after the story until Ctrl-C.",
)
def demo(
    workdir: Path,
    port: int,
    products: int,
    customers: int,
    orders: int,
    end_date: datetime,
    wait: bool,
) -> None:
    """Run the whole store on this machine: HQ, a till, Maria's story."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    hq_db = workdir / "hq.db"
    till_db = workdir / "till.db"
    for stale in workdir.glob("*.db*"):
        stale.unlink()
    db_url = f"sqlite:///{hq_db.resolve().as_posix()}"

    _step("1. The chain's data (omnitill demo-data)")
    summary = _generate(
        data, products=products, customers=customers, orders=orders, end_date=end_date
    )
    maria = summary.maria
    store_id = maria.store_id
    till_id = f"{store_id}-T1"

    _step("2. HQ imports it (omnitill admin import)")
    _import(db_url, data)
    till_token = _enroll(db_url, store_id, till_id)
    _say(f"enrolled till {till_id} in store {store_id}")

    admin_token = secrets.token_urlsafe(24)
    admin = {"Authorization": f"Bearer {admin_token}"}
    _step(f"3. HQ server on http://127.0.0.1:{port} (omnitill server)")
    with _server(db_url, port, admin_token, workdir) as url:
        _wait_for_cards(url, admin)
        till_args = [
            "--server",
            url,
            "--token",
            till_token,
            "--db",
            str(till_db),
            "--store",
            store_id,
            "--till",
            till_id,
            "--cashier",
            "demo",
            "--stdin",
            "--once",
            "--timeout",
            "120",
        ]
        _step("4. The till starts and pulls its catalogue and customer cards")
        _run_till(till_args, [], workdir)

        person = _customer_row(data, maria.customer_id)
        _step(
            f"5. {person['first_name']} is back in store {store_id}: she scans her loyalty card "
            f"and buys a {maria.product_name}"
        )
        _run_till(
            till_args,
            [person["loyalty_number"], _gtin_of(data, maria.sku), "CMD-TOTAL", "CMD-PAY-CARD"],
            workdir,
        )

        _step(f"6. What HQ knows about {person['first_name']} now")
        view = httpx.get(
            f"{url}/api/v1/customers/{maria.customer_id}", headers=admin, timeout=10
        ).json()
        card = view["card"]
        _say(f"{card['first_name']} {card['last_name']}: {card['loyalty_points']} points")
        _say("latest activity:")
        for item in view["timeline"][:5]:
            what = item.get("kind")
            total = item.get("total_minor")
            amount = f" {total / 100:.2f} {item.get('currency', '')}" if total else ""
            _say(f"  {item['at']}  {item['channel']:<6} {what}{amount}")
        stats = httpx.get(f"{url}/api/v1/admin/stats", headers=admin, timeout=10).json()
        _say("HQ totals: " + json.dumps({k: v for k, v in stats.items() if k != "cards_pending"}))

        if wait:
            _step("HQ is running")
            _say(f"API docs:      {url}/docs")
            _say(f"metrics:       {url}/metrics")
            _say(f"admin token:   {admin_token}")
            _say(f"till token:    {till_token}")
            _say(f"logs:          {workdir}/hq.log, {workdir}/till.log")
            _say("Press Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                _say("\nstopping")
