"""The card worker: leases, and a change made while a card is built is never lost."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.identifiers import Identifier, normalize_identifier
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import changes, dirty_cards
from sync_server.services import cards, identity, web_events


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'hq.db'}")
    database.migrate()
    return database


def new_customer(db: Database, first_name: str) -> uuid.UUID:
    customer = uuid.uuid4()
    with db.write() as conn:
        identity.ensure_profile(conn, profile_id=customer, source="test")
        rename(conn, customer, first_name, counter=0)
        identity.customers_changed(conn, {customer}, store_id="S001")
    return customer


def rename(conn: Any, customer: uuid.UUID, name: str, *, counter: int) -> None:
    identity.write_field(
        conn,
        customer=customer,
        profile=customer,
        field="first_name",
        value=name,
        hlc=f"{1_700_000_000_000 + counter:015d}-000000-T1",
        writer="T1",
        now=utc_now(),
    )


def card_on_feed(db: Database, customer: uuid.UUID) -> dict[str, Any] | None:
    with db.read() as conn:
        data = conn.execute(
            sa.select(changes.c.data).where(
                changes.c.entity == "customer", changes.c.key == str(customer)
            )
        ).scalar_one_or_none()
    return None if data is None else dict(json.loads(data))


def dirty(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(dirty_cards)).scalar_one())


def test_a_dirty_card_reaches_the_feed_and_the_queue_empties(db: Database) -> None:
    customer = new_customer(db, "Maria")
    assert cards.refresh_dirty_cards(db) == 1
    card = card_on_feed(db, customer)
    assert card is not None and card["first_name"] == "Maria"
    assert dirty(db) == 0
    assert cards.refresh_dirty_cards(db) == 0


def test_a_change_made_while_the_card_is_built_is_not_lost(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = new_customer(db, "Maria")
    build = cards.build_card

    def build_then_change(conn: Any, who: uuid.UUID) -> Any:
        card = build(conn, who)  # built from "Maria"
        with db.write() as writer:  # meanwhile a till renames her
            rename(writer, who, "María", counter=1)
            identity.mark_dirty(writer, {who})
        return card

    monkeypatch.setattr(cards, "build_card", build_then_change)
    cards.refresh_dirty_cards(db)
    assert card_on_feed(db, customer) is None  # the stale card was not written
    assert dirty(db) == 1
    monkeypatch.setattr(cards, "build_card", build)

    cards.refresh_dirty_cards(db)
    card = card_on_feed(db, customer)
    assert card is not None and card["first_name"] == "María"
    assert dirty(db) == 0


def test_a_leased_card_is_left_alone_until_the_lease_expires(db: Database) -> None:
    customer = new_customer(db, "Maria")
    with db.write() as conn:  # another worker holds it (and may have died)
        conn.execute(dirty_cards.update().values(leased_until=utc_now() + timedelta(seconds=30)))
    assert cards.refresh_dirty_cards(db) == 0
    with db.write() as conn:
        conn.execute(dirty_cards.update().values(leased_until=utc_now() - timedelta(seconds=1)))
    assert cards.refresh_dirty_cards(db) == 1
    assert card_on_feed(db, customer) is not None


def test_web_session_ids_stay_off_the_card(db: Database) -> None:
    """Each web session's anonymousId identifies the customer at HQ, but a till never meets one:
    the card (and so every till's identifier table) carries the email, not the session ids."""
    email = normalize_identifier("email", "Maria@Example.com")
    customer = uuid.uuid4()
    with db.write() as conn:
        identity.ensure_profile(conn, profile_id=customer, source="till", claims=[email])
        rename(conn, customer, "Maria", counter=0)
        identity.customers_changed(conn, {customer}, store_id="S001")  # S001's tills cache her
    sessions = [f"anon-session-{n}" for n in range(3)]
    calls = [
        web_events.parse_call(
            {
                "type": "identify",
                "messageId": str(uuid.uuid4()),
                "anonymousId": anon,
                "userId": "wu-42",
                "traits": {"email": "maria@example.com"},
            }
        )
        for anon in sessions
    ]
    assert [o.status for o in web_events.ingest(db, calls)] == ["accepted"] * 3
    with db.read() as conn:
        # HQ keeps the session ids: they are how the web events find the customer.
        assert identity.find_customer(conn, Identifier("web_anon", sessions[0])) == customer
        card = cards.build_card(conn, customer)
    assert card is not None
    assert {(i.kind, i.value) for i in card.identifiers} == {
        ("email", "maria@example.com"),
        ("web_user", "wu-42"),
    }

    cards.refresh_dirty_cards(db)
    on_feed = card_on_feed(db, customer)
    assert on_feed is not None
    assert "anon-session" not in json.dumps(on_feed)
    assert {"kind": "email", "value": "maria@example.com"} in on_feed["identifiers"]
