"""Customer lookup and card building on both engines: every part of a card, merged customers
answered by the survivor, shared identifiers and erased customers naming nobody, the card on
the feed served as stored, and the till's token checked again inside the lookup's own read.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Connection

from shared.errors import AuthError, InvalidInput, NotFound
from shared.hlc import HLCTimestamp
from shared.identifiers import Identifier
from shared.wire import utc_now
from sync_server.api.deps import KnownTills, TillToken
from sync_server.db.engine import Database
from sync_server.db.schema import (
    consent_events,
    events,
    order_lines,
    orders,
    products,
    recommendation_lists,
    returns,
    stores,
)
from sync_server.services import cards, feed, identity, lookup
from sync_server.services.tills import Till, enroll_till, hash_token, revoke_till
from tests.support.server import Hq

LOOKUP = "/api/v1/customers/lookup"
NAMES = {"SKU-A": "Apple", "SKU-B": "Bread", "SKU-C": "Cheese", "SKU-D": "Dates"}
NAMES |= {"SKU-E": "Eggs", "SKU-V": "Vase", "SKU-W": "Wine", "SKU-X": "Xylophone"}
NAMES |= {"SKU-Y": "Yarn", "SKU-OLD": "Old news"}


@dataclass(frozen=True)
class Anna:
    """A customer of two merged profiles with something in every part of her card."""

    customer: uuid.UUID
    twin: uuid.UUID  # her second profile, merged into the first
    others: tuple[uuid.UUID, uuid.UUID]  # two more customers who typed the shop's email
    now: datetime


def stamp(counter: int) -> str:
    return HLCTimestamp(1_700_000_000_000, counter, "S001-T1").encode()


def sale(
    conn: Connection, customer: uuid.UUID, at: datetime, sku: str, amount: int, **kw: Any
) -> None:
    order = uuid.uuid4()
    conn.execute(
        orders.insert().values(
            order_id=order,
            channel=kw.get("channel", "store"),
            store_id="S001",
            customer_id=customer,
            profile_id=customer,
            created_at=at,
            currency="EUR",
            total_minor=amount,
            ingested_at=at,
        )
    )
    conn.execute(
        order_lines.insert().values(
            order_id=order, line_no=1, sku=sku, quantity=1, amount_minor=amount
        )
    )


def web(conn: Connection, profile: uuid.UUID, kind: str, sku: str, at: datetime) -> None:
    conn.execute(
        events.insert().values(
            event_id=uuid.uuid4(), profile_id=profile, channel="web", kind=kind, at=at, sku=sku
        )
    )


def make_anna(db: Database) -> Anna:
    now = utc_now()
    day = timedelta(days=1)
    anna, twin = uuid.uuid4(), uuid.uuid4()
    others = (uuid.uuid4(), uuid.uuid4())
    email = Identifier("email", "anna@example.com")
    shop = Identifier("email", "shop@example.com")
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [
                {"sku": sku, "data": json.dumps({"sku": sku, "name": name}), "updated_at": now}
                for sku, name in NAMES.items()
            ],
        )
        loyalty = Identifier("loyalty", "9900000000010")
        claims = [email, loyalty, shop]
        identity.ensure_profile(
            conn, profile_id=anna, source="import", claims=claims, now=now - 90 * day
        )
        # Her twin from a till shares her email: one customer, the older profile's.
        phone = Identifier("phone", "+4915112345678")
        identity.ensure_profile(
            conn, profile_id=twin, source="till", claims=[email, phone], now=now - 60 * day
        )
        # Two others typed the shop's email: shared, it merges nobody and names nobody.
        for n, other in enumerate(others):
            identity.ensure_profile(
                conn, profile_id=other, source="till", claims=[shop], now=now - (50 - n) * day
            )
        for profile, field, value, counter in (
            (anna, "first_name", "Anna", 1),
            (twin, "first_name", "Anne", 2),  # newer: wins although written on the twin
            (anna, "last_name", "Berg", 1),
        ):
            identity.write_field(
                conn,
                customer=anna,
                profile=profile,
                field=field,
                value=value,
                hlc=stamp(counter),
                writer="S001-T1",
                now=now,
            )
        conn.execute(
            consent_events.insert(),
            [
                {
                    "profile_id": anna,
                    "channel": "email",
                    "granted": True,
                    "at": now - 3 * day,
                    "source": "t",
                },
                {
                    "profile_id": twin,
                    "channel": "email",
                    "granted": False,
                    "at": now - 2 * day,
                    "source": "t",
                },
                {
                    "profile_id": anna,
                    "channel": "sms",
                    "granted": True,
                    "at": now - 4 * day,
                    "source": "t",
                },
            ],
        )
        for days_ago, sku, amount in (
            (10, "SKU-A", 1000),
            (9, "SKU-B", 500),
            (8, "SKU-A", 200),  # bought again: listed once, at its latest
            (7, "SKU-GONE", 300),  # no longer in the catalogue: shown by its SKU
            (6, "SKU-C", 2500),
            (5, "SKU-D", 100),
            (4, "SKU-E", 100),
            (20, "SKU-Y", 400),  # bought before she put it in her cart again
        ):
            sale(conn, anna, now - days_ago * day, sku, amount)
        sale(conn, anna, now - day, "SKU-X", 900, channel="web")  # bought after carting it
        conn.execute(
            returns.insert().values(
                return_id=uuid.uuid4(),
                original_sale_id=uuid.uuid4(),
                store_id="S001",
                till_id="S001-T1",
                customer_id=anna,
                created_at=now,
                total_minor=700,
                payload="{}",
                ingested_at=now,
            )
        )
        hour = timedelta(hours=1)
        web(conn, twin, "Product Viewed", "SKU-V", now - 2 * hour)
        web(conn, anna, "Product Viewed", "SKU-A", now - 3 * hour)
        web(conn, anna, "Product Viewed", "SKU-V", now - 4 * hour)
        web(conn, anna, "Product Viewed", "SKU-OLD", now - 40 * day)  # beyond the 30 days
        web(conn, anna, "Product Added", "SKU-W", now - hour)
        web(conn, anna, "Product Added", "SKU-X", now - 2 * day)
        web(conn, twin, "Product Added", "SKU-Y", now - 3 * day)
        conn.execute(
            recommendation_lists.insert().values(
                kind="personal",
                key=str(anna),
                data=json.dumps({"items": [{"sku": f"SKU-R{n:02d}"} for n in range(12)]}),
                updated_at=now,
            )
        )
    return Anna(customer=anna, twin=twin, others=others, now=now)


@pytest.fixture
def anna(db: Database) -> Anna:
    return make_anna(db)


def items(card: dict[str, Any], part: str) -> list[tuple[str, str, datetime]]:
    return [(i["sku"], i["name"], i["at"]) for i in card[part]]


def test_a_card_holds_the_customer_across_her_profiles(db: Database, anna: Anna) -> None:
    day, hour = timedelta(days=1), timedelta(hours=1)
    now = anna.now
    with db.read() as conn:
        card = cards.build_card(conn, anna.customer)

    assert card is not None
    got = card.model_dump()
    assert got["customer_id"] == anna.customer
    assert (got["first_name"], got["last_name"]) == ("Anne", "Berg")
    assert [(i["kind"], i["value"]) for i in got["identifiers"]] == [
        ("email", "anna@example.com"),
        ("loyalty", "9900000000010"),
        ("phone", "+4915112345678"),
    ]
    assert got["consents"] == {"email": False, "sms": True}
    # Spent 6,000 (web orders count too), 700 refunded: 53 points.
    assert got["loyalty_points"] == 53
    assert items(got, "recent_purchases") == [
        ("SKU-E", "Eggs", now - 4 * day),
        ("SKU-D", "Dates", now - 5 * day),
        ("SKU-C", "Cheese", now - 6 * day),
        ("SKU-GONE", "SKU-GONE", now - 7 * day),
        ("SKU-A", "Apple", now - 8 * day),
    ]
    assert items(got, "recently_viewed") == [
        ("SKU-V", "Vase", now - 2 * hour),
        ("SKU-A", "Apple", now - 3 * hour),
    ]
    assert items(got, "cart_items") == [
        ("SKU-W", "Wine", now - hour),
        ("SKU-Y", "Yarn", now - 3 * day),
    ]
    assert got["recommendations"] == tuple(f"SKU-R{n:02d}" for n in range(10))


def test_only_a_live_customer_has_a_card(db: Database, anna: Anna) -> None:
    with db.read() as conn:
        assert cards.build_card(conn, anna.twin) is None  # merged into Anna
        assert cards.build_card(conn, uuid.uuid4()) is None
        assert cards.build_card(conn, anna.others[0]) is not None
    with db.write() as conn:
        identity.erase_customer(conn, anna.customer)
    with db.read() as conn:
        assert cards.build_card(conn, anna.customer) is None


def look_up(db: Database, text: str, store_id: str = "S001") -> dict[str, Any]:
    with db.read() as conn:
        return dict(json.loads(lookup.card_json(conn, store_id=store_id, text=text)))


def test_lookup_answers_with_the_surviving_customer(db: Database, anna: Anna) -> None:
    with db.read() as conn:
        built = cards.build_card(conn, anna.customer)
    assert built is not None
    expected = json.loads(built.model_dump_json())
    # Her twin's own phone number and a national spelling of it, her email in capitals.
    for text in ("phone:+4915112345678", "0151 12345678", "email:ANNA@Example.com"):
        found = look_up(db, text)
        assert found["customer_id"] == str(anna.customer), text
        assert {**found, "updated_at": None} == {**expected, "updated_at": None}


def test_shared_erased_and_unknown_identifiers_name_nobody(db: Database, anna: Anna) -> None:
    with pytest.raises(NotFound, match=r"No customer with email shop@example\.com"):
        look_up(db, "shop@example.com")
    with pytest.raises(NotFound, match=r"No customer with email nobody@example\.com"):
        look_up(db, "email:nobody@example.com")
    with db.write() as conn:
        identity.erase_customer(conn, anna.customer)
    for text in ("anna@example.com", "phone:+4915112345678", "loyalty:9900000000010"):
        with pytest.raises(NotFound):
            look_up(db, text)


def test_the_card_on_the_feed_is_served_as_stored(db: Database, anna: Anna) -> None:
    stored = json.dumps({"customer_id": str(anna.customer), "first_name": "From the feed"})
    with db.write() as conn:
        feed.record_change(
            conn, entity="customer", key=str(anna.customer), scope="S007", data=stored
        )
    with db.read() as conn:
        assert lookup.card_json(conn, store_id="S001", text="anna@example.com") == stored


def test_phone_numbers_are_read_with_the_region_of_the_store(db: Database, anna: Anna) -> None:
    with db.write() as conn:
        conn.execute(
            stores.insert().values(
                store_id="S-UK",
                data=json.dumps({"store_id": "S-UK", "default_region": "GB"}),
                updated_at=anna.now,
            )
        )
    # 0151 ... is Anna's German mobile where the store's region is Germany (the default) and
    # no phone number at all in Britain.
    assert look_up(db, "0151 12345678")["customer_id"] == str(anna.customer)
    with pytest.raises(InvalidInput, match="region GB"):
        look_up(db, "0151 12345678", store_id="S-UK")


@pytest.mark.parametrize(
    ("text", "needs"),
    [
        ("email:a@example.com", False),
        ("loyalty:9900000000010", False),
        ("a@example.com", False),
        ("phone:0151 12345678", True),
        ("0151 12345678", True),
        ("9900000000010", True),  # a loyalty card, or a phone number if its check digit fails
        ("web_anon:abc", False),
    ],
)
def test_only_what_may_be_a_phone_number_needs_the_region(text: str, needs: bool) -> None:
    assert identity.lookup_needs_region(text) is needs


# ---------------------------------------------------------------------------------------------
# The till's token, checked in the lookup's own read


def test_a_remembered_token_is_still_checked(db: Database) -> None:
    token = enroll_till(db, store_id="S001", till_id="S001-T1")
    known = KnownTills()
    caller = TillToken(token=token, digest=hash_token(token), db=db, known=known)
    with db.read() as conn:
        till = caller.confirm(conn)
    assert (till.till_id, till.store_id) == ("S001-T1", "S001")
    known.remember(caller.digest, till)

    revoke_till(db, "S001-T1")

    with db.read() as conn, pytest.raises(AuthError, match="revoked"):
        caller.confirm(conn)
    assert known.get(caller.digest) is None


def test_known_tills_keep_at_most_their_limit() -> None:
    known = KnownTills(limit=2)
    for digest in ("a", "b", "c"):
        known.remember(digest, Till(till_id=f"T-{digest}", store_id="S001"))
    assert [known.get(d) is not None for d in ("a", "b", "c")] == [False, True, True]


def test_lookup_over_http_checks_the_token_on_every_request(hq: Hq) -> None:
    till = hq.enroll()
    with hq.db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=uuid.uuid4(),
            source="import",
            claims=[Identifier("email", "maria@example.com")],
        )
    params = {"identifier": "email:maria@example.com"}
    first = till.client.get(LOOKUP, params=params)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json"

    with hq.admin() as admin:
        assert admin.delete("/api/v1/admin/tills/S001-T1").status_code == 200
    revoked = till.client.get(LOOKUP, params=params)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]

    fresh = enroll_till(hq.db, store_id="S001", till_id="S001-T1", rotate=True)
    assert till.client.get(LOOKUP, params=params).status_code == 401  # the old token
    with httpx.Client(base_url=hq.base_url, timeout=30) as client:
        again = client.get(LOOKUP, params=params, headers={"Authorization": f"Bearer {fresh}"})
        assert again.status_code == 200, again.text
        # An unknown token is refused before the parameters are looked at.
        stranger = {"Authorization": "Bearer otl_not-a-token-of-this-server"}
        assert client.get(LOOKUP, headers=stranger).status_code == 401
        assert client.get(LOOKUP, headers={"Authorization": f"Bearer {fresh}"}).status_code == 422


def test_lookup_over_http_serves_the_feed_card_and_says_what_was_not_found(hq: Hq) -> None:
    till = hq.enroll()
    customer = uuid.uuid4()
    stored = json.dumps({"customer_id": str(customer), "first_name": "Stored"})
    with hq.db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=customer,
            source="import",
            claims=[Identifier("email", "jo@example.com")],
        )
        feed.record_change(conn, entity="customer", key=str(customer), scope="S002", data=stored)

    found = till.client.get(LOOKUP, params={"identifier": "jo@example.com"})
    assert found.status_code == 200
    assert found.text == stored

    missing = till.client.get(LOOKUP, params={"identifier": "email:nobody@example.com"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No customer with email nobody@example.com"
    garbage = till.client.get(LOOKUP, params={"identifier": "email:not-an-address"})
    assert garbage.status_code == 422
