"""Bestsellers, trending and personal lists kept current: a burst of sales trending at its
store, a new bestseller on another till's feed within seconds, the incremental lists equal to a
full rebuild's, and a rebuild that swaps its counts in without losing the orders that arrived
meanwhile."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from hardware_sim.demo_data import DemoConfig, DemoSummary, generate_demo_data
from shared.errors import Conflict
from shared.wire import utc_now
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import (
    changes,
    customer_stores,
    dirty_lists,
    item_counts,
    item_days,
    item_pairs,
    products,
    recommendation_lists,
    store_item_counts,
)
from sync_server.main import create_app
from sync_server.services import importer, recs
from sync_server.services.recommender import TrendConfig, trending_scores
from tests.shared.factories import make_line
from tests.support.server import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    Hq,
    TillClient,
    count_rows,
    running_server,
    sale_for,
    sale_op,
    wait_for,
)

NO_WAIT = timedelta(0)
CATALOGUE = {
    "TR-HOT": "Seasonal",
    "TR-RARE": "Seasonal",
    "TR-BREAD": "Bakery",
    "TR-MILK": "Dairy",
    "BS-A": "Dairy",
    "BS-B": "Dairy",
}


@pytest.fixture
def hq(db: Database, db_url: str) -> Iterator[Hq]:
    now = utc_now()
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [
                {"sku": sku, "category": cat, "data": json.dumps({"name": sku}), "updated_at": now}
                for sku, cat in CATALOGUE.items()
            ],
        )
    settings = Settings(
        db_url=db_url,
        admin_token=ADMIN_TOKEN,
        card_worker_interval_s=0.05,
        recs_worker_interval_s=0.2,
        recs_lists_interval_s=0.2,
    )
    with running_server(create_app(settings, db=db)) as base_url:
        server = Hq(base_url=base_url, db=db)
        try:
            yield server
        finally:
            server.close()


def push(till: TillClient, *baskets: tuple[str, ...], days_ago: float = 0) -> None:
    at = utc_now() - timedelta(days=days_ago)
    sales = [
        sale_for(
            till,
            lines=tuple(make_line(i + 1, sku=sku) for i, sku in enumerate(basket)),
            created_at=at,
        )
        for basket in baskets
    ]
    results = till.push_ok([sale_op(s, till.take_seq()) for s in sales])
    assert {r["status"] for r in results} == {"applied"}


class Feed:
    """A till's view of the feed: every change pulled so far, newest per (entity, key)."""

    def __init__(self, till: TillClient) -> None:
        self.till = till
        self.cursor: str | None = None
        self.held: dict[str, Any] = {}
        self.seen: list[str] = []

    def list(self, key: str) -> list[str] | None:
        found, self.cursor = self.till.pull_all(self.cursor)
        for change in found:
            if change["entity"] == "recommendation":
                self.held[change["key"]] = change["data"]
                self.seen.append(change["key"])
        data = self.held.get(key)
        return None if data is None else [i["sku"] for i in data["items"]]


def test_trending_scores_need_support_and_a_real_rise() -> None:
    trend = TrendConfig()
    scores = trending_scores(
        [6, 3, 40, 120, 30, 5], [0, 0, 80, 400, 0, 40], trend
    )  # new, rare, doubled, +20 %, new and big, falling
    assert scores[0] > 0 and scores[2] > 0 and scores[4] > scores[0]
    assert scores[1] == 0 and scores[3] == 0 and scores[5] == 0
    # The rise in standard deviations: doubling a big seller beats six sales of a new one.
    assert scores[2] > scores[0]


def test_a_burst_of_sales_trends_at_its_store(hq: Hq) -> None:
    till = hq.enroll("S001", "S001-T1")
    other = hq.enroll("S002", "S002-T1")
    # Bread sells steadily (12 in the baseline weeks, 4 this week: as usual), milk is new but
    # rare, then a burst of TR-HOT.
    push(till, *[("TR-BREAD",)] * 12, days_ago=14)
    push(till, *[("TR-BREAD", "TR-MILK")] * 3)
    feed = Feed(till)
    start = time.monotonic()
    push(till, *[("TR-HOT",)] * 5, ("TR-RARE",), ("TR-RARE", "TR-HOT", "TR-BREAD"))

    def trending() -> list[str] | None:
        items = feed.list("trending:S001/*")
        return items if items and "TR-HOT" in items else None

    items = wait_for(trending, timeout=30, interval=0.1, what="TR-HOT trending at S001")
    lag = time.monotonic() - start
    assert items == ["TR-HOT"], items  # two sales of TR-RARE and steady bread do not trend
    assert lag < 30
    assert feed.list("trending:S001/Seasonal") == ["TR-HOT"]
    assert feed.list("trending:*/*") == ["TR-HOT"]  # the chain's, for every store
    assert feed.list("trending:S001/Bakery") is None  # no empty list for a quiet category

    served = till.client.get("/api/v1/stores/S001/trending").json()
    assert served["kind"] == "trending" and [i["sku"] for i in served["items"]] == ["TR-HOT"]
    assert served["items"][0]["score"] > 0
    by_category = till.client.get("/api/v1/stores/S001/trending", params={"category": "Dairy"})
    assert by_category.status_code == 200 and by_category.json()["items"] == []
    # A store with nothing trending of its own answers the chain's list.
    chain = other.client.get("/api/v1/stores/S002/trending").json()
    assert [i["sku"] for i in chain["items"]] == ["TR-HOT"] and chain["key"] == "S002/*"
    assert till.client.get("/api/v1/stores/S002/trending").status_code == 403
    admin = httpx.get(f"{hq.base_url}/api/v1/stores/S003/trending", headers=ADMIN_HEADERS)
    assert admin.status_code == 200
    assert httpx.get(f"{hq.base_url}/api/v1/stores/S001/trending").status_code == 401
    bad = till.client.get("/api/v1/stores/S0 01/trending")
    assert bad.status_code == 422 and bad.json()["detail"]
    # The other store's till gets the chain's lists, not S001's.
    other_feed = Feed(other)
    assert other_feed.list("trending:*/*") == ["TR-HOT"]
    assert not [k for k in other_feed.seen if k.startswith("trending:S001")]


def test_a_new_bestseller_reaches_the_feed_within_seconds(hq: Hq) -> None:
    till = hq.enroll("S001", "S001-T1")
    feed = Feed(till)
    push(till, *[("BS-A",)] * 3, ("BS-B",))

    def first_is(sku: str) -> Any:
        def probe() -> list[str] | None:
            items = feed.list("bestsellers:S001/*")
            return items if items and items[0] == sku else None

        return probe

    wait_for(first_is("BS-A"), timeout=30, interval=0.1, what="BS-A the bestseller")
    assert feed.list("bestsellers:S001/Dairy") == ["BS-A", "BS-B"]
    start = time.monotonic()
    push(till, *[("BS-B",)] * 4)
    items = wait_for(first_is("BS-B"), timeout=30, interval=0.1, what="BS-B the bestseller")
    lag = time.monotonic() - start
    assert items == ["BS-B", "BS-A"] and lag < 30
    assert feed.list("bestsellers:S001/Dairy") == ["BS-B", "BS-A"]
    served = till.client.get("/api/v1/stores/S001/bestsellers").json()
    assert [i["sku"] for i in served["items"]] == ["BS-B", "BS-A"]
    # Deltas: only the lists of the store that sold are recomputed and sent again.
    other = hq.enroll("S002", "S002-T1")
    other_feed = Feed(other)
    push(other, ("BS-A",))
    wait_for(lambda: other_feed.list("bestsellers:S002/*"), timeout=30, interval=0.1)
    before = _feed_position(hq.db, "bestsellers:S002/*")
    push(till, *[("BS-A",)] * 2)
    wait_for(lambda: _feed_position(hq.db, "bestsellers:S001/*") > before or None, timeout=30)
    wait_for(lambda: count_rows(hq.db, dirty_lists) == 0 or None, timeout=30)
    assert _feed_position(hq.db, "bestsellers:S002/*") == before


def _feed_position(db: Database, key: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                sa.select(changes.c.id).where(
                    changes.c.entity == "recommendation", changes.c.key == key
                )
            ).scalar_one()
        )


# ---------------------------------------------------------------------------------------------
# Incremental lists equal the rebuild's


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate_demo_data(
        tmp_path_factory.mktemp("lists-demo"),
        DemoConfig(seed=11, stores=3, products=300, customers=600, orders=2500),
    )


def import_demo(db: Database, demo: DemoSummary) -> None:
    for kind, name in (
        ("stores", "stores.json"),
        ("products", "products.csv"),
        ("customers", "customers.csv"),
        ("orders", "orders.jsonl"),
        ("web_events", "web_events.jsonl"),
    ):
        report = importer.import_file(db, kind, demo.out_dir / name)  # type: ignore[arg-type]
        assert not report.rejected, (kind, report.errors[:3])


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


def test_incremental_lists_are_the_rebuilds_lists(db: Database, demo: DemoSummary) -> None:
    import_demo(db, demo)
    report = recs.rebuild(db, settle=NO_WAIT)
    assert report.lists > 0 and report.longest_write_s < report.seconds
    personal = stored(db, recs.PERSONAL)
    assert len(personal) > 300
    config = recs.default_config()
    now = utc_now()
    with db.read() as conn:
        customers = sorted(personal, key=str)[::7]
        again = recs.personal_lists(conn, [UUID(c) for c in customers], config=config, now=now)
        store_ids = sorted(
            conn.execute(sa.select(store_item_counts.c.store_id).distinct()).scalars()
        )
        lists = recs.store_lists(conn, [*store_ids, "*"], config=config, now=now)
    assert len(again) == len(customers)
    same = sum(lst.items_json() == personal[lst.key] for lst, _ in again)
    assert same >= 0.98 * len(again), f"{same} of {len(again)} personal lists equal"
    best = stored(db, recs.BESTSELLERS)
    for lst, _ in lists:
        if lst.kind == recs.BESTSELLERS:
            assert lst.items_json() == best[lst.key], lst.key
    # Browsing shaped the lists: some customers' lists hold products they only looked at.
    with db.read() as conn:
        viewed_only = conn.execute(
            sa.text(
                "SELECT count(*) FROM events e JOIN profiles p ON p.profile_id = e.profile_id "
                "WHERE e.channel = 'web' AND e.kind = 'Product Viewed'"
            )
        ).scalar_one()
    assert viewed_only > 0
    with db.write() as conn:
        assert recs.publish(conn, again + lists) <= 0.02 * len(again)


def test_the_rebuild_swaps_counts_in_and_loses_no_order(
    db: Database, demo: DemoSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_demo(db, demo)
    # Small staging transactions: many chunks, and the chunked drop of the old tables.
    monkeypatch.setattr(recs, "STAGE_ROWS", 3000)
    monkeypatch.setattr(recs, "SETTLE", NO_WAIT)
    recs.rebuild(db, settle=NO_WAIT)
    with db.read() as conn:
        customer, store = conn.execute(
            sa.select(customer_stores.c.customer_id, customer_stores.c.store_id).limit(1)
        ).one()
    stage = recs._stage

    def stage_then_sell(clock: Any, rows: Any) -> Any:
        staged = stage(clock, rows)
        # A sale arrives while the rebuild runs, and the incremental loop counts it into the
        # old tables before the swap.
        _insert_order(db, store, customer, ["PAIR-X", "PAIR-Y"])
        assert recs.count_new_orders(db, config=recs.default_config()) == 1
        return staged

    monkeypatch.setattr(recs, "_stage", stage_then_sell)
    report = recs.rebuild(db, settle=NO_WAIT)
    monkeypatch.setattr(recs, "_stage", stage)
    assert report.longest_write_s < report.seconds
    assert _pair(db) is None  # the swap replaced the tables the sale was counted into...
    assert recs.count_new_orders(db, config=recs.default_config()) == 1  # ...and it counts again
    assert _pair(db) == pytest.approx(_weight_of_newest_order(db))
    with db.read() as conn:
        left = [t for t in sa.inspect(conn).get_table_names() if t.endswith(("_next", "_old"))]
        days = conn.execute(sa.select(sa.func.count()).select_from(item_days)).scalar_one()
    assert left == []
    assert days >= 0
    # A second rebuild from scratch counts exactly what the two steps counted.
    with db.read() as conn:
        before = dict(conn.execute(sa.select(item_counts.c.sku, item_counts.c.weight)).all())
    recs.rebuild(db, settle=NO_WAIT)
    with db.read() as conn:
        after = dict(conn.execute(sa.select(item_counts.c.sku, item_counts.c.weight)).all())
    assert after.keys() == before.keys()
    assert all(after[k] == pytest.approx(before[k]) for k in after)


def _insert_order(db: Database, store: str, customer: Any, skus: list[str]) -> None:
    from uuid import uuid4

    from sync_server.db.schema import order_lines, orders

    now = utc_now()
    order_id = uuid4()
    with db.write() as conn:
        conn.execute(
            orders.insert().values(
                order_id=order_id,
                channel="store",
                store_id=store,
                customer_id=customer,
                created_at=now,
                currency="EUR",
                total_minor=200,
                ingested_at=now,
            )
        )
        conn.execute(
            order_lines.insert(),
            [
                {"order_id": order_id, "line_no": n, "sku": sku, "quantity": 1, "amount_minor": 100}
                for n, sku in enumerate(skus, start=1)
            ],
        )


def _pair(db: Database) -> float | None:
    with db.read() as conn:
        return conn.execute(
            sa.select(item_pairs.c.weight).where(
                item_pairs.c.a == "PAIR-X", item_pairs.c.b == "PAIR-Y"
            )
        ).scalar_one_or_none()


def _weight_of_newest_order(db: Database) -> float:
    with db.read() as conn:
        return float(
            conn.execute(
                sa.select(item_counts.c.weight).where(item_counts.c.sku == "PAIR-X")
            ).scalar_one()
        )


def test_a_second_rebuild_at_the_same_time_is_refused(db: Database) -> None:
    with recs._only_rebuild(db), pytest.raises(Conflict, match="Another rebuild"):
        recs.rebuild(db, settle=NO_WAIT)
    recs.rebuild(db, settle=NO_WAIT)  # and once the first is done, it runs
