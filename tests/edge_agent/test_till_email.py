"""Receipts by email at the till: one transaction queues the customer patch and the
``receipt_email`` op with the printed receipt; the headless ``EMAIL`` line."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent import feed
from edge_agent.config import TillSettings
from edge_agent.headless import handle_line, run_headless
from edge_agent.store import LocalStore
from edge_agent.till import Till
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.customer import CustomerIdentifierModel
from shared.protocol import CustomerPatch, ReceiptEmail, parse_op_payload
from shared.receipt import Receipt
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def till(store: LocalStore, tmp_path: Path) -> Iterator[Till]:
    settings = TillSettings(
        db_path=tmp_path / "till.sqlite", store_id=f.STORE_ID, till_id=f.TILL_ID, suggestions=3
    )
    with Till(settings=settings, store=store, client=None, clock=lambda: NOW) as running:
        running.sync.kick = lambda: None  # type: ignore[method-assign]
        yield running


def outbox(store: LocalStore) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r[0], json.loads(r[1]))
        for r in store.query("SELECT type, payload FROM outbox ORDER BY seq")
    ]


def sell(till: Till, *codes: str) -> str:
    for code in codes:
        till.handle_scan(code)
    done = till.handle_scan("CMD-PAY-CASH")
    assert done.kind == "sale_complete", done.message
    return str(done.data["sale_id"])


def printed(store: LocalStore, sale_id: str) -> Receipt:
    row = store.query_one("SELECT document FROM print_jobs WHERE sale_id = ?", (sale_id,))
    assert row is not None
    return Receipt.model_validate_json(row[0])


def test_an_anonymous_sale_queues_a_patch_then_the_mail_with_the_printed_receipt(
    till: Till, store: LocalStore
) -> None:
    assert f.BREAD.ean is not None
    sale_id = sell(till, f.BREAD.ean)
    event = till.email_receipt(" Maria.Rossi@Example.COM ", consent_marketing=True)

    assert event.kind == "email_queued", event.message
    assert event.message == (
        "email of receipt S001-T1-000001 queued for maria.rossi@example.com (with offers)"
    )
    types = [t for t, _ in outbox(store)]
    assert types == ["sale", "customer_patch", "receipt_email"]
    _, patch_json = outbox(store)[1]
    patch = parse_op_payload("customer_patch", patch_json)
    assert isinstance(patch, CustomerPatch)
    assert patch.customer_id is None
    local, email = patch.identifiers
    assert local.kind == "till_local" and email == CustomerIdentifierModel(
        kind="email", value="maria.rossi@example.com"
    )
    [consent] = patch.consent_events
    assert (consent.channel, consent.granted, consent.at) == ("marketing_email", True, NOW)

    mail = parse_op_payload("receipt_email", outbox(store)[2][1])
    assert isinstance(mail, ReceiptEmail)
    assert str(mail.sale_id) == sale_id
    assert mail.address == "maria.rossi@example.com" and mail.consent_marketing
    assert mail.customer_id == uuid.UUID(local.value[3:])
    assert mail.receipt == printed(store, sale_id)  # the same document, suggestions included
    assert [s.sku for s in mail.receipt.suggestions] == [f.BUTTER.sku, f.JAM.sku, f.MILK.sku]
    assert event.data["email_id"] == str(mail.email_id)


def test_the_sale_s_customer_gets_the_address(till: Till, store: LocalStore) -> None:
    card = f.make_card(identifiers=(CustomerIdentifierModel(kind="loyalty", value=LOYALTY),))
    feed.apply_page(store, [f.customer_change(card)], "v1.0.99")
    assert f.MILK.ean is not None
    sale_id = sell(till, f.MILK.ean, LOYALTY)
    event = till.email_receipt("maria@example.com", consent_marketing=False, sale_id=sale_id)
    assert event.message.endswith("queued for maria@example.com (no offers)")
    patch = CustomerPatch.model_validate(outbox(store)[-2][1])
    assert patch.customer_id == card.customer_id
    assert patch.identifiers == (CustomerIdentifierModel(kind="email", value="maria@example.com"),)
    assert patch.consent_events[0].granted is False
    mail = ReceiptEmail.model_validate(outbox(store)[-1][1])
    assert mail.customer_id == card.customer_id
    assert mail.receipt.customer_name == "Maria Schmidt"


def test_an_address_the_cache_knows_names_its_customer(till: Till, store: LocalStore) -> None:
    card = f.make_card()  # maria@example.com
    feed.apply_page(store, [f.customer_change(card)], "v1.0.99")
    assert f.JAM.ean is not None
    sell(till, f.JAM.ean)
    till.email_receipt("MARIA@example.com", consent_marketing=True)
    patch = CustomerPatch.model_validate(outbox(store)[-2][1])
    assert patch.customer_id == card.customer_id
    assert ReceiptEmail.model_validate(outbox(store)[-1][1]).customer_id == card.customer_id


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda t: t.email_receipt("maria@example.com", consent_marketing=True), "no sale"),
        (
            lambda t: t.email_receipt(
                "maria@example.com", consent_marketing=True, sale_id=uuid.uuid4()
            ),
            "There is no sale",
        ),
        (lambda t: t.email_receipt("maria@localhost", consent_marketing=True), "needs a dot"),
        (lambda t: t.email_receipt("", consent_marketing=False), "empty"),
    ],
)
def test_what_cannot_be_emailed_is_refused_and_nothing_is_queued(
    till: Till, store: LocalStore, call: Callable[[Till], Any], words: str
) -> None:
    event = call(till)
    assert event.kind == "refused" and event.is_error
    assert event.message.startswith("refused: ") and words in event.message
    assert outbox(store) == []


def test_a_full_disk_is_not_saved_and_writes_nothing(till: Till, store: LocalStore) -> None:
    # 60 weighed packages: a receipt too big for the free space left in the file's pages.
    sell(till, *(f.weight_label(grams) for grams in range(500, 560)))
    before = outbox(store)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # not one page more: a full disk
    try:
        event = till.email_receipt("maria@example.com", consent_marketing=True)
    finally:
        store.db.execute("PRAGMA max_page_count = 1073741823")
    assert event.kind == "not_saved" and event.is_error
    assert event.message.startswith("not saved: The till's disk is full: nothing was saved.")
    assert outbox(store) == before  # neither the patch nor the mail
    assert till.email_receipt("maria@example.com", consent_marketing=True).kind == "email_queued"
    assert [t for t, _ in outbox(store)][-2:] == ["customer_patch", "receipt_email"]


class Lines:
    """A scanner that hands over fixed lines, then ends."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def run(
        self,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        for line in self.lines:
            on_scan(line)


def test_headless_email_lines(till: Till, store: LocalStore) -> None:
    assert f.MILK.ean is not None
    out = io.StringIO()
    run_headless(
        till,
        Lines(
            [
                f.MILK.ean,
                "CMD-PAY-CASH",
                "EMAIL maria@example.com consent",
                "email ANNA@example.com",
                "EMAIL",
                "EMAIL anna@example.com please",
                "email:anna@example.com",
            ]
        ),
        out=out,
        stop=threading.Event(),
        input_name="test",
        once=True,
        timeout_s=0.2,
    )
    lines = out.getvalue().splitlines()[1:-1]
    assert lines[2] == "email of receipt S001-T1-000001 queued for maria@example.com (with offers)"
    assert lines[3] == "email of receipt S001-T1-000001 queued for anna@example.com (no offers)"
    assert lines[4].startswith("refused: write EMAIL <address>")
    assert lines[5].startswith("refused: write EMAIL <address>")
    assert lines[6].startswith("customer new customer (provisional) (email, new)")
    assert [t for t, _ in outbox(store)].count("receipt_email") == 2


def test_handle_line_passes_scans_on(till: Till) -> None:
    assert handle_line(till, "CMD-TOTAL").kind == "total"
    assert handle_line(till, "EMAILS").kind == "scan_failed"
