"""``omnitill admin import web-events``: the demo's web events joined to its customers, bad lines
reported with their numbers, a second import adding nothing."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from hardware_sim.demo_data import DemoConfig, DemoSummary, generate_demo_data
from omnitill.cli import main
from shared.identifiers import Identifier
from sync_server.db.engine import Database
from sync_server.db.schema import events, orders, profiles
from sync_server.services import cards, identity, importer
from tests.support.server import count_rows


def run_import(path: Path, url: str) -> Result:
    return CliRunner().invoke(main, ["admin", "import", "web-events", str(path), "--db", url])


def test_bad_lines_are_reported_and_the_good_ones_imported(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    customer = uuid4()
    with db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=customer,
            source="import",
            claims=[Identifier("email", "ana@example.com")],
        )
    at = "2026-11-20T10:00:00.000Z"
    lines = [
        {"type": "track", "event": "Product Viewed", "messageId": "m1", "anonymousId": "a1",
         "timestamp": at, "properties": {"sku": "APP-1", "price": "9.99"}},
        '{"type": "track", "event": ',
        {"type": "track", "event": "Product Viewed", "messageId": "m3", "timestamp": at},
        "",
        {"type": "identify", "messageId": "m5", "userId": "wu-5", "traits": {"email": "ana@"}},
        {"type": "identify", "messageId": "m6", "anonymousId": "a1", "userId": "wu-1",
         "timestamp": at, "traits": {"email": "Ana@Example.com"}},
        [1, 2],
        {"type": "fly", "messageId": "m8", "anonymousId": "a1"},
        {"type": "track", "event": "Product Viewed", "messageId": "m9", "anonymousId": "a1",
         "timestamp": "2026-11-20 10:00"},
    ]  # fmt: skip
    path = tmp_path / "web_events.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    result = run_import(path, url)
    assert result.exit_code == 1, result.output
    assert result.stdout.strip() == "imported 2, rejected 6"
    errors = {int(e.split(":")[1]): e.split(": ", 1)[1] for e in result.stderr.splitlines() if e}
    assert sorted(errors) == [2, 3, 5, 7, 8, 9]
    assert errors[2].startswith("malformed JSON")
    assert "anonymousId or userId" in errors[3]
    assert errors[5].startswith("traits.email:")
    assert "JSON object" in errors[7]
    assert "'fly'" in errors[8]
    assert "timestamp" in errors[9]
    with db.read() as conn:
        owners = list(conn.execute(sa.select(events.c.profile_id)).scalars())
    assert owners == [customer, customer]  # the anonymous view joined her when she logged in

    again = run_import(path, url)
    assert again.exit_code == 1
    assert again.stdout.strip() == "imported 0, rejected 6, skipped 2 already imported"
    assert count_rows(db, events) == 2
    db.dispose()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate_demo_data(
        tmp_path_factory.mktemp("web-demo"),
        DemoConfig(seed=5, stores=2, products=200, customers=300, orders=600),
    )


def test_the_demo_web_events_join_the_demo_customers(tmp_path: Path, demo: DemoSummary) -> None:
    db = Database(f"sqlite:///{(tmp_path / 'hq.db').as_posix()}")
    db.migrate()
    files: list[tuple[importer.ImportKind, str]] = [
        ("stores", "stores.json"),
        ("products", "products.csv"),
        ("customers", "customers.csv"),
        ("orders", "orders.jsonl"),
    ]
    for kind, name in files:
        assert not importer.import_file(db, kind, demo.out_dir / name).rejected
    path = demo.out_dir / "web_events.jsonl"
    report = importer.import_file(db, "web_events", path)
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert report.imported == lines and not report.rejected
    # The Order Completed events are the online orders orders.jsonl already brought.
    assert count_rows(db, orders) == 600
    with db.read() as conn:
        joined = conn.execute(
            sa.select(sa.func.count()).where(events.c.profile_id.is_not(None))
        ).scalar_one()
        web_profiles = conn.execute(
            sa.select(sa.func.count()).where(profiles.c.source == "web")
        ).scalar_one()
        card = cards.build_card(conn, UUID(demo.maria.customer_id))
    assert joined > 0.5 * lines
    assert web_profiles == 0  # every web account is a customer of customers.csv
    assert card is not None
    assert demo.maria.sku in [i.sku for i in card.recently_viewed]
    assert importer.import_file(db, "web_events", path).skipped == lines
    db.dispose()
