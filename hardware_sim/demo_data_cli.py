"""``omnitill demo-data``: write the deterministic demo chain into a directory.

Thin on purpose: it parses options, calls :func:`hardware_sim.demo_data.generate_demo_data`
and prints what was written. The formats are in ``docs/data-formats.md``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from tqdm import tqdm

from hardware_sim.demo_data import (
    DEFAULT_END_DATE,
    DEFAULT_SEED,
    MAX_CUSTOMERS,
    MAX_PRODUCTS,
    MAX_STORES,
    MIN_CUSTOMERS,
    MIN_ORDERS,
    MIN_PRODUCTS,
    DemoConfig,
    DemoSummary,
    generate_demo_data,
    parse_end_date,
)

#: orders above which a progress bar is shown (on a terminal)
PROGRESS_THRESHOLD = 100_000


def _end_date(ctx: click.Context, param: click.Parameter, value: str) -> datetime:
    try:
        return parse_end_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.command("demo-data")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    help="Directory to write into (created if missing; our files in it are replaced).",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="The same seed and sizes give byte-identical files.",
)
@click.option(
    "--stores",
    type=click.IntRange(1, MAX_STORES),
    default=5,
    show_default=True,
    help="Number of stores (2-4 tills each).",
)
@click.option(
    "--products",
    type=click.IntRange(MIN_PRODUCTS, MAX_PRODUCTS),
    default=2000,
    show_default=True,
    help="Number of products in the catalogue.",
)
@click.option(
    "--customers",
    type=click.IntRange(MIN_CUSTOMERS, MAX_CUSTOMERS),
    default=5000,
    show_default=True,
    help="Number of customer records (about 1% are duplicates of an earlier person).",
)
@click.option(
    "--orders",
    type=click.IntRange(MIN_ORDERS),
    default=30_000,
    show_default=True,
    help="Number of orders, in store and online, over the year before the end date.",
)
@click.option(
    "--end-date",
    metavar="DATE",
    callback=_end_date,
    default=DEFAULT_END_DATE.strftime("%Y-%m-%dT%H:%M:%SZ"),
    show_default=True,
    help="Last moment of the history: 2026-10-31 or 2026-10-31T23:59:59Z (UTC).",
)
def demo_data(
    out_dir: Path,
    seed: int,
    stores: int,
    products: int,
    customers: int,
    orders: int,
    end_date: datetime,
) -> None:
    """Generate a deterministic demo chain into --out.

    Writes stores.json, products.csv, customers.csv, orders.jsonl, web_events.jsonl and
    manifest.json (row counts and SHA-256 of each file), as described in docs/data-formats.md.
    The history covers the 365 days before --end-date and never depends on today's date.
    """
    try:
        config = DemoConfig(
            seed=seed,
            stores=stores,
            products=products,
            customers=customers,
            orders=orders,
            end_date=end_date,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    bar = tqdm(
        total=orders,
        unit="order",
        unit_scale=True,
        file=sys.stderr,
        disable=orders <= PROGRESS_THRESHOLD or not sys.stderr.isatty(),
    )
    try:
        with bar:
            summary = generate_demo_data(out_dir, config, on_progress=bar.update)
    except OSError as exc:
        raise click.ClickException(
            f"Cannot write the demo data to {out_dir}: {exc.strerror or exc}"
        ) from exc
    click.echo(_describe(summary))


def _describe(summary: DemoSummary) -> str:
    stats = summary.stats
    maria = summary.maria
    rows = {f.name: f.rows for f in summary.files}
    lines = [
        f"Wrote the demo chain to {summary.out_dir} (seed {summary.config.seed}) "
        f"in {summary.seconds:.1f} s:",
        f"  stores.json       {stats['stores']:>10,} stores, {stats['tills']:,} tills",
        f"  products.csv      {rows['products.csv']:>10,} products, "
        f"{stats['complement_groups']:,} complement groups",
        f"  customers.csv     {rows['customers.csv']:>10,} customers, "
        f"{stats['duplicate_customers']:,} duplicate records, "
        f"{stats['shared_email_customers']:,} with the store's own email",
        f"  orders.jsonl      {rows['orders.jsonl']:>10,} orders "
        f"({stats['store_orders']:,} in store, {stats['online_orders']:,} online)",
        f"  web_events.jsonl  {rows['web_events.jsonl']:>10,} events "
        f"({stats['web_sessions']:,} sessions, {stats['abandoned_carts']:,} abandoned carts, "
        f"{stats['carts_bought_in_store']:,} bought in store later)",
        f"  manifest.json     {'':>10} sizes, row counts and SHA-256 of each file",
        f"Maria ({maria.customer_id}) carted {maria.product_name} ({maria.sku}) online at "
        f"{maria.viewed_at} and bought it in store {maria.store_id} at {maria.bought_at}.",
    ]
    return "\n".join(lines)
