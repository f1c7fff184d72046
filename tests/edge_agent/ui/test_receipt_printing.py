"""The receipt choice on paper, with the ESC/POS printer simulator on a loopback port.

The paper receipt waits for the customer's answer: "none" and "email" never print it, "print"
and "both" do, a cash sale opens the drawer at once whatever the answer (and only once), and a
till that stops before the answer prints nothing and keeps the sale. The print worker is driven
with ``run_once`` here, so each step is exact and no test waits for a timer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from edge_agent.printing.jobs import PrintWorker
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.keyboard_wedge import ManualClock, wedge_scan
from edge_agent.ui.main_window import TillWindow
from edge_agent.ui.presenters import TillPresenter
from hardware_sim.printer import PrinterSimulator
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import NOW, click, open_window, till_settings


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[PrinterSimulator]:
    with PrinterSimulator(port=0, out_dir=tmp_path / "paper", width=80) as sim:
        yield sim


def printing_till(store: LocalStore, tmp_path: Path, printer: PrinterSimulator) -> Till:
    url = f"tcp://127.0.0.1:{printer.port}?profile=80mm-48&timeout=2"
    return Till(
        settings=till_settings(tmp_path, printer=url), store=store, client=None, clock=lambda: NOW
    )


@pytest.fixture
def till(store: LocalStore, tmp_path: Path, printer: PrinterSimulator) -> Iterator[Till]:
    with printing_till(store, tmp_path, printer) as running:
        yield running


@pytest.fixture
def window(qtbot: QtBot, till: Till, clock: ManualClock) -> Iterator[TillWindow]:
    shown = open_window(qtbot, TillPresenter(till), clock)
    yield shown
    shown.close()


def words(text: str) -> list[str]:
    """The printed rows with their padding squeezed: ``Receipt S001-T1-000001``."""
    return [" ".join(row.split()) for row in text.splitlines() if row.strip()]


def worker(till: Till) -> PrintWorker:
    assert till.printer is not None
    return till.printer


def sell(window: TillWindow, clock: ManualClock, code: str, pay: str) -> str:
    wedge_scan(code, clock=clock)
    click(window, "key_pay")
    click(window, pay)
    prompt = window.presenter.receipt_prompt
    assert prompt is not None, window.message.text()
    return prompt.receipt_number


def test_only_the_receipts_the_customer_wants_are_printed(
    window: TillWindow, till: Till, clock: ManualClock, printer: PrinterSimulator
) -> None:
    assert f.MILK.ean and f.BREAD.ean and f.JAM.ean
    sell(window, clock, f.MILK.ean, "pay_cash")
    click(window, "receipt_none")
    assert worker(till).run_once() == 1  # the drawer, opened for the change
    sell(window, clock, f.BREAD.ean, "pay_card")
    window.email_field.setText("kim@example.com")
    click(window, "receipt_email")
    assert window.message.text().startswith("Email of receipt S001-T1-000002 queued")
    assert worker(till).run_once() == 0  # a card sale: no drawer, and no paper
    third = sell(window, clock, f.JAM.ean, "pay_cash")
    assert worker(till).run_once() == 1  # the drawer, while the customer decides
    click(window, "receipt_print")
    assert window.message.text() == f"Receipt {third} is printing"
    assert worker(till).run_once() == 1

    [printed] = printer.wait_for_receipts(1)
    assert f"Receipt {third}" in words(printed.text) and f.JAM.name in printed.text
    assert f.MILK.name not in printed.text and f.BREAD.name not in printed.text
    assert printed.receipt.drawer_kicks == []  # opened already: not a second time
    assert len(printer.drawer_kicks) == 2  # the two cash sales, once each
    assert printer.receipts == [printed]


def test_a_receipt_declined_then_wanted_prints_the_original(
    window: TillWindow, till: Till, clock: ManualClock, printer: PrinterSimulator
) -> None:
    assert f.WINE.ean
    number = sell(window, clock, f.WINE.ean, "pay_card")
    click(window, "receipt_none")
    click(window, "key_reprint")  # the customer changed their mind
    assert window.message.text() == f"Receipt {number} is printing (it was not printed before)"
    assert worker(till).run_once() == 1
    [printed] = printer.wait_for_receipts(1)
    assert "COPY" not in printed.text and f"Receipt {number}" in words(printed.text)


def test_a_till_stopped_before_the_choice_keeps_the_sale_and_prints_nothing(
    store: LocalStore, tmp_path: Path, printer: PrinterSimulator
) -> None:
    assert f.WINE.ean
    with printing_till(store, tmp_path, printer) as first:
        presenter = TillPresenter(first)
        presenter.scan(f.WINE.ean)
        done = presenter.pay_cash()
        assert done.kind == "sale_complete"
        assert worker(first).run_once() == 1  # the drawer
        # ... and the till dies here, the customer not asked yet.
    with printing_till(store, tmp_path, printer) as second:
        assert worker(second).run_once() == 0
        assert second.status().sync.pending_ops == 1  # the sale waits for HQ
        stored = store.query_one(
            "SELECT receipt_number FROM sales WHERE sale_id = ?", (done.data["sale_id"],)
        )
        assert stored is not None and stored[0] == done.data["receipt_number"]
    assert printer.receipts == [] and len(printer.drawer_kicks) == 1


def test_x_and_z_reports_are_printed(
    window: TillWindow, till: Till, clock: ManualClock, printer: PrinterSimulator
) -> None:
    assert f.WINE.ean
    sell(window, clock, f.WINE.ean, "pay_card")
    click(window, "receipt_none")
    click(window, "key_reports")
    click(window, "x_report")
    assert window.message.text().endswith("| printing")
    click(window, "z_report")
    click(window, "z_report")  # the second press confirms
    assert window.message.text().startswith("Z report 1 | 1 sales")
    assert worker(till).run_once() == 2
    x, z = printer.wait_for_receipts(2)
    for slip, title in ((x, "X report"), (z, "Z report 1")):
        rows = words(slip.text)
        assert title in rows and "Omnitill Demo Berlin" in rows
        assert "Net €8.99" in rows and "Paid by card €8.99" in rows
        assert "Cash expected in drawer €0.00" in rows


def test_a_printer_fault_shows_in_the_window_at_once(
    qtbot: QtBot, window: TillWindow, till: Till, printer: PrinterSimulator
) -> None:
    printer.set_fault("paper-out")
    worker(till).run_once()  # the printer thread's idle check, here on the test's thread
    qtbot.waitUntil(window.banner.isVisible, timeout=2000)
    assert window.banner.text().startswith("PRINTER PAPER OUT:")
    assert window.status_parts[3].text() == "PRINTER PAPER OUT"
    assert window.status_parts[3].property("fault") is True
    printer.set_fault(None)
    worker(till).idle_check_s = 0.0
    worker(till).run_once()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=2000)
    assert window.status_parts[3].text() == "Printer ready"
