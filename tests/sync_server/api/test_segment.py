"""The Segment-compatible web events API against a real server: calls accepted and stored once,
identities joined to the customer the tills know, bad calls refused with a message (never a
500), and what the web shop saw reaching the customer's card and personal list on the feed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from shared.identifiers import Identifier
from shared.wire import utc_now
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import events, identifiers, order_lines, orders, products, profiles
from sync_server.main import create_app
from sync_server.services import identity
from tests.support.server import (
    ADMIN_TOKEN,
    Hq,
    TillClient,
    count_rows,
    running_server,
    wait_for,
)

WRITE_KEY = "wk_test_0123456789abcdef"
SEGMENT = "/api/v1/segment/v1"
EMAIL = "maria.muller@example.com"


@pytest.fixture
def hq(db: Database, db_url: str) -> Iterator[Hq]:
    now = utc_now()
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [
                {"sku": sku, "category": cat, "data": json.dumps({"name": name}), "updated_at": now}
                for sku, cat, name in (
                    ("WEB-TSHIRT", "Apparel", "Organic T-Shirt"),
                    ("WEB-JEANS", "Apparel", "Slim Jeans"),
                    ("WEB-BELT", "Apparel", "Leather Belt"),
                )
            ],
        )
    settings = Settings(
        db_url=db_url,
        admin_token=ADMIN_TOKEN,
        segment_write_keys=["another-key-0123456789", WRITE_KEY],
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


@pytest.fixture
def web(hq: Hq) -> Iterator[httpx.Client]:
    """The web shop: a Segment client (the write key as HTTP Basic user, as Segment's do)."""
    with httpx.Client(base_url=hq.base_url + SEGMENT, auth=(WRITE_KEY, ""), timeout=30) as c:
        yield c


def known_customer(db: Database, store_id: str = "S001") -> UUID:
    """A customer HQ knows by email, cached by ``store_id``'s tills."""
    customer = uuid.uuid4()
    with db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=customer,
            source="import",
            claims=[Identifier("email", EMAIL)],
            home_store=store_id,
        )
        identity.customers_changed(conn, {customer}, store_id=store_id)
    return customer


def track(event: str, sku: str | None = None, **over: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "event": event,
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-1",
        "timestamp": utc_now().isoformat(),
        "properties": {"sku": sku, "price": "19.99", "currency": "EUR"} if sku else {},
    }
    call.update(over)
    return call


def stored_events(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.select(events).order_by(events.c.at)).all())


def test_each_call_type_is_accepted_with_every_kind_of_write_key(hq: Hq, web: httpx.Client) -> None:
    calls = {
        "track": track("Product Viewed", "WEB-TSHIRT"),
        "identify": {"anonymousId": "anon-1", "userId": "wu-1", "traits": {"email": EMAIL}},
        "page": {"anonymousId": "anon-1", "name": "Home", "properties": {"url": "/"}},
        "screen": {"userId": "wu-1", "name": "Basket"},
        "group": {"userId": "wu-1", "groupId": "acme", "traits": {"name": "ACME"}},
        "alias": {"previousId": "anon-1", "userId": "wu-1"},
    }
    for path, call in calls.items():
        response = web.post(f"/{path}", json=call)
        assert response.status_code == 200, (path, response.text)
        assert response.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    kinds = sorted(e.kind for e in stored_events(hq.db))
    assert kinds == ["Product Viewed", "alias", "group", "identify", "page", "screen"]
    assert {e.channel for e in stored_events(hq.db)} == {"web"}

    with httpx.Client(base_url=hq.base_url + SEGMENT, timeout=30) as raw:
        check_write_keys(raw)
    assert len(stored_events(hq.db)) == 9


def check_write_keys(raw: httpx.Client) -> None:
    """Every way Segment accepts a write key works; anything else is 401 with a reason."""
    bearer = raw.post(
        "/track",
        json=track("Product Viewed", "WEB-JEANS"),
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    )
    assert bearer.status_code == 200, bearer.text
    in_body = raw.post(
        "/batch", json={"writeKey": WRITE_KEY, "batch": [{**track("Page"), "type": "track"}]}
    )
    assert in_body.status_code == 200, in_body.text
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert raw.post(
        "/track", json=track("X"), headers={"Authorization": f"Basic {basic}"}
    ).is_success
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer not-the-key"}, 401),
        ({"Authorization": "Basic !!!"}, 401),
        ({"Authorization": "Token abc"}, 401),
    ):
        refused = raw.post("/track", json=track("Product Viewed", "WEB-BELT"), headers=headers)
        assert refused.status_code == status, (headers, refused.text)
        assert refused.json()["detail"]


def test_without_write_keys_the_api_is_off(hq: Hq) -> None:
    app = create_app(Settings(db_url=str(hq.db.url), admin_token=ADMIN_TOKEN), db=hq.db)
    with running_server(app) as base_url:
        response = httpx.post(
            f"{base_url}{SEGMENT}/track", json=track("Product Viewed"), auth=(WRITE_KEY, "")
        )
    assert response.status_code == 403
    assert "OMNITILL_SEGMENT_WRITE_KEYS" in response.json()["detail"]


def test_a_message_id_is_stored_once(hq: Hq, web: httpx.Client) -> None:
    call = track("Product Viewed", "WEB-TSHIRT")
    assert web.post("/track", json=call).json()["accepted"] == 1
    again = web.post("/track", json=call)
    assert again.status_code == 200
    assert again.json() == {"success": True, "accepted": 0, "duplicates": 1, "rejected": []}
    twice_in_a_batch = web.post("/batch", json={"batch": [{**call, "type": "track"}] * 2})
    assert twice_in_a_batch.json()["duplicates"] == 2
    # Without a messageId the content names the call: an identical retry is caught too.
    anonymous = {k: v for k, v in track("Product Viewed", "WEB-JEANS").items() if k != "messageId"}
    assert web.post("/track", json=anonymous).json()["accepted"] == 1
    assert web.post("/track", json=anonymous).json()["duplicates"] == 1
    assert len(stored_events(hq.db)) == 2

    # An order sent under two messageIds (a client that regenerates them) is one order.
    order = track(
        "Order Completed",
        userId="wu-9",
        properties={
            "order_id": "WEB-1001",
            "currency": "EUR",
            "total": "41.97",
            "products": [
                {"sku": "WEB-TSHIRT", "price": "19.99", "quantity": 1},
                {"product_id": "WEB-JEANS", "price": 10.99, "quantity": 2},
            ],
        },
    )
    assert web.post("/track", json=order).json()["accepted"] == 1
    assert web.post("/track", json={**order, "messageId": str(uuid.uuid4())}).json()["accepted"]
    assert count_rows(hq.db, orders) == 1
    with hq.db.read() as conn:
        row = conn.execute(sa.select(orders)).one()
        lines = conn.execute(
            sa.select(order_lines.c.sku, order_lines.c.quantity, order_lines.c.amount_minor)
        ).all()
    assert row.channel == "online" and row.store_id is None and row.total_minor == 4197
    assert row.order_id == uuid.uuid5(
        uuid.uuid5(uuid.NAMESPACE_URL, "https://omnitill.org/web/order"), "WEB-1001"
    )
    assert sorted(lines) == [("WEB-JEANS", 2, 2198), ("WEB-TSHIRT", 1, 1999)]


BAD_CALLS: list[tuple[str, Any, str]] = [
    ("track", {"event": "Product Viewed", "properties": {}}, "anonymousId or userId"),
    ("track", {"anonymousId": "a"}, "event"),
    ("track", {"anonymousId": "a", "event": "X", "timestamp": "2026-11-23T09:30:00"}, "time zone"),
    ("track", {"anonymousId": "a", "event": "X", "timestamp": "yesterday"}, "timestamp"),
    ("track", {"anonymousId": "a", "event": "X", "properties": []}, "properties"),
    ("track", {"anonymousId": "a", "event": "X" * 65}, "event"),
    ("track", {"anonymousId": "a\x00b", "event": "X"}, "anonymousId"),
    ("track", {"type": "identify", "anonymousId": "a", "event": "X"}, "type"),
    ("track", {"anonymousId": "a", "event": "X", "properties": {"sku": "S" * 65}}, "sku"),
    ("identify", {"userId": "u", "traits": {"email": "maria@"}}, "traits.email"),
    ("identify", {"userId": "u", "traits": {"phone": "12"}}, "traits.phone"),
    ("alias", {"userId": "u"}, "previousId"),
    (
        "track",
        {
            "anonymousId": "a",
            "event": "Order Completed",
            "properties": {"order_id": "o1", "products": [{"sku": "X", "price": "1.999"}]},
        },
        "products[0].price",
    ),
    (
        "track",
        {"anonymousId": "a", "event": "Order Completed", "properties": {"order_id": "o1"}},
        "properties.products",
    ),
    (
        "track",
        {
            "anonymousId": "a",
            "event": "X",
            "timestamp": (utc_now() + timedelta(days=3)).isoformat(),
        },
        "ahead",
    ),
]


@pytest.mark.parametrize(("path", "body", "named"), BAD_CALLS, ids=lambda v: str(v)[:30])
def test_bad_calls_are_refused_with_a_message(
    hq: Hq, web: httpx.Client, path: str, body: Any, named: str
) -> None:
    response = web.post(f"/{path}", json=body)
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"], response.json()
    assert count_rows(hq.db, events) == 0 and count_rows(hq.db, orders) == 0


def test_malformed_bodies_and_sizes(hq: Hq, web: httpx.Client) -> None:
    for path, content in (
        ("/track", b'{"event": "X", "anonymousId": '),
        ("/track", b"[1, 2]"),
        ("/batch", b'{"batch": {"type": "track"}}'),
        ("/batch", b'{"batch": []}'),
        ("/batch", b"null"),
    ):
        response = web.post(path, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, content, response.text)
        assert response.json()["detail"]
    huge = track("Product Viewed", "WEB-TSHIRT", properties={"blob": "x" * 40_000})
    assert web.post("/track", json=huge).status_code == 413
    too_many = {"batch": [track("Product Viewed", "WEB-TSHIRT") for _ in range(3000)]}
    refused = web.post("/batch", json=too_many)
    assert refused.status_code == 413 and "512,000" in refused.json()["detail"]
    assert count_rows(hq.db, events) == 0


def test_a_batch_stores_the_good_calls_and_names_the_bad_ones(hq: Hq, web: httpx.Client) -> None:
    good = [track("Product Viewed", "WEB-TSHIRT"), track("Product Added", "WEB-JEANS")]
    body = {
        "batch": [
            {**good[0], "type": "track"},
            {"type": "track", "messageId": "bad-1", "event": "X"},  # nobody
            {"type": "trck", "anonymousId": "a"},
            "not an object",
            {**good[1], "type": "track"},
            {"type": "identify", "userId": "wu-1", "traits": {"email": "not-an-email"}},
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.3.0"}},
    }
    response = web.post("/batch", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is False and result["accepted"] == 2
    assert [(r["index"], r["messageId"]) for r in result["rejected"]] == [
        (1, "bad-1"),
        (2, None),
        (3, None),
        (5, None),
    ]
    reasons = [r["detail"] for r in result["rejected"]]
    assert "anonymousId or userId" in reasons[0] and "trck" in reasons[1]
    assert "JSON object" in reasons[2] and "traits.email" in reasons[3]
    stored = stored_events(hq.db)
    assert [e.kind for e in stored] == ["Product Viewed", "Product Added"]
    # The batch's context went with each call.
    assert json.loads(stored[0].data)["context"]["library"]["name"] == "analytics-python"

    everything_bad = web.post("/batch", json={"batch": [{"type": "track"}, {"type": "nope"}]})
    assert everything_bad.status_code == 422
    detail = everything_bad.json()
    assert detail["detail"].startswith("call 0:") and "1 more" in detail["detail"]
    assert len(detail["rejected"]) == 2 and detail["accepted"] == 0
    assert len(stored_events(hq.db)) == 2


def pulled(till: TillClient, state: dict[str, Any], entity: str, key: str) -> Any:
    """What the till holds for (entity, key) after pulling the feed on from ``state``'s cursor
    (``state`` keeps every change pulled, as the till's cache does)."""
    found, state["cursor"] = till.pull_all(state.get("cursor"))
    for change in found:
        state[f"{change['entity']}|{change['key']}"] = change["data"]
    return state.get(f"{entity}|{key}")


def test_browsing_joins_the_customer_and_reaches_card_and_personal_list(
    hq: Hq, web: httpx.Client
) -> None:
    customer = known_customer(hq.db)
    till = hq.enroll("S001", "S001-T1")
    state: dict[str, Any] = {}
    wait_for(lambda: pulled(till, state, "customer", str(customer)), timeout=10)

    # Browsing before logging in: an anonymous visitor nobody knows yet.
    earlier = (utc_now() - timedelta(minutes=5)).isoformat()
    assert web.post(
        "/track", json=track("Product Viewed", "WEB-TSHIRT", timestamp=earlier)
    ).is_success
    [anonymous] = stored_events(hq.db)
    assert anonymous.profile_id is None and anonymous.anonymous_id == "anon-1"

    # Logging in: the account and the email (as typed) name the customer the tills know.
    start = time.monotonic()
    identify = {
        "anonymousId": "anon-1",
        "userId": "wu-1",
        "traits": {"email": "Maria.Muller@Example.com "},
    }
    assert web.post("/identify", json=identify).is_success
    assert web.post("/track", json=track("Product Added", "WEB-JEANS", userId="wu-1")).is_success
    with hq.db.read() as conn:
        owners = {e.profile_id for e in conn.execute(sa.select(events.c.profile_id))}
        claims = set(
            conn.execute(
                sa.select(identifiers.c.kind, identifiers.c.value).where(
                    identifiers.c.profile_id == customer
                )
            ).all()
        )
        web_profiles = conn.execute(
            sa.select(sa.func.count()).where(profiles.c.source == "web")
        ).scalar_one()
    assert owners == {customer}  # the earlier anonymous view joined her too
    assert {("web_user", "wu-1"), ("web_anon", "anon-1"), ("email", EMAIL)} <= claims
    assert web_profiles == 0

    def card_shows_it() -> Any:
        card = pulled(till, state, "customer", str(customer))
        viewed = [i["sku"] for i in card["recently_viewed"]]
        cart = [i["sku"] for i in card["cart_items"]]
        return card if "WEB-TSHIRT" in viewed and cart == ["WEB-JEANS"] else None

    try:
        card = wait_for(card_shows_it, timeout=15, interval=0.1)
    except AssertionError as exc:
        held = state.get(f"customer|{customer}")
        raise AssertionError(f"her card lacks her browsing: {held}") from exc

    def personal() -> list[str] | None:
        data = pulled(till, state, "recommendation", f"personal:{customer}")
        return [i["sku"] for i in data["items"]] if data else None

    listed = wait_for(personal, timeout=30, interval=0.1, what="her personal list")
    lag = time.monotonic() - start
    # Carted weighs more than viewed; nothing else is known about her.
    assert listed[:2] == ["WEB-JEANS", "WEB-TSHIRT"], listed
    assert lag < 30
    served = till.client.get(f"/api/v1/customers/{customer}/recommendations").json()
    assert [i["sku"] for i in served["items"]][:2] == ["WEB-JEANS", "WEB-TSHIRT"]
    assert list(card["recommendations"])[:2] in ([], ["WEB-JEANS", "WEB-TSHIRT"])

    # She buys the jeans online: the order is hers, and they leave her cart and her list.
    order = track(
        "Order Completed",
        userId="wu-1",
        properties={
            "order_id": str(uuid.uuid4()),
            "currency": "EUR",
            "products": [
                {"sku": "WEB-JEANS", "price": "49.00"},
                {"sku": "WEB-BELT", "price": "19.00"},
            ],
        },
    )
    assert web.post("/track", json=order).is_success
    with hq.db.read() as conn:
        assert conn.execute(sa.select(orders.c.customer_id)).scalar_one() == customer

    def bought() -> list[str] | None:
        items = personal()
        return items if items is not None and "WEB-JEANS" not in items else None

    assert wait_for(bought, timeout=30, interval=0.1)[0] == "WEB-TSHIRT"

    def cart_emptied() -> bool:
        return not pulled(till, state, "customer", str(customer))["cart_items"]

    wait_for(cart_emptied, timeout=15, interval=0.1, what="the cart without the jeans")


def test_an_online_order_counts_for_also_bought(hq: Hq, web: httpx.Client) -> None:
    till = hq.enroll("S002", "S002-T1")
    state: dict[str, Any] = {}
    for n in range(2):
        call = track(
            "Order Completed",
            userId=f"shopper-{n}",
            properties={
                "order_id": str(uuid.uuid4()),
                "currency": "EUR",
                "revenue": 30,
                "products": [{"sku": "WEB-TSHIRT", "price": 20}, {"sku": "WEB-BELT", "price": 10}],
            },
        )
        assert web.post("/track", json=call).is_success
    with hq.db.read() as conn:
        made = conn.execute(
            sa.select(profiles.c.source, sa.func.count()).group_by(profiles.c.source)
        ).all()
    assert made == [("web", 2)]  # each unknown account became a web customer

    def listed() -> list[str] | None:
        data = pulled(till, state, "recommendation", "also_bought:WEB-TSHIRT")
        return [i["sku"] for i in data["items"]] if data else None

    assert wait_for(listed, timeout=30, interval=0.1) == ["WEB-BELT"]


def test_two_people_on_one_browser_are_not_merged(hq: Hq, web: httpx.Client) -> None:
    first = known_customer(hq.db)
    second = uuid.uuid4()
    with hq.db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=second,
            source="import",
            claims=[Identifier("email", "jan@example.com")],
        )
    laptop = "family-laptop"
    assert web.post(
        "/identify", json={"anonymousId": laptop, "traits": {"email": EMAIL}}
    ).is_success
    assert web.post(
        "/identify", json={"anonymousId": laptop, "traits": {"email": "jan@example.com"}}
    ).is_success
    with hq.db.read() as conn:
        assert identity.customer_of(conn, first) == first
        assert identity.customer_of(conn, second) == second
        owners = list(conn.execute(sa.select(events.c.profile_id).order_by(events.c.at)).scalars())
    assert owners == [first, second]


def test_the_api_is_in_the_openapi_document(hq: Hq) -> None:
    spec = httpx.get(f"{hq.base_url}/openapi.json").json()
    for call in ("track", "identify", "page", "screen", "group", "alias", "batch"):
        operation = spec["paths"][f"{SEGMENT}/{call}"]["post"]
        assert operation["tags"] == ["web events"] and operation["summary"]
    schemas = spec["components"]["schemas"]
    assert "examples" in schemas["TrackCall"] and "TrackCall" in json.dumps(schemas["SegmentBatch"])
