"""The till screen's presenter with a real till and no Qt: what the cashier reads and does."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from edge_agent import feed
from edge_agent.printing.jobs import PrinterState
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.presenters import (
    Page,
    ReceiptChoice,
    TillPresenter,
    amount_minor_from_text,
    percent_from_text,
)
from shared.errors import StorageError
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import LOYALTY


@pytest.fixture
def presenter(till: Till) -> TillPresenter:
    return TillPresenter(till)


def page_of(presenter: TillPresenter) -> Page:
    """The panel shown (a call, so that type checkers do not narrow it between actions)."""
    return presenter.page


def skus(presenter: TillPresenter) -> list[str]:
    return [row.sku for row in presenter.rows]


def outbox(store: LocalStore, op_type: str) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT payload FROM outbox WHERE type = ? ORDER BY seq", [op_type]
    ).fetchall()
    return [json.loads(row[0]) for row in rows]


def test_an_empty_till_says_so_in_words(presenter: TillPresenter) -> None:
    assert presenter.rows == ()
    assert presenter.totals.total == "€0.00" and presenter.totals.lines == 0
    assert presenter.customer is None and presenter.suggestions == ()
    assert presenter.message.text == "Ready for the first scan"
    status = presenter.status
    assert status.offline and status.connection.startswith("OFFLINE")
    assert status.waiting == "all sent" and status.last_sync == "never synced"
    assert status.printer == "Printer: none configured"
    assert status.text.count(" | ") == 3


def test_scans_fill_the_basket_totals_and_suggestions(presenter: TillPresenter) -> None:
    calls: list[int] = []
    presenter.add_listener(lambda: calls.append(1))
    assert f.BREAD.ean and f.MILK.ean
    presenter.scan(f.BREAD.ean)
    presenter.scan("CMD-QTY-3")
    presenter.scan(f.MILK.ean)
    assert len(calls) == 3
    assert [(r.quantity, r.name, r.unit_price, r.line_total) for r in presenter.rows] == [
        ("1", f.BREAD.name, "€2.99", "€2.99"),
        ("3", f.MILK.name, "€1.29", "€3.87"),
    ]
    totals = presenter.totals
    assert totals.total == "€6.86" and totals.due_minor == 686
    assert totals.tax_note.startswith("incl. tax €0.4")
    assert presenter.message.text.startswith("Added 3 x Alpenhof Fresh Milk 1 l €3.87")
    assert not presenter.message.is_error
    skus = [s.sku for s in presenter.suggestions]
    assert f.BUTTER.sku in skus and f.BREAD.sku not in skus
    butter = next(s for s in presenter.suggestions if s.sku == f.BUTTER.sku)
    assert butter.price == "€2.49" and butter.reason


def test_a_bad_scan_is_an_error_message_not_an_exception(presenter: TillPresenter) -> None:
    presenter.scan("4006381333932")  # bad check digit
    assert presenter.message.is_error
    assert presenter.message.text.startswith("Failed scan: Check digit")
    presenter.scan("   ")
    assert presenter.message.text == "Refused: the scan was empty"


def test_the_customer_panel_shows_the_single_customer_view(presenter: TillPresenter) -> None:
    presenter.scan(LOYALTY)
    view = presenter.customer
    assert view is not None
    assert view.name == "Maria Schmidt" and view.points == "1,250 points"
    assert view.consents == "Offers by email: yes, Offers by SMS: no"
    assert view.recently_viewed == (f"{f.JEANS.name}, 20 Nov",)
    assert view.left_in_cart == (f"{f.BELT.name} (€29.99)",)
    assert view.last_purchases == ("Hochland Coffee Beans 1 kg",)
    assert view.email == "maria@example.com"


def test_accepting_a_suggestion_adds_it_and_records_the_event(
    presenter: TillPresenter, store: LocalStore
) -> None:
    assert f.BREAD.ean
    presenter.scan(LOYALTY)
    presenter.scan(f.BREAD.ean)
    reason = next(s.reason for s in presenter.suggestions if s.sku == f.BUTTER.sku)
    event = presenter.accept_suggestion(f.BUTTER.sku)
    assert event.kind == "item_added" and event.data["suggestion_accepted"] is True
    assert skus(presenter) == [f.BREAD.sku, f.BUTTER.sku]
    assert f.BUTTER.sku not in [s.sku for s in presenter.suggestions]
    [recorded] = outbox(store, "event")
    assert recorded["kind"] == "suggestion_accepted" and recorded["sku"] == f.BUTTER.sku
    assert recorded["data"]["reason"] == reason
    assert recorded["customer_id"] is not None


def test_void_and_quantity_change(presenter: TillPresenter) -> None:
    assert f.BREAD.ean and f.MILK.ean
    presenter.scan(f.BREAD.ean)
    presenter.scan(f.MILK.ean)
    milk = presenter.rows[1].line_no
    presenter.change_quantity(milk, 4)
    assert presenter.rows[1].quantity == "4" and presenter.rows[1].line_total == "€5.16"
    presenter.change_quantity(milk, 0)
    assert presenter.message.is_error and "void it" in presenter.message.text
    presenter.void(presenter.rows[0].line_no)
    assert skus(presenter) == [f.MILK.sku]
    presenter.void(999)
    assert presenter.message.is_error


def print_jobs(store: LocalStore) -> list[tuple[str, str]]:
    """(kind, status) of every print job, oldest first."""
    rows = store.db.execute("SELECT kind, status FROM print_jobs ORDER BY rowid").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def test_a_split_payment_then_the_receipt_by_email_and_on_paper(
    presenter: TillPresenter, store: LocalStore
) -> None:
    assert f.TSHIRT.ean
    presenter.scan(LOYALTY)
    presenter.scan(f.TSHIRT.ean)
    assert presenter.show("payment") == "payment"
    assert presenter.payment.due == "€19.99"
    assert presenter.payment.quick_cash == (
        ("Exact €19.99", 1999),
        ("€20.00", 2000),
        ("€50.00", 5000),
        ("€100.00", 10000),
    )
    partly = presenter.pay_card(999, reference=" TID-4711 ")
    assert partly.kind == "payment" and presenter.totals.due == "€10.00"
    assert page_of(presenter) == "payment" and presenter.receipt_prompt is None
    assert presenter.payment.tenders == ("Card €9.99 (terminal ref. TID-4711)",)
    done = presenter.pay_cash(2000)
    assert done.kind == "sale_complete" and page_of(presenter) == "receipt"
    prompt = presenter.receipt_prompt
    assert prompt is not None and prompt.email == "maria@example.com"
    assert prompt.summary == "Sale S001-T1-000001: total €19.99, change €10.00"
    assert prompt.change == "€10.00"
    assert presenter.rows == () and presenter.customer is None
    # The sale is saved; its paper receipt waits for the answer, the drawer opens at once.
    assert print_jobs(store) == [("sale", "held"), ("drawer", "pending")]
    [sale] = outbox(store, "sale")
    assert sale["tenders"][0]["reference"] == "TID-4711"

    refused = presenter.choose_receipt("email", address="not an address")
    assert refused.is_error and presenter.receipt_prompt is prompt  # fix it and try again
    assert print_jobs(store)[0] == ("sale", "held")
    sent = presenter.choose_receipt("both", address=prompt.email, consent_marketing=True)
    assert sent.kind == "receipt" and presenter.receipt_prompt is None
    assert sent.message.startswith("email of receipt S001-T1-000001 queued for maria@")
    assert sent.message.endswith(
        "; receipt S001-T1-000001 queued, but no printer is configured at this till"
    )
    assert page_of(presenter) == "sale"
    [mail] = outbox(store, "receipt_email")
    assert mail["address"] == "maria@example.com" and mail["sale_id"] == prompt.sale_id
    assert print_jobs(store)[0] == ("sale", "pending")
    assert presenter.status.waiting == "3 ops waiting to sync"  # sale, patch, email


@pytest.mark.parametrize(
    ("choice", "status", "emails"),
    [
        ("print", "pending", 0),
        ("email", "declined", 1),
        ("both", "pending", 1),
        ("none", "declined", 0),
    ],
)
def test_each_receipt_choice(
    presenter: TillPresenter, store: LocalStore, choice: ReceiptChoice, status: str, emails: int
) -> None:
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.pay_card()
    event = presenter.choose_receipt(choice, address="kim@example.com")
    assert not event.is_error and event.data["choice"] == choice
    assert print_jobs(store) == [("sale", status)]  # a card sale opens no drawer
    assert len(outbox(store, "receipt_email")) == emails


def test_a_receipt_never_chosen_is_not_printed_until_reprinted(
    presenter: TillPresenter, store: LocalStore
) -> None:
    assert presenter.choose_receipt("print").is_error  # no sale yet
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.pay_cash()
    assert presenter.receipt_prompt is not None
    presenter.scan(f.MILK.ean)  # the next customer: the prompt goes, the receipt stays held
    assert presenter.receipt_prompt is None and len(presenter.rows) == 1
    assert page_of(presenter) == "sale"
    assert print_jobs(store) == [("sale", "held"), ("drawer", "pending")]
    presenter.command("CANCEL")
    reprint = presenter.command("REPRINT")
    assert reprint.message == "receipt S001-T1-000001 is printing (it was not printed before)"
    assert print_jobs(store) == [("sale", "pending"), ("drawer", "pending")]
    presenter.command("REPRINT")  # now it is a copy
    assert print_jobs(store)[-1] == ("sale", "pending")
    copies = store.db.execute("SELECT COUNT(*) FROM print_jobs WHERE copy = 1").fetchone()[0]
    assert copies == 1


def test_a_presenter_that_does_not_ask_prints_at_once(till: Till, store: LocalStore) -> None:
    presenter = TillPresenter(till, ask_receipt=False)
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.pay_cash()
    assert print_jobs(store) == [("sale", "pending")]


def test_panels_open_only_when_they_make_sense(presenter: TillPresenter) -> None:
    pages: tuple[Page, ...] = ("payment", "discount", "receipt")
    for page in pages:
        assert presenter.show(page) == "sale"
        assert presenter.message.is_error
    assert presenter.message.text == "Refused: there is no sale waiting for a receipt"
    assert presenter.show("open_price") == "open_price"
    assert presenter.tax_rates == ("19", "7")
    assert presenter.back() == "sale"
    assert presenter.show("parked") == "parked" and presenter.parked == ()
    assert presenter.back() == "sale"


def test_discounts_with_a_reason_on_a_line_and_on_the_basket(presenter: TillPresenter) -> None:
    assert f.COFFEE.ean and f.MILK.ean
    presenter.scan(f.COFFEE.ean)
    presenter.scan(f.MILK.ean)
    coffee = presenter.rows[0].line_no
    assert presenter.show("discount") == "discount"
    missing = presenter.discount(line_no=coffee, kind="percent", value="10", reason=" ")
    assert missing.is_error
    assert presenter.message.text == "Refused: a discount needs a reason: pick one or type it"
    assert page_of(presenter) == "discount"  # still there, to fix it
    bad = presenter.discount(line_no=coffee, kind="percent", value="150", reason="Damaged")
    assert bad.is_error and presenter.message.text.startswith("Refused: '150' is not a percent")
    done = presenter.discount(line_no=coffee, kind="percent", value="10", reason="Damaged")
    assert done.kind == "discount" and page_of(presenter) == "sale"
    assert presenter.rows[0].discount == "-€1.30 Damaged"
    assert presenter.message.text.startswith("Discount 10% on line 1 (Hochland Coffee Beans 1 kg)")
    assert presenter.rows[0].line_total == "€11.69"
    presenter.discount(line_no=None, kind="amount", value="1", reason="Price match")
    assert presenter.totals.total == "€11.98"  # 11.69 + 1.29 - 1.00
    assert presenter.rows[1].discount == "-€0.10 Price match"
    too_much = presenter.discount(line_no=None, kind="amount", value="99", reason="Price match")
    assert too_much.is_error
    presenter.remove_discounts(None)
    presenter.remove_discounts(coffee)
    assert presenter.totals.total == "€14.28" and presenter.rows[0].discount == ""


def test_an_open_price_item(presenter: TillPresenter) -> None:
    presenter.show("open_price")
    assert presenter.add_open_price("Gift wrap", "x", "19").is_error
    assert presenter.add_open_price("Gift wrap", "2.5", "nineteen").is_error
    assert presenter.add_open_price("", "2.5", "19").is_error
    event = presenter.add_open_price("Gift wrap", "2,50", "19 %", quantity=2)
    assert event.kind == "item_added" and page_of(presenter) == "sale"
    row = presenter.rows[0]
    assert (row.quantity, row.name, row.unit_price, row.line_total) == (
        "2",
        "Gift wrap",
        "€2.50",
        "€5.00",
    )
    assert presenter.message.text == "Added 2 x Gift wrap (open price) €5.00 | total €5.00"


def test_park_with_a_label_and_resume_any(presenter: TillPresenter) -> None:
    assert f.MILK.ean and f.BREAD.ean and f.JAM.ean
    presenter.scan(f.MILK.ean)
    presenter.park("Mrs Weber")
    presenter.scan(f.BREAD.ean)
    presenter.scan(f.JAM.ean)
    presenter.park("")
    assert page_of(presenter) == "sale" and presenter.rows == ()
    presenter.show("parked")
    # Oldest first; both were parked at the same (test) minute.
    assert sorted(row.text for row in presenter.parked) == [
        "16:00  Mrs Weber  |  1 line  |  €1.29",
        "16:00  no label  |  2 lines  |  €6.48",
    ]
    second = next(row for row in presenter.parked if "no label" in row.text)
    presenter.resume(second.park_id)  # any of them, not only the oldest
    assert skus(presenter) == [f.BREAD.sku, f.JAM.sku]
    assert page_of(presenter) == "sale" and len(presenter.parked) == 1
    assert presenter.resume(presenter.parked[0].park_id).is_error  # the counter is busy


def test_a_return_from_the_receipt_number(presenter: TillPresenter) -> None:
    assert f.WINE.ean
    presenter.scan(f.WINE.ean)
    presenter.scan("CMD-QTY-2")
    presenter.scan(f.WINE.ean)
    presenter.pay_cash()
    presenter.choose_receipt("none")
    assert presenter.start_return("").is_error
    event = presenter.start_return("s001-t1-000001")
    assert event.kind == "return_started" and page_of(presenter) == "return"
    view = presenter.return_view
    assert view is not None and view.receipt_number == "S001-T1-000001"
    assert view.lines == ("3 x Mosel Riesling 0.75 l  €26.97",) and view.refund == "€26.97"
    assert presenter.show("payment") == "return"  # nothing else while a return is open
    assert presenter.back() == "return"
    done = presenter.pay_card()
    assert done.kind == "return_complete" and page_of(presenter) == "sale"
    assert presenter.return_view is None
    assert presenter.start_return("S001-T1-000001").message.startswith(
        "refused: Everything on receipt S001-T1-000001 was already returned"
    )


def test_x_report_and_a_z_report_that_asks_twice(presenter: TillPresenter) -> None:
    assert f.WINE.ean
    presenter.scan(f.WINE.ean)
    presenter.pay_cash(1000)
    presenter.choose_receipt("none")
    x = presenter.x_report()
    assert x.kind == "report" and page_of(presenter) == "reports"
    report = presenter.report
    assert report is not None and report.title == "X report"
    assert ("Net", "€8.99") in report.rows and ("Cash expected in drawer", "€8.99") in report.rows
    assert report.printing == "not printed: no printer is configured"
    assert presenter.message.text.endswith("| not printed: no printer is configured")
    assert presenter.z_report() is None and presenter.z_armed
    assert presenter.message.text.startswith("Z report closes the day: press Z report again")
    presenter.back()
    assert not presenter.z_armed  # Esc stops it
    assert presenter.z_report() is None
    z = presenter.z_report()
    assert z is not None and z.kind == "report" and z.data["number"] == 1
    assert presenter.report is not None and presenter.report.title == "Z report 1"


def test_search_by_name_brand_or_code_and_add(presenter: TillPresenter) -> None:
    assert [r.sku for r in presenter.search("riesling")] == [f.WINE.sku]
    assert f.BREAD.sku in [r.sku for r in presenter.search("Backstube")]
    assert presenter.search("") == ()
    carrots = presenter.search("carrots")
    assert carrots[0].price == "€1.99 / kg"
    presenter.search("riesling")
    presenter.add_product(f.WINE.sku)
    assert presenter.rows[0].name == f.WINE.name and presenter.search_results == ()
    presenter.add_product("NO-SUCH")
    assert presenter.message.is_error and "NO-SUCH" in presenter.message.text


def test_money_follows_the_store_locale(presenter: TillPresenter, store: LocalStore) -> None:
    feed.apply_page(store, [f.store_change(f.make_shop(locale="de-DE"))], "v1.0.90")
    assert f.COFFEE.ean
    presenter.scan(f.COFFEE.ean)
    assert presenter.rows[0].line_total == "12,99 €"
    assert presenter.totals.total == "12,99 €"


def test_status_bar_names_a_printer_fault_and_waiting_ops(
    presenter: TillPresenter, till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    presenter.add_listener(lambda: calls.append(1))
    assert presenter.refresh_status() == presenter.status and calls == []  # no change, no call
    real = till.status()
    faulty = replace(
        real,
        printer=PrinterState(ready=False, message="Out of paper: load a roll", fault="paper_out"),
        sync=replace(real.sync, pending_ops=1, dead_letters=2),
    )
    monkeypatch.setattr(till, "status", lambda: faulty)
    status = presenter.refresh_status()
    assert calls == [1]
    assert status.printer == "PRINTER PAPER OUT"  # the bar names it, the banner explains
    assert status.alert.startswith("PRINTER PAPER OUT: Out of paper: load a roll | HQ REFUSED 2")
    assert status.printer_fault
    assert status.waiting == "1 op waiting to sync, 2 REFUSED by HQ (call support)"


def test_a_broken_listener_does_not_stop_the_others(presenter: TillPresenter) -> None:
    heard: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    presenter.add_listener(broken)
    remove = presenter.add_listener(lambda: heard.append(1))
    presenter.scan("CMD-TOTAL")
    remove()
    presenter.scan("CMD-TOTAL")
    assert heard == [1]


@pytest.mark.parametrize(
    ("text", "minor"),
    [("20", 2000), ("20.5", 2050), ("20,05", 2005), (" 7 ", 700), ("x", None), ("1.234", None)],
)
def test_amounts_keyed_by_the_cashier(text: str, minor: int | None) -> None:
    assert amount_minor_from_text(text) == minor


def test_amounts_in_a_currency_without_cents() -> None:
    assert amount_minor_from_text("500", decimals=0) == 500
    assert amount_minor_from_text("500.5", decimals=0) is None


@pytest.mark.parametrize(
    ("text", "percent"),
    [("10", "10"), ("12.5", "12.5"), ("15 %", "15"), ("100", "100"), ("0", None), ("101", None)],
)
def test_percents_keyed_by_the_cashier(text: str, percent: str | None) -> None:
    found = percent_from_text(text)
    assert (None if found is None else str(found)) == percent


def test_a_card_scanned_first_stays_when_hq_sent_new_store_settings(
    presenter: TillPresenter, store: LocalStore
) -> None:
    assert f.MILK.ean
    presenter.scan(LOYALTY)
    # New store settings arrive between the card and the first item: the till takes them up
    # before the first line, and the customer stays on the sale.
    feed.apply_page(store, [f.store_change(f.make_shop(name="Omnitill Berlin Mitte"))], "v1.0.91")
    presenter.scan(f.MILK.ean)
    assert presenter.till.engine.shop.name == "Omnitill Berlin Mitte"
    assert presenter.customer is not None and presenter.customer.name == "Maria Schmidt"


def test_the_status_bar_while_connecting_and_its_alerts(
    presenter: TillPresenter, till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = till.status()
    connecting = replace(real, sync=replace(real.sync, server_url="http://hq:8700"))
    monkeypatch.setattr(till, "status", lambda: connecting)
    status = presenter.refresh_status()
    assert status.connection == "CONNECTING to HQ: sales are kept here meanwhile"
    assert status.offline and status.alert == ""
    failed = replace(
        connecting,
        sync=replace(connecting.sync, last_error="HQ did not answer", dead_letters=1),
        printer=PrinterState(ready=False, message="Cover open: close it", fault="cover_open"),
    )
    monkeypatch.setattr(till, "status", lambda: failed)
    status = presenter.refresh_status()
    assert status.connection == "OFFLINE: sales are kept and sent when HQ is back"
    assert status.alert == (
        "PRINTER COVER OPEN: Cover open: close it | HQ REFUSED 1 op: they are kept at this till; "
        "call support"
    )


def counts(store: LocalStore) -> list[int]:
    return [
        int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        for table in ("sales", "outbox", "print_jobs")
    ]


def test_a_full_disk_at_a_held_sale_keeps_the_basket_and_the_payment(
    presenter: TillPresenter, store: LocalStore
) -> None:
    # 60 weighed packages: a sale too big for the free space left in the file's pages.
    for grams in range(500, 560):
        presenter.scan(f.weight_label(grams))
    before, counter = counts(store), store.get_state("receipt_counter")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # not one page more: a full disk
    event = presenter.pay_cash()
    assert event.kind == "not_saved" and presenter.message.is_error
    assert counts(store) == before and store.get_state("receipt_counter") == counter
    assert len(presenter.rows) == 60 and presenter.totals.due_minor == 0
    assert presenter.receipt_prompt is None
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space was freed
    assert presenter.pay_cash().kind == "sale_complete"  # no second payment is taken
    assert print_jobs(store) == [("sale", "held"), ("drawer", "pending")]


def test_a_failed_hold_rolls_the_sale_back_and_keeps_it_on_the_counter(
    presenter: TillPresenter, till: Till, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert f.WINE.ean
    presenter.scan(f.WINE.ean)
    before, counter = counts(store), store.get_state("receipt_counter")

    def fail(db: object, sale: object) -> None:
        raise StorageError("The till's disk is full: nothing was saved.")

    # The engine has written the sale and forgotten its basket when the hold fails: the whole
    # transaction goes, and the basket comes back to the counter with its payment.
    monkeypatch.setattr(till, "_hold_receipt", fail)
    event = presenter.pay_cash(1000)
    assert event.kind == "not_saved"
    assert counts(store) == before and store.get_state("receipt_counter") == counter
    assert skus(presenter) == [f.WINE.sku] and presenter.totals.due_minor == 0
    assert till.engine.last_sale is None
    monkeypatch.undo()
    done = presenter.pay_cash()
    assert done.kind == "sale_complete" and done.data["change_minor"] == 101
    assert counts(store) == [before[0] + 1, before[1] + 1, before[2] + 2]


def test_messages_name_the_screen_keys_not_the_command_barcodes(presenter: TillPresenter) -> None:
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.park()
    assert presenter.message.text.endswith("Parked (F10) brings it back")
    presenter.resume()
    presenter.pay_card()
    presenter.choose_receipt("none")
    presenter.start_return("S001-T1-000001")
    assert presenter.message.text.endswith(
        "refund €1.29 | Cash (F8) or Card (F7) refunds, Cancel (F12) stops"
    )
