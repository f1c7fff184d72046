"""Erasure at HQ (``DELETE /api/v1/customers/{id}``, ``identity.erase_customer``).

After an erasure no row of any HQ table holds the customer's personal values: every table the
database has (reflected, so tables added later are searched too) is read whole and searched
for them. Quarantined ops of the customer stay for review with the personal fields removed;
merge protection keeps working for the customers that remain.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shared.barcodes import loyalty_check_digit
from shared.catalogue import Store
from shared.hlc import HLCTimestamp
from shared.identifiers import Identifier
from shared.receipt import receipt_from_sale
from shared.sale import Return, ReturnLine, Sale, Tender
from shared.wire import utc_now
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import (
    changes,
    customer_field_history,
    customer_stores,
    identifiers,
    mail_queue,
    merges,
    metadata,
    products,
    profiles,
    quarantine,
    recommendation_lists,
    shared_identifiers,
)
from sync_server.main import create_app
from sync_server.services import feed, identity
from tests.support.server import (
    ADMIN_TOKEN,
    Hq,
    TillClient,
    count_rows,
    hlc,
    new_op,
    running_server,
    sale_for,
    sale_op,
    till_local,
    wait_for,
)

LOOKUP = "/api/v1/customers/lookup"
WRITE_KEY = "wk_erasure_0123456789abcdef"
SEGMENT = "/api/v1/segment/v1"

# The customer who asks to be forgotten; every value is unusual enough that finding it
# anywhere after the erasure can only be a leak. Non-ASCII on purpose: JSON written with
# \u escapes must not hide a name from the search.
EMAIL = "zoelle.quellbrunn@example.org"
PHONE = "+4915199887766"
LOYALTY = "990087654321" + str(loyalty_check_digit("990087654321"))
FIRST, LAST, LOSING_FIRST = "Zoëlle", "Quellbrünn", "Zoëline"
BIRTH_DATE = "1987-06-05"
RECEIPT_ADDRESS = "zq.receipts@example.net"  # her receipts went here; never an identifier
OLD_ADDRESS = "zq.old-address@example.net"  # only in a quarantined op
WEB_USER, WEB_ANON, IP = "wu-zq-4711", "anon-zq-0815", "203.0.113.77"


# ---------------------------------------------------------------------------------------------
# Searching every table


def all_rows(db: Database) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of every table in the database (reflected, not only the ones we know)."""
    reflected = sa.MetaData()
    with db.read() as conn:
        reflected.reflect(bind=conn)
        assert set(metadata.tables) <= set(reflected.tables)
        for table in reflected.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                yield table.name, dict(row)


def texts(value: Any) -> list[str]:
    """How a stored value reads, casefolded: as stored and, for JSON, with escapes decoded."""
    if value is None or isinstance(value, bool | int | float | datetime):
        return []
    if isinstance(value, uuid.UUID):
        return [str(value), value.hex]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    found = [text.casefold()]
    with contextlib.suppress(ValueError):
        found.append(json.dumps(json.loads(text), ensure_ascii=False).casefold())
    return found


def occurrences(db: Database, needles: Iterable[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(needle, table, column, row) for every cell holding one of ``needles`` (any case)."""
    wanted = [n for n in needles if n]
    hits: list[tuple[str, str, str, dict[str, Any]]] = []
    for table, row in all_rows(db):
        for column, value in row.items():
            for text in texts(value):
                hits.extend((n, table, column, row) for n in wanted if n.casefold() in text)
    return hits


def uuid_needles(ids: Iterable[uuid.UUID]) -> list[str]:
    return [form for i in ids for form in (str(i), i.hex)]


def leaks(db: Database, needles: Iterable[str]) -> list[str]:
    return sorted({f"{t}.{c}: {n!r}" for n, t, c, _ in occurrences(db, needles)})


# ---------------------------------------------------------------------------------------------
# A server with the web shop's API on


@pytest.fixture
def web_hq(db: Database, db_url: str) -> Iterator[Hq]:
    """A real HQ server with the Segment API on and fast card and list workers."""
    now = utc_now()
    with db.write() as conn:
        conn.execute(
            products.insert(),
            [
                {
                    "sku": sku,
                    "category": "Apparel",
                    "data": json.dumps({"name": sku}),
                    "updated_at": now,
                }
                for sku in ("WEB-SCARF", "WEB-GLOVES", "WEB-HAT")
            ],
        )
    settings = Settings(
        db_url=db_url,
        admin_token=ADMIN_TOKEN,
        segment_write_keys=[WRITE_KEY],
        card_worker_interval_s=0.05,
        recs_worker_interval_s=0.1,
        recs_lists_interval_s=0.1,
    )
    with running_server(create_app(settings, db=db)) as base_url:
        server = Hq(base_url=base_url, db=db)
        try:
            yield server
        finally:
            server.close()


def patch_new_customer(
    till: TillClient,
    idents: list[dict[str, str]],
    *,
    profile: uuid.UUID | None = None,
    **fields: str,
) -> uuid.UUID:
    """A customer made at ``till`` (till-local id plus ``idents``); returns its profile id."""
    profile = profile or uuid.uuid4()
    result = till.patch_customer(
        {
            "identifiers": [till_local(profile), *idents],
            "fields": {k: {"value": v, "hlc": hlc(till.till_id)} for k, v in fields.items()},
        }
    )
    assert result["status"] == "applied", result
    return profile


def receipt_email(sale: Sale, address: str, customer: uuid.UUID | None) -> dict[str, Any]:
    receipt = receipt_from_sale(
        sale, Store(store_id=sale.store_id, name="Omni Mitte"), customer_name=f"{FIRST} {LAST}"
    )
    return {
        "email_id": str(uuid.uuid4()),
        "sale_id": str(sale.sale_id),
        "address": address,
        "receipt": receipt.model_dump(mode="json", by_alias=True),
        "customer_id": str(customer) if customer else None,
        "at": utc_now().isoformat(),
    }


def return_of(sale: Sale, customer: uuid.UUID | None, reason: str) -> Return:
    line = sale.lines[0]
    return Return(
        return_id=uuid.uuid4(),
        original_sale_id=sale.sale_id,
        receipt_number="S001-T1-R00001",
        store_id=sale.store_id,
        till_id=sale.till_id,
        cashier_id="c1",
        customer_id=customer,
        created_at=utc_now(),
        currency=sale.currency,
        lines=(
            ReturnLine(
                original_line_no=line.line_no,
                sku=line.sku,
                name=line.name,
                quantity=1,
                amount_minor=line.amount_minor,
                tax_minor=line.tax_minor,
                tax_rate=line.tax_rate,
            ),
        ),
        total_minor=line.amount_minor,
        tax_minor=line.tax_minor,
        refund_tenders=(Tender(kind="cash", amount_minor=line.amount_minor),),
        reason=reason,
    )


def in_store_event(customer: uuid.UUID, sale: Sale | None = None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "kind": "customer_identified",
        "at": utc_now().isoformat(),
        "customer_id": str(customer),
        "sale_id": str(sale.sale_id) if sale else None,
    }


def quarantined(db: Database) -> dict[uuid.UUID, Any]:
    with db.read() as conn:
        return {uuid.UUID(str(r.op_id)): r for r in conn.execute(sa.select(quarantine))}


# ---------------------------------------------------------------------------------------------
# Everything a customer leaves at HQ


def test_after_erasure_no_row_anywhere_holds_the_customers_personal_values(
    web_hq: Hq,
) -> None:
    hq = web_hq
    till = hq.enroll("S001", "S001-T1")
    maria = patch_new_customer(
        till,
        [
            {"kind": "email", "value": EMAIL},
            {"kind": "phone", "value": PHONE},
            {"kind": "loyalty", "value": LOYALTY},
        ],
        first_name=FIRST,
        last_name=LAST,
        birth_date=BIRTH_DATE,
    )
    # A write with an older stamp loses: it is kept in the field history.
    older = HLCTimestamp(int(time.time() * 1000) - 60_000, 0, till.till_id).encode()
    consent = {"channel": "marketing_email", "granted": True, "at": "2026-11-23T09:00:00Z"}
    assert (
        till.patch_customer(
            {
                "customer_id": str(maria),
                "fields": {"first_name": {"value": LOSING_FIRST, "hlc": older}},
                "consent_events": [consent],
            }
        )["status"]
        == "applied"
    )
    jo = patch_new_customer(
        till, [{"kind": "email", "value": "jo.other@example.com"}], first_name="Joachim"
    )

    # In store: a sale to her id, one to her loyalty card, a return, a receipt by email to an
    # address she gave only for it, and an event.
    sale = sale_for(till, customer_id=maria)
    by_card = sale_for(till, customer_identifier=f"loyalty:{LOYALTY}")
    ret = return_of(sale, maria, f"{FIRST} {LAST} changed her mind")
    results = till.push_ok(
        [
            sale_op(sale, till.take_seq()),
            sale_op(by_card, till.take_seq()),
            new_op("return", ret.model_dump(mode="json"), till.take_seq()),
            new_op("receipt_email", receipt_email(sale, RECEIPT_ADDRESS, maria), till.take_seq()),
            new_op("event", in_store_event(maria, sale), till.take_seq()),
        ]
    )
    assert [r["status"] for r in results] == ["applied"] * 5, results

    # On the web: browsing before logging in, logging in with her email and names, an order.
    with httpx.Client(base_url=hq.base_url + SEGMENT, auth=(WRITE_KEY, ""), timeout=30) as web:
        context = {"ip": IP, "traits": {"email": EMAIL}, "userAgent": "Mozilla/5.0"}
        calls = [
            (
                "track",
                {
                    "event": "Product Viewed",
                    "anonymousId": WEB_ANON,
                    "context": {"ip": IP},
                    "properties": {"sku": "WEB-SCARF", "price": "19.99"},
                },
            ),
            (
                "identify",
                {
                    "anonymousId": WEB_ANON,
                    "userId": WEB_USER,
                    "context": context,
                    "traits": {
                        "email": EMAIL,
                        "phone": PHONE,
                        "firstName": FIRST,
                        "lastName": LAST,
                        "address": {"street": "Quellweg 7", "city": "Berlin"},
                    },
                },
            ),
            (
                "track",
                {
                    "event": "Product Added",
                    "userId": WEB_USER,
                    "properties": {"sku": "WEB-GLOVES", "price": "24.00"},
                },
            ),
            (
                "track",
                {
                    "event": "Order Completed",
                    "userId": WEB_USER,
                    "context": context,
                    "properties": {
                        "order_id": "WEB-ZQ-1",
                        "currency": "EUR",
                        "email": EMAIL,
                        "products": [{"sku": "WEB-HAT", "price": "30.00", "name": "Wool hat"}],
                    },
                },
            ),
        ]
        for path, call in calls:
            response = web.post(f"/{path}", json=call)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 1, response.text

    def personal_list() -> bool:
        with hq.db.read() as conn:
            listed = conn.execute(
                sa.select(sa.func.count()).where(
                    recommendation_lists.c.kind == "personal",
                    recommendation_lists.c.key == str(maria),
                )
            ).scalar_one()
            fed = conn.execute(
                sa.select(sa.func.count()).where(changes.c.key == f"personal:{maria}")
            ).scalar_one()
        return bool(listed and fed)

    wait_for(personal_list, timeout=30, interval=0.1, what="her personal list on the feed")

    # The till is restored from an old backup and sends new ops under used sequence numbers.
    restored = [
        sale_op(sale_for(till, customer_id=maria, customer_identifier=f"email:{EMAIL}"), 1),
        new_op(
            "customer_patch",
            {
                "identifiers": [till_local(uuid.uuid4()), {"kind": "email", "value": EMAIL}],
                "fields": {
                    "first_name": {"value": FIRST, "hlc": hlc(till.till_id)},
                    "last_name": {"value": LAST, "hlc": hlc(till.till_id)},
                },
            },
            2,
        ),
        new_op("receipt_email", receipt_email(sale, OLD_ADDRESS, maria), 3),
        new_op("event", in_store_event(maria), 4),
        new_op(
            "return",
            return_of(sale, maria, f"{FIRST} {LAST} changed her mind").model_dump(mode="json"),
            5,
        ),
        sale_op(sale_for(till, customer_identifier="email:jo.other@example.com"), 6),
    ]
    verdicts = till.push_ok(restored)
    assert all("quarantined" in (v["error"] or "") for v in verdicts), verdicts
    before = quarantined(hq.db)
    assert len(before) == 6
    ours = [uuid.UUID(op["op_id"]) for op in restored[:5]]
    joes = uuid.UUID(restored[5]["op_id"])

    personal = [
        EMAIL, PHONE, PHONE[3:], LOYALTY, FIRST, LAST, LOSING_FIRST, BIRTH_DATE,
        RECEIPT_ADDRESS, OLD_ADDRESS, WEB_USER, WEB_ANON, IP, "Quellweg",
    ]  # fmt: skip
    found_before = {n for n, *_ in occurrences(hq.db, personal)}
    assert found_before == set(personal)  # so that finding none afterwards means something

    with hq.admin() as admin:
        erased = admin.delete(f"/api/v1/customers/{maria}")
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased_profiles"] == 1
    time.sleep(0.5)  # the card and list workers run every 100 ms: nothing may bring data back

    assert leaks(hq.db, personal) == []
    # Her id is left only where it says she was erased: the emptied profile row and the
    # tombstones on the feed.
    for _, table, _, row in occurrences(hq.db, uuid_needles([maria])):
        assert table == "profiles" or (table == "changes" and row["action"] == "delete"), (
            table,
            row,
        )

    # The quarantined ops are all still there for review: hers without personal data, Jo's
    # exactly as it came.
    after = quarantined(hq.db)
    assert set(after) == set(before)
    assert after[joes].payload == before[joes].payload
    assert after[joes].reason == before[joes].reason
    for op_id in ours:
        assert "Personal data removed" in after[op_id].reason
        assert after[op_id].reason.startswith(before[op_id].reason)
        assert (after[op_id].type, after[op_id].seq) == (before[op_id].type, before[op_id].seq)
    q_sale, q_patch, q_mail, q_event, q_return = (json.loads(after[o].payload) for o in ours)
    original = json.loads(before[ours[0]].payload)
    assert q_sale["customer_id"] is None and q_sale["customer_identifier"] is None
    assert {k: v for k, v in q_sale.items() if not k.startswith("customer")} == {
        k: v for k, v in original.items() if not k.startswith("customer")
    }
    assert Sale.model_validate(q_sale).total_minor == original["total_minor"]
    assert q_patch["identifiers"] == []
    assert set(q_patch["fields"]) == {"first_name", "last_name"}
    assert all(w["value"] is None and w["hlc"] for w in q_patch["fields"].values())
    assert q_mail["address"] is None and q_mail["customer_id"] is None
    assert q_mail["receipt"]["customer_name"] is None
    assert q_mail["receipt"]["store"]["name"] == "Omni Mitte"
    assert q_mail["receipt"]["total_minor"] == sale.total_minor
    assert q_event["customer_id"] is None and q_event["kind"] == "customer_identified"
    assert q_return["customer_id"] is None and q_return["reason"] == "[erased] changed her mind"
    assert q_return["total_minor"] == ret.total_minor

    # Tills are told to drop her card and her personal list.
    found, _ = hq.enroll("S001", "S001-T2").pull_all()
    mine = {(c["entity"], c["key"]): c for c in found}
    assert mine[("customer", str(maria))]["reason"] == "erased"
    assert mine[("recommendation", f"personal:{maria}")]["action"] == "delete"
    assert mine[("recommendation", f"personal:{maria}")]["reason"] == "erased"
    # Her sale stays for the books: its digital receipt still opens, without her.
    page = httpx.get(f"{hq.base_url}/r/{sale.sale_id}", timeout=30)
    assert page.status_code == 200, page.text
    assert str(sale.total_minor // 100) in page.text
    # Nobody else lost anything.
    response = till.client.get(LOOKUP, params={"identifier": "jo.other@example.com"})
    assert response.status_code == 200 and response.json()["customer_id"] == str(jo)
    assert response.json()["first_name"] == "Joachim"
    for typed in (EMAIL, PHONE, LOYALTY):
        assert till.client.get(LOOKUP, params={"identifier": typed}).status_code == 404


# ---------------------------------------------------------------------------------------------
# Merge protection


def lookup(till: TillClient, identifier: str) -> str | None:
    response = till.client.get(LOOKUP, params={"identifier": identifier})
    assert response.status_code in (200, 404), response.text
    return str(response.json()["customer_id"]) if response.status_code == 200 else None


def customer_of(db: Database, profile: uuid.UUID) -> uuid.UUID:
    with db.read() as conn:
        return identity.customer_of(conn, profile)


def flag(db: Database, kind: str, value: str) -> int | None:
    """The claim count of a shared identifier, None when it is not flagged."""
    with db.read() as conn:
        claims = conn.execute(
            sa.select(shared_identifiers.c.claims).where(
                shared_identifiers.c.kind == kind, shared_identifiers.c.value == value
            )
        ).scalar_one_or_none()
    return None if claims is None else int(claims)


def erase(hq: Hq, customer: uuid.UUID) -> None:
    with hq.admin() as admin:
        response = admin.delete(f"/api/v1/customers/{customer}")
    assert response.status_code == 200, response.text


def test_merge_protection_outlives_the_erasure_of_one_claimant(hq: Hq) -> None:
    till = hq.enroll()
    shop = "noreply@shop.example"  # the shop's own address, typed in for people without one
    maria = patch_new_customer(
        till, [{"kind": "email", "value": shop}, {"kind": "email", "value": EMAIL}]
    )
    anna = patch_new_customer(till, [{"kind": "email", "value": shop}], first_name="Anna")
    ben = patch_new_customer(till, [{"kind": "email", "value": shop}], first_name="Ben")
    assert flag(hq.db, "email", shop) == 3
    assert len({customer_of(hq.db, p) for p in (maria, anna, ben)}) == 3
    assert lookup(till, shop) is None

    erase(hq, maria)
    # The flag stays (Anna and Ben still claim the address), counting who is left.
    assert flag(hq.db, "email", shop) == 2
    assert leaks(hq.db, [EMAIL]) == []
    # A change that recomputes their identities does not merge them through it...
    for profile, phone in ((anna, "+4915100000001"), (ben, "+4915100000002")):
        result = till.patch_customer(
            {"customer_id": str(profile), "identifiers": [{"kind": "phone", "value": phone}]}
        )
        assert result["status"] == "applied", result
    assert customer_of(hq.db, anna) == anna and customer_of(hq.db, ben) == ben
    # ... nor does a new claimant join either of them, and the address still names nobody.
    carl = patch_new_customer(till, [{"kind": "email", "value": shop}], first_name="Carl")
    assert customer_of(hq.db, carl) == carl
    assert flag(hq.db, "email", shop) == 3
    assert lookup(till, shop) is None
    assert lookup(till, "+4915100000001") == str(anna)


def test_a_flag_only_erased_customers_claimed_goes_with_them(hq: Hq) -> None:
    till = hq.enroll()
    landline = "+49301234567"  # the family's phone: flagged, so it merges nobody
    family = [
        patch_new_customer(
            till,
            [
                {"kind": "phone", "value": landline},
                {"kind": "email", "value": f"{name}@fam.example"},
            ],
            first_name=name.title(),
        )
        for name in ("ida", "ole", "pia")
    ]
    assert flag(hq.db, "phone", landline) == 3

    erase(hq, family[0])
    assert flag(hq.db, "phone", landline) == 2  # Ole and Pia still claim it: still shared
    assert lookup(till, landline) is None
    assert lookup(till, "ole@fam.example") == str(family[1])
    erase(hq, family[1])
    erase(hq, family[2])
    # Nobody claims the number any more: the flag protected nothing and named the family.
    assert flag(hq.db, "phone", landline) is None
    assert leaks(hq.db, [landline, landline[3:], "@fam.example"]) == []

    # Claimed again later, it counts afresh: one new customer is found by it...
    new = patch_new_customer(till, [{"kind": "phone", "value": landline}], first_name="Neu")
    assert lookup(till, landline) == str(new)
    # ... and reaching the threshold flags it again, undoing the merge it caused.
    second = patch_new_customer(till, [{"kind": "phone", "value": landline}])
    assert customer_of(hq.db, second) == new
    third = patch_new_customer(till, [{"kind": "phone", "value": landline}])
    assert flag(hq.db, "phone", landline) == 3
    assert {customer_of(hq.db, p) for p in (new, second, third)} == {new, second, third}
    assert lookup(till, landline) is None


# ---------------------------------------------------------------------------------------------
# Profiles once merged with the customer


def test_a_split_off_profile_keeps_its_card_but_not_the_erased_customers_name(
    db: Database,
) -> None:
    """Bob was merged into Maria through a shared phone, renamed while merged, then split off
    when the phone was flagged: the name he overwrote (hers) sits in his field history."""
    maria, bob = uuid.uuid4(), uuid.uuid4()
    phone = Identifier("phone", "+4930555000111")
    t0 = utc_now() - timedelta(hours=1)
    stamp = HLCTimestamp(int(t0.timestamp() * 1000), 0, "S001-T1")
    with db.write() as conn:
        identity.ensure_profile(
            conn,
            profile_id=maria,
            source="test",
            claims=[phone, Identifier("email", EMAIL)],
            now=t0,
        )
        identity.write_field(
            conn, customer=maria, profile=maria, field="first_name", value=FIRST,
            hlc=stamp.encode(), writer="S001-T1", now=t0,
        )  # fmt: skip
        identity.ensure_profile(
            conn, profile_id=bob, source="test", claims=[phone], now=t0 + timedelta(seconds=1)
        )
        assert identity.customer_of(conn, bob) == maria
        newer = HLCTimestamp(stamp.wall_ms + 1000, 0, "S001-T2").encode()
        assert identity.write_field(
            conn, customer=maria, profile=bob, field="first_name", value="Robert",
            hlc=newer, writer="S001-T2", now=t0,
        )  # fmt: skip
        for _ in range(2):  # the phone turns out to be shared: Bob is split off again
            identity.ensure_profile(conn, profile_id=uuid.uuid4(), source="test", claims=[phone])
        assert identity.customer_of(conn, bob) == bob
        identity.customers_changed(conn, {bob}, store_id="S001")
        feed.record_change(conn, entity="customer", key=str(bob), data={"customer_id": str(bob)})
        history = conn.execute(
            sa.select(customer_field_history.c.value).where(
                customer_field_history.c.profile_id == bob
            )
        ).scalars()
        assert list(history) == [FIRST]

    with db.write() as conn:
        assert identity.erase_customer(conn, maria) == 1

    assert leaks(db, [FIRST, EMAIL]) == []
    # Bob is another customer: his card stays on the feed and his stores keep it.
    with db.read() as conn:
        bobs = conn.execute(
            sa.select(changes.c.action, changes.c.reason).where(changes.c.key == str(bob))
        ).all()
    assert [tuple(r) for r in bobs] == [("upsert", None)]
    assert count_rows(db, customer_stores, customer_stores.c.customer_id == bob) == 1
    assert count_rows(db, identifiers, identifiers.c.profile_id == bob) == 1
    # The merge stays on record, without the identifier.
    with db.read() as conn:
        record = conn.execute(sa.select(merges).where(merges.c.loser == bob)).all()
    assert [(r.action, r.winner, r.via_value) for r in record] == [("merge", maria, None)]


# ---------------------------------------------------------------------------------------------
# Receipt mails


def test_erasure_deletes_the_customers_mail(db: Database) -> None:
    maria, other = uuid.uuid4(), uuid.uuid4()
    now = utc_now()
    with db.write() as conn:
        identity.ensure_profile(
            conn, profile_id=maria, source="test", claims=[Identifier("email", "maria@example.com")]
        )
        identity.ensure_profile(
            conn, profile_id=other, source="test", claims=[Identifier("email", "jo@example.com")]
        )
        for address, customer in (
            ("maria@example.com", None),
            ("jo@example.com", other),
            # An address given only for a receipt, by a customer the till had identified.
            ("maria.receipts@example.net", maria),
        ):
            email_id = uuid.uuid4()
            payload = {
                "email_id": str(email_id),
                "customer_id": str(customer) if customer else None,
            }
            conn.execute(
                mail_queue.insert().values(
                    email_id=email_id,
                    message_id=f"<{email_id}@omnitill>",
                    to_address=address,
                    kind="receipt",
                    payload=json.dumps(payload),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        identity.erase_customer(conn, maria)
    with db.read() as conn:
        left = conn.execute(sa.select(mail_queue.c.to_address)).scalars().all()
    assert left == ["jo@example.com"]
    assert count_rows(db, profiles, profiles.c.erased_at.is_not(None)) == 1


def test_a_quarantined_op_naming_nobody_erased_is_left_alone(db: Database) -> None:
    """Names alone do not make an op hers: another customer may have the same name."""
    maria = uuid.uuid4()
    now = utc_now()
    other_patch = {
        "identifiers": [{"kind": "email", "value": "other.zoelle@example.com"}],
        "fields": {"first_name": {"value": FIRST, "hlc": "x"}},
    }
    with db.write() as conn:
        identity.ensure_profile(
            conn, profile_id=maria, source="test", claims=[Identifier("email", EMAIL)]
        )
        identity.write_field(
            conn, customer=maria, profile=maria, field="first_name", value=FIRST,
            hlc="a", writer="t", now=now,
        )  # fmt: skip
        conn.execute(
            quarantine.insert(),
            [
                {
                    "op_id": op_id,
                    "till_id": "S001-T1",
                    "seq": seq,
                    "type": "customer_patch",
                    "payload": json.dumps(payload),
                    "reason": "seq reused",
                    "received_at": now,
                }
                for op_id, seq, payload in (
                    (uuid.uuid4(), 1, other_patch),
                    # Her address in a free text counts: it names her wherever it is.
                    (uuid.uuid4(), 2, {"note": f"typed as {EMAIL.upper()} at the till"}),
                )
            ],
        )
        identity.erase_customer(conn, maria)
    with db.read() as conn:
        rows = {r.seq: r for r in conn.execute(sa.select(quarantine))}
    assert json.loads(rows[1].payload) == other_patch and rows[1].reason == "seq reused"
    assert json.loads(rows[2].payload) == {"note": "typed as [erased] at the till"}
    assert "Personal data removed" in rows[2].reason
    assert leaks(db, [EMAIL]) == []
