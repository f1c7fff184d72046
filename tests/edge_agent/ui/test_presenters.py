"""The till screen's presenter with a real till and no Qt: what the cashier reads and does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edge_agent import feed
from edge_agent.printing.jobs import PrinterState
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.presenters import TillPresenter, amount_minor_from_text
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import LOYALTY


@pytest.fixture
def presenter(till: Till) -> TillPresenter:
    return TillPresenter(till)


def outbox(store: LocalStore, op_type: str) -> list[dict[str, object]]:
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
    assert [r.sku for r in presenter.rows] == [f.BREAD.sku, f.BUTTER.sku]
    assert f.BUTTER.sku not in [s.sku for s in presenter.suggestions]
    [recorded] = outbox(store, "event")
    assert recorded["kind"] == "suggestion_accepted" and recorded["sku"] == f.BUTTER.sku
    assert recorded["data"]["reason"] == reason  # type: ignore[index]
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
    assert [r.sku for r in presenter.rows] == [f.MILK.sku]
    presenter.void(999)
    assert presenter.message.is_error


def test_a_cash_sale_with_change_then_the_receipt_by_email(
    presenter: TillPresenter, store: LocalStore
) -> None:
    assert f.TSHIRT.ean
    presenter.scan(LOYALTY)
    presenter.scan(f.TSHIRT.ean)
    partly = presenter.pay_card(999)
    assert partly.kind == "payment" and presenter.totals.due == "€10.00"
    assert presenter.receipt_prompt is None
    done = presenter.pay_cash(2000)
    assert done.kind == "sale_complete"
    prompt = presenter.receipt_prompt
    assert prompt is not None and prompt.email == "maria@example.com"
    assert prompt.summary == "Sale S001-T1-000001: total €19.99, change €10.00"
    assert presenter.rows == () and presenter.customer is None

    refused = presenter.choose_receipt("email", address="not an address")
    assert refused.is_error and presenter.receipt_prompt is prompt  # fix it and try again
    sent = presenter.choose_receipt("both", address=prompt.email, consent_marketing=True)
    assert sent.kind == "email_queued" and presenter.receipt_prompt is None
    [mail] = outbox(store, "receipt_email")
    assert mail["address"] == "maria@example.com" and mail["sale_id"] == prompt.sale_id
    assert presenter.status.waiting == "3 ops waiting to sync"  # sale, patch, email


def test_receipt_choices_without_email_and_without_a_sale(presenter: TillPresenter) -> None:
    assert presenter.choose_receipt("print").is_error
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.pay_cash()
    assert presenter.choose_receipt("none").message.startswith("no receipt for S001-T1-")
    assert presenter.receipt_prompt is None


def test_the_next_scan_closes_an_unanswered_receipt_prompt(presenter: TillPresenter) -> None:
    assert f.MILK.ean
    presenter.scan(f.MILK.ean)
    presenter.pay_card()
    assert presenter.receipt_prompt is not None
    presenter.scan(f.MILK.ean)
    assert presenter.receipt_prompt is None and len(presenter.rows) == 1


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
    assert status.printer == "PRINTER PAPER OUT: Out of paper: load a roll"
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
