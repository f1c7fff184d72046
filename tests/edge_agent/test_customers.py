"""The customer at the counter: instant from the cache, briefly from HQ, else provisional; edits
stamped and converging; merges and erasures from HQ reaching the till."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import feed, outbox
from edge_agent.customers import EDITABLE_FIELDS, CustomerDesk, load_clock
from edge_agent.store import LocalStore
from edge_agent.sync_worker import SyncWorker
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.customer import CustomerCard, CustomerIdentifierModel
from shared.errors import DiskFull, IdentifierError, InvalidInput, NotFound
from shared.hlc import HLCTimestamp, HybridLogicalClock, wall_clock_ms
from sync_server.services import identity
from tests.support.server import wait_for
from tests.support.till import (
    STORE,
    TILL,
    RestartableHq,
    feed_has,
    hq_customer,
    hq_running,
    open_store,
)

LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    local = open_store(tmp_path)
    yield local
    local.close()


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RestartableHq]:
    with hq_running(tmp_path) as server:
        yield server


@pytest.fixture
def desks() -> Iterator[Callable[..., CustomerDesk]]:
    made: list[CustomerDesk] = []

    def make(store: LocalStore, till_id: str = TILL, **kwargs: Any) -> CustomerDesk:
        kwargs.setdefault("clock", HybridLogicalClock(till_id))
        desk = CustomerDesk(
            store,
            till_id=till_id,
            store_id=STORE,
            default_region="DE",
            loyalty_format=DEFAULT_LOYALTY_FORMAT,
            **kwargs,
        )
        made.append(desk)
        return desk

    yield make
    for desk in made:
        desk.close()


def card(customer_id: uuid.UUID | None = None, **over: Any) -> CustomerCard:
    data: dict[str, Any] = {
        "customer_id": customer_id or uuid.uuid4(),
        "first_name": "Ann",
        "last_name": "Lee",
        "identifiers": (
            CustomerIdentifierModel(kind="email", value="ann@example.com"),
            CustomerIdentifierModel(kind="loyalty", value=LOYALTY),
        ),
    }
    data.update(over)
    return CustomerCard(**data)


def cache_from_feed(store: LocalStore, *cards: CustomerCard) -> None:
    """Put cards in the till's cache the way HQ's feed does."""
    changes = [
        {
            "entity": "customer",
            "key": str(c.customer_id),
            "action": "upsert",
            "data": c.model_dump(mode="json"),
        }
        for c in cards
    ]
    feed.apply_page(store, changes, f"v1.0.{len(changes)}")


def pending_patches(store: LocalStore) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT payload FROM outbox WHERE type = 'customer_patch' AND status = 'pending' "
        "ORDER BY seq"
    )
    return [json.loads(r[0]) for r in rows]


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


# -- identify ---------------------------------------------------------------------------------


def test_a_cached_card_answers_at_once_and_hq_refreshes_it_behind(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    cached = card()
    cache_from_feed(store, cached)
    release = threading.Event()
    asked: list[tuple[str, float]] = []

    def slow_lookup(identifier: str, timeout: float) -> CustomerCard | None:
        asked.append((identifier, timeout))
        release.wait(2.0)  # HQ takes its time (up to 2 s)
        return card(cached.customer_id, first_name="Annie")

    desk = desks(store, lookup=slow_lookup)

    found, elapsed = timed(lambda: desk.identify("  ANN@example.com "))

    assert elapsed < 0.05
    assert (found.source, found.card.first_name) == ("cache", "Ann")
    assert str(found.identifier) == "email:ann@example.com"
    by_card, elapsed = timed(lambda: desk.identify(f"{LOYALTY[:4]} {LOYALTY[4:]}"))
    assert elapsed < 0.05 and by_card.card.customer_id == cached.customer_id
    release.set()

    def refreshed() -> bool:
        now = desk.card_for(cached.customer_id)
        return now is not None and (now.first_name, now.last_name) == ("Annie", "Lee")

    wait_for(refreshed, what="the background refresh")
    assert asked[0] == ("email:ann@example.com", 0.3)
    assert pending_patches(store) == []  # a cache hit writes nothing for HQ


def test_a_cache_miss_asks_hq_and_caches_its_card(
    hq: RestartableHq, store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    customer = hq_customer(hq.db, email="maria@example.com", first_name="Maria")
    with hq.client(hq.enroll()) as client:
        desk = desks(store, lookup=client.lookup, lookup_timeout_s=2.0)

        first = desk.identify("maria@example.com")
        second, elapsed = timed(lambda: desk.identify("email:MARIA@example.com"))

    assert (first.source, first.card.customer_id, first.card.first_name) == (
        "server",
        customer,
        "Maria",
    )
    assert second.source == "cache" and second.card == first.card and elapsed < 0.05
    assert pending_patches(store) == []
    # HQ learns through the outbox (once) that this store's tills now want Maria's card.
    events = store.query("SELECT payload FROM outbox WHERE type = 'event'")
    assert [json.loads(e["payload"])["kind"] for e in events] == ["customer_identified"]
    assert json.loads(events[0]["payload"])["customer_id"] == str(customer)


def test_a_slow_hq_gives_a_provisional_customer_quickly_and_its_late_answer_is_kept(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    known = card(
        first_name="Bo", identifiers=(CustomerIdentifierModel(kind="email", value="bo@x.de"),)
    )

    def slow_lookup(identifier: str, timeout: float) -> CustomerCard | None:
        time.sleep(0.6)  # twice the timeout
        return known

    desk = desks(store, lookup=slow_lookup)

    found, elapsed = timed(lambda: desk.identify("bo@x.de"))

    assert elapsed < 0.5
    assert found.source == "provisional" and found.card.provisional
    local = f"TL-{found.card.customer_id}"
    assert [(i.kind, i.value) for i in found.card.identifiers] == [
        ("till_local", local),
        ("email", "bo@x.de"),
    ]
    row = store.query_one(
        "SELECT provisional FROM customers WHERE customer_id = ?", (str(found.card.customer_id),)
    )
    assert row is not None and row[0] == 1
    assert pending_patches(store) == [
        {
            "customer_id": None,
            "identifiers": [
                {"kind": "till_local", "value": local},
                {"kind": "email", "value": "bo@x.de"},
            ],
            "fields": {},
            "consent_events": [],
        }
    ]
    # HQ's late answer is cached for the next scan.
    later = wait_for(
        lambda: (c := desk.cached_card(found.identifier)) and c.customer_id == known.customer_id,
        what="the late answer",
    )
    assert later


def test_offline_an_unknown_customer_is_provisional_and_found_again_at_once(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    desk = desks(store)  # no HQ at all

    made = desk.identify("0151 23456789")
    again, elapsed = timed(lambda: desk.identify("+49 151 2345 6789"))
    by_local_id = desk.identify(f"TL-{made.card.customer_id}")

    assert made.source == "provisional" and str(made.identifier) == "phone:+4915123456789"
    assert again.source == "cache" and again.card.customer_id == made.card.customer_id
    assert elapsed < 0.05
    assert by_local_id.card.customer_id == made.card.customer_id
    assert len(pending_patches(store)) == 1


def test_a_provisional_customer_is_all_or_nothing(
    store: LocalStore, desks: Callable[..., CustomerDesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(outbox, "enqueue", disk_full)
    desk = desks(store)

    with pytest.raises(DiskFull, match="nothing was saved"):
        desk.identify("ann@example.com")

    for table in ("customers", "customer_identifiers", "outbox"):
        count = store.query_one(f"SELECT COUNT(*) FROM {table}")
        assert count is not None and count[0] == 0, table


def test_what_is_not_an_identifier_is_refused_with_a_reason(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    desk = desks(store)
    with pytest.raises(IdentifierError, match="Not an email, phone number or loyalty card"):
        desk.identify("hello there")
    with pytest.raises(IdentifierError, match="nothing after the @"):
        desk.identify("email:ann@")
    wrong_digit = LOYALTY[:-1] + str((int(LOYALTY[-1]) + 1) % 10)
    with pytest.raises(IdentifierError, match="Check digit of loyalty card"):
        desk.identify(f"loyalty:{wrong_digit}")
    with pytest.raises(IdentifierError, match="not a valid phone number"):
        desk.identify("+49 1234")
    assert pending_patches(store) == []


# -- edits ------------------------------------------------------------------------------------


def test_field_edits_update_the_cache_and_send_stamped_fields(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    cached = card()
    cache_from_feed(store, cached)
    desk = desks(store)

    desk.update_fields(cached.customer_id, {"first_name": "Jo", "language": "de"})

    shown = desk.card_for(cached.customer_id)
    assert shown is not None and (shown.first_name, shown.last_name) == ("Jo", "Lee")
    [patch] = pending_patches(store)
    assert patch["customer_id"] == str(cached.customer_id)
    assert {name: w["value"] for name, w in patch["fields"].items()} == {
        "first_name": "Jo",
        "language": "de",
    }
    stamps = [HLCTimestamp.decode(w["hlc"]) for w in patch["fields"].values()]
    assert {s.node for s in stamps} == {TILL} and stamps[0] < stamps[1]
    assert store.get_state("hlc_last") == stamps[1].encode()
    assert load_clock(store, TILL).now() > stamps[1]  # a restarted till goes on from there

    with pytest.raises(InvalidInput, match="Unknown customer field"):
        desk.update_fields(cached.customer_id, {"shoe_size": "44"})
    with pytest.raises(NotFound, match="not on this till"):
        desk.update_fields(uuid.uuid4(), {"first_name": "X"})
    assert len(pending_patches(store)) == 1


def test_edits_and_consent_of_a_provisional_customer_go_by_its_till_local_id(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    desk = desks(store)
    made = desk.identify("new@example.com")

    desk.update_fields(made.card.customer_id, {"last_name": "New"})
    desk.record_consent(made.card.customer_id, "marketing_email", True)

    _, edit, consent = pending_patches(store)
    local = [{"kind": "till_local", "value": f"TL-{made.card.customer_id}"}]
    assert (edit["customer_id"], edit["identifiers"]) == (None, local)
    assert (consent["customer_id"], consent["identifiers"]) == (None, local)
    [event] = consent["consent_events"]
    assert (event["channel"], event["granted"], event["source"]) == (
        "marketing_email",
        True,
        "till",
    )
    shown = desk.card_for(made.card.customer_id)
    assert shown is not None and shown.last_name == "New"
    assert shown.consents == {"marketing_email": True}
    with pytest.raises(InvalidInput, match="channel"):
        desk.record_consent(made.card.customer_id, "carrier_pigeon", True)


def test_the_fields_a_till_edits_are_the_ones_hq_accepts() -> None:
    assert EDITABLE_FIELDS == identity.CUSTOMER_FIELDS


def test_a_merge_on_the_feed_sends_old_ids_to_the_survivor(
    store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    loser, survivor = card(), card(first_name="Ann-Marie")
    cache_from_feed(store, loser)
    feed.apply_page(
        store,
        [
            {
                "entity": "customer",
                "key": str(loser.customer_id),
                "action": "delete",
                "reason": "merged",
                "merged_into": str(survivor.customer_id),
            },
            {
                "entity": "customer",
                "key": str(survivor.customer_id),
                "action": "upsert",
                "data": survivor.model_dump(mode="json"),
            },
        ],
        "v1.0.9",
    )
    desk = desks(store)

    assert desk.card_for(loser.customer_id) == survivor
    assert desk.identify("ann@example.com").card == survivor
    desk.update_fields(loser.customer_id, {"first_name": "Annie"})
    [patch] = pending_patches(store)
    assert patch["customer_id"] == str(survivor.customer_id)


# -- with HQ: merges, convergence, erasure ----------------------------------------------------


def sync_until(workers: list[SyncWorker], done: Callable[[], Any], what: str) -> Any:
    def probe() -> Any:
        for worker in workers:
            status = worker.run_once()
            assert status.last_error is None, status.last_error
        return done()

    return wait_for(probe, timeout=10, interval=0.05, what=what)


def test_a_provisional_customer_made_offline_is_merged_into_hqs_customer(
    hq: RestartableHq, store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    existing = hq_customer(hq.db, email="maria@example.com", first_name="Maria")
    desk = desks(store)  # offline: no lookup
    made = desk.identify("Maria@Example.com")
    provisional = made.card.customer_id
    assert made.source == "provisional" and provisional != existing

    with hq.client(hq.enroll()) as client:
        worker = SyncWorker(store, client)
        sync_until(
            [worker],
            lambda: (c := desk.card_for(provisional)) and c.customer_id == existing,
            "the merge to reach the till",
        )

    assert feed_has(hq.db, entity="customer", key=str(provisional), reason="merged")
    alias = store.query_one(
        "SELECT customer_id FROM customer_aliases WHERE old_id = ?", (str(provisional),)
    )
    assert alias is not None and alias[0] == str(existing)
    gone = store.query_one(
        "SELECT COUNT(*) FROM customers WHERE customer_id = ?", (str(provisional),)
    )
    assert gone is not None and gone[0] == 0
    again = desk.identify("maria@example.com")
    assert (again.source, again.card.customer_id, again.card.first_name) == (
        "cache",
        existing,
        "Maria",
    )
    assert not again.card.provisional
    assert desk.identify(f"TL-{provisional}").card.customer_id == existing


def test_edits_made_offline_on_two_tills_converge_to_the_later_stamp(
    hq: RestartableHq, tmp_path: Path, desks: Callable[..., CustomerDesk]
) -> None:
    customer = hq_customer(hq.db, email="kim@example.com", first_name="Kim")
    base = wall_clock_ms() - 30_000
    stores = [open_store(tmp_path, "t1.db"), open_store(tmp_path, "t2.db")]
    clients = [hq.client(hq.enroll(t), till_id=t) for t in ("S001-T1", "S001-T2")]
    try:
        workers = [SyncWorker(s, c) for s, c in zip(stores, clients, strict=True)]
        ahead = desks(
            stores[0], "S001-T1", clock=HybridLogicalClock("S001-T1", now_ms=lambda: base + 5_000)
        )
        behind = desks(
            stores[1], "S001-T2", clock=HybridLogicalClock("S001-T2", now_ms=lambda: base)
        )
        sync_until(
            workers,
            lambda: ahead.card_for(customer) and behind.card_for(customer),
            "both tills to cache the customer",
        )

        # Offline: the till whose clock is ahead edits first; the other edits later in real
        # time but with an older stamp, and also changes a field nobody else touched.
        ahead.update_fields(customer, {"first_name": "Kimberly"})
        behind.update_fields(customer, {"first_name": "Kimmy", "last_name": "Park"})

        def converged() -> bool:
            cards = [ahead.card_for(customer), behind.card_for(customer)]
            return all(
                c is not None and (c.first_name, c.last_name) == ("Kimberly", "Park") for c in cards
            )

        sync_until(workers, converged, "both caches to converge")
    finally:
        for c in clients:
            c.close()
        for s in stores:
            s.close()


def test_an_erased_customer_disappears_from_the_till(
    hq: RestartableHq, store: LocalStore, desks: Callable[..., CustomerDesk]
) -> None:
    customer = hq_customer(hq.db, email="gone@example.com", first_name="Gone")
    desk = desks(store)
    with hq.client(hq.enroll()) as client:
        worker = SyncWorker(store, client)
        sync_until([worker], lambda: desk.card_for(customer), "the card to reach the till")
        with hq.db.write() as conn:
            identity.erase_customer(conn, customer)
        sync_until([worker], lambda: desk.card_for(customer) is None, "the erasure")

    for table, column in (("customers", "customer_id"), ("customer_identifiers", "customer_id")):
        left = store.query_one(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (str(customer),))
        assert left is not None and left[0] == 0
    again = desk.identify("gone@example.com")
    assert again.source == "provisional" and again.card.customer_id != customer
    assert again.card.first_name == ""
