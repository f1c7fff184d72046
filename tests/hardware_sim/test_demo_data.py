"""The demo chain generator: determinism, valid identifiers, real structure, Maria's story."""

from __future__ import annotations

import csv
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

import phonenumbers
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hardware_sim import demo_data as dd
from hardware_sim.demo_data import (
    CUSTOMER_COLUMNS,
    DEMO_FILES,
    PRODUCT_COLUMNS,
    DemoConfig,
    build_catalogue,
    generate_demo_data,
    parse_end_date,
)
from hardware_sim.demo_data_cli import demo_data
from shared.barcodes import decode_variable_measure, parse_gtin, parse_loyalty_number
from shared.catalogue import Product, Store
from shared.identifiers import normalize_email

SMALL = DemoConfig(seed=11, products=300, customers=400, orders=2000)
END = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)


@dataclass
class Chain:
    """One generated chain, parsed."""

    root: Path
    stores: dict[str, Any]
    products: list[dict[str, str]]
    customers: list[dict[str, str]]
    orders: list[dict[str, Any]]
    events: list[dict[str, Any]]
    manifest: dict[str, Any]
    summary: dd.DemoSummary

    @property
    def product_by_sku(self) -> dict[str, dict[str, str]]:
        return {p["sku"]: p for p in self.products}


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load(root: Path, summary: dd.DemoSummary) -> Chain:
    _, products = read_csv(root / "products.csv")
    _, customers = read_csv(root / "customers.csv")
    return Chain(
        root=root,
        stores=json.loads((root / "stores.json").read_text(encoding="utf-8")),
        products=products,
        customers=customers,
        orders=read_jsonl(root / "orders.jsonl"),
        events=read_jsonl(root / "web_events.jsonl"),
        manifest=json.loads((root / "manifest.json").read_text(encoding="utf-8")),
        summary=summary,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("chain")
    return load(root, generate_demo_data(root, SMALL))


def ts(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def baskets(chain: Chain) -> list[set[str]]:
    return [{line["sku"] for line in order["lines"]} for order in chain.orders]


# --- determinism and the manifest -----------------------------------------------------------


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(
    tmp_path: Path, chain: Chain
) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    generate_demo_data(again, SMALL)
    generate_demo_data(other, DemoConfig(seed=12, products=300, customers=400, orders=2000))
    for name in DEMO_FILES:
        assert (again / name).read_bytes() == (chain.root / name).read_bytes(), name
    for name in ("products.csv", "customers.csv", "orders.jsonl", "web_events.jsonl"):
        assert (other / name).read_bytes() != (chain.root / name).read_bytes(), name


def test_catalogue_depends_only_on_seed_and_product_count(tmp_path: Path, chain: Chain) -> None:
    generate_demo_data(tmp_path, DemoConfig(seed=11, products=300, customers=60, orders=150))
    assert (tmp_path / "products.csv").read_bytes() == (chain.root / "products.csv").read_bytes()


def test_manifest_counts_and_hashes_every_file(chain: Chain) -> None:
    manifest = chain.manifest
    assert manifest["seed"] == 11
    assert manifest["end_date"] == "2026-10-31T23:59:59Z"
    assert manifest["sizes"] == {"stores": 5, "products": 300, "customers": 400, "orders": 2000}
    files = manifest["files"]
    assert set(files) == set(DEMO_FILES) - {"manifest.json"}
    for name, entry in files.items():
        data = (chain.root / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert entry["bytes"] == len(data)
    assert files["products.csv"]["rows"] == len(chain.products) == 300
    assert files["customers.csv"]["rows"] == len(chain.customers) == 400
    assert files["orders.jsonl"]["rows"] == len(chain.orders) == 2000
    assert files["web_events.jsonl"]["rows"] == len(chain.events)
    assert files["stores.json"]["rows"] == len(chain.stores["stores"]) == 5
    assert not list(chain.root.glob("*.partial"))


def test_a_failed_run_leaves_neither_partial_nor_complete_files(tmp_path: Path) -> None:
    def fail(_: int) -> None:
        raise RuntimeError("disk pulled")

    with pytest.raises(RuntimeError):
        generate_demo_data(tmp_path, SMALL, on_progress=fail)
    assert list(tmp_path.iterdir()) == []


@given(st.integers(min_value=0, max_value=2**64))
def test_fast_uuid_text_is_the_uuid4_of_the_same_random_bits(seed: int) -> None:
    expected = uuid.UUID(int=Random(seed).getrandbits(128), version=4)
    assert dd._new_uuid_text(Random(seed)) == str(expected)


# --- stores and products --------------------------------------------------------------------


def test_stores_are_valid_store_models_in_eurozone_countries(chain: Chain) -> None:
    assert chain.stores["chain"] == {
        "name": "Marktwerk",
        "currency": "EUR",
        "loyalty_prefix": "9900",
        "loyalty_length": 13,
    }
    stores = [Store.model_validate(s) for s in chain.stores["stores"]]
    assert [s.store_id for s in stores] == ["S001", "S002", "S003", "S004", "S005"]
    assert {s.default_region for s in stores} == {"DE", "NL", "FR", "IE", "AT"}
    for s in stores:
        assert 2 <= len(s.tills) <= 4
        assert all(t.startswith(f"{s.store_id}-T") for t in s.tills)
        assert s.currency == "EUR" and s.tax_mode == "inclusive"
    assert stores[3].timezone == "Europe/Dublin" and stores[3].locale == "en"


def test_products_have_the_documented_columns_and_convert_to_catalogue_products(
    chain: Chain,
) -> None:
    header, _ = read_csv(chain.root / "products.csv")
    assert tuple(header) == PRODUCT_COLUMNS
    for row in chain.products:
        product = Product(
            sku=row["sku"],
            name=row["name"],
            brand=row["brand"],
            category=row["category"],
            subcategory=row["subcategory"],
            gtins=(parse_gtin(row["gtin"]).gtin14,) if row["gtin"] else (),
            price_minor=int(row["price_minor"]),
            currency=row["currency"],
            tax_rate=Decimal(row["tax_rate"]),
            variable_measure=row["variable_measure"] or None,  # type: ignore[arg-type]
            item_reference=row["item_reference"] or None,
            attributes={"margin_band": row["margin_band"], "season": row["season"]},
        )
        assert product.price_minor > 0
        assert row["tax_rate"] in ("7", "19")
        assert row["margin_band"] in ("A", "B", "C")
        assert row["season"] in ("", "summer", "winter", "christmas")
    assert len({p["sku"] for p in chain.products}) == len(chain.products)


def test_every_gtin_is_a_valid_unique_ean13(chain: Chain) -> None:
    gtins = [p["gtin"] for p in chain.products if p["gtin"]]
    assert len(gtins) == len(set(gtins))
    for code in gtins:
        assert parse_gtin(code).symbology == "EAN-13"


def test_counter_items_have_an_item_reference_instead_of_a_gtin(chain: Chain) -> None:
    counter = [p for p in chain.products if p["variable_measure"]]
    assert {p["variable_measure"] for p in counter} == {"weight", "price"}
    references = [p["item_reference"] for p in counter]
    assert len(references) == len(set(references))
    for p in counter:
        assert p["gtin"] == ""
        assert len(p["item_reference"]) == 5 and p["item_reference"].isdigit()
    for p in chain.products:
        if not p["variable_measure"]:
            assert p["item_reference"] == "" and p["gtin"]


def test_food_is_reduced_rate_and_prices_are_believable(chain: Chain) -> None:
    by_sub: defaultdict[str, list[int]] = defaultdict(list)
    for p in chain.products:
        by_sub[p["subcategory"]].append(int(p["price_minor"]))
        if p["subcategory"] in ("Dairy", "Pasta", "Bakery"):
            assert p["tax_rate"] == "7", p
        if p["category"] in ("Apparel", "Electronics"):
            assert p["tax_rate"] == "19", p
    assert max(by_sub["Dairy"]) < 1000
    if by_sub["Smartphones"]:
        assert min(by_sub["Smartphones"]) >= 19_900


# --- customers ------------------------------------------------------------------------------


def test_customer_columns_and_unique_uuid4_ids(chain: Chain) -> None:
    header, _ = read_csv(chain.root / "customers.csv")
    assert tuple(header) == CUSTOMER_COLUMNS
    ids = [uuid.UUID(c["customer_id"]) for c in chain.customers]
    assert all(i.version == 4 for i in ids)
    assert len(set(ids)) == len(ids)
    for c in chain.customers:
        assert c["email_consent"] in ("true", "false") and c["sms_consent"] in ("true", "false")
        assert c["email_consent"] == "false" or c["email"]
        assert c["sms_consent"] == "false" or c["phone"]
        assert c["age_band"] in ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
        assert ts(c["created_at"]) <= END
        assert c["crm_segment"] and c["preferred_contact"] in ("email", "sms", "post", "none")


def test_every_phone_is_a_valid_e164_number_of_its_region(chain: Chain) -> None:
    phones = [c for c in chain.customers if c["phone"]]
    assert len(phones) > 100
    for c in phones:
        number = phonenumbers.parse(c["phone"], None)
        assert phonenumbers.is_valid_number(number), c["phone"]
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == c["phone"]
        assert phonenumbers.region_code_for_number(number) == c["region"]


@pytest.mark.parametrize("region", dd._REGIONS, ids=lambda r: r.code)
def test_phone_ranges_are_valid_from_end_to_end(region: dd._Region) -> None:
    rng = Random(region.code)
    top = 10**region.phone_digits
    for n in [0, top - 1, *(rng.randrange(top) for _ in range(300))]:
        text = f"{region.phone_prefix}{n:0{region.phone_digits}d}"
        number = phonenumbers.parse(text, None)
        assert phonenumbers.is_valid_number(number), text
        assert phonenumbers.region_code_for_number(number) == region.code


def test_every_loyalty_number_parses_and_only_duplicates_share_nothing_else(chain: Chain) -> None:
    numbers = [c["loyalty_number"] for c in chain.customers if c["loyalty_number"]]
    assert len(numbers) == len(set(numbers))
    for n in numbers:
        assert parse_loyalty_number(n) == n


def test_every_email_normalizes(chain: Chain) -> None:
    for c in chain.customers:
        if c["email"]:
            normalize_email(c["email"])


def test_not_everyone_has_every_identifier(chain: Chain) -> None:
    n = len(chain.customers)
    share = {k: sum(1 for c in chain.customers if c[k]) / n for k in ("email", "phone")}
    share["loyalty"] = sum(1 for c in chain.customers if c["loyalty_number"]) / n
    share["web"] = sum(1 for c in chain.customers if c["web_user_id"]) / n
    assert 0.7 < share["email"] < 0.9
    assert 0.5 < share["phone"] < 0.8
    assert 0.6 < share["loyalty"] < 0.9
    assert 0.3 < share["web"] < 0.5
    for c in chain.customers:
        assert c["email"] or c["phone"] or c["loyalty_number"]
        assert not c["web_user_id"] or c["email"]


def test_duplicate_records_share_an_email_or_phone_with_another_spelling(chain: Chain) -> None:
    shared = dd.SHARED_EMAIL
    by_key: defaultdict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for c in chain.customers:
        if c["email"] and normalize_email(c["email"]) != shared:
            by_key[("email", normalize_email(c["email"]))].append(c)
        if c["phone"]:
            by_key[("phone", c["phone"])].append(c)
    pairs = [rows for rows in by_key.values() if len(rows) > 1]
    assert len(pairs) >= 2
    duplicated_people = {frozenset(r["customer_id"] for r in rows) for rows in pairs}
    assert len(duplicated_people) <= 0.02 * len(chain.customers)
    for rows in pairs:
        assert len({r["customer_id"] for r in rows}) == len(rows)
        names = {(r["first_name"], r["last_name"]) for r in rows}
        assert len(names) == len(rows), "a duplicate is spelled differently"
        loyalty = [r["loyalty_number"] for r in rows if r["loyalty_number"]]
        assert len(loyalty) == len(set(loyalty))


def test_some_rows_carry_the_chains_own_email(chain: Chain) -> None:
    rows = [c for c in chain.customers if c["email"].lower() == dd.SHARED_EMAIL]
    assert len(rows) >= 5
    assert len({c["customer_id"] for c in rows}) == len(rows)
    assert all(c["email_consent"] == "false" and not c["web_user_id"] for c in rows)


def test_names_exercise_unicode(chain: Chain) -> None:
    text = (chain.root / "customers.csv").read_text(encoding="utf-8")
    assert any(not c.isascii() for c in text)
    names = {c["last_name"] for c in chain.customers} | {c["first_name"] for c in chain.customers}
    assert sum(1 for name in names if not name.isascii()) >= 10


# --- orders ---------------------------------------------------------------------------------


def test_order_totals_lines_and_references_are_consistent(chain: Chain) -> None:
    customers = {c["customer_id"] for c in chain.customers}
    tills = {s["store_id"]: set(s["tills"]) for s in chain.stores["stores"]}
    products = chain.product_by_sku
    ids = set()
    for order in chain.orders:
        ids.add(order["order_id"])
        assert uuid.UUID(order["order_id"]).version == 4
        assert order["currency"] == "EUR"
        assert order["lines"], order
        assert order["total_minor"] == sum(
            line["quantity"] * line["unit_price_minor"] for line in order["lines"]
        )
        for line in order["lines"]:
            product = products[line["sku"]]
            assert line["quantity"] >= 1
            if not product["variable_measure"]:
                assert line["unit_price_minor"] == int(product["price_minor"])
        if order["channel"] == "online":
            assert order["store_id"] is None and order["till_id"] is None
            assert order["customer_id"] in customers
            assert not any(products[line["sku"]]["variable_measure"] for line in order["lines"])
        else:
            assert order["channel"] == "store"
            assert order["till_id"] in tills[order["store_id"]]
            assert order["customer_id"] is None or order["customer_id"] in customers
    assert len(ids) == len(chain.orders)


def test_weighed_lines_carry_a_scale_label_that_decodes_to_the_line(chain: Chain) -> None:
    products = chain.product_by_sku
    weighed = [
        (line, products[line["sku"]])
        for order in chain.orders
        for line in order["lines"]
        if products[line["sku"]]["variable_measure"]
    ]
    assert weighed
    for line, product in weighed:
        label = decode_variable_measure(line["label"])
        assert label is not None
        assert label.item_reference == product["item_reference"]
        assert line["quantity"] == 1
        if product["variable_measure"] == "weight":
            assert label.weight_g == line["weight_g"]
            per_kg = int(product["price_minor"])
            assert line["unit_price_minor"] == (line["weight_g"] * per_kg + 500) // 1000
        else:
            assert label.price_minor == line["unit_price_minor"]


def test_orders_are_sorted_and_inside_the_year_before_the_end_date(chain: Chain) -> None:
    times = [ts(o["created_at"]) for o in chain.orders]
    assert times == sorted(times)
    assert times[0] > END - timedelta(days=365)
    assert times[-1] <= END
    months = Counter(t.strftime("%Y-%m") for t in times)
    assert len(months) == 12


def test_store_orders_are_in_opening_hours_and_about_a_third_anonymous(chain: Chain) -> None:
    store = [o for o in chain.orders if o["channel"] == "store"]
    online = [o for o in chain.orders if o["channel"] == "online"]
    assert 0.15 < len(online) / len(chain.orders) < 0.35
    anonymous = sum(1 for o in store if o["customer_id"] is None)
    assert 0.25 < anonymous / len(store) < 0.45
    for o in store:
        assert 5 <= ts(o["created_at"]).hour <= 19, o["created_at"]


def test_baskets_average_four_to_five_lines(chain: Chain) -> None:
    mean = sum(len(o["lines"]) for o in chain.orders) / len(chain.orders)
    assert 3.8 < mean < 5.2


def test_complements_are_bought_together_far_more_than_by_chance(chain: Chain) -> None:
    catalogue = build_catalogue(SMALL.seed, SMALL.products)
    sku = [p.sku for p in catalogue.products]
    all_baskets = baskets(chain)
    n = len(all_baskets)
    count = Counter(s for b in all_baskets for s in b)
    lifts = []
    for group in catalogue.groups:
        lead = sku[group.members[0]]
        with_lead = [b for b in all_baskets if lead in b]
        if len(with_lead) < 15:
            continue
        for member in group.members[1:]:
            p_b = count[sku[member]] / n
            p_b_given_a = sum(1 for b in with_lead if sku[member] in b) / len(with_lead)
            lifts.append(p_b_given_a / p_b if p_b else 0.0)
    assert len(lifts) >= 20
    strong = sum(1 for lift in lifts if lift > 5)
    assert strong >= 0.8 * len(lifts), sorted(lifts)


def test_staples_are_in_most_baskets_and_top_raw_co_occurrence(chain: Chain) -> None:
    catalogue = build_catalogue(SMALL.seed, SMALL.products)
    staples = {catalogue.products[i].sku for i in catalogue.staples}
    all_baskets = baskets(chain)
    assert sum(1 for b in all_baskets if b & staples) > 0.6 * len(all_baskets)
    # For frequent non-staple products the most co-occurring item is usually a staple: raw
    # co-occurrence recommends milk for everything, which is what a recommender must beat.
    count = Counter(s for b in all_baskets for s in b)
    frequent = [s for s, c in count.items() if c >= 40 and s not in staples]
    staple_top = 0
    for s in frequent:
        partners = Counter(o for b in all_baskets if s in b for o in b if o != s)
        staple_top += partners.most_common(1)[0][0] in staples
    assert frequent and staple_top >= 0.3 * len(frequent)


def test_seasonal_products_sell_in_their_season(chain: Chain) -> None:
    season = {p["sku"]: p["season"] for p in chain.products if p["season"]}
    months: defaultdict[str, Counter[int]] = defaultdict(Counter)
    for o in chain.orders:
        month = ts(o["created_at"]).month
        for line in o["lines"]:
            if line["sku"] in season:
                months[season[line["sku"]]][month] += 1
    christmas = months["christmas"]
    assert sum(christmas[m] for m in (11, 12)) >= 0.8 * sum(christmas.values()) > 0
    summer = months["summer"]
    assert sum(summer[m] for m in (5, 6, 7, 8, 9)) >= 0.8 * sum(summer.values()) > 0


# --- web events and Maria ---------------------------------------------------------------------


def test_web_events_follow_the_segment_spec(chain: Chain) -> None:
    names = {
        "Product Viewed",
        "Product Added",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
    }
    products = chain.product_by_sku
    stamps = [ts(e["timestamp"]) for e in chain.events]
    assert stamps == sorted(stamps)
    assert stamps[0] > END - timedelta(days=366) and stamps[-1] <= END
    assert len({e["messageId"] for e in chain.events}) == len(chain.events)
    seen = Counter()
    for e in chain.events:
        assert uuid.UUID(e["anonymousId"]).version == 4
        seen[e["type"]] += 1
        if e["type"] == "identify":
            assert e["userId"] and normalize_email(e["traits"]["email"])
            continue
        assert e["type"] == "track" and e["event"] in names
        seen[e["event"]] += 1
        props = e["properties"]
        if e["event"] in ("Product Viewed", "Product Added"):
            product = products[props["sku"]]
            assert props["product_id"] == props["sku"]
            assert props["name"] == product["name"] and props["currency"] == "EUR"
            assert Decimal(props["price"]) * 100 == int(product["price_minor"])
        if e["event"] != "Product Viewed":
            assert props["cart_id"]
    assert all(seen[name] for name in names)
    assert seen["identify"]


def test_online_orders_complete_a_web_session_with_the_same_total(chain: Chain) -> None:
    online = {o["order_id"]: o for o in chain.orders if o["channel"] == "online"}
    completed = {
        e["properties"]["order_id"]: e for e in chain.events if e.get("event") == "Order Completed"
    }
    assert set(completed) == set(online)
    web_user = {c["customer_id"]: c["web_user_id"] for c in chain.customers}
    for order_id, event in completed.items():
        order = online[order_id]
        assert Decimal(event["properties"]["total"]) * 100 == order["total_minor"]
        assert event["userId"] == web_user[order["customer_id"]]
        assert event["timestamp"][:19] == order["created_at"][:19]


def test_abandoned_carts_exist_and_some_are_bought_in_store_later(chain: Chain) -> None:
    added: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    completed = set()
    for e in chain.events:
        if e.get("event") == "Product Added":
            added[e["properties"]["cart_id"]].append(e)
        elif e.get("event") == "Order Completed":
            completed.add(e["properties"]["cart_id"])
    abandoned = [events for cart, events in added.items() if cart not in completed]
    assert len(abandoned) >= 0.3 * len(completed)
    customer_of = {c["web_user_id"]: c["customer_id"] for c in chain.customers if c["web_user_id"]}
    store_orders: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in chain.orders:
        if o["channel"] == "store" and o["customer_id"]:
            store_orders[o["customer_id"]].append(o)
    followed = 0
    for events in abandoned:
        user = events[-1]["userId"]
        if user is None:
            continue
        carted_at = ts(events[-1]["timestamp"])
        skus = {e["properties"]["sku"] for e in events}
        for o in store_orders[customer_of[user]]:
            bought = {line["sku"] for line in o["lines"]}
            if skus <= bought and timedelta(0) < ts(o["created_at"]) - carted_at < timedelta(3):
                followed += 1
                break
    assert followed >= 3


def test_maria_views_and_carts_a_tshirt_online_then_buys_it_in_store(chain: Chain) -> None:
    maria = chain.customers[0]
    assert maria["first_name"] == "Maria" and maria["home_store"] == "S001"
    assert maria["web_user_id"] and maria["loyalty_number"] and maria["email"]
    story = chain.manifest["stories"]["maria"]
    assert story["customer_id"] == maria["customer_id"]
    tshirt = chain.product_by_sku[story["sku"]]
    assert "T-Shirt" in tshirt["name"] and tshirt["category"] == "Apparel"

    session = [e for e in chain.events if e["anonymousId"] == story["anonymous_id"]]
    kinds = [e.get("event", e["type"]) for e in session]
    assert kinds == [
        "Product Viewed",
        "Product Viewed",
        "Product Viewed",
        "identify",
        "Product Added",
        "Cart Viewed",
    ]
    assert session[3]["userId"] == maria["web_user_id"]
    assert session[3]["traits"]["email"] == maria["email"]
    assert session[4]["properties"]["sku"] == tshirt["sku"]
    carted_at = ts(session[4]["timestamp"])

    mine = [o for o in chain.orders if o["customer_id"] == maria["customer_id"]]
    assert all(o["channel"] == "store" for o in mine), "Maria never orders online"
    assert not any(
        e.get("event") == "Order Completed" and e["userId"] == maria["web_user_id"]
        for e in chain.events
    )
    purchase = next(o for o in mine if o["order_id"] == story["store_order_id"])
    assert purchase["store_id"] == "S001"
    assert purchase["lines"] == [
        {"sku": tshirt["sku"], "quantity": 1, "unit_price_minor": int(tshirt["price_minor"])}
    ]
    assert timedelta(days=1) <= ts(purchase["created_at"]) - carted_at <= timedelta(days=2)
    assert len(mine) >= 3, "she has a shopping history before the T-shirt"


def test_summary_matches_the_files(chain: Chain) -> None:
    summary = chain.summary
    assert summary.stats["store_orders"] + summary.stats["online_orders"] == 2000
    assert summary.stats["order_lines"] == sum(len(o["lines"]) for o in chain.orders)
    assert summary.file("orders.jsonl").rows == 2000
    assert summary.maria.customer_id == chain.customers[0]["customer_id"]


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"orders": -5}, "orders must be at least 100"),
        ({"products": 10}, "products must be 100 to 999999"),
        ({"customers": 0}, "customers must be 50 to 9999999"),
        ({"stores": 0}, "stores must be 1 to 999"),
        ({"end_date": datetime(2026, 1, 1)}, "no time zone"),
    ],
)
def test_config_refuses_what_it_cannot_generate(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DemoConfig(**over)


def test_parse_end_date_accepts_a_day_or_a_zoned_time() -> None:
    assert parse_end_date("2026-10-31") == END
    assert parse_end_date("2026-10-31T23:59:59Z") == END
    assert parse_end_date("2026-11-01T00:59:59+01:00") == END
    for bad in ("2026-13-01", "yesterday", "2026-10-31T23:59:59"):
        with pytest.raises(ValueError, match="2026-10-31"):
            parse_end_date(bad)


def test_another_end_date_moves_the_whole_history(tmp_path: Path) -> None:
    end = datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
    generate_demo_data(
        tmp_path, DemoConfig(seed=3, customers=60, products=100, orders=300, end_date=end)
    )
    orders = read_jsonl(tmp_path / "orders.jsonl")
    events = read_jsonl(tmp_path / "web_events.jsonl")
    assert len(orders) == 300
    for stamp in [o["created_at"] for o in orders] + [e["timestamp"] for e in events]:
        assert end - timedelta(days=365) < ts(stamp) <= end


# --- the command ----------------------------------------------------------------------------


def test_cli_help_names_the_files_and_options() -> None:
    result = CliRunner().invoke(demo_data, ["--help"])
    assert result.exit_code == 0, result.output
    for text in ("--out", "--seed", "--products", "--customers", "--orders", "--end-date"):
        assert text in result.output
    assert "orders.jsonl" in result.output and "data-formats.md" in result.output


def test_cli_generates_into_a_directory_and_summarizes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["--out", str(out), "--seed", "5", "--products", "150", "--customers", "80"]
    result = CliRunner().invoke(demo_data, [*args, "--orders", "300", "--stores", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(DEMO_FILES)
    assert "300 orders" in result.output and "Maria" in result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sizes"]["stores"] == 2 and manifest["seed"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orders", "-5"], "--orders"),
        (["--products", "5"], "--products"),
        (["--end-date", "2026-13-01"], "--end-date"),
        (["--seed", "x"], "--seed"),
    ],
)
def test_cli_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(demo_data, ["--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_cli_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    args = ["--out", str(blocker / "demo"), "--products", "100", "--customers", "50"]
    result = CliRunner().invoke(demo_data, [*args, "--orders", "100"])
    assert result.exit_code == 1
    assert "Cannot write the demo data" in result.output


@pytest.mark.slow
def test_a_hundred_thousand_orders_take_under_a_minute(tmp_path: Path) -> None:
    started = time.perf_counter()
    summary = generate_demo_data(
        tmp_path, DemoConfig(seed=1, products=20_000, customers=50_000, orders=100_000)
    )
    assert time.perf_counter() - started < 60
    assert summary.file("orders.jsonl").rows == 100_000
