"""The single customer view through a real server: lookup at the till, the full view at HQ,
merges reaching tills as tombstones, and erasure removing personal data everywhere.

Customer cards are built by the server's background worker (every 50 ms in these tests), so
tests that wait for a card on the feed poll with a deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from sync_server.db.schema import (
    changes,
    consent_events,
    customer_field_history,
    customer_fields,
    events,
    identifiers,
    merges,
    metadata,
    orders,
    profiles,
)
from tests.support.server import (
    ADMIN_HEADERS,
    Hq,
    TillClient,
    count_rows,
    hlc,
    new_op,
    sale_for,
    sale_op,
    till_local,
    wait_for,
)

LOOKUP = "/api/v1/customers/lookup"
MARIA_EMAIL = "maria.muster@example.com"
MARIA_PHONE = "+4915112345678"  # typed in Germany as 0151 12345678


def new_customer(
    till: TillClient,
    *,
    email: str,
    first_name: str,
    last_name: str = "",
    phone: str | None = None,
    profile: uuid.UUID | None = None,
) -> uuid.UUID:
    """A customer created at ``till`` (provisional, till-local id); returns its profile id."""
    profile = profile or uuid.uuid4()
    idents = [till_local(profile), {"kind": "email", "value": email}]
    if phone:
        idents.append({"kind": "phone", "value": phone})
    fields = {"first_name": {"value": first_name, "hlc": hlc(till.till_id)}}
    if last_name:
        fields["last_name"] = {"value": last_name, "hlc": hlc(till.till_id)}
    result = till.patch_customer({"identifiers": idents, "fields": fields})
    assert result["status"] == "applied", result
    return profile


def customer_changes(found: list[dict[str, Any]], key: uuid.UUID) -> list[dict[str, Any]]:
    return [c for c in found if c["entity"] == "customer" and c["key"] == str(key)]


def card_on_feed(till: TillClient, customer: uuid.UUID, cursor: str | None = None) -> str:
    """Wait until the customer's card reaches ``till``'s feed; return the cursor after it."""

    def probe() -> str | None:
        found, after = till.pull_all(cursor)
        upserts = [c for c in customer_changes(found, customer) if c["action"] == "upsert"]
        return after if upserts else None

    return wait_for(probe, what=f"the card of {customer} on {till.till_id}'s feed")


# ---------------------------------------------------------------------------------------------
# Lookup and the full view


def test_lookup_finds_the_card_by_email_in_another_case_and_by_a_national_phone_number(
    hq: Hq,
) -> None:
    till = hq.enroll()
    maria = new_customer(
        till, email=MARIA_EMAIL, phone=MARIA_PHONE, first_name="Maria", last_name="Muster"
    )
    # The store has no region configured: lookups read phone numbers as German (DE).
    for typed in (
        "MARIA.Muster@Example.COM",
        "email: Maria.Muster@EXAMPLE.com",
        "0151 12345678",
        "0151/123 456 78",
        "+49 151 12345678",
        f"phone:{MARIA_PHONE}",
    ):
        response = till.client.get(LOOKUP, params={"identifier": typed})
        assert response.status_code == 200, (typed, response.text)
        card = response.json()
        assert card["customer_id"] == str(maria), typed
        assert (card["first_name"], card["last_name"]) == ("Maria", "Muster")
        assert {"kind": "email", "value": MARIA_EMAIL} in card["identifiers"]

    missing = till.client.get(LOOKUP, params={"identifier": "someone.else@example.com"})
    assert missing.status_code == 404
    assert "someone.else@example.com" in missing.json()["detail"]


def test_lookup_uses_the_region_of_the_store(hq: Hq) -> None:
    till = hq.enroll("S-UK", "S-UK-T1")
    with hq.db.write() as conn:
        conn.execute(
            sa.text("UPDATE stores SET data = :data WHERE store_id = 'S-UK'"),
            {"data": json.dumps({"store_id": "S-UK", "default_region": "GB"})},
        )
    jo = new_customer(till, email="jo@example.co.uk", phone="+447400123456", first_name="Jo")
    response = till.client.get(LOOKUP, params={"identifier": "07400 123456"})
    assert response.status_code == 200, response.text
    assert response.json()["customer_id"] == str(jo)


def test_the_full_view_shows_profiles_timeline_and_merges(hq: Hq) -> None:
    t1, t2 = hq.enroll("S001", "S001-T1"), hq.enroll("S002", "S002-T1")
    maria = new_customer(t1, email=MARIA_EMAIL, phone=MARIA_PHONE, first_name="Maria")
    sale = sale_for(t1, customer_id=maria)
    assert t1.push_ok([sale_op(sale, t1.take_seq())])[0]["status"] == "applied"
    # Another store creates her again offline, typing her email with capitals: one customer.
    twin = new_customer(t2, email="Maria.Muster@Example.com", first_name="Mia")

    with hq.admin() as admin:
        view = admin.get(f"/api/v1/customers/{maria}")
        via_old_id = admin.get(f"/api/v1/customers/{twin}")

    assert view.status_code == 200, view.text
    body = view.json()
    assert body["customer_id"] == str(maria)
    assert {p["profile_id"] for p in body["profiles"]} == {str(maria), str(twin)}
    orders_seen = [t for t in body["timeline"] if t["kind"] == "order"]
    assert [(t["order_id"], t["total_minor"]) for t in orders_seen] == [
        (str(sale.sale_id), sale.total_minor)
    ]
    assert [(m["action"], m["winner"], m["loser"], m["via"]) for m in body["merges"]] == [
        ("merge", str(maria), str(twin), f"email:{MARIA_EMAIL}")
    ]
    assert body["stores"] == ["S001", "S002"]
    idents = {(i["kind"], i["value"]) for i in body["card"]["identifiers"]}
    assert {("email", MARIA_EMAIL), ("phone", MARIA_PHONE)} <= idents
    assert {("till_local", f"TL-{maria}"), ("till_local", f"TL-{twin}")} <= idents
    # The merged-away id answers with the customer it now belongs to.
    assert via_old_id.status_code == 200
    assert via_old_id.json()["customer_id"] == str(maria)


def test_lookup_needs_a_till_token_and_the_view_the_admin_token(hq: Hq) -> None:
    till = hq.enroll()
    maria = new_customer(till, email=MARIA_EMAIL, first_name="Maria")
    params = {"identifier": MARIA_EMAIL}
    with httpx.Client(base_url=hq.base_url, timeout=30) as anon:
        assert anon.get(LOOKUP, params=params).status_code == 401
        assert anon.get(LOOKUP, params=params, headers=ADMIN_HEADERS).status_code == 401
        assert anon.get(f"/api/v1/customers/{maria}").status_code == 401
        wrong_admin = {"Authorization": "Bearer not-the-admin-token-at-all"}
        assert anon.get(f"/api/v1/customers/{maria}", headers=wrong_admin).status_code == 401
        assert anon.delete(f"/api/v1/customers/{maria}", headers=wrong_admin).status_code == 401
        assert anon.get(f"/api/v1/customers/{maria}", headers=ADMIN_HEADERS).status_code == 200
    assert till.client.get(LOOKUP, params=params).status_code == 200
    assert till.client.get(f"/api/v1/customers/{maria}").status_code == 403
    assert till.client.delete(f"/api/v1/customers/{maria}").status_code == 403
    assert count_rows(hq.db, profiles, profiles.c.erased_at.is_not(None)) == 0


# ---------------------------------------------------------------------------------------------
# Merges and erasure on the feed


def test_a_merge_of_two_customers_reaches_a_till_as_a_tombstone(hq: Hq) -> None:
    t1, t2 = hq.enroll("S001", "S001-T1"), hq.enroll("S001", "S001-T2")
    observer = hq.enroll("S001", "S001-T3")
    first = new_customer(t1, email="ann@example.com", first_name="Ann")
    second = new_customer(t2, email="ann.b@example.com", first_name="Annie")
    cursor = card_on_feed(observer, first)
    card_on_feed(observer, second)  # the till holds both cards before the merge

    # The second profile turns out to use the first one's email too.
    result = t2.patch_customer(
        {"customer_id": str(second), "identifiers": [{"kind": "email", "value": "ann@example.com"}]}
    )
    assert result["status"] == "applied", result

    def merged() -> tuple[dict[str, Any], dict[str, Any]] | None:
        found, _ = observer.pull_all(cursor)
        tombstones = [c for c in customer_changes(found, second) if c["action"] == "delete"]
        winner_cards = [
            c
            for c in customer_changes(found, first)
            if c["action"] == "upsert"
            and {"kind": "email", "value": "ann.b@example.com"} in c["data"]["identifiers"]
        ]
        return (tombstones[-1], winner_cards[-1]) if tombstones and winner_cards else None

    tombstone, card = wait_for(merged, what="the merge tombstone and the winner's new card")
    assert tombstone == {
        "entity": "customer",
        "key": str(second),
        "action": "delete",
        "data": None,
        "reason": "merged",
        "merged_into": str(first),
    }
    assert card["data"]["customer_id"] == str(first)
    assert {"kind": "till_local", "value": f"TL-{second}"} in card["data"]["identifiers"]
    # A till starting from scratch gets the merged state: no card under the old id.
    snapshot_rows, _ = hq.enroll("S001", "S001-T4").pull_all()
    assert [c["action"] for c in customer_changes(snapshot_rows, second)] == ["delete"]
    assert [c["action"] for c in customer_changes(snapshot_rows, first)] == ["upsert"]


def changes_text(hq: Hq) -> str:
    """Every column of every row of the change feed, as one string."""
    with hq.db.read() as conn:
        rows = conn.execute(sa.select(changes)).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


def test_erasure_removes_the_personal_fields_everywhere(hq: Hq) -> None:
    till = hq.enroll()
    email, phone = "erika.unique@example.org", "+4915112345679"
    erika = new_customer(
        till, email=email, phone=phone, first_name="Erikaname", last_name="Zauberfeld"
    )
    consent = {"channel": "marketing_email", "granted": True, "at": "2026-11-23T09:00:00Z"}
    later = hlc(till.till_id, counter=1)
    assert (
        till.patch_customer(
            {
                "customer_id": str(erika),
                "fields": {"first_name": {"value": "Erikanew", "hlc": later}},
                "consent_events": [consent],
            }
        )["status"]
        == "applied"
    )
    sale = sale_for(till, customer_id=erika)
    event = {
        "event_id": str(uuid.uuid4()),
        "kind": "customer_identified",
        "at": datetime.now(UTC).isoformat(),
        "customer_id": str(erika),
        "sale_id": str(sale.sale_id),
    }
    results = till.push_ok(
        [sale_op(sale, till.take_seq()), new_op("event", event, till.take_seq())]
    )
    assert [r["status"] for r in results] == ["applied", "applied"]
    cursor = card_on_feed(till, erika)
    before = changes_text(hq)
    assert email in before and "Zauberfeld" in before  # so the checks below mean something

    with hq.admin() as admin:
        erased = admin.delete(f"/api/v1/customers/{erika}")
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased_profiles"] == 1
        assert admin.get(f"/api/v1/customers/{erika}").status_code == 404
        assert admin.delete(f"/api/v1/customers/{erika}").status_code == 404

    for typed in (email, "0151 12345679", f"TL-{erika}"):
        assert till.client.get(LOOKUP, params={"identifier": typed}).status_code == 404, typed
    # HQ's own tables: no identifiers, fields, losing values or consents left for the profile.
    for table in (identifiers, customer_fields, customer_field_history, consent_events):
        assert count_rows(hq.db, table, table.c.profile_id == erika) == 0, table.name
    assert count_rows(hq.db, events, events.c.profile_id == erika) == 0
    with hq.db.read() as conn:
        profile = conn.execute(sa.select(profiles).where(profiles.c.profile_id == erika)).one()
        order = conn.execute(sa.select(orders).where(orders.c.order_id == sale.sale_id)).one()
    assert profile.erased_at is not None and profile.attributes == "{}"
    # The sale stays for the books, with nothing left that points at her.
    assert order.total_minor == sale.total_minor
    assert order.customer_id is None and order.profile_id is None
    assert json.loads(order.payload)["customer_id"] is None
    assert str(erika) not in order.payload

    # Tills are told to forget her, and no card of hers is left on the feed.
    # (On PostgreSQL a row waits while an older transaction is still open: poll briefly.)
    found = wait_for(
        lambda: customer_changes(till.pull_all(cursor)[0], erika), what="the erasure tombstone"
    )
    assert [(c["action"], c["reason"]) for c in found] == [("delete", "erased")]
    fresh, _ = hq.enroll("S001", "S001-T9").pull_all()
    assert [c["action"] for c in customer_changes(fresh, erika)] == ["delete"]

    def no_trace() -> bool:
        text = changes_text(hq)
        return not any(s in text for s in (email, phone, "Erikaname", "Erikanew", "Zauberfeld"))

    assert no_trace(), changes_text(hq)
    # The card worker runs every 50 ms: nothing brings the card back afterwards.
    time.sleep(0.3)
    assert no_trace(), changes_text(hq)
    # Nor is any of it left anywhere else at HQ.
    text = database_text(hq)
    for personal in (email, phone, "Erikaname", "Erikanew", "Zauberfeld", f"TL-{erika}"):
        leaks = [line for line in text.splitlines() if personal in line]
        assert not leaks, leaks


def database_text(hq: Hq) -> str:
    """Every column of every row of every HQ table, as one string."""
    parts = []
    with hq.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(f"{table.name}: " + " ".join(str(v) for v in row))
    return "\n".join(parts)


def test_erasing_a_merged_customer_leaves_no_identifier_in_any_table(hq: Hq) -> None:
    t1, t2 = hq.enroll("S001", "S001-T1"), hq.enroll("S002", "S002-T1")
    email = "merged.erasure@example.net"
    first = new_customer(t1, email=email, phone="+4915112345670", first_name="Firstcopy")
    second = new_customer(t2, email=email, first_name="Secondcopy")  # merges into the first
    assert count_rows(hq.db, merges, merges.c.loser == second) == 1

    with hq.admin() as admin:
        erased = admin.delete(f"/api/v1/customers/{second}")  # the old id erases the customer
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased_profiles"] == 2

    text = database_text(hq)
    for personal in (email, "+4915112345670", "Firstcopy", "Secondcopy"):
        leaks = [line for line in text.splitlines() if personal in line]
        assert not leaks, leaks
    # The merge itself stays on record (who was merged into whom), without the identifier.
    assert count_rows(hq.db, merges, merges.c.loser == second) == 1
    with hq.admin() as admin:
        assert admin.get(f"/api/v1/customers/{first}").status_code == 404
