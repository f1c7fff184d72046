"""``omnitill admin import``: the demo chain's files in, good rows imported, bad rows reported.

The demo files come from ``hardware_sim.demo_data`` at a small size (generated once per module);
the error cases use small hand-written files so each bad row's line number is known.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from hardware_sim.demo_data import DemoConfig, DemoSummary, generate_demo_data
from omnitill.cli import main
from shared.catalogue import Product, Store
from shared.hlc import HybridLogicalClock
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import (
    changes,
    consent_events,
    customer_field_history,
    customer_fields,
    customer_stores,
    identifiers,
    merges,
    order_lines,
    orders,
    product_barcodes,
    products,
    profiles,
    shared_identifiers,
    stores,
)
from sync_server.services import identity, importer
from sync_server.services.cards import customer_view

SHARED_EMAIL = "noreply@marktwerk.example"
FILES = {
    "stores": "stores.json",
    "products": "products.csv",
    "customers": "customers.csv",
    "orders": "orders.jsonl",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo_data(
        out, DemoConfig(seed=7, stores=3, products=150, customers=600, orders=800)
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"


def run_import(kind: str, path: Path, url: str) -> Result:
    return CliRunner().invoke(main, ["admin", "import", kind, str(path), "--db", url])


def import_demo(demo: DemoSummary, url: str) -> dict[str, Result]:
    results = {}
    for kind, name in FILES.items():
        result = run_import(kind, demo.out_dir / name, url)
        assert result.exit_code == 0, (kind, result.output)
        results[kind] = result
    return results


def count(db: Database, table: sa.Table, *where: Any) -> int:
    with db.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def opened(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------
# The demo chain


def test_demo_chain_imports_completely(demo: DemoSummary, db_url: str) -> None:
    """On SQLite and PostgreSQL (``db_url`` is a fresh database of each engine)."""
    results = import_demo(demo, db_url)
    rows = {kind: demo.file(name).rows for kind, name in FILES.items()}
    for kind, result in results.items():
        assert result.stdout == f"imported {rows[kind]}, rejected 0\n"
        assert f"{demo.out_dir}" not in result.stderr  # no row was reported
    db = opened(db_url)
    try:
        assert count(db, stores) == rows["stores"]
        assert count(db, products) == rows["products"]
        assert count(db, profiles) == rows["customers"]
        assert count(db, orders) == rows["orders"]
        assert count(db, order_lines) == demo.stats["order_lines"]
        assert count(db, orders, orders.c.channel == "online") == demo.stats["online_orders"]
        # Anonymous store orders have no customer; every other order has one.
        assert (
            count(db, orders, orders.c.customer_id.is_(None))
            == demo.stats["anonymous_store_orders"]
        )
    finally:
        db.dispose()


def test_products_have_normalized_barcodes_attributes_and_are_on_the_feed(
    demo: DemoSummary, sqlite_url: str
) -> None:
    import_demo(demo, sqlite_url)
    source = csv_rows(demo.out_dir / "products.csv")
    db = opened(sqlite_url)
    with db.read() as conn:
        feed_rows = {
            r.key: r for r in conn.execute(sa.select(changes).where(changes.c.entity == "product"))
        }
        barcodes = dict(
            conn.execute(sa.select(product_barcodes.c.gtin, product_barcodes.c.sku)).all()
        )
    db.dispose()
    assert len(feed_rows) == len(source)
    with_gtin = [r for r in source if r["gtin"]]
    assert len(barcodes) == len(with_gtin)
    for row in source:
        change = feed_rows[row["sku"]]
        assert change.scope == "*"
        assert change.action == "upsert"
        product = Product.model_validate_json(change.data)
        assert product.price_minor == int(row["price_minor"])
        assert product.attributes.get("margin_band") == row["margin_band"]
        if row["gtin"]:
            assert product.gtins == (row["gtin"].zfill(14),)
            assert barcodes[row["gtin"].zfill(14)] == row["sku"]
        else:
            assert product.variable_measure == row["variable_measure"]
            assert product.item_reference == row["item_reference"]


def test_stores_are_on_their_own_tills_feed(demo: DemoSummary, sqlite_url: str) -> None:
    import_demo(demo, sqlite_url)
    chain = json.loads((demo.out_dir / "stores.json").read_text(encoding="utf-8"))
    db = opened(sqlite_url)
    with db.read() as conn:
        rows = conn.execute(sa.select(changes).where(changes.c.entity == "store")).all()
    db.dispose()
    assert {(r.key, r.scope) for r in rows} == {
        (s["store_id"], s["store_id"]) for s in chain["stores"]
    }
    for r in rows:
        assert Store.model_validate_json(r.data).store_id == r.key


def test_customer_view_keeps_custom_attributes_fields_consents_and_home_store(
    demo: DemoSummary, sqlite_url: str
) -> None:
    import_demo(demo, sqlite_url)
    maria = UUID(demo.maria.customer_id)
    db = opened(sqlite_url)
    with db.read() as conn:
        view = customer_view(conn, maria)
        writers = set(conn.execute(sa.select(customer_fields.c.writer).distinct()).scalars())
    db.dispose()
    # crm_segment and preferred_contact are not Omnitill fields: the retailer's own CRM fields.
    assert view["attributes"] == {"crm_segment": "regular", "preferred_contact": "email"}
    card = view["card"]
    assert (card["first_name"], card["last_name"]) == ("Maria", "Schmidt")
    assert card["consents"] == {"email": True, "sms": False}
    assert {"kind": "email", "value": "maria.schmidt@example.com"} in card["identifiers"]
    assert any(i["kind"] == "loyalty" for i in card["identifiers"])
    assert any(i["kind"] == "phone" and i["value"].startswith("+49") for i in card["identifiers"])
    assert "S001" in view["stores"]
    assert any(item["kind"] == "order" for item in view["timeline"])
    assert writers == {importer.IMPORT_NODE}


def test_duplicate_customers_merge_and_the_shops_own_email_is_flagged_shared(
    demo: DemoSummary, sqlite_url: str
) -> None:
    import_demo(demo, sqlite_url)
    rows = csv_rows(demo.out_dir / "customers.csv")
    db = opened(sqlite_url)
    with db.read() as conn:
        customer_of = {
            str(p): str(c)
            for p, c in conn.execute(sa.select(profiles.c.profile_id, profiles.c.customer_id))
        }
        flagged = set(
            conn.execute(sa.select(shared_identifiers.c.kind, shared_identifiers.c.value)).all()
        )
        merged = count(db, merges, merges.c.action == "merge")
    db.dispose()
    assert ("email", SHARED_EMAIL) in flagged
    # Nothing else is shared in the demo data: a duplicate pair is two claims, not "many".
    assert flagged == {("email", SHARED_EMAIL)}
    by_email: dict[str, list[str]] = {}
    for row in rows:
        if row["email"]:
            by_email.setdefault(row["email"].lower(), []).append(row["customer_id"])
    pairs = [ids for email, ids in by_email.items() if len(ids) == 2 and email != SHARED_EMAIL]
    assert pairs, "the demo data has duplicate records sharing an email"
    for first, second in pairs:
        assert customer_of[first] == customer_of[second]
    assert merged >= len(pairs)
    assert len(set(customer_of.values())) < len(rows)
    # The shop's own address did not glue its claimants into one customer.
    noreply = by_email[SHARED_EMAIL]
    assert len(noreply) >= 3
    assert len({customer_of[c] for c in noreply}) == len(noreply)


def test_reimport_changes_nothing(demo: DemoSummary, sqlite_url: str) -> None:
    import_demo(demo, sqlite_url)
    tables = [
        products,
        product_barcodes,
        stores,
        profiles,
        identifiers,
        customer_fields,
        customer_field_history,
        consent_events,
        customer_stores,
        merges,
        orders,
        order_lines,
        changes,
    ]
    db = opened(sqlite_url)
    before = {t.name: count(db, t) for t in tables}
    with db.read() as conn:
        feed_before = dict(
            conn.execute(
                sa.select(changes.c.key, changes.c.data).where(changes.c.entity == "product")
            ).all()
        )
    results = import_demo(demo, sqlite_url)
    after = {t.name: count(db, t) for t in tables}
    with db.read() as conn:
        feed_after = dict(
            conn.execute(
                sa.select(changes.c.key, changes.c.data).where(changes.c.entity == "product")
            ).all()
        )
    db.dispose()
    assert after == before
    assert feed_after == feed_before
    assert results["orders"].stdout.strip() == (
        f"imported 0, rejected 0, skipped {demo.file('orders.jsonl').rows} already imported"
    )


def test_reimport_updates_products_in_place(demo: DemoSummary, tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    source = demo.out_dir / "products.csv"
    assert run_import("products", source, url).exit_code == 0
    db = opened(url)
    with db.read() as conn:
        first_id = conn.execute(
            sa.select(changes.c.id).where(changes.c.key == "GRO-000001")
        ).scalar_one()
    lines = source.read_text(encoding="utf-8").splitlines()
    header, milk = lines[0], lines[1]
    assert milk.startswith("GRO-000001,")
    cells = milk.split(",")
    cells[header.split(",").index("price_minor")] = "129"
    changed = tmp_path / "products.csv"
    changed.write_text(header + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    result = run_import("products", changed, url)
    assert result.exit_code == 0, result.output
    with db.read() as conn:
        row = conn.execute(sa.select(changes).where(changes.c.key == "GRO-000001")).one()
        stored = conn.execute(
            sa.select(products.c.data).where(products.c.sku == "GRO-000001")
        ).scalar_one()
    db.dispose()
    assert Product.model_validate_json(stored).price_minor == 129
    assert Product.model_validate_json(row.data).price_minor == 129
    assert row.id > first_id  # the feed row was replaced, so tills pull it again


def test_a_changed_customer_row_updates_fields_and_keeps_the_old_value(
    demo: DemoSummary, tmp_path: Path
) -> None:
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    src = demo.out_dir / "customers.csv"
    assert run_import("customers", src, url).exit_code == 0
    text = src.read_text(encoding="utf-8").splitlines()
    header, maria = text[0], text[1]
    edited = tmp_path / "customers.csv"
    edited.write_text(
        header
        + "\n"
        + maria.replace(",Schmidt,", ",Schmidt-Weber,").replace(",regular,", ",vip,")
        + "\n",
        encoding="utf-8",
    )
    result = run_import("customers", edited, url)
    assert result.exit_code == 0, result.output
    db = opened(url)
    with db.read() as conn:
        view = customer_view(conn, UUID(demo.maria.customer_id))
    db.dispose()
    assert view["card"]["last_name"] == "Schmidt-Weber"
    assert view["attributes"]["crm_segment"] == "vip"
    assert [h["value"] for h in view["field_history"]] == ["Schmidt"]


# ---------------------------------------------------------------------------------------------
# Bad rows


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


PRODUCTS_HEADER = "sku,gtin,name,price_minor,currency,tax_rate,colour\n"


def test_bad_product_rows_are_reported_with_their_line_and_good_rows_imported(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = write(
        tmp_path / "products.csv",
        PRODUCTS_HEADER
        + "A1,4006381333931,Pen,199,EUR,19,blue\n"  # 2 good
        + "A2,4006381333932,Pencil,99,EUR,19,red\n"  # 3 check digit
        + "A3,,Eraser,-5,EUR,19,\n"  # 4 negative price
        + "A4,,Ruler,120,XYZ,19,\n"  # 5 unknown currency
        + "A5,,Glue,120,EUR\n"  # 6 too few columns
        + "\n"  # 7 blank: skipped
        + "A6,036000291452,Tape,250,eur,7,clear\n"  # 8 good (UPC-A, lowercase currency)
        + "A7,,Clip,12.5,EUR,19,\n"  # 9 not whole minor units
        + "A8,0036000291452,Tape refill,150,EUR,7,\n"  # 10 same GTIN as A6
        + "A9,,Stapler,1999,EUR,250,\n",  # 11 tax rate out of range
    )
    result = run_import("products", path, sqlite_url)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 2, rejected 7"
    errors = stderr_lines(result)
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:{n}" for n in (3, 4, 5, 6, 9, 10, 11)]
    by_line = {int(e.split(":")[1]): e.split(": ", 1)[1] for e in errors}
    assert set(by_line) == {3, 4, 5, 6, 9, 10, 11}
    assert "check digit" in by_line[3].lower()
    assert "negative" in by_line[4]
    assert "XYZ" in by_line[5]
    assert "expected 7 columns" in by_line[6] and "found 5" in by_line[6]
    assert "price_minor" in by_line[9] and "12.5" in by_line[9]
    assert "SKU A6" in by_line[10] and "line 8" in by_line[10]
    assert "tax_rate" in by_line[11]
    db = opened(sqlite_url)
    with db.read() as conn:
        stored = {
            sku: Product.model_validate_json(data)
            for sku, data in conn.execute(sa.select(products.c.sku, products.c.data))
        }
    db.dispose()
    assert set(stored) == {"A1", "A6"}
    assert stored["A6"].gtins == ("00036000291452",)
    assert stored["A6"].currency == "EUR"
    assert stored["A1"].attributes == {"colour": "blue"}


def test_a_file_without_required_columns_is_refused_whole(tmp_path: Path, sqlite_url: str) -> None:
    path = write(tmp_path / "products.csv", "sku,title\nA1,Pen\n")
    result = run_import("products", path, sqlite_url)
    assert result.exit_code == 1
    assert f"{path}:1: missing column(s) name, price_minor" in result.stderr


CUSTOMERS_HEADER = (
    "customer_id,first_name,last_name,email,phone,loyalty_number,email_consent,sms_consent,"
    "region,home_store,created_at,shoe_size\n"
)


def test_bad_customer_rows_are_reported_and_good_ones_imported(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = write(
        tmp_path / "customers.csv",
        CUSTOMERS_HEADER
        + "C1,Ana,Silva,ana@example.com,,,true,,PT,S001,2025-01-02T10:00:00Z,38\n"  # 2 good
        + "C2,Bo,Berg,bo@@example.com,,,,,SE,S001,,\n"  # 3 bad email
        + "C3,Cy,Cole,,12,,,,GB,,,\n"  # 4 bad phone
        + "C4,Di,Dorn,,,9900000000001,,,DE,,,\n"  # 5 bad loyalty check digit
        + "C5,Ed,Eck,ed@example.com,,,maybe,,DE,,,\n"  # 6 bad consent
        + "C6,Flo,Fink,flo@example.com,,,,,DE,,2025-13-01,\n"  # 7 bad date
        + "C7,Gus,Gale,gus@example.com,07400 123456,,,true,GB,S002,,\n",  # 8 good, UK phone
    )
    result = run_import("customers", path, sqlite_url)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 2, rejected 5"
    by_line = {int(e.split(":")[1]): e.split(": ", 1)[1] for e in stderr_lines(result)}
    assert set(by_line) == {3, 4, 5, 6, 7}
    assert by_line[3].startswith("email: ")
    assert by_line[4].startswith("phone: ")
    assert by_line[5].startswith("loyalty_number: ")
    assert "email_consent" in by_line[6] and "maybe" in by_line[6]
    assert "created_at" in by_line[7]
    db = opened(sqlite_url)
    with db.read() as conn:
        ana = importer.profile_id_for("C1")
        view = customer_view(conn, ana)
        gus = customer_view(conn, importer.profile_id_for("C7"))
    db.dispose()
    assert view["attributes"] == {"shoe_size": "38"}
    assert view["card"]["consents"] == {"email": True}
    assert view["stores"] == ["S001"]
    assert {"kind": "phone", "value": "+447400123456"} in gus["card"]["identifiers"]


def test_customer_ids_that_are_not_uuids_name_the_same_profile_in_orders(
    tmp_path: Path, sqlite_url: str
) -> None:
    customers = write(
        tmp_path / "customers.csv",
        CUSTOMERS_HEADER + "CRM-17,Ana,Silva,ana@example.com,,,,,PT,S001,,\n",
    )
    products_file = write(tmp_path / "products.csv", PRODUCTS_HEADER + "A1,,Pen,199,EUR,19,\n")
    orders_file = write(
        tmp_path / "orders.jsonl",
        json.dumps(order(customer_id="CRM-17", store_id="S002")) + "\n",
    )
    for kind, path in (
        ("products", products_file),
        ("customers", customers),
        ("orders", orders_file),
    ):
        assert run_import(kind, path, sqlite_url).exit_code == 0, kind
    db = opened(sqlite_url)
    with db.read() as conn:
        view = customer_view(conn, importer.profile_id_for("CRM-17"))
    db.dispose()
    assert [t["kind"] for t in view["timeline"]] == ["order"]
    # Buying in S002 puts the card on S002's tills too.
    assert view["stores"] == ["S001", "S002"]


def order(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order_id": "5f0c3a4e-8a44-4f56-9c1e-000000000001",
        "channel": "store",
        "store_id": "S001",
        "till_id": "S001-T1",
        "customer_id": None,
        "created_at": "2026-10-01T10:00:00Z",
        "currency": "EUR",
        "lines": [{"sku": "A1", "quantity": 2, "unit_price_minor": 199}],
        "total_minor": 398,
    }
    base.update(overrides)
    return base


def test_bad_order_lines_are_reported_and_good_orders_imported(
    tmp_path: Path, sqlite_url: str
) -> None:
    products_file = write(tmp_path / "products.csv", PRODUCTS_HEADER + "A1,,Pen,199,EUR,19,\n")
    assert run_import("products", products_file, sqlite_url).exit_code == 0

    def oid(n: int) -> str:
        return f"5f0c3a4e-8a44-4f56-9c1e-{n:012d}"

    lines = [
        json.dumps(order(order_id=oid(1))),  # 1 good
        '{"order_id": "broken", ',  # 2 malformed JSON
        json.dumps(order(order_id=oid(3), total_minor=399)),  # 3 total is not the sum
        json.dumps(
            order(order_id=oid(4), lines=[{"sku": "NOPE", "quantity": 1, "unit_price_minor": 5}])
        ),  # 4 unknown SKU
        "",  # 5 blank
        json.dumps(order(order_id=oid(6), channel="online", store_id=None, till_id=None)),  # good
        json.dumps(order(order_id=oid(7), currency="XXY")),  # 7 unknown currency
        json.dumps(order(order_id=oid(8), customer_id="8d5e1a52-1111-4222-8333-444455556666")),
        json.dumps(order(order_id="not-a-uuid")),  # 9
        json.dumps([1, 2]),  # 10 not an object
        json.dumps(
            order(order_id=oid(11), lines=[{"sku": "A1", "quantity": 1, "unit_price_minor": -1}])
        ),  # 11 negative price
        json.dumps({k: v for k, v in order(order_id=oid(12)).items() if k != "created_at"}),
        json.dumps(order(order_id=oid(1))),  # 13 the same order again: skipped, not an error
    ]
    path = write(tmp_path / "orders.jsonl", "\n".join(lines) + "\n")
    result = run_import("orders", path, sqlite_url)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 2, rejected 9, skipped 1 already imported"
    errors = stderr_lines(result)
    assert all(e.startswith(f"{path}:") for e in errors)
    by_line = {int(e.split(":")[1]): e.split(": ", 1)[1] for e in errors}
    assert set(by_line) == {2, 3, 4, 7, 8, 9, 10, 11, 12}
    assert by_line[2].startswith("malformed JSON")
    assert "not the sum of the lines (398)" in by_line[3]
    assert "unknown SKU 'NOPE'" in by_line[4]
    assert "XXY" in by_line[7]
    assert "unknown customer" in by_line[8]
    assert "not a UUID" in by_line[9]
    assert "JSON object" in by_line[10]
    assert "negative" in by_line[11]
    assert "created_at is missing" in by_line[12]
    db = opened(sqlite_url)
    with db.read() as conn:
        stored = Counter(conn.execute(sa.select(orders.c.channel)).scalars())
        total_lines = conn.execute(sa.select(sa.func.sum(order_lines.c.amount_minor))).scalar()
    db.dispose()
    assert stored == {"store": 1, "online": 1}
    assert total_lines == 2 * 398


def test_library_report_without_the_cli(tmp_path: Path, sqlite_url: str) -> None:
    path = write(
        tmp_path / "products.csv",
        PRODUCTS_HEADER + "A1,,Pen,199,EUR,19,\nA2,,Pencil,x,EUR,19,\n",
    )
    db = opened(sqlite_url)
    seen: list[tuple[int, str]] = []
    progressed: list[int] = []
    report = importer.import_file(
        db,
        "products",
        path,
        on_error=lambda line, reason: seen.append((line, reason)),
        progress=progressed.append,
    )
    db.dispose()
    assert (report.imported, report.rejected) == (1, 1)
    assert report.errors == seen == [(3, "price_minor must be a whole number, not 'x'")]
    assert sum(progressed) == 2
    assert report.seconds > 0


def test_stores_file_with_a_bad_store_names_its_line(tmp_path: Path, sqlite_url: str) -> None:
    chain = {
        "chain": {"name": "Test", "loyalty_prefix": "9900", "loyalty_length": 13},
        "stores": [
            {"store_id": "S001", "name": "One", "default_region": "DE"},
            {"store_id": "S002", "name": "Two", "default_region": "germany"},
        ],
    }
    path = write(tmp_path / "stores.json", json.dumps(chain, indent=2))
    result = run_import("stores", path, sqlite_url)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 1, rejected 1"
    text = path.read_text().splitlines()
    starts = [n for n, line in enumerate(text, start=1) if line == "    {"]
    assert len(starts) == 2  # where the two store objects start
    assert stderr_lines(result)[0].startswith(f"{path}:{starts[-1]}: default_region")


def test_count_data_rows(tmp_path: Path) -> None:
    assert importer.count_data_rows(write(tmp_path / "a.csv", "h\n1\n2\n3"), "products") == 3
    assert importer.count_data_rows(write(tmp_path / "a.jsonl", "{}\n{}\n"), "orders") == 2


def test_demo_copy_without_stores_json_uses_the_default_card_format(
    demo: DemoSummary, tmp_path: Path, sqlite_url: str
) -> None:
    # The demo chain uses the default format, so customers import the same without stores.json.
    shutil.copy(demo.out_dir / "customers.csv", tmp_path / "customers.csv")
    result = run_import("customers", tmp_path / "customers.csv", sqlite_url)
    assert result.exit_code == 0, result.output


def test_a_till_edit_survives_reimporting_an_unchanged_export(
    demo: DemoSummary, tmp_path: Path
) -> None:
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    src = demo.out_dir / "customers.csv"
    assert run_import("customers", src, url).exit_code == 0
    maria = UUID(demo.maria.customer_id)
    db = opened(url)
    with db.write() as conn:
        stamp = HybridLogicalClock("S001-T1").now()
        identity.write_field(
            conn,
            customer=identity.customer_of(conn, maria),
            profile=maria,
            field="last_name",
            value="Schmidt-Till",
            hlc=stamp.encode(),
            writer=stamp.node,
            now=utc_now(),
        )
    assert run_import("customers", src, url).exit_code == 0
    with db.read() as conn:
        assert customer_view(conn, maria)["card"]["last_name"] == "Schmidt-Till"
    header, row = src.read_text(encoding="utf-8").splitlines()[:2]
    edited = write(tmp_path / "customers.csv", header + "\n" + row.replace(",Schmidt,", ",Roth,"))
    assert run_import("customers", edited, url).exit_code == 0
    with db.read() as conn:
        view = customer_view(conn, maria)
    db.dispose()
    assert view["card"]["last_name"] == "Roth"  # the export changed: newer than the till edit
    assert "Schmidt-Till" in [h["value"] for h in view["field_history"]]
