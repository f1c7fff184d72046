"""Recommendations at HQ: full rebuild over the demo chain, incremental updates reaching another
till through a real server, merchandising rules in the API and on the feed, and bad input."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa

from hardware_sim.demo_data import DemoConfig, DemoSummary, build_catalogue, generate_demo_data
from shared.recommendations import RecommendationList
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import (
    changes,
    customer_stores,
    dirty_cards,
    products,
    recommendation_lists,
)
from sync_server.main import create_app
from sync_server.services import cards, importer, recs
from sync_server.services.recommender import decay_weight
from tests.shared.factories import make_line
from tests.support.server import (
    ADMIN_TOKEN,
    Hq,
    TillClient,
    count_rows,
    running_server,
    sale_for,
    sale_op,
    wait_for,
)

SEED, PRODUCTS = 7, 300
#: Nothing else writes while a test rebuilds.
NO_WAIT = timedelta(0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    out = tmp_path_factory.mktemp("recs-demo")
    return generate_demo_data(
        out, DemoConfig(seed=SEED, stores=3, products=PRODUCTS, customers=800, orders=3000)
    )


def import_demo(db: Database, demo: DemoSummary) -> None:
    for kind, name in (
        ("stores", "stores.json"),
        ("products", "products.csv"),
        ("customers", "customers.csv"),
        ("orders", "orders.jsonl"),
    ):
        report = importer.import_file(db, kind, demo.out_dir / name)  # type: ignore[arg-type]
        assert not report.rejected, (kind, report.summary())


def stored(db: Database, kind: str) -> dict[str, list[dict[str, Any]]]:
    with db.read() as conn:
        return {
            key: json.loads(data)["items"]
            for key, data in conn.execute(
                sa.select(recommendation_lists.c.key, recommendation_lists.c.data).where(
                    recommendation_lists.c.kind == kind
                )
            )
        }


def test_rebuild_over_the_demo_chain_finds_complements_not_milk(
    db: Database, demo: DemoSummary
) -> None:
    import_demo(db, demo)
    report = recs.rebuild(db, settle=NO_WAIT)
    assert report.orders == 3000 and report.lines > 3000 and report.pairs > 0
    also = stored(db, "also_bought")
    assert len(also) > PRODUCTS // 2

    catalogue = build_catalogue(SEED, PRODUCTS)
    tshirt, *partners = (catalogue.products[i].sku for i in catalogue.groups[0].members)
    top3 = [item["sku"] for item in also[tshirt][:3]]
    assert set(partners) & set(top3), (tshirt, partners, also[tshirt][:5])
    # Across the catalogue: a group lead's best partner is one of its complements.
    leads = [
        (catalogue.products[g.members[0]].sku, {catalogue.products[i].sku for i in g.members})
        for g in catalogue.groups
    ]
    judged = [also[lead][0]["sku"] in group for lead, group in leads if also.get(lead)]
    assert len(judged) >= 10 and sum(judged) >= 0.6 * len(judged), judged
    # Raw co-occurrence would put a staple first in about half the lists.
    staples = {catalogue.products[i].sku for i in catalogue.staples}
    firsts = Counter(items[0]["sku"] for items in also.values() if items)
    assert sum(n for sku, n in firsts.items() if sku in staples) < 0.35 * sum(firsts.values())
    milk = catalogue.products[catalogue.staples[0]].sku
    assert firsts[milk] < 0.2 * sum(firsts.values())

    best = stored(db, "bestsellers")
    with db.read() as conn:
        store_ids = [s for s in conn.execute(sa.text("SELECT store_id FROM stores")).scalars()]
        scoped = dict(
            conn.execute(
                sa.select(changes.c.key, changes.c.scope).where(
                    changes.c.entity == "recommendation"
                )
            ).all()
        )
    for store in store_ids:
        assert len(best[f"{store}/*"]) == 20
        assert scoped[f"bestsellers:{store}/*"] == store
    assert scoped[f"also_bought:{tshirt}"] == "*"

    personal = stored(db, "personal")
    assert len(personal) > 100
    # Personal lists spend few places on staples the customer buys anyway.
    slots = [i["sku"] in staples for items in personal.values() for i in items[:3]]
    assert sum(slots) < 0.3 * len(slots), sum(slots) / len(slots)
    with db.read() as conn:
        cached = conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id)
        ).all()
        customer, store = next((c, st) for c, st in cached if str(c) in personal)
        card = cards.build_card(conn, customer)
    assert card is not None and card.recommendations
    assert list(card.recommendations) == [i["sku"] for i in personal[str(customer)]][:10]
    assert scoped[f"personal:{customer}"] == store
    # Their cards are rebuilt for the tills that cache them, with the new list.
    assert count_rows(db, dirty_cards) >= len({c for c, _ in cached if str(c) in personal})

    # Nothing changed: a second rebuild sends no list again.
    assert recs.rebuild(db, settle=NO_WAIT).changed == 0


def test_decayed_counts_add_up_as_the_recommender_weighs_them() -> None:
    reference = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 3, 1, 18, tzinfo=UTC)
    weight = decay_weight(later, reference=reference, half_life_days=90.0)
    assert weight == pytest.approx(2 ** ((later - reference).total_seconds() / 86400 / 90))


# ---------------------------------------------------------------------------------------------
# Through a real server

TEST_PRODUCTS = {
    "REC-X": "Pasta",
    "REC-Y": "Sauces",
    "REC-Z": "Cheese",
    "REC-P": "Wine",
    "REC-T": "Tobacco",
}


@pytest.fixture
def hq(db: Database, db_url: str) -> Iterator[Hq]:
    now = datetime.now(UTC)
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [
                {"sku": sku, "category": cat, "data": json.dumps({"name": sku}), "updated_at": now}
                for sku, cat in TEST_PRODUCTS.items()
            ],
        )
    settings = Settings(
        db_url=db_url,
        admin_token=ADMIN_TOKEN,
        card_worker_interval_s=0.05,
        recs_worker_interval_s=0.2,
    )
    with running_server(create_app(settings, db=db)) as base_url:
        server = Hq(base_url=base_url, db=db)
        try:
            yield server
        finally:
            server.close()


def push_baskets(till: TillClient, *baskets: tuple[str, ...]) -> None:
    sales = [
        sale_for(till, lines=tuple(make_line(i + 1, sku=sku) for i, sku in enumerate(basket)))
        for basket in baskets
    ]
    results = till.push_ok([sale_op(s, till.take_seq()) for s in sales])
    assert {r["status"] for r in results} == {"applied"}


def pulled_list(till: TillClient, cursor: str, key: str) -> tuple[list[str] | None, str]:
    found, cursor = till.pull_all(cursor)
    items = None
    for change in found:
        if change["entity"] == "recommendation" and change["key"] == key:
            items = [i.sku for i in RecommendationList.model_validate(change["data"]).items]
    return items, cursor


def test_a_sale_at_one_till_changes_the_list_another_till_pulls(hq: Hq) -> None:
    till_a = hq.enroll("S001", "S001-T1")
    till_b = hq.enroll("S002", "S002-T1")
    push_baskets(till_a, ("REC-X", "REC-Z"), ("REC-X", "REC-Z"), ("REC-X", "REC-Z"))
    recs.rebuild(hq.db, settle=NO_WAIT)
    before, cursor = pulled_list(till_b, "", "also_bought:REC-X")
    assert before == ["REC-Z"]

    start = time.monotonic()
    push_baskets(till_a, ("REC-X", "REC-Y"), ("REC-X", "REC-Y"), ("REC-Y", "REC-X", "REC-P"))
    state: dict[str, Any] = {"cursor": cursor}

    def changed() -> list[str] | None:
        items, state["cursor"] = pulled_list(till_b, state["cursor"], "also_bought:REC-X")
        return items

    after = wait_for(changed, timeout=30, interval=0.2, what="the new also-bought list")
    lag = time.monotonic() - start
    assert "REC-Y" in after and after != before
    assert lag < 30
    with httpx.Client(base_url=hq.base_url, headers=till_b.headers) as client:
        served = client.get("/api/v1/products/REC-X/also-bought").json()
    assert "REC-Y" in [i["sku"] for i in served["items"]]


def test_merchandising_rules_reach_the_api_and_the_feed(hq: Hq) -> None:
    till = hq.enroll("S001", "S001-T1")
    push_baskets(
        till,
        *[("REC-X", "REC-Y", "REC-Z", "REC-T")] * 3,
        *[("REC-X", "REC-Y")] * 2,
    )
    recs.rebuild(hq.db, settle=NO_WAIT)
    _, cursor = till.pull_all()
    admin = hq.admin()

    def served() -> list[str]:
        body = till.client.get("/api/v1/products/REC-X/also-bought").json()
        return [i["sku"] for i in body["items"]]

    assert served()[0] == "REC-Y" and set(served()) == {"REC-Y", "REC-Z", "REC-T"}
    state = {"cursor": cursor}

    def on_feed(check: Any) -> Any:
        def probe() -> list[str] | None:
            items, state["cursor"] = pulled_list(till, state["cursor"], "also_bought:REC-X")
            return items if items is not None and check(items) else None

        return wait_for(probe, timeout=20, interval=0.2)

    excluded = admin.post(
        "/api/v1/admin/merchandising", json={"kind": "exclude", "category": "Tobacco"}
    )
    assert excluded.status_code == 200, excluded.text
    on_feed(lambda items: "REC-T" not in items)
    assert "REC-T" not in served()

    boost = admin.post(
        "/api/v1/admin/merchandising", json={"kind": "boost", "sku": "REC-Z", "weight": 50}
    )
    assert boost.status_code == 200, boost.text
    on_feed(lambda items: items[0] == "REC-Z")
    assert served()[0] == "REC-Z"

    pin = admin.post(
        "/api/v1/admin/merchandising",
        json={"kind": "pin", "sku": "REC-P", "target_sku": "REC-X"},
    )
    assert pin.status_code == 200, pin.text
    on_feed(lambda items: items[0] == "REC-P")
    assert served()[:2] == ["REC-P", "REC-Z"]

    rules = admin.get("/api/v1/admin/merchandising").json()
    assert [r["kind"] for r in rules] == ["exclude", "boost", "pin"]
    found, _ = till.pull_all()
    assert {c["key"] for c in found if c["entity"] == "merchandising"} == {
        r["rule_id"] for r in rules
    }
    assert (
        admin.delete(f"/api/v1/admin/merchandising/{excluded.json()['rule_id']}").status_code == 200
    )
    on_feed(lambda items: "REC-T" in items)
    admin.close()


def test_bad_requests_are_refused(hq: Hq) -> None:
    till = hq.enroll("S001", "S001-T1")
    admin = hq.admin()
    post = "/api/v1/admin/merchandising"
    for body in (
        {"kind": "bogus", "sku": "REC-X"},
        {"kind": "pin", "sku": "REC-P"},
        {"kind": "pin", "sku": "REC-P", "target_sku": "REC-X", "category": "Pasta"},
        {"kind": "exclude"},
        {"kind": "boost", "sku": "REC-X", "weight": 0},
        {"kind": "exclude", "sku": "NO-SUCH-SKU"},
    ):
        response = admin.post(post, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    assert till.client.post(post, json={"kind": "exclude", "sku": "REC-X"}).status_code == 403
    assert admin.delete(f"{post}/{uuid4()}").status_code == 404
    assert admin.delete(f"{post}/not-a-uuid").status_code == 422
    assert till.client.get("/api/v1/products/NO-SUCH-SKU/also-bought").status_code == 404
    assert httpx.get(f"{hq.base_url}/api/v1/products/REC-X/also-bought").status_code == 401
    assert till.client.get("/api/v1/stores/S002/bestsellers").status_code == 403
    assert till.client.get("/api/v1/stores/S001/bestsellers").status_code == 200
    assert admin.get("/api/v1/stores/S002/bestsellers?category=Pasta").status_code == 200
    assert till.client.get(f"/api/v1/customers/{uuid4()}/recommendations").status_code == 404
    assert till.client.get("/api/v1/customers/nope/recommendations").status_code == 422
    bad = httpx.get(
        f"{hq.base_url}/api/v1/products/REC-X/also-bought",
        headers={"Authorization": "Bearer otl_wrong"},
    )
    assert bad.status_code == 401
    admin.close()


def test_the_till_stores_the_lists_it_pulls(tmp_path: Path) -> None:
    lst = recs.make_list("also_bought", "REC-X", [("REC-Y", 0.5, None), ("REC-P", 1.0, "Pinned")])
    from edge_agent.catalogue import parse_list

    items = json.loads(lst.model_dump_json())["items"]
    assert parse_list(json.dumps(items)) == (("REC-Y", 0.5, None), ("REC-P", 1.0, "Pinned"))
