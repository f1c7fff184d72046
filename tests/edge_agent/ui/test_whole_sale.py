"""Whole sales through the cashier's window against real parts: HQ under uvicorn on a loopback
port (the till enrolled, its catalogue and customer pulled from HQ's feed), the ESC/POS printer
simulator and the SMTP sink.

1. Wedge-scanned loyalty card and product, one touch on a suggestion, cash, "both": the receipt
   comes out of the printer, the mail reaches the inbox, the sale and the accepted suggestion
   reach HQ.
2. HQ down and the printer out of paper during the sale: the sale completes at once, the window
   says OFFLINE and PRINTER PAPER OUT (never a dialog), and when both are back the receipt
   prints once and the sale reaches HQ once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytestqt.qtbot import QtBot

import tests.support.till as till_support
from edge_agent.config import TillSettings
from edge_agent.store import LocalStore
from edge_agent.till import Till
from edge_agent.ui.keyboard_wedge import ManualClock, type_text, wedge_scan
from edge_agent.ui.main_window import TillWindow
from edge_agent.ui.presenters import TillPresenter
from hardware_sim.printer import PrinterSimulator
from hardware_sim.smtp import SmtpSink
from shared.identifiers import Identifier
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import events
from sync_server.services import feed as hq_feed
from sync_server.services import identity
from tests.edge_agent import factories as f
from tests.edge_agent.ui.support import LOYALTY, click, open_window, table_text
from tests.support.till import STORE, TILL, RestartableHq, hq_orders, mailing_hq_settings

WAIT_MS = 20_000


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    running = SmtpSink(out_dir=tmp_path / "mail").start()
    yield running
    running.stop()


@pytest.fixture
def hq(tmp_path: Path, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableHq]:
    """HQ with the demo catalogue and Maria on its feed, mail to the sink; not started yet."""
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    server = RestartableHq(url, db)
    settings = mailing_hq_settings(url, public_url=server.base_url, smtp_port=sink.port)
    monkeypatch.setattr(till_support, "hq_settings", lambda _url: settings)
    load_catalogue(db)
    add_maria(db)
    try:
        yield server
    finally:
        server.stop()
        db.dispose()


def load_catalogue(db: Database) -> None:
    """The grocery catalogue, its recommendation lists and the store, on HQ's change feed."""
    with db.write() as conn:
        hq_feed.record_changes(
            conn,
            [
                {"entity": c["entity"], "key": c["key"], "data": json.dumps(c["data"])}
                for c in f.grocery_changes()
            ],
        )


def add_maria(db: Database) -> None:
    """Maria, known at HQ by her email and loyalty card, a customer of the store."""
    profile = uuid.uuid4()
    now = utc_now()
    with db.write() as conn:
        customer = identity.ensure_profile(
            conn,
            profile_id=profile,
            source="import",
            claims=[Identifier("email", "maria@example.com"), Identifier("loyalty", LOYALTY)],
            home_store=STORE,
        )
        for field, value in (("first_name", "Maria"), ("last_name", "Schmidt")):
            identity.write_field(
                conn,
                customer=customer,
                profile=profile,
                field=field,
                value=value,
                hlc=f"{0:015d}-000000-import",
                writer="import",
                now=now,
            )
        identity.customers_changed(conn, {customer}, store_id=STORE)


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[PrinterSimulator]:
    with PrinterSimulator(port=0, out_dir=tmp_path / "paper", width=80) as sim:
        yield sim


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    """An empty till database: everything it sells comes from HQ."""
    local = LocalStore.open(tmp_path / "till.sqlite")
    yield local
    local.close()


def running_till(
    store: LocalStore, hq: RestartableHq, printer: PrinterSimulator, tmp_path: Path
) -> Till:
    settings = TillSettings(
        db_path=tmp_path / "till.sqlite",
        store_id=STORE,
        till_id=TILL,
        cashier_id="cashier-7",
        suggestions=3,
        push_interval_s=0.2,
        pull_interval_s=0.3,
        printer=f"tcp://127.0.0.1:{printer.port}?profile=80mm-48&timeout=2",
    )
    client = hq.client(hq.enroll(), timeout=2.0)
    till = Till(settings=settings, store=store, client=client, own_client=True)
    assert till.printer is not None
    # Retry a fault within half a second (the default backs off to 30 s).
    till.printer.backoff_max_s = 0.5
    till.start()
    return till


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def hq_events(db: Database, kind: str) -> list[str | None]:
    with db.read() as conn:
        return [
            row.sku for row in conn.execute(sa.select(events.c.sku).where(events.c.kind == kind))
        ]


def test_a_whole_sale_reaches_the_printer_the_inbox_and_hq(
    qtbot: QtBot,
    hq: RestartableHq,
    sink: SmtpSink,
    printer: PrinterSimulator,
    store: LocalStore,
    tmp_path: Path,
    clock: ManualClock,
) -> None:
    hq.start()
    with running_till(store, hq, printer, tmp_path) as till:
        # The till learns its catalogue, recommendations and customers from HQ's feed.
        qtbot.waitUntil(lambda: till.catalogue.by_sku(f.BELT.sku) is not None, timeout=WAIT_MS)
        loyalty = Identifier("loyalty", LOYALTY)
        qtbot.waitUntil(lambda: till.customers.cached_card(loyalty) is not None, timeout=WAIT_MS)
        window = open_window(qtbot, TillPresenter(till), clock)
        qtbot.waitUntil(lambda: window.status_parts[0].text() == "ONLINE with HQ", timeout=WAIT_MS)

        assert f.TSHIRT.ean
        wedge_scan(LOYALTY, clock=clock)
        assert window.message.text().startswith("Customer Maria Schmidt"), window.message.text()
        wedge_scan(f.TSHIRT.ean, clock=clock)
        assert window.sale_panel.customer_box.title() == "Customer: Maria Schmidt"
        jeans = next(b for b in window.suggestion_buttons if b.property("sku") == f.JEANS.sku)
        assert "T-Shirt" in jeans.accessibleName()  # the reason the cashier can say
        jeans.click()
        assert [row[1] for row in table_text(window)] == [f.TSHIRT.name, f.JEANS.name]

        click(window, "key_pay")
        type_text("100", clock=clock)
        clock.advance(100)
        qtbot.waitUntil(lambda: window.amount.text() == "100", timeout=2000)
        click(window, "pay_cash")
        prompt = window.presenter.receipt_prompt
        assert prompt is not None, window.message.text()
        assert window.receipt_panel.change.text() == "Change €20.02"
        assert window.email_field.text() == "maria@example.com"
        window.consent.setChecked(True)
        click(window, "receipt_both")
        assert not window.message.property("error"), window.message.text()

        # Paper: the receipt, once, with the suggestion the customer took.
        [printed] = printer.wait_for_receipts(1, timeout=10)
        rows = [" ".join(row.split()) for row in printed.text.splitlines()]
        assert f"Receipt {prompt.receipt_number}" in rows
        assert f"{f.JEANS.name} €59.99 A" in rows and "TOTAL €79.98" in rows
        assert "Customer Maria Schmidt" in rows
        assert "Change €20.02" in rows
        assert len(printer.drawer_kicks) == 1  # opened at the sale, not again by the receipt

        # Mail: through HQ to the sink.
        qtbot.waitUntil(lambda: bool(sink.paths()), timeout=WAIT_MS)
        [message] = sink.messages()
        assert isinstance(message, EmailMessage)
        assert message["To"] == "maria@example.com"
        assert prompt.receipt_number in str(message["Subject"])

        # HQ: the sale and the accepted suggestion.
        qtbot.waitUntil(lambda: prompt.sale_id in hq_orders(hq.db), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: hq_events(hq.db, "suggestion_accepted") != [], timeout=WAIT_MS)
        assert hq_events(hq.db, "suggestion_accepted") == [f.JEANS.sku]
        qtbot.waitUntil(lambda: window.status_parts[1].text() == "all sent", timeout=WAIT_MS)
        assert window.status_parts[0].text() == "ONLINE with HQ"
        assert window.status_parts[3].text() == "Printer ready"
        window.close()
    assert len(printer.receipts) == 1 and len(sink.paths()) == 1


@pytest.fixture
def plain_hq(tmp_path: Path) -> Iterator[RestartableHq]:
    """HQ with the catalogue on its feed and no mail; not started yet."""
    url = f"sqlite:///{(tmp_path / 'hq.db').as_posix()}"
    db = Database(url)
    db.migrate()
    load_catalogue(db)
    server = RestartableHq(url, db)
    try:
        yield server
    finally:
        server.stop()
        db.dispose()


def test_hq_down_and_paper_out_during_a_sale_lose_nothing(
    qtbot: QtBot,
    plain_hq: RestartableHq,
    printer: PrinterSimulator,
    store: LocalStore,
    tmp_path: Path,
    clock: ManualClock,
) -> None:
    hq = plain_hq
    # The catalogue is on the till already (an earlier pull); then HQ goes away.
    hq.start()
    with running_till(store, hq, printer, tmp_path) as till:
        qtbot.waitUntil(lambda: till.catalogue.by_sku(f.BELT.sku) is not None, timeout=WAIT_MS)
        hq.stop()
        printer.set_fault("paper-out")
        window: TillWindow = open_window(qtbot, TillPresenter(till), clock)

        assert f.BREAD.ean and f.MILK.ean
        wedge_scan(f.BREAD.ean, clock=clock)
        wedge_scan(f.MILK.ean, clock=clock)
        click(window, "key_pay")
        started = time.monotonic()
        click(window, "pay_cash")
        assert time.monotonic() - started < 2  # never waits for HQ or the printer
        prompt = window.presenter.receipt_prompt
        assert prompt is not None and window.message.text().startswith("Sale complete")
        click(window, "receipt_print")
        assert window.message.text() == f"Receipt {prompt.receipt_number} is printing"

        # The window tells the truth, in words, without a dialog.
        qtbot.waitUntil(
            lambda: window.status_parts[0].text().startswith("OFFLINE"), timeout=WAIT_MS
        )
        qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
        assert window.banner.text().startswith("PRINTER PAPER OUT:")
        qtbot.waitUntil(
            lambda: window.status_parts[3].text() == "PRINTER PAPER OUT, 1 waiting",
            timeout=WAIT_MS,
        )
        assert window.status_parts[1].text() == "1 op waiting to sync"
        assert window.isActiveWindow() or window.isVisible()
        assert printer.receipts == [] and printer.held == []  # nothing was sent to it
        sent = store.query("SELECT payload FROM outbox WHERE type = 'sale'")
        assert [json.loads(row[0])["sale_id"] for row in sent] == [prompt.sale_id]

        # The next customer is served meanwhile.
        wedge_scan(f.MILK.ean, clock=clock)
        assert [row[1] for row in table_text(window)] == [f.MILK.name]

        # Paper, and HQ, are back.
        printer.set_fault(None)
        hq.start()
        [printed] = printer.wait_for_receipts(1, timeout=10)
        assert f"Receipt {prompt.receipt_number}" in " ".join(printed.text.split())
        qtbot.waitUntil(lambda: prompt.sale_id in hq_orders(hq.db), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.status_parts[1].text() == "all sent", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=WAIT_MS)
        assert window.status_parts[0].text() == "ONLINE with HQ"
        qtbot.wait(300)
        window.close()
    assert hq_orders(hq.db) == [prompt.sale_id]
    assert len(printer.receipts) == 1
