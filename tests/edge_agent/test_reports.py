"""X and Z reports over sales and returns the sale engine wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from edge_agent.reports import ReportTotals, x_report, z_report
from edge_agent.sale_engine import SaleEngine
from edge_agent.store import LocalStore
from shared.barcodes import ProductScan, classify_scan
from shared.sale import Return, Sale
from tests.edge_agent import factories as f

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: LocalStore, clock: Clock) -> SaleEngine:
    return f.make_engine(store, clock=clock)


def add(engine: SaleEngine, ean: str | None, quantity: int = 1) -> None:
    assert ean is not None
    code = classify_scan(ean)
    assert isinstance(code, ProductScan)
    engine.add_scanned_product(code, quantity=quantity)


def make_day(engine: SaleEngine) -> tuple[Sale, Sale, Sale, Return]:
    """Three sales (cash with change, card, split) and a cash return."""
    add(engine, f.MILK.ean, 2)  # 2.58 at 7 %
    add(engine, f.WINE.ean)  # 8.99 at 19 %
    engine.add_tender_cash(2000)
    cash_sale = engine.complete()

    add(engine, f.TSHIRT.ean)  # 19.99 at 19 %
    engine.discount_basket(kind="percent", value=Decimal(10), reason="Welcome")
    engine.add_tender_card(engine.totals().due_minor, "AUTH-1")
    card_sale = engine.complete()

    add(engine, f.COFFEE.ean)  # 12.99 at 7 %
    engine.add_tender_card(1000, "AUTH-2")
    engine.add_tender_cash(500)
    split_sale = engine.complete()

    draft = engine.start_return(cash_sale.receipt_number)
    draft.select(2, 1)  # the wine
    ret = engine.complete_return(draft, tender_kind="cash", reason="Corked")
    return cash_sale, card_sale, split_sale, ret


def test_x_report_totals_the_running_period(engine: SaleEngine, store: LocalStore) -> None:
    empty = x_report(store)
    assert (empty.sales_count, empty.returns_count, empty.gross_minor) == (0, 0, 0)
    assert empty.tenders_by_kind == {} and empty.period_start is None

    cash_sale, card_sale, split_sale, ret = make_day(engine)
    report = x_report(store, opening_float_minor=10_000)
    assert report.number is None and report.report_id is None
    assert report.currency == "EUR"
    assert (report.sales_count, report.returns_count) == (3, 1)
    gross = cash_sale.total_minor + card_sale.total_minor + split_sale.total_minor
    assert report.gross_minor == gross == 258 + 899 + 1799 + 1299
    assert report.returns_minor == ret.total_minor == 899
    assert report.net_minor == gross - 899
    assert report.discount_minor == 200  # 10 % of 19.99, rounded half up
    sales_tax = {
        Decimal("7"): cash_sale.lines[0].tax_minor + split_sale.lines[0].tax_minor,
        Decimal("19"): cash_sale.lines[1].tax_minor + card_sale.lines[0].tax_minor,
    }
    assert report.tax_by_rate == {
        Decimal("7"): sales_tax[Decimal("7")],
        Decimal("19"): sales_tax[Decimal("19")] - ret.tax_minor,
    }
    assert report.tax_minor == sum(report.tax_by_rate.values())
    assert report.tenders_by_kind == {
        "card": 1799 + 1000,
        "cash": cash_sale.total_minor + 299 - 899,
    }
    assert report.cash_expected_minor == 10_000 + cash_sale.total_minor + 299 - 899
    assert report.first_receipt == cash_sale.receipt_number
    assert report.last_receipt == ret.receipt_number
    # An X report changes nothing.
    assert store.query("SELECT * FROM z_reports") == []
    assert x_report(store, opening_float_minor=10_000).gross_minor == gross


def test_z_report_closes_the_period(engine: SaleEngine, store: LocalStore, clock: Clock) -> None:
    make_day(engine)
    expected = x_report(store)
    closed = z_report(store, clock=clock)
    assert closed.number == 1 and closed.report_id is not None
    assert (closed.sales_count, closed.returns_count, closed.gross_minor) == (
        expected.sales_count,
        expected.returns_count,
        expected.gross_minor,
    )
    assert closed.tenders_by_kind == expected.tenders_by_kind
    stamped = store.query("SELECT DISTINCT z_report_id FROM sales")
    assert [r[0] for r in stamped] == [closed.report_id]
    row = store.query_one("SELECT number, totals FROM z_reports")
    assert row is not None and row[0] == 1
    assert json.loads(row[1]) == closed.to_json()
    assert json.loads(row[1])["tax_by_rate"] == {
        str(rate): amount for rate, amount in closed.tax_by_rate.items()
    }

    again = z_report(store, clock=clock)
    assert again.number == 2
    assert (again.sales_count, again.returns_count, again.gross_minor) == (0, 0, 0)
    assert again.period_start == closed.created_at
    assert x_report(store).sales_count == 0


def test_sales_after_a_z_belong_to_the_next_period(engine: SaleEngine, store: LocalStore) -> None:
    add(engine, f.JAM.ean)
    engine.add_tender_cash(349)
    engine.complete()
    first = z_report(store)
    add(engine, f.BREAD.ean)
    engine.add_tender_cash(500)
    sale = engine.complete()
    report = x_report(store)
    assert (report.sales_count, report.gross_minor) == (1, 299)
    assert report.tenders_by_kind == {"cash": 299}
    assert report.first_receipt == sale.receipt_number
    assert report.period_start == first.created_at
    second = z_report(store)
    assert second.number == 2 and second.gross_minor == 299


def test_report_totals_serialize(store: LocalStore) -> None:
    report = ReportTotals(
        created_at=T0,
        period_start=None,
        tax_by_rate={Decimal("8.875"): 12},
        tenders_by_kind={"cash": 100},
    )
    data = report.to_json()
    assert data["created_at"] == T0.isoformat()
    assert data["tax_by_rate"] == {"8.875": 12}
    json.dumps(data)
