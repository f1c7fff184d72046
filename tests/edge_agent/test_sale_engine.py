"""The sale engine against a real local store filled through the change feed."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import outbox
from edge_agent.sale_engine import (
    OPEN_PRICE_SKU,
    Basket,
    SaleEngine,
    UnknownBarcode,
    weighed_amount,
)
from edge_agent.store import LocalStore
from shared.barcodes import ProductScan, VariableMeasureScan, classify_scan
from shared.customer import CardItem, CustomerIdentifierModel
from shared.errors import CheckDigitError, DiskFull, InvalidInput, NotFound, TaxError
from shared.identifiers import new_till_local_id
from shared.money import Money
from shared.protocol import parse_op_payload
from shared.receipt import Receipt
from shared.sale import Return, Sale, check_return_totals, check_totals
from shared.tax import TaxMode, line_tax
from tests.edge_agent import factories as f

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def engine(store: LocalStore) -> SaleEngine:
    return f.make_engine(store, clock=lambda: NOW)


def scan(engine: SaleEngine, code: str | None, **kw: Any) -> Any:
    assert code is not None
    kind = classify_scan(code)
    assert isinstance(kind, ProductScan | VariableMeasureScan)
    return engine.add_scanned_product(kind, **kw)


def count(store: LocalStore, table: str, where: str = "1") -> int:
    row = store.query_one(f"SELECT COUNT(*) FROM {table} WHERE {where}")
    assert row is not None
    return int(row[0])


def pay_exact(engine: SaleEngine) -> Sale:
    engine.add_tender_cash(engine.totals().due_minor)
    return engine.complete()


# --- adding lines -----------------------------------------------------------------------------


def test_scanning_a_product_adds_a_line_and_rescanning_adds_to_it(engine: SaleEngine) -> None:
    line = scan(engine, f.MILK.ean)
    assert (line.line_no, line.sku, line.name, line.quantity) == (1, f.MILK.sku, f.MILK.name, 1)
    assert line.unit_price_minor == 129 and line.tax_rate == Decimal("7")
    assert line.barcode == f.MILK.ean
    again = scan(engine, f.MILK.ean)
    assert again is line and line.quantity == 2
    scan(engine, f.BREAD.ean)
    assert [ln.sku for ln in engine.basket.lines] == [f.MILK.sku, f.BREAD.sku]
    assert engine.totals().total_minor == 2 * 129 + 299


def test_quantity_multiplier_applies_to_the_next_item_only(engine: SaleEngine) -> None:
    engine.set_pending_quantity(3)
    with pytest.raises(UnknownBarcode):
        scan(engine, f.UNKNOWN_EAN)
    assert engine.pending_quantity == 3  # still waiting for the item it belongs to
    line = scan(engine, f.JAM.ean)
    assert line.quantity == 3
    assert engine.pending_quantity is None
    assert scan(engine, f.BREAD.ean).quantity == 1
    engine.set_pending_quantity(2)
    assert scan(engine, f.COFFEE.ean, quantity=5).quantity == 10
    with pytest.raises(InvalidInput, match="between 1 and 100000"):
        engine.set_pending_quantity(0)
    engine.set_pending_quantity(4)
    assert engine.add_open_price("Gift wrap", 150, Decimal("19")).quantity == 4


def test_unknown_barcode_says_what_to_do(engine: SaleEngine) -> None:
    with pytest.raises(UnknownBarcode) as caught:
        scan(engine, f.UNKNOWN_EAN)
    assert caught.value.message == (
        f"No product with barcode {f.UNKNOWN_EAN}; key it as an open-price item or search by name"
    )
    assert caught.value.code == f.UNKNOWN_EAN
    assert isinstance(caught.value, InvalidInput)
    assert engine.basket.lines == []
    label = f.weight_label(500, ref="77777")
    with pytest.raises(UnknownBarcode, match="No product with item reference 77777"):
        scan(engine, label)


def test_inactive_product_is_unknown(engine: SaleEngine) -> None:
    with pytest.raises(UnknownBarcode):
        scan(engine, f.RETIRED.ean)


def test_weight_label_prices_grams_at_the_kilo_price_rounded_half_up(engine: SaleEngine) -> None:
    line = scan(engine, f.weight_label(1234))
    assert (line.sku, line.weight_g, line.quantity, line.unit_price_minor) == (
        f.CARROTS.sku,
        1234,
        1,
        199,
    )
    # 1.99/kg x 1.234 kg = 2.45566 -> 2.46
    assert engine.totals().lines[0].amount_minor == 246
    assert weighed_amount(1999, 500) == 1000  # 999.5 rounds up
    assert weighed_amount(1999, 499) == 998  # 997.501 rounds up
    assert weighed_amount(1001, 500) == 501  # 500.5 rounds up
    assert weighed_amount(1000, 1) == 1


def test_weighed_items_cannot_be_multiplied_or_sold_without_a_weight(engine: SaleEngine) -> None:
    engine.set_pending_quantity(2)
    with pytest.raises(InvalidInput, match="scan each package"):
        scan(engine, f.weight_label(500))
    engine.set_pending_quantity(None)
    line = scan(engine, f.weight_label(500))
    with pytest.raises(InvalidInput, match="weighed"):
        engine.set_quantity(line.line_no, 2)
    with pytest.raises(InvalidInput, match="sold by weight"):
        engine.add_sku(f.CARROTS.sku)
    keyed = engine.add_sku(f.CARROTS.sku, weight_g=750)
    assert keyed.weight_g == 750
    assert engine.totals().lines[-1].amount_minor == 149  # 149.25
    with pytest.raises(InvalidInput, match="at least 1 g"):
        engine.add_sku(f.CARROTS.sku, weight_g=0)
    with pytest.raises(InvalidInput, match="at least 1 g"):
        scan(engine, f.weight_label(0))


def test_price_label_sells_the_printed_price(engine: SaleEngine) -> None:
    line = scan(engine, f.price_label(1575))
    assert (line.sku, line.unit_price_minor, line.weight_g, line.price_embedded) == (
        f.HAM.sku,
        1575,
        None,
        True,
    )
    # Two packages of ham are two lines: their prices differ.
    scan(engine, f.price_label(980))
    assert [ln.unit_price_minor for ln in engine.basket.lines] == [1575, 980]
    assert engine.totals().total_minor == 1575 + 980


def test_a_misread_label_is_refused_before_the_engine(engine: SaleEngine) -> None:
    label = f.weight_label(1234)
    broken = label[:-1] + str((int(label[-1]) + 1) % 10)
    with pytest.raises(CheckDigitError):
        classify_scan(broken)


def test_open_price_item(engine: SaleEngine) -> None:
    line = engine.add_open_price("  Hand-made card ", 350, Decimal("19"), 2)
    assert (line.sku, line.name, line.open_price, line.quantity) == (
        OPEN_PRICE_SKU,
        "Hand-made card",
        True,
        2,
    )
    assert engine.totals().total_minor == 700
    with pytest.raises(InvalidInput, match="name"):
        engine.add_open_price("  ", 100, Decimal("19"))
    with pytest.raises(InvalidInput, match="whole number of minor units"):
        engine.add_open_price("Card", 3.5, Decimal("19"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="0 or more"):
        engine.add_open_price("Card", -1, Decimal("19"))
    with pytest.raises(TaxError):
        engine.add_open_price("Card", 100, Decimal("120"))
    assert len(engine.basket.lines) == 1
    sale = pay_exact(engine)
    assert sale.lines[0].open_price is True


def test_product_priced_in_another_currency_is_refused(store: LocalStore) -> None:
    f.apply(
        store,
        [f.product_change("USD-ITEM", "Imported Syrup", 899, gtins=[f.gtin(77)], currency="USD")],
    )
    engine = f.make_engine(store)
    with pytest.raises(InvalidInput, match="priced in USD but this store sells in EUR"):
        scan(engine, f.gtin(77))


def test_add_sku_from_search(engine: SaleEngine) -> None:
    assert engine.add_sku(f.WINE.sku, 2).quantity == 2
    with pytest.raises(NotFound, match="No product with SKU NOPE"):
        engine.add_sku("NOPE")


# --- changing lines ---------------------------------------------------------------------------


def test_void_line_and_set_quantity(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)
    bread = scan(engine, f.BREAD.ean)
    scan(engine, f.JAM.ean)
    engine.void_line(bread.line_no)
    assert [ln.sku for ln in engine.basket.lines] == [f.MILK.sku, f.JAM.sku]
    assert engine.basket.scan_order == [f.MILK.sku, f.JAM.sku]
    with pytest.raises(InvalidInput, match="There is no line 2 in this sale"):
        engine.void_line(2)
    engine.set_quantity(1, 4)
    assert engine.totals().total_minor == 4 * 129 + 349
    with pytest.raises(InvalidInput, match="void it"):
        engine.set_quantity(1, 0)
    # New lines keep counting: line numbers are never reused within a sale.
    assert scan(engine, f.BUTTER.ean).line_no == 4
    sale = pay_exact(engine)
    assert [ln.line_no for ln in sale.lines] == [1, 2, 3]


def test_line_discounts_with_reasons(engine: SaleEngine) -> None:
    line = scan(engine, f.COFFEE.ean, quantity=2)  # 25.98
    engine.discount_line(line.line_no, kind="percent", value=Decimal("10"), reason="Dented tin")
    engine.discount_line(line.line_no, kind="amount", value=100, reason="Loyalty coupon")
    priced = engine.totals().lines[0]
    # 10% of 2598 = 259.8 -> 260; then 100 off what is left.
    assert [d.amount_minor for d in priced.discounts] == [260, 100]
    assert [d.reason for d in priced.discounts] == ["Dented tin", "Loyalty coupon"]
    assert priced.amount_minor == 2598 - 360
    assert engine.totals().discount_minor == 360


def test_discounts_that_are_too_big_or_unexplained_are_refused(engine: SaleEngine) -> None:
    line = scan(engine, f.MILK.ean)
    with pytest.raises(InvalidInput, match=r"more than the €1\.29 left on the line"):
        engine.discount_line(line.line_no, kind="amount", value=130, reason="Too much")
    assert line.discounts == []
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.discount_line(line.line_no, kind="amount", value=10, reason=" ")
    with pytest.raises(InvalidInput, match="more than 0 and at most 100"):
        engine.discount_line(line.line_no, kind="percent", value=101, reason="x")
    with pytest.raises(InvalidInput, match="positive whole number"):
        engine.discount_line(line.line_no, kind="amount", value=Decimal("1.5"), reason="x")
    with pytest.raises(InvalidInput, match="exact"):
        engine.discount_line(line.line_no, kind="percent", value=12.5, reason="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="'amount' or a 'percent'"):
        engine.discount_line(line.line_no, kind="bogus", value=1, reason="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="more than the"):
        engine.discount_basket(kind="amount", value=500, reason="Too much")
    assert engine.basket.discounts == []
    engine.set_quantity(line.line_no, 2)
    engine.discount_line(line.line_no, kind="amount", value=200, reason="Short date")
    # One unit would cost less than the discount: refused, and the line stays as it was.
    with pytest.raises(InvalidInput, match="more than the"):
        engine.set_quantity(line.line_no, 1)
    assert line.quantity == 2
    assert engine.totals().total_minor == 58
    engine.remove_discounts(line.line_no)
    assert engine.totals().total_minor == 258


def test_basket_discount_is_spread_over_lines_before_tax(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)  # 1.29 at 7%
    scan(engine, f.WINE.ean)  # 8.99 at 19%
    scan(engine, f.BREAD.ean)  # 2.99 at 7%
    engine.discount_basket(kind="amount", value=100, reason="Staff discount")
    totals = engine.totals()
    shares = [p.discounts[0].amount_minor for p in totals.lines]
    assert sum(shares) == 100
    assert [s.amount for s in Money(100, "EUR").allocate([129, 899, 299])] == shares
    assert all(p.discounts[0].reason == "Staff discount" for p in totals.lines)
    assert totals.subtotal_minor == 129 + 899 + 299 - 100
    for p in totals.lines:
        assert p.tax == line_tax(p.amount_minor, p.line.tax_rate, "inclusive")
    assert totals.tax_minor == sum(p.tax.tax for p in totals.lines)
    assert set(totals.by_rate) == {Decimal("7"), Decimal("19")}
    sale = pay_exact(engine)
    assert sale.basket_discounts[0].amount_minor == 100
    assert sale.basket_discounts[0].reason == "Staff discount"
    for line in sale.lines:
        assert line.amount_minor == line.unit_price_minor * line.quantity - sum(
            d.amount_minor for d in line.discounts
        )


def test_exclusive_tax_is_added_to_the_total(store: LocalStore) -> None:
    engine = f.make_engine(store, tax_mode="exclusive", clock=lambda: NOW)
    scan(engine, f.WINE.ean)  # 8.99 + 19% = 1.7081 -> 1.71
    scan(engine, f.MILK.ean)  # 1.29 + 7% = 0.0903 -> 0.09
    totals = engine.totals()
    assert (totals.subtotal_minor, totals.tax_minor, totals.total_minor) == (1028, 180, 1208)
    sale = pay_exact(engine)
    assert sale.tax_mode == "exclusive"
    assert sale.total_minor == 1208


# --- payment and completion -------------------------------------------------------------------


def test_split_tender_card_then_cash_with_change(engine: SaleEngine, store: LocalStore) -> None:
    scan(engine, f.JEANS.ean)  # 59.99
    scan(engine, f.BELT.ean)  # 29.99
    engine.add_tender_card(5000, "AUTH-123456")
    totals = engine.add_tender_cash(5000)
    assert (totals.total_minor, totals.paid_minor, totals.due_minor, totals.change_minor) == (
        8998,
        10000,
        0,
        1002,
    )
    sale = engine.complete()
    assert [(t.kind, t.amount_minor, t.change_minor, t.reference) for t in sale.tenders] == [
        ("card", 5000, 0, "AUTH-123456"),
        ("cash", 5000, 1002, None),
    ]
    check_totals(sale)


def test_card_payments_need_a_reference_and_never_exceed_what_is_due(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)
    with pytest.raises(InvalidInput, match="terminal's reference"):
        engine.add_tender_card(129, "  ")
    with pytest.raises(InvalidInput, match=r"more than the €1\.29 due"):
        engine.add_tender_card(200, "AUTH-1")
    with pytest.raises(InvalidInput, match="more than 0"):
        engine.add_tender_cash(0)
    engine.add_tender_card(129, "AUTH-1")
    with pytest.raises(InvalidInput, match="Nothing is due"):
        engine.add_tender_cash(100)


def test_items_are_frozen_once_payment_has_started(engine: SaleEngine) -> None:
    line = scan(engine, f.BREAD.ean)
    engine.add_tender_cash(100)
    for action in (
        lambda: scan(engine, f.MILK.ean),
        lambda: engine.void_line(line.line_no),
        lambda: engine.set_quantity(line.line_no, 2),
        lambda: engine.discount_basket(kind="percent", value=10, reason="x"),
        lambda: engine.park(),
    ):
        with pytest.raises(InvalidInput, match=r"Payment has started|payments taken"):
            action()


def test_complete_refuses_until_fully_paid(engine: SaleEngine, store: LocalStore) -> None:
    with pytest.raises(InvalidInput, match="no items"):
        engine.complete()
    with pytest.raises(InvalidInput, match="nothing to pay"):
        engine.add_tender_cash(100)
    scan(engine, f.COFFEE.ean)
    engine.add_tender_cash(1000)
    with pytest.raises(InvalidInput) as caught:
        engine.complete()
    assert caught.value.message == (
        "€2.99 is still due: take another payment before completing the sale"
    )
    assert count(store, "sales") == 0


def test_complete_writes_sale_outbox_receipt_counter_and_print_job(
    engine: SaleEngine, store: LocalStore
) -> None:
    scan(engine, f.MILK.ean, quantity=2)
    scan(engine, f.WINE.ean)
    engine.add_tender_cash(2000)
    sale = engine.complete()
    assert sale.receipt_number == "S001-T1-000001"
    assert (sale.store_id, sale.till_id, sale.cashier_id) == ("S001", "S001-T1", "cashier-7")
    assert sale.created_at == NOW
    assert engine.basket.is_empty and engine.last_sale == sale

    row = store.query_one("SELECT * FROM sales")
    assert row is not None
    assert row["sale_id"] == str(sale.sale_id)
    assert row["kind"] == "sale"
    assert row["total_minor"] == sale.total_minor == 2 * 129 + 899
    assert Sale.model_validate_json(row["payload"]) == sale

    ops = outbox.pending(store)
    assert [op.type for op in ops] == ["sale"]
    assert parse_op_payload("sale", json.loads(ops[0].payload)) == sale

    job = store.query_one("SELECT * FROM print_jobs")
    assert job is not None
    assert (job["sale_id"], job["kind"], job["status"]) == (str(sale.sale_id), "sale", "pending")
    receipt = Receipt.model_validate_json(job["document"])
    assert receipt.receipt_number == sale.receipt_number
    assert receipt.total_minor == sale.total_minor
    assert receipt.change_minor == 2000 - sale.total_minor
    assert store.get_state("receipt_counter") == "1"

    scan(engine, f.JAM.ean)
    assert pay_exact(engine).receipt_number == "S001-T1-000002"


def test_receipt_numbers_are_barcode_safe(store: LocalStore) -> None:
    engine = f.make_engine(store, till_id="s1.till_2")
    scan(engine, f.JAM.ean)
    assert pay_exact(engine).receipt_number == "S1-TILL-2-000001"


def test_customer_attached_at_any_time(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)
    card = f.make_card()
    engine.attach_customer(card, identifier="email:maria@example.com")
    scan(engine, f.BREAD.ean)
    engine.add_tender_cash(1000)
    sale = engine.complete()
    assert sale.customer_id == card.customer_id
    assert sale.customer_identifier is None


def test_a_provisional_customer_travels_as_its_till_local_identifier(engine: SaleEngine) -> None:
    local_id = new_till_local_id()
    card = f.make_card(
        provisional=True,
        identifiers=(CustomerIdentifierModel(kind="till_local", value=local_id.value),),
    )
    engine.attach_customer(card)
    scan(engine, f.MILK.ean)
    sale = pay_exact(engine)
    assert sale.customer_id is None
    assert sale.customer_identifier == str(local_id)

    engine.attach_customer(None, identifier="phone:+4915112345678")
    scan(engine, f.MILK.ean)
    sale = pay_exact(engine)
    assert (sale.customer_id, sale.customer_identifier) == (None, "phone:+4915112345678")


def test_a_sale_totalling_zero_is_refused(engine: SaleEngine) -> None:
    line = scan(engine, f.MILK.ean)
    engine.discount_line(line.line_no, kind="percent", value=100, reason="Free sample")
    with pytest.raises(InvalidInput, match="totals 0"):
        engine.complete()


def test_cancel_clears_everything(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)
    engine.attach_customer(f.make_card())
    engine.set_pending_quantity(5)
    engine.cancel()
    assert engine.basket.is_empty and engine.basket.customer is None
    assert engine.pending_quantity is None


# --- atomic completion ------------------------------------------------------------------------


def _basket_json(engine: SaleEngine) -> dict[str, Any]:
    return engine.basket.to_json()


def test_a_failure_inside_the_transaction_writes_nothing_and_keeps_the_basket(
    engine: SaleEngine, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan(engine, f.TSHIRT.ean)
    engine.attach_customer(f.make_card())
    engine.add_tender_cash(5000)
    before = _basket_json(engine)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("outbox exploded")

    monkeypatch.setattr(outbox, "enqueue", broken)
    with pytest.raises(RuntimeError, match="outbox exploded"):
        engine.complete()
    assert count(store, "sales") == 0
    assert count(store, "outbox") == 0
    assert count(store, "print_jobs") == 0
    assert store.get_state("receipt_counter") is None
    assert _basket_json(engine) == before
    assert engine.last_sale is None

    monkeypatch.undo()
    sale = engine.complete()
    assert sale.receipt_number == "S001-T1-000001"
    assert (count(store, "sales"), count(store, "outbox"), count(store, "print_jobs")) == (1, 1, 1)


def test_a_full_disk_refuses_the_sale_cleanly_and_the_till_keeps_working(
    engine: SaleEngine, store: LocalStore
) -> None:
    for i in range(60):
        engine.add_open_price(
            f"Hand-knitted scarf, pattern {i:02d}, " + "wool " * 40, 1000 + i, Decimal("19")
        )
    engine.add_tender_card(engine.totals().due_minor, "AUTH-777")
    before = _basket_json(engine)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    # The database may not grow by a single page: exactly what a full disk looks like to SQLite.
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DiskFull) as caught:
        engine.complete()
    assert caught.value.message.startswith("The sale was not saved: The till's disk is full")
    assert count(store, "sales") == 0
    assert count(store, "outbox") == 0
    assert count(store, "print_jobs") == 0
    assert store.get_state("receipt_counter") is None
    assert _basket_json(engine) == before

    store.db.execute("PRAGMA max_page_count = 1073741823")  # space was freed
    sale = engine.complete()
    assert len(sale.lines) == 60
    assert (count(store, "sales"), count(store, "outbox"), count(store, "print_jobs")) == (1, 1, 1)
    scan(engine, f.MILK.ean)
    assert pay_exact(engine).receipt_number == "S001-T1-000002"


# --- property: any basket adds up -------------------------------------------------------------


@pytest.fixture(scope="module")
def property_store(
    template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStore]:
    # One store for every example: building one per example would dominate the run time.
    local = f.store_from_template(template, tmp_path_factory.mktemp("property"))
    yield local
    local.close()


RATES = [Decimal(r) for r in ("0", "5", "7", "8.875", "19", "20", "21")]
line_strategy = st.tuples(
    st.integers(0, 250_000),  # unit price
    st.integers(1, 12),  # quantity
    st.sampled_from(RATES),
    st.one_of(
        st.none(),
        st.tuples(st.just("percent"), st.integers(1, 100)),
        st.tuples(st.just("amount"), st.integers(1, 5000)),
    ),
)


@settings(deadline=None)
@given(
    mode=st.sampled_from(["inclusive", "exclusive"]),
    lines=st.lists(line_strategy, min_size=1, max_size=12),
    basket_discount=st.one_of(
        st.none(),
        st.tuples(
            st.just("percent"), st.decimals(min_value=Decimal("0.5"), max_value=100, places=1)
        ),
        st.tuples(st.just("amount"), st.integers(1, 20_000)),
    ),
    card_share=st.integers(0, 100),
    cash_over=st.integers(0, 10_000),
)
def test_any_basket_completes_to_a_sale_whose_totals_add_up(
    property_store: LocalStore,
    mode: TaxMode,
    lines: list[tuple[int, int, Decimal, tuple[str, int] | None]],
    basket_discount: tuple[str, Any] | None,
    card_share: int,
    cash_over: int,
) -> None:
    engine = f.make_engine(property_store, tax_mode=mode)
    for number, (price, quantity, rate, discount) in enumerate(lines, start=1):
        line = engine.add_open_price(f"Item {number}", price, rate, quantity)
        if discount is not None:
            kind, value = discount
            if kind == "amount":
                value = min(value, line.base_minor)
            if value > 0 and line.base_minor > 0:
                engine.discount_line(line.line_no, kind=kind, value=value, reason="Promo")  # type: ignore[arg-type]
    if basket_discount is not None:
        kind, value = basket_discount
        left = engine.totals().subtotal_minor
        if kind == "amount":
            value = min(value, left)
        if value > 0 and left > 0:
            engine.discount_basket(kind=kind, value=value, reason="Basket promo")  # type: ignore[arg-type]
    totals = engine.totals()
    assert totals.subtotal_minor == sum(p.amount_minor for p in totals.lines)
    assert totals.tax_minor == sum(p.tax.tax for p in totals.lines)
    if totals.total_minor == 0:
        with pytest.raises(InvalidInput, match="totals 0"):
            engine.complete()
        engine.cancel()
        return
    card = totals.total_minor * card_share // 100
    if card:
        engine.add_tender_card(card, "AUTH-1")
    if totals.total_minor - card:
        engine.add_tender_cash(totals.total_minor - card + cash_over)
    sale = engine.complete()
    check_totals(sale)
    assert sale.total_minor == totals.total_minor
    assert sum(t.change_minor for t in sale.tenders) == (
        cash_over if card < sale.total_minor else 0
    )
    for sold in sale.lines:
        assert sold.amount_minor >= 0
        assert sold.tax_minor == line_tax(sold.amount_minor, sold.tax_rate, mode).tax
        assert sold.amount_minor == sold.unit_price_minor * sold.quantity - sum(
            d.amount_minor for d in sold.discounts
        )
    if sale.basket_discounts:
        shares = sum(
            d.amount_minor
            for sold in sale.lines
            for d in sold.discounts
            if d.reason == "Basket promo"
        )
        assert shares == sale.basket_discounts[0].amount_minor


# --- parking ----------------------------------------------------------------------------------


def test_park_and_resume(engine: SaleEngine, store: LocalStore) -> None:
    with pytest.raises(InvalidInput, match="nothing to park"):
        engine.park()
    scan(engine, f.MILK.ean, quantity=2)
    line = scan(engine, f.weight_label(1234))
    engine.discount_line(line.line_no, kind="percent", value=Decimal("12.5"), reason="Bruised")
    engine.discount_basket(kind="amount", value=50, reason="Voucher")
    engine.attach_customer(f.make_card(), identifier="email:maria@example.com")
    before = engine.basket.to_json()
    total = engine.totals().total_minor

    park_id = engine.park("Maria, forgot wallet")
    assert engine.basket.is_empty
    parked = engine.parked_list()
    assert [(p.park_id, p.label, p.line_count, p.total_minor) for p in parked] == [
        (park_id, "Maria, forgot wallet", 2, total)
    ]

    scan(engine, f.JAM.ean)
    with pytest.raises(InvalidInput, match="Finish or park the current sale"):
        engine.resume(park_id)
    pay_exact(engine)

    resumed = engine.resume(park_id)
    assert resumed.to_json() == before
    assert engine.totals().total_minor == total
    assert engine.parked_list() == []
    engine.cancel()
    with pytest.raises(NotFound, match="No parked sale"):
        engine.resume(park_id)
    assert Basket.from_json(before).to_json() == before


def test_resumed_basket_keeps_line_numbers_and_completes(engine: SaleEngine) -> None:
    scan(engine, f.MILK.ean)
    scan(engine, f.BREAD.ean)
    park_id = engine.park()
    engine.resume(park_id)
    assert scan(engine, f.JAM.ean).line_no == 3
    sale = pay_exact(engine)
    assert [line.sku for line in sale.lines] == [f.MILK.sku, f.BREAD.sku, f.JAM.sku]


# --- returns ----------------------------------------------------------------------------------


def _sale_for_returns(engine: SaleEngine) -> Sale:
    scan(engine, f.COFFEE.ean, quantity=3)  # 3 x 12.99 = 38.97
    scan(engine, f.WINE.ean)  # 8.99
    engine.discount_basket(kind="amount", value=100, reason="Voucher")
    engine.attach_customer(f.make_card())
    return pay_exact(engine)


def test_full_line_return_refunds_exactly_the_line_and_its_tax(
    engine: SaleEngine, store: LocalStore
) -> None:
    sale = _sale_for_returns(engine)
    draft = engine.start_return(sale.receipt_number)
    assert draft.sale == sale
    draft.select(2, 1)
    ret = engine.complete_return(draft, tender_kind="card", reason="Corked", reference="RF-1")
    wine = sale.lines[1]
    assert [
        (ln.original_line_no, ln.quantity, ln.amount_minor, ln.tax_minor) for ln in ret.lines
    ] == [(2, 1, wine.amount_minor, wine.tax_minor)]
    assert ret.total_minor == wine.amount_minor
    assert ret.original_sale_id == sale.sale_id
    assert ret.customer_id == sale.customer_id
    assert ret.refund_tenders[0].kind == "card" and ret.refund_tenders[0].reference == "RF-1"
    assert ret.receipt_number == "S001-T1-000002"
    check_return_totals(ret)

    row = store.query_one(
        "SELECT kind, total_minor, payload FROM sales WHERE sale_id = ?", (str(ret.return_id),)
    )
    assert row is not None and row["kind"] == "return"
    assert Return.model_validate_json(row["payload"]) == ret
    assert [op.type for op in outbox.pending(store)] == ["sale", "return"]
    assert parse_op_payload("return", outbox.pending(store)[1].to_wire()["payload"]) == ret
    job = store.query_one(
        "SELECT kind, document FROM print_jobs WHERE sale_id = ?", (str(ret.return_id),)
    )
    assert job is not None and job["kind"] == "return"
    assert Receipt.model_validate_json(job["document"]).original_receipt_number == (
        sale.receipt_number
    )


def test_partial_returns_add_up_to_the_line_and_never_exceed_it(engine: SaleEngine) -> None:
    sale = _sale_for_returns(engine)
    coffee = sale.lines[0]
    refunds: list[tuple[int, int]] = []
    for quantity in (1, 1, 1):
        draft = engine.start_return(sale.receipt_number)
        assert draft.returnable(1) == 3 - len(refunds)
        draft.select(1, quantity)
        ret = engine.complete_return(draft)
        refunds.append((ret.lines[0].amount_minor, ret.lines[0].tax_minor))
    assert sum(a for a, _ in refunds) == coffee.amount_minor
    assert sum(t for _, t in refunds) == coffee.tax_minor
    # The first unit refunds a third of the line, rounded half up.
    assert refunds[0][0] == (2 * coffee.amount_minor + 3) // 6

    draft = engine.start_return(sale.receipt_number)
    with pytest.raises(InvalidInput) as caught:
        draft.select(1, 1)
    assert caught.value.message == (
        f"Cannot return 1 x {coffee.name}: receipt {sale.receipt_number} sold 3, 3 already "
        "returned, so at most 0 can come back"
    )
    with pytest.raises(InvalidInput, match="has no line 9"):
        draft.select(9, 1)
    with pytest.raises(InvalidInput, match="at least one line"):
        engine.complete_return(draft)


def test_a_stale_draft_cannot_return_twice(engine: SaleEngine) -> None:
    sale = _sale_for_returns(engine)
    first = engine.start_return(sale.receipt_number)
    second = engine.start_return(sale.receipt_number)
    first.select(1, 3)
    second.select(1, 1)
    engine.complete_return(first)
    with pytest.raises(InvalidInput, match="at most 0"):
        engine.complete_return(second)


def test_return_in_an_exclusive_tax_store_refunds_the_tax_too(store: LocalStore) -> None:
    engine = f.make_engine(store, tax_mode="exclusive")
    scan(engine, f.JEANS.ean, quantity=2)
    sale = pay_exact(engine)
    draft = engine.start_return(sale.receipt_number.lower())
    draft.select_all()
    ret = engine.complete_return(draft)
    assert ret.tax_minor == sale.tax_minor
    assert ret.total_minor == sale.total_minor


def test_return_against_an_unknown_receipt(engine: SaleEngine) -> None:
    with pytest.raises(NotFound, match="Receipt S001-T9-000001 is not a sale in this till"):
        engine.start_return("S001-T9-000001")
    sale = _sale_for_returns(engine)
    draft = engine.start_return(sale.receipt_number)
    draft.select(1, 1)
    ret = engine.complete_return(draft)
    with pytest.raises(NotFound):
        engine.start_return(ret.receipt_number)  # a return is not a sale


# --- suggestions through the engine -----------------------------------------------------------


def test_suggestions_for_the_basket_and_customer(engine: SaleEngine, store: LocalStore) -> None:
    assert engine.suggestions() == []
    scan(engine, f.MILK.ean)
    scan(engine, f.BREAD.ean)
    found = engine.suggestions()
    # Bread (newest, weight 1): butter 1, jam 0.67; milk (weight 1/2): coffee 0.5.
    assert [s.sku for s in found] == [f.BUTTER.sku, f.JAM.sku, f.COFFEE.sku]
    assert found[0].reason == f"Often bought with {f.BREAD.name}"
    assert found[0].price_minor == f.BUTTER.price_minor

    card = f.make_card(
        recent_purchases=(CardItem(sku=f.BUTTER.sku),),
        cart_items=(CardItem(sku=f.BELT.sku, at=NOW - timedelta(days=1)),),
    )
    f.apply(
        store, [f.recommendation_change("personal", str(card.customer_id), [(f.SOCKS.sku, 1.0)])]
    )
    engine.attach_customer(card)
    found = engine.suggestions(n=5)
    assert [s.sku for s in found][:1] == [f.BELT.sku]
    assert found[0].reason == "Left in online cart on Monday"
    assert f.BUTTER.sku not in [s.sku for s in found]
    assert f.SOCKS.sku in [s.sku for s in found]
    assert "Picked for Maria" in [s.reason for s in found]


def test_suggestions_print_on_the_receipt(engine: SaleEngine, store: LocalStore) -> None:
    scan(engine, f.BREAD.ean)
    shown = engine.suggestions()
    engine.add_tender_cash(500)
    sale = engine.complete(suggestions=shown)
    job = store.query_one("SELECT document FROM print_jobs WHERE sale_id = ?", (str(sale.sale_id),))
    assert job is not None
    receipt = Receipt.model_validate_json(job["document"])
    assert [s.sku for s in receipt.suggestions] == [s.sku for s in shown]
    assert receipt.suggestions[0].because_of == f.BREAD.name
    assert receipt.receipt_url is None  # no HQ address known: no QR code


def test_the_receipt_links_to_the_digital_receipt_at_hq(store: LocalStore) -> None:
    engine = f.make_engine(store, clock=lambda: NOW)
    engine.receipt_base_url = "http://hq.example:8700"
    scan(engine, f.BREAD.ean)
    engine.add_tender_cash(500)
    sale = engine.complete()
    job = store.query_one("SELECT document FROM print_jobs WHERE sale_id = ?", (str(sale.sale_id),))
    assert job is not None
    receipt = Receipt.model_validate_json(job["document"])
    assert receipt.receipt_url == f"http://hq.example:8700/r/{sale.sale_id}"


# --- performance guard ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("big"), f.bulk_changes(20_000))


def test_a_thousand_scans_with_suggestions_stay_fast(big_template: Path, tmp_path: Path) -> None:
    store = f.store_from_template(big_template, tmp_path)
    engine = f.make_engine(store)
    rng = random.Random(3)
    products = rng.sample(range(20_000), 1019)
    scans = [classify_scan(f.gtin(n + 1000, prefix="41")) for n in products]
    assert all(isinstance(s, ProductScan) for s in scans)
    for code in scans[:19]:
        engine.add_scanned_product(code)  # type: ignore[arg-type]
    # CPU time, not wall time: a guard against slow code, not against a busy machine.
    started = time.process_time()
    shown = 0
    for code in scans[19:]:
        line = engine.add_scanned_product(code)  # type: ignore[arg-type]
        assert len(engine.basket.lines) == 20
        engine.totals()
        shown += len(engine.suggestions())
        engine.void_line(line.line_no)
    elapsed = time.process_time() - started
    store.close()
    assert shown == 3000
    assert elapsed < 2.0, f"1000 scans took {elapsed:.2f} s of CPU"


def test_sqlite_errors_are_never_raw(engine: SaleEngine, store: LocalStore) -> None:
    store.db.execute("DROP TABLE print_jobs")
    scan(engine, f.MILK.ean)
    engine.add_tender_cash(200)
    with pytest.raises(Exception) as caught:
        engine.complete()
    assert not isinstance(caught.value, sqlite3.Error)
    assert "The sale was not saved" in str(caught.value)
    assert count(store, "sales") == 0
    assert len(engine.basket.lines) == 1
