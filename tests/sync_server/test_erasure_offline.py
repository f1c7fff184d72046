"""Erasure against a till that was offline: its queued ops must not bring the customer back.

HQ erases a customer while a till is offline; the till comes back and pushes what it queued
meanwhile: sales naming the customer (by id, by till-local id, with her email as well), an event,
a receipt email for her and customer patches for her. Sales are kept for the books, anonymized
as the erasure leaves older sales; the receipt is not queued; the patches are rejected; nothing
of hers is stored anywhere and her card stays off the feed.

What cannot be recognized: HQ keeps no copy of an erased customer's email, phone or loyalty
number (not even hashed), so an op naming her only by such a value makes a new customer. The
last test pins that limit down, as documented in docs/operations.md.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import sqlalchemy as sa

from sync_server.db.schema import dirty_cards, events, identifiers, mail_queue, orders, profiles
from sync_server.services import identity
from tests.support.server import (
    Hq,
    TillClient,
    count_rows,
    hlc,
    new_op,
    sale_for,
    sale_op,
    till_local,
)
from tests.sync_server.test_erasure import (
    EMAIL,
    FIRST,
    LAST,
    LOYALTY,
    PHONE,
    RECEIPT_ADDRESS,
    erase,
    in_store_event,
    leaks,
    lookup,
    occurrences,
    patch_new_customer,
    receipt_email,
    uuid_needles,
)

PERSONAL = [EMAIL, PHONE, PHONE[3:], LOYALTY, FIRST, LAST, RECEIPT_ADDRESS]


def stats(hq: Hq) -> dict[str, Any]:
    with hq.admin() as admin:
        response = admin.get("/api/v1/admin/stats")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stored_order(hq: Hq, sale_id: uuid.UUID) -> Any:
    with hq.db.read() as conn:
        return conn.execute(sa.select(orders).where(orders.c.order_id == sale_id)).one()


def maria_at(till: TillClient) -> uuid.UUID:
    """The customer who will ask to be erased, made at ``till`` with every kind of value."""
    return patch_new_customer(
        till,
        [
            {"kind": "email", "value": EMAIL},
            {"kind": "phone", "value": PHONE},
            {"kind": "loyalty", "value": LOYALTY},
        ],
        first_name=FIRST,
        last_name=LAST,
    )


def test_ops_queued_offline_during_an_erasure_do_not_bring_the_customer_back(hq: Hq) -> None:
    online = hq.enroll("S001", "S001-T1")
    offline = hq.enroll("S001", "S001-T2")
    maria = maria_at(online)
    jo = patch_new_customer(online, [{"kind": "email", "value": "jo@example.com"}])

    # Queued at the offline till while she was still on its cached card.
    by_id = sale_for(offline, customer_id=maria)
    by_id_and_email = sale_for(offline, customer_id=maria, customer_identifier=f"email:{EMAIL}")
    by_local_id = sale_for(offline, customer_identifier=f"till_local:TL-{maria}")
    queued = [
        sale_op(by_id, 1),
        sale_op(by_id_and_email, 2),
        sale_op(by_local_id, 3),
        new_op("event", in_store_event(maria, by_id), 4),
        # The receipt flow: a patch adding the address with a consent event, then the mail.
        new_op(
            "customer_patch",
            {
                "customer_id": str(maria),
                "identifiers": [{"kind": "email", "value": RECEIPT_ADDRESS}],
                "fields": {"last_name": {"value": LAST, "hlc": hlc(offline.till_id)}},
                "consent_events": [
                    {"channel": "marketing_email", "granted": True, "at": "2026-11-23T09:00:00Z"}
                ],
            },
            5,
        ),
        new_op("receipt_email", receipt_email(by_id, RECEIPT_ADDRESS, maria), 6),
        # Her card was provisional at this till: a patch naming her by the till-local id only.
        new_op(
            "customer_patch",
            {
                "identifiers": [till_local(maria), {"kind": "phone", "value": PHONE}],
                "fields": {"first_name": {"value": FIRST, "hlc": hlc(offline.till_id)}},
            },
            7,
        ),
    ]
    before = stats(hq)
    with hq.db.read() as conn:
        profiles_before = conn.execute(sa.select(sa.func.count()).select_from(profiles)).scalar()

    erase(hq, maria)
    verdicts = offline.push_ok(queued)

    # Sales, the event and the receipt are applied (the till must not retry them forever); the
    # patches are rejected with a reason staff can act on, naming nobody.
    statuses = [v["status"] for v in verdicts]
    assert statuses == ["applied"] * 4 + ["rejected", "applied", "rejected"], verdicts
    for rejected in (verdicts[4], verdicts[6]):
        assert rejected["error"] == identity.ERASED_PATCH
        assert str(maria) not in rejected["error"]

    after = stats(hq)
    assert after["sales"] == before["sales"] + 3
    assert after["events"] == before["events"] + 1
    assert after["customers"] == before["customers"] - 1  # Jo only: she is not re-created
    assert count_rows(hq.db, profiles) == profiles_before
    assert count_rows(hq.db, identifiers, identifiers.c.profile_id == maria) == 0
    assert count_rows(hq.db, mail_queue) == 0

    # The sales are anonymized exactly as the erasure leaves older ones: no customer columns,
    # no customer id or identifier in the stored document, everything else as sold.
    for sale in (by_id, by_id_and_email, by_local_id):
        row = stored_order(hq, sale.sale_id)
        assert (row.customer_id, row.profile_id) == (None, None)
        stored = json.loads(row.payload)
        assert stored["customer_id"] is None and stored["customer_identifier"] is None
        original = sale.model_dump(mode="json")
        assert {k: v for k, v in stored.items() if not k.startswith("customer")} == {
            k: v for k, v in original.items() if not k.startswith("customer")
        }
        assert row.total_minor == sale.total_minor
    with hq.db.read() as conn:
        event = conn.execute(sa.select(events.c.profile_id, events.c.kind)).one()
    assert tuple(event) == (None, "customer_identified")

    time.sleep(0.5)  # the card worker runs every 50 ms: nothing may rebuild her card
    assert leaks(hq.db, PERSONAL) == []
    for _, table, _, row in occurrences(hq.db, uuid_needles([maria])):
        assert table == "profiles" or (table == "changes" and row["action"] == "delete"), (
            table,
            row,
        )
    assert count_rows(hq.db, dirty_cards, dirty_cards.c.customer_id == maria) == 0

    # A till syncing from scratch sees only her tombstone; nobody finds her at the till.
    changes, _ = hq.enroll("S001", "S001-T3").pull_all()
    hers = [c for c in changes if c["key"] == str(maria)]
    assert [(c["action"], c["reason"]) for c in hers] == [("delete", "erased")], hers
    for typed in (EMAIL, PHONE, LOYALTY, f"till_local:TL-{maria}", RECEIPT_ADDRESS):
        assert lookup(online, typed) is None
    assert lookup(online, "jo@example.com") == str(jo)

    # Sent again after a lost answer, the ops are duplicates or the same rejection.
    again = offline.push_ok(queued)
    assert [v["status"] for v in again] == ["duplicate"] * 4 + ["rejected", "duplicate", "rejected"]
    assert count_rows(hq.db, mail_queue) == 0


def test_a_receipt_for_a_live_customer_is_still_queued(hq: Hq) -> None:
    """The drop is only for erased customers: the same op for anyone else queues its mail."""
    till = hq.enroll()
    maria = maria_at(till)
    jo = patch_new_customer(till, [{"kind": "email", "value": "jo@example.com"}])
    erase(hq, maria)
    sale = sale_for(till, customer_id=jo)
    results = till.push_ok(
        [
            sale_op(sale, till.take_seq()),
            new_op("receipt_email", receipt_email(sale, "jo@example.com", jo), till.take_seq()),
        ]
    )
    assert [r["status"] for r in results] == ["applied", "applied"], results
    assert stored_order(hq, sale.sale_id).customer_id == jo
    with hq.db.read() as conn:
        assert conn.execute(sa.select(mail_queue.c.to_address)).scalars().all() == [
            "jo@example.com"
        ]


def test_an_erased_customers_email_typed_at_a_till_makes_a_new_customer(hq: Hq) -> None:
    """The documented limit: HQ keeps no copy of an erased email, so a sale naming only that
    value cannot be recognized. It is treated as the person giving it anew (a new customer,
    not the erased one: none of her fields, ids or history come back)."""
    till = hq.enroll()
    maria = maria_at(till)
    erase(hq, maria)
    sale = sale_for(till, customer_identifier=f"email:{EMAIL}")
    [result] = till.push_ok([sale_op(sale, till.take_seq())])
    assert result["status"] == "applied", result
    row = stored_order(hq, sale.sale_id)
    assert row.customer_id is not None and row.customer_id != maria
    assert lookup(till, EMAIL) == str(row.customer_id)
    assert leaks(hq.db, [FIRST, LAST, PHONE, LOYALTY]) == []
