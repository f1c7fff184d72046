"""The till facade: scans routed to the sale engine, the customer desk and the commands; every
bad scan a clear event; a full disk refuses the sale without half-writing it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from edge_agent import feed
from edge_agent.config import TillSettings
from edge_agent.headless import EXIT_PENDING, run_headless
from edge_agent.hq_client import HQClient
from edge_agent.store import LocalStore
from edge_agent.till import COMMANDS, Till, TillEvent
from omnitill.cli import main
from shared.barcodes import DEFAULT_LOYALTY_FORMAT, make_loyalty_number
from shared.customer import CustomerIdentifierModel
from shared.receipt import Receipt
from shared.sale import Return, Sale
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LOYALTY = make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 4242)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


def till_settings(tmp_path: Path, **over: Any) -> TillSettings:
    values: dict[str, Any] = {
        "db_path": tmp_path / "till.sqlite",
        "store_id": f.STORE_ID,
        "till_id": f.TILL_ID,
        "cashier_id": "cashier-7",
        "suggestions": 3,
    }
    values.update(over)
    return TillSettings(**values)


@pytest.fixture
def till(store: LocalStore, tmp_path: Path) -> Iterator[Till]:
    with Till(
        settings=till_settings(tmp_path), store=store, client=None, clock=lambda: NOW
    ) as running:
        yield running


def count(store: LocalStore, table: str, where: str = "1") -> int:
    row = store.query_one(f"SELECT COUNT(*) FROM {table} WHERE {where}")
    assert row is not None
    return int(row[0])


def scan(till: Till, *codes: str | None) -> TillEvent:
    event: TillEvent | None = None
    for code in codes:
        assert code is not None
        event = till.handle_scan(code)
        assert not event.is_error, event
    assert event is not None
    return event


def stored_sale(store: LocalStore, sale_id: str) -> Sale:
    row = store.query_one("SELECT payload FROM sales WHERE sale_id = ?", (sale_id,))
    assert row is not None
    return Sale.model_validate_json(row[0])


# --- the sale ----------------------------------------------------------------------------------


def test_a_sale_from_scans_to_the_outbox(till: Till, store: LocalStore) -> None:
    kicks: list[int] = []
    till.sync.kick = lambda: kicks.append(1)  # type: ignore[method-assign]
    added = scan(till, f.TSHIRT.ean)
    assert added.kind == "item_added"
    assert added.message == "added 1 x Nordkind Organic Cotton T-Shirt Navy €19.99 | total €19.99"
    assert added.data["total_minor"] == 1999
    assert scan(till, "CMD-QTY-3").message == "next item x 3"
    assert scan(till, f.MILK.ean).message.startswith("added 3 x Alpenhof Fresh Milk 1 l €3.87 |")
    again = scan(till, f.MILK.ean)  # the same product adds to its line
    assert again.data["quantity"] == 1 and again.data["line_quantity"] == 4
    total = scan(till, "CMD-TOTAL")
    assert total.kind == "total" and total.data["due_minor"] == 1999 + 4 * 129
    assert total.message == "total €25.15 | paid €0.00 | due €25.15 | 2 lines"

    partly = scan(till, "CMD-PAY-CASH-1000")
    assert (partly.kind, partly.message) == ("payment", "paid cash €10.00 | due €15.15")
    assert kicks == []
    done = scan(till, "CMD-PAY-CARD")
    assert done.kind == "sale_complete"
    assert done.message == (
        "sale complete S001-T1-000001 | total €25.15 | paid cash €10.00, card €15.15 | change €0.00"
    )
    assert kicks == [1]  # pushed at once

    sale = stored_sale(store, done.data["sale_id"])
    assert [(t.kind, t.amount_minor, t.reference) for t in sale.tenders] == [
        ("cash", 1000, None),
        ("card", 1515, "SIM-000001"),
    ]
    assert [(line.sku, line.quantity) for line in sale.lines] == [
        (f.TSHIRT.sku, 1),
        (f.MILK.sku, 4),
    ]
    ops = store.query("SELECT type, payload FROM outbox")
    assert [(op[0], json.loads(op[1])["sale_id"]) for op in ops] == [("sale", str(sale.sale_id))]
    status = till.status()
    assert status.pending_print_jobs == 1 and status.basket_lines == 0
    assert status.sync.pending_ops == 1  # offline: the sale waits in the outbox


def test_cash_gives_change_and_the_receipt_carries_suggestions(
    till: Till, store: LocalStore
) -> None:
    event = scan(till, f.BREAD.ean)
    suggested = [s["sku"] for s in event.data["suggestions"]]
    assert suggested[0] == f.BUTTER.sku
    assert event.data["suggestions"][0]["reason"] == "Often bought with Backstube Rye Bread 500 g"
    scan(till, f.BUTTER.ean)
    assert f.BUTTER.sku not in [s.sku for s in till.suggestions]
    done = scan(till, "CMD-PAY-CASH-1000")
    assert done.kind == "sale_complete" and done.data["change_minor"] == 1000 - 299 - 249
    assert done.message.endswith("| paid cash €10.00 | change €4.52")
    assert till.suggestions == []
    row = store.query_one("SELECT document FROM print_jobs")
    assert row is not None
    receipt = Receipt.model_validate_json(row[0])
    assert [s.sku for s in receipt.suggestions] == [f.JAM.sku, f.MILK.sku]


def test_void_cancel_park_and_resume(till: Till, store: LocalStore) -> None:
    scan(till, f.MILK.ean, f.BREAD.ean)
    voided = scan(till, "CMD-VOID")
    assert voided.message == "voided line 2: 1 x Backstube Rye Bread 500 g | total €1.29"
    parked = scan(till, "CMD-PARK")
    assert parked.kind == "parked" and parked.data["parked"] == 1
    assert till.engine.basket.is_empty
    scan(till, f.WINE.ean)
    cancelled = scan(till, "CMD-CANCEL")
    assert cancelled.message == "sale cancelled (1 line)"
    resumed = scan(till, "CMD-RESUME")
    assert resumed.message == "sale resumed (1 lines) | total €1.29"
    assert [line.sku for line in till.engine.basket.lines] == [f.MILK.sku]
    assert scan(till, "CMD-PAY-CASH").kind == "sale_complete"
    for command, words in [
        ("CMD-RESUME", "no parked sale"),
        ("CMD-VOID", "no line to void"),
        ("CMD-CANCEL", "no sale to cancel"),
        ("CMD-PAY-CASH", "The basket is empty"),
        ("CMD-QTY", "CMD-QTY needs a quantity"),
        ("CMD-QTY-0", "between 1 and"),
    ]:
        event = till.handle_scan(command)
        assert event.kind == "refused" and words in event.message, (command, event)


def test_a_card_payment_cancelled_reminds_to_refund_it(till: Till) -> None:
    scan(till, f.JEANS.ean, "CMD-PAY-CARD-1000")
    event = scan(till, "CMD-CANCEL")
    assert event.message.endswith("refund the card payment at the terminal")
    assert event.data["card_refund_needed"] is True


def test_reprint_queues_a_copy_of_the_last_receipt(till: Till, store: LocalStore) -> None:
    assert till.handle_scan("CMD-REPRINT").kind == "refused"
    scan(till, f.COFFEE.ean)
    done = scan(till, "CMD-PAY-CASH")
    event = scan(till, "CMD-REPRINT")
    assert event.message == f"reprint of receipt {done.data['receipt_number']} queued"
    rows = store.query("SELECT sale_id, copy, status, document FROM print_jobs ORDER BY copy")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (done.data["sale_id"], 0, "pending"),
        (done.data["sale_id"], 1, "pending"),
    ]
    original, copy = (Receipt.model_validate_json(r[3]) for r in rows)
    assert (original.copy_, copy.copy_) == (False, True)
    assert copy.model_copy(update={"copy_": False}) == original
    assert till.status().pending_print_jobs == 2


def test_x_and_z_reports(till: Till, store: LocalStore) -> None:
    scan(till, f.WINE.ean, "CMD-PAY-CASH-1000")
    x = scan(till, "CMD-X")
    assert x.kind == "report" and x.data["sales_count"] == 1
    assert x.message.startswith("X report | 1 sales, 0 returns | net €8.99 |")
    assert x.message.endswith("cash expected €8.99")
    scan(till, f.MILK.ean)
    assert "before the Z report" in till.handle_scan("CMD-Z").message
    scan(till, "CMD-CANCEL")
    z = scan(till, "CMD-Z")
    assert z.message.startswith("Z report 1 | 1 sales")
    assert scan(till, "CMD-X").data["sales_count"] == 0
    assert count(store, "z_reports") == 1


def test_a_return_from_the_receipt_barcode(till: Till, store: LocalStore) -> None:
    scan(till, f.BELT.ean, f.SOCKS.ean)
    done = scan(till, "CMD-PAY-CASH")
    number = done.data["receipt_number"]
    started = scan(till, f"R{number}")
    assert started.kind == "return_started"
    assert started.message.startswith(f"return of receipt {number}: 2 items, refund €39.98")
    for code in (f.MILK.ean or "", "CMD-VOID", "CMD-PAY-CASH-100", LOYALTY, f"R{number}"):
        event = till.handle_scan(code)
        assert event.kind == "refused", (code, event)
    assert scan(till, "CMD-TOTAL").message == f"refund €39.98 for receipt {number}"
    refunded = scan(till, "CMD-PAY-CARD")
    assert refunded.kind == "return_complete"
    assert refunded.message == (
        f"return complete S001-T1-000002 | refund card €39.98 | original {number}"
    )
    row = store.query_one("SELECT payload FROM sales WHERE kind = 'return'")
    assert row is not None
    ret = Return.model_validate_json(row[0])
    assert str(ret.original_sale_id) == done.data["sale_id"]
    assert ret.refund_tenders[0].reference == "SIM-000001"
    assert [r[0] for r in store.query("SELECT type FROM outbox ORDER BY seq")] == [
        "sale",
        "return",
    ]
    again = till.handle_scan(f"R{number}")
    assert again.kind == "refused" and "already returned" in again.message
    unknown = till.handle_scan("RS001-T9-000001")
    assert unknown.kind == "refused" and "not a sale in this till's records" in unknown.message
    # A cancelled return leaves nothing behind.
    scan(till, f.MILK.ean, "CMD-PAY-CASH")
    scan(till, "RS001-T1-000003")
    assert scan(till, "CMD-CANCEL").message == "return of receipt S001-T1-000003 cancelled"
    assert count(store, "sales", "kind = 'return'") == 1


# --- customers at scan time --------------------------------------------------------------------


def test_a_cached_loyalty_card_attaches_the_customer(till: Till, store: LocalStore) -> None:
    card = f.make_card(
        identifiers=(
            CustomerIdentifierModel(kind="loyalty", value=LOYALTY),
            CustomerIdentifierModel(kind="email", value="maria@example.com"),
        )
    )
    feed.apply_page(store, [f.customer_change(card)], "v1.0.99")
    scan(till, f.MILK.ean)
    event = scan(till, LOYALTY)
    assert event.kind == "customer"
    assert event.message == "customer Maria Schmidt (loyalty, from cache) | total €1.29"
    assert event.data["customer_id"] == str(card.customer_id)
    done = scan(till, "CMD-PAY-CASH")
    assert done.data["customer_id"] == str(card.customer_id)
    # The QR code on a digital receipt carries kind:value.
    assert scan(till, "Email:Maria@Example.com").data["customer_id"] == str(card.customer_id)


def test_an_unknown_card_offline_makes_a_provisional_customer(
    till: Till, store: LocalStore
) -> None:
    kicks: list[int] = []
    till.sync.kick = lambda: kicks.append(1)  # type: ignore[method-assign]
    event = scan(till, make_loyalty_number(DEFAULT_LOYALTY_FORMAT, 777))
    assert event.message == "customer new customer (provisional) (loyalty, new) | total €0.00"
    assert kicks == [1]
    scan(till, f.JAM.ean)
    done = scan(till, "CMD-PAY-CASH")
    sale = stored_sale(store, done.data["sale_id"])
    assert sale.customer_id is None
    assert sale.customer_identifier == f"till_local:TL-{event.data['customer_id']}"
    assert [r[0] for r in store.query("SELECT type FROM outbox ORDER BY seq")] == [
        "customer_patch",
        "sale",
    ]


# --- bad input ---------------------------------------------------------------------------------

BAD_LOYALTY = LOYALTY[:-1] + str((int(LOYALTY[-1]) + 1) % 10)
BAD_EAN13 = f.MILK.ean[:-1] + str((int(f.MILK.ean[-1]) + 1) % 10) if f.MILK.ean else ""

MALFORMED = [
    ("ean-13 check digit", BAD_EAN13, "scan_failed", "Check digit of 4000000000014 is 4"),
    ("ean-8 length", "9638507", "scan_failed", "7 digits"),
    ("letters", "HELLO-WORLD", "scan_failed", "is not a product, loyalty card, receipt or command"),
    ("digits and letters", "40063813339X1", "scan_failed", "is not a product"),
    ("loyalty luhn", BAD_LOYALTY, "scan_failed", "heck digit"),
    ("control character", "4006\x07381333931", "scan_failed", "unreadable characters"),
    ("replacement character", "4006\ufffd381333931", "scan_failed", "unreadable characters"),
    ("empty", " \r\n", "scan_failed", "Nothing was scanned"),
    ("bad command", "CMD-PAY CASH", "scan_failed", "is not a command name"),
    ("unknown command", "CMD-SELFDESTRUCT", "refused", "CMD-SELFDESTRUCT is not a till command"),
    ("short receipt", "R12", "scan_failed", "is not a receipt number"),
    ("bad email in a QR", "email:not-an-email", "scan_failed", "not-an-email"),
    ("unknown product", f.UNKNOWN_EAN, "unknown_product", "key it as an open-price item"),
    ("overlong", "4" * 5000, "scan_failed", "5000 characters is longer than any code"),
]


@pytest.mark.parametrize(
    ("code", "kind", "words"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_every_malformed_scan_is_a_clear_message(
    till: Till, store: LocalStore, code: str, kind: str, words: str
) -> None:
    scan(till, f.MILK.ean)
    before = till.engine.basket.to_json()
    event = till.handle_scan(code)
    assert event.is_error and event.kind == kind, event
    assert words in event.message, event.message
    prefix = {
        "scan_failed": "failed scan: ",
        "refused": "refused: ",
        "unknown_product": "unknown product: ",
    }
    assert event.message.startswith(prefix[kind])
    assert till.engine.basket.to_json() == before
    assert scan(till, "CMD-PAY-CASH").kind == "sale_complete"
    assert count(store, "sales") == 1


def test_scanner_failures_are_events_too(till: Till) -> None:
    event = till.scan_failed("The scanner sent unreadable bytes (0x00) in '\\x00': scan again")
    assert event.kind == "scan_failed" and event.is_error
    assert (
        str(event) == "failed scan: The scanner sent unreadable bytes (0x00) in '\\x00': scan again"
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_no_scan_ever_raises(till: Till, text: str) -> None:
    event = till.handle_scan(text)
    assert isinstance(event, TillEvent) and event.message
    assert event.kind != "error", event
    till.handle_scan("CMD-CANCEL")


def test_a_bug_below_is_an_error_event_not_a_crash(till: Till) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")

    till.engine.add_scanned_product = broken  # type: ignore[method-assign]
    event = till.handle_scan(f.MILK.ean or "")
    assert event.kind == "error" and "KeyError" in event.message
    assert till.handle_scan("CMD-TOTAL").kind == "total"


# --- a full disk -------------------------------------------------------------------------------


def test_a_full_disk_refuses_the_sale_and_the_till_carries_on(
    till: Till, store: LocalStore
) -> None:
    # 60 weighed packages: a sale too big for the free space left in the file's pages.
    for grams in range(500, 560):
        scan(till, f.weight_label(grams))
    tables = ("sales", "outbox", "print_jobs")
    before = [count(store, t) for t in tables]
    counter = store.get_state("receipt_counter")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # not one page more: a full disk

    event = till.handle_scan("CMD-PAY-CASH")
    assert event.kind == "not_saved" and event.is_error
    assert event.message.startswith(
        "not saved: The sale was not saved: The till's disk is full: nothing was saved."
    )
    assert "scan CMD-PAY-CASH or CMD-PAY-CARD again to save the sale" in event.message
    assert [count(store, t) for t in tables] == before
    assert store.get_state("receipt_counter") == counter
    assert len(till.engine.basket.lines) == 60
    assert till.engine.totals().due_minor == 0  # the cash taken stays on the counter
    # The till keeps working while the disk is full.
    assert till.handle_scan("CMD-TOTAL").data["due_minor"] == 0
    assert till.handle_scan("CMD-X").kind == "report"

    store.db.execute("PRAGMA max_page_count = 1073741823")  # space was freed
    done = scan(till, "CMD-PAY-CASH")
    assert done.kind == "sale_complete"
    sale = stored_sale(store, done.data["sale_id"])
    assert len(sale.tenders) == 1  # paid once, not twice
    assert [count(store, t) for t in tables] == [n + 1 for n in before]
    scan(till, f.MILK.ean)
    assert scan(till, "CMD-PAY-CASH").data["receipt_number"] == "S001-T1-000002"


# --- store configuration -----------------------------------------------------------------------


def test_a_new_store_configuration_is_taken_up_between_sales(till: Till, store: LocalStore) -> None:
    assert till.engine.shop.name == "Omnitill Demo Berlin"
    scan(till, f.MILK.ean)
    feed.apply_page(store, [f.store_change(f.make_shop(name="Omnitill Berlin Mitte"))], "v1.0.7")
    scan(till, f.BREAD.ean)
    assert till.engine.shop.name == "Omnitill Demo Berlin"  # not in the middle of a sale
    done = scan(till, "CMD-PAY-CASH")
    scan(till, f.MILK.ean)
    assert till.engine.shop.name == "Omnitill Berlin Mitte"
    assert till.engine.last_sale is not None
    assert str(till.engine.last_sale.sale_id) == done.data["sale_id"]


def test_without_a_store_configuration_the_settings_stand_in(tmp_path: Path) -> None:
    local = LocalStore.open(tmp_path / "empty.sqlite")
    settings_ = till_settings(tmp_path, currency="CHF", tax_mode="exclusive")
    with Till(settings=settings_, store=local, client=None) as bare:
        shop = bare.engine.shop
        assert (shop.store_id, shop.currency, shop.tax_mode) == ("S001", "CHF", "exclusive")
        assert bare.handle_scan("CMD-TOTAL").message.startswith("total CHF 0.00")
    local.close()


# --- wiring and the headless loop ----------------------------------------------------------------


def test_from_settings_opens_the_store_and_connects_to_hq(tmp_path: Path) -> None:
    settings_ = till_settings(tmp_path, server_url="http://127.0.0.1:9", token=SecretStr("t0ken"))
    with Till.from_settings(settings_) as running:
        assert running.settings.db_path.exists()
        assert running.sync.status.server_url == "http://127.0.0.1:9"
        assert isinstance(running._client, HQClient)
    with Till.from_settings(till_settings(tmp_path)) as offline:
        assert offline.sync.status.server_url is None


def test_commands_are_documented() -> None:
    docs = {
        name: (ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("till.md", "cli.md")
    }
    for name in COMMANDS:
        for text in docs.values():
            assert f"`CMD-{name}`" in text, f"CMD-{name} is not documented"


class ListScanner:
    def __init__(self, codes: list[str], errors: list[str]) -> None:
        self.codes, self.errors = codes, errors

    def run(
        self,
        on_scan: Callable[[str], None],
        on_error: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        for code in self.codes:
            on_scan(code)
        for message in self.errors:
            on_error(message)


def test_headless_loop_writes_one_line_per_event(till: Till) -> None:
    out = io.StringIO()
    code = run_headless(
        till,
        ListScanner([f.MILK.ean or "", "4006381333932", "CMD-PAY-CASH"], ["Only part\nof a code"]),
        out=out,
        stop=threading.Event(),
        input_name="test",
        once=True,
        timeout_s=0.3,
    )
    assert code == EXIT_PENDING  # offline: the sale is still waiting for HQ
    lines = out.getvalue().splitlines()
    assert lines[0] == "ready | till S001-T1 | store S001 | HQ none (no token) | input test"
    assert lines[1].startswith("added 1 x Alpenhof Fresh Milk 1 l €1.29")
    assert lines[2].startswith("failed scan: Check digit of 4006381333932")
    assert lines[3].startswith("sale complete S001-T1-000001 |")
    assert lines[4] == "failed scan: Only part of a code"
    assert lines[5] == "stopped | 1 ops waiting for HQ | 1 print jobs waiting"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--stdin"], "--stdin and --once are for the headless till"),
        (["--headless", "--once"], "--once needs --stdin"),
        (["--headless"], "No scan input"),
        (["--headless", "--scanner", "usb://scanner"], "is not supported"),
        (["--headless", "--stdin", "--till", "bad till!"], "Bad till setting"),
    ],
)
def test_cli_refuses_what_it_cannot_run(
    args: list[str], words: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OMNITILL_TILL_CONFIG", str(tmp_path / "none.toml"))
    for name in ("SCANNER", "SERVER_URL", "TOKEN", "TILL_ID"):
        monkeypatch.delenv(f"OMNITILL_TILL_{name}", raising=False)
    result = CliRunner().invoke(main, ["till", *args, "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 2, result.output
    assert words in result.output
