"""The print journal: faults never block a sale, a job prints once when the fault clears, a job
that may have printed is never printed again on its own, and any past receipt reprints as a
COPY."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import TillSettings
from edge_agent.printing.connections import (
    PrinterConnection,
    PrinterStatus,
    connection_factory,
    status_from_replies,
)
from edge_agent.printing.jobs import PrinterState, PrintWorker, queue_reprint
from edge_agent.printing.profiles import PROFILES
from edge_agent.printing.render import render_receipt
from edge_agent.store import LocalStore
from edge_agent.till import Till, TillEvent
from shared.errors import InvalidInput, NotFound, PrinterOffline
from tests.edge_agent import factories as f
from tests.edge_agent.printing.support import (
    PAPER_LOW,
    PAPER_OUT,
    RECEIPT_URL,
    FakeTcpPrinter,
    Printed,
    free_port,
    read_escpos,
    sample_receipt,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


class Crash(BaseException):
    """The till process dying mid-print (nothing in the worker catches a BaseException)."""


class FakePrinter:
    """A printer whose faults the test switches; ``connect`` is the connection factory."""

    def __init__(self) -> None:
        self.state: PrinterStatus | None = PrinterStatus(online=True)
        self.unplugged = False
        self.fail_after: int | None = None  # bytes taken before the link breaks
        self.crash = False
        self.sent: list[bytes] = []
        self.attempts = 0

    def connect(self) -> PrinterConnection:
        return _FakeConnection(self)

    @property
    def printed(self) -> list[Printed]:
        return [read_escpos(data) for data in self.sent]


class _FakeConnection:
    def __init__(self, printer: FakePrinter) -> None:
        self.printer = printer

    def status(self) -> PrinterStatus | None:
        self.printer.attempts += 1
        if self.printer.unplugged:
            raise PrinterOffline("The printer at fake:9100 refused the connection")
        return self.printer.state

    def send(self, data: bytes) -> None:
        if self.printer.fail_after is not None:
            self.printer.sent.append(data[: self.printer.fail_after])
            raise PrinterOffline("The connection to the printer broke while printing")
        self.printer.sent.append(data)
        if self.printer.crash:
            raise Crash

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f.build_template(tmp_path_factory.mktemp("grocery"), f.grocery_changes())


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[LocalStore]:
    local = f.store_from_template(template, tmp_path)
    yield local
    local.close()


@pytest.fixture
def fake() -> FakePrinter:
    return FakePrinter()


def make_till(
    store: LocalStore,
    tmp_path: Path,
    factory: Callable[[], PrinterConnection] | None,
    **over: Any,
) -> Till:
    settings = TillSettings(
        db_path=tmp_path / "till.sqlite",
        store_id=f.STORE_ID,
        till_id=f.TILL_ID,
        cashier_id="cashier-7",
        printer=over.pop("printer", "none"),
    )
    return Till(
        settings=settings,
        store=store,
        client=None,
        clock=lambda: NOW,
        printer_connection=factory,
        **over,
    )


@pytest.fixture
def states() -> list[PrinterState]:
    return []


@pytest.fixture
def till(
    store: LocalStore, tmp_path: Path, fake: FakePrinter, states: list[PrinterState]
) -> Iterator[Till]:
    with make_till(store, tmp_path, fake.connect, on_printer_status=states.append) as running:
        yield running


def worker(till: Till) -> PrintWorker:
    assert till.printer is not None
    return till.printer


def sell(till: Till, *codes: str | None, pay: str = "CMD-PAY-CASH") -> TillEvent:
    for code in codes:
        assert code is not None
        assert not till.handle_scan(code).is_error
    event = till.handle_scan(pay)
    assert event.kind == "sale_complete", event
    return event


def jobs(store: LocalStore) -> list[tuple[str, int, str, str | None]]:
    rows = store.query(
        "SELECT sale_id, copy, status, last_error FROM print_jobs ORDER BY created_at, rowid"
    )
    return [(str(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]


# -- faults at sale time -----------------------------------------------------------------------


def test_paper_out_at_sale_time_the_sale_completes_and_prints_once_when_refilled(
    till: Till, store: LocalStore, fake: FakePrinter, states: list[PrinterState]
) -> None:
    fake.state = status_from_replies(PAPER_OUT)
    done = sell(till, f.BREAD.ean, f.BUTTER.ean)
    assert worker(till).run_once() == 0
    [(sale_id, copy, status, error)] = jobs(store)
    assert (sale_id, copy, status) == (done.data["sale_id"], 0, "pending")
    assert error is not None and "out of paper" in error
    printer = till.status().printer
    assert printer is not None and printer.fault == "paper_out" and not printer.ready
    assert printer.message == (
        "The printer is out of paper: put in a new roll to print the receipt (1 receipt waiting)"
    )
    assert states[-1] == printer  # the cashier's screen was told
    assert till.status().pending_print_jobs == 1
    assert worker(till).run_once() == 0  # still out of paper: still waiting
    assert fake.sent == []

    fake.state = status_from_replies(PAPER_LOW)
    assert worker(till).run_once() == 1
    assert worker(till).run_once() == 0
    [receipt] = fake.printed
    assert done.data["receipt_number"] in receipt.text and "Backstube Rye Bread" in receipt.text
    assert receipt.drawer_kicks == 1 and receipt.cuts == 1
    [(_, _, status, error)] = jobs(store)
    assert (status, error) == ("done", None)
    row = store.query_one("SELECT printed_at, attempts FROM print_jobs")
    assert row is not None and row[0] is not None and row[1] == 3
    printer = till.status().printer
    assert printer is not None and printer.ready and printer.paper_low
    assert "nearly empty" in printer.message and till.status().pending_print_jobs == 0


def test_an_unplugged_network_printer_prints_the_waiting_receipt_once_plugged_in(
    store: LocalStore, tmp_path: Path
) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}?timeout=1"
    with make_till(store, tmp_path, None, printer=url) as till:
        done = sell(till, f.WINE.ean, pay="CMD-PAY-CARD")
        assert worker(till).run_once() == 0
        [(_, _, status, error)] = jobs(store)
        assert status == "pending" and error is not None and "refused the connection" in error
        printer = till.status().printer
        assert printer is not None and printer.fault == "offline"

        plugged = FakeTcpPrinter(port)
        try:
            assert worker(till).run_once() == 1
            assert worker(till).run_once() == 0
            deadline = time.monotonic() + 3
            while len(plugged.received) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            [data] = plugged.received
            receipt = read_escpos(data)
            assert done.data["receipt_number"] in receipt.text
            assert receipt.drawer_kicks == 0  # paid by card
            assert plugged.queries == [1, 2, 3, 4]
        finally:
            plugged.close()
    assert [status for _, _, status, _ in jobs(store)] == ["done"]


def test_the_worker_thread_retries_with_backoff_and_prints_once(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    printer = worker(till)
    printer.poll_interval_s = printer.backoff_initial_s = 0.02
    fake.unplugged = True
    sell(till, f.MILK.ean)
    printer.start()
    try:
        deadline = time.monotonic() + 5
        while fake.attempts < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.attempts >= 4 and fake.sent == []
        assert printer.backoff_s >= 0.08  # 0.02, 0.04, 0.08...
        fake.unplugged = False
        printer.kick()
        while not fake.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # more rounds: nothing prints twice
    finally:
        printer.stop()
    assert len(fake.sent) == 1
    assert printer.backoff_s == 0
    assert [status for _, _, status, _ in jobs(store)] == ["done"]


def test_backoff_doubles_up_to_its_limit(till: Till, fake: FakePrinter) -> None:
    fake.unplugged = True
    sell(till, f.MILK.ean)
    printer = worker(till)
    seen = []
    for _ in range(8):
        printer.run_once()
        seen.append(printer.backoff_s)
    assert seen == [1, 2, 4, 8, 16, 30, 30, 30]


# -- never a double print ------------------------------------------------------------------------


def test_a_crash_between_send_and_done_leaves_the_job_uncertain_never_reprinted(
    store: LocalStore, tmp_path: Path, fake: FakePrinter
) -> None:
    with make_till(store, tmp_path, fake.connect) as till:
        sell(till, f.JAM.ean)
        fake.crash = True
        with pytest.raises(Crash):
            worker(till).run_once()
    assert [status for _, _, status, _ in jobs(store)] == ["printing"]
    assert len(fake.sent) == 1

    after = FakePrinter()  # the till starts again
    with make_till(store, tmp_path, after.connect) as till:
        assert worker(till).run_once() == 0
        assert worker(till).run_once() == 0
        assert after.sent == []
        [(sale_id, _, status, error)] = jobs(store)
        assert status == "uncertain" and error is not None and "may not have printed" in error
        printer = till.status().printer
        assert printer is not None and printer.uncertain_jobs == 1
        assert "1 receipt may not have printed completely" in printer.message
        [pending] = worker(till).uncertain_jobs()
        assert pending["sale_id"] == sale_id and pending["receipt_number"] == "S001-T1-000001"

        # The cashier looks at the printer and asks for it again: a COPY.
        copy_id = worker(till).resolve_uncertain(pending["job_id"], reprint=True)
        assert copy_id is not None
        assert worker(till).run_once() == 1
        [receipt] = after.printed
        assert receipt.rows[0] == "COPY" and "S001-T1-000001" in receipt.text
        assert receipt.drawer_kicks == 0
        assert [status for _, _, status, _ in jobs(store)] == ["dismissed", "done"]
        with pytest.raises(NotFound):
            worker(till).resolve_uncertain(pending["job_id"], reprint=False)


def test_a_send_that_breaks_half_way_is_uncertain_not_retried(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    sell(till, f.COFFEE.ean)
    sell(till, f.MILK.ean)
    fake.fail_after = 40
    assert worker(till).run_once() == 0
    fake.fail_after = None
    assert worker(till).run_once() == 1  # the next job; the broken one is left alone
    statuses = [status for _, _, status, _ in jobs(store)]
    assert statuses == ["uncertain", "done"]
    assert len(fake.sent) == 2 and len(fake.sent[0]) == 40
    assert "S001-T1-000002" in fake.printed[1].text


def test_jobs_print_in_order_and_a_broken_one_does_not_block_the_rest(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    for ean in (f.MILK.ean, f.BREAD.ean, f.JAM.ean):
        sell(till, ean)
    with store.transaction() as db:
        db.execute(
            "UPDATE print_jobs SET document = '{broken' WHERE sale_id = "
            "(SELECT sale_id FROM sales WHERE receipt_number = 'S001-T1-000002')"
        )
    assert worker(till).run_once() == 2
    assert [("S001-T1-000001" in p.text, "S001-T1-000003" in p.text) for p in fake.printed] == [
        (True, False),
        (False, True),
    ]
    assert [status for _, _, status, _ in jobs(store)] == ["done", "failed", "done"]


def test_a_receipt_printed_late_does_not_open_the_drawer(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    sell(till, f.MILK.ean)
    worker(till).clock = lambda: NOW + timedelta(minutes=5)
    assert worker(till).run_once() == 1
    assert fake.printed[0].drawer_kicks == 0


def test_a_receipt_waiting_for_hours_expires_instead_of_printing(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    sell(till, f.MILK.ean)
    worker(till).clock = lambda: NOW + timedelta(hours=3)
    assert worker(till).run_once() == 0
    assert fake.sent == []
    [(_, _, status, error)] = jobs(store)
    assert status == "expired" and error is not None and "Reprint it" in error


# -- reprints ------------------------------------------------------------------------------------


def test_reprint_of_an_old_sale_prints_a_copy(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    first = sell(till, f.BREAD.ean, f.BUTTER.ean)
    sell(till, f.WINE.ean)
    assert worker(till).run_once() == 2

    worker(till).reprint(first.data["receipt_number"])
    assert worker(till).run_once() == 1
    copy = fake.printed[-1]
    original = fake.printed[0]
    assert copy.rows[0] == "COPY" and [r for r in copy.rows if r][-1] == "COPY"
    assert copy.drawer_kicks == 0 and original.drawer_kicks == 1
    body = original.text.strip("\n")
    assert body in copy.text  # the same receipt, between the two COPY marks

    worker(till).reprint(first.data["sale_id"])  # by id
    worker(till).reprint("R" + first.data["receipt_number"])  # as scanned from its barcode
    assert worker(till).run_once() == 2
    assert all(p.rows[0] == "COPY" for p in fake.printed[-2:])
    with pytest.raises(NotFound, match="S001-T1-999999"):
        worker(till).reprint("S001-T1-999999")


def test_reprint_rebuilds_the_receipt_when_its_job_is_gone(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    done = sell(till, f.TSHIRT.ean, pay="CMD-PAY-CARD")
    refund = till.handle_scan("R" + done.data["receipt_number"])
    assert refund.kind == "return_started"
    assert till.handle_scan("CMD-PAY-CASH").kind == "return_complete"
    with store.transaction() as db:
        db.execute("DELETE FROM print_jobs")
    queue_reprint(store, done.data["receipt_number"], clock=lambda: NOW)
    queue_reprint(store, "S001-T1-000002", clock=lambda: NOW)  # the return
    assert worker(till).run_once() == 2
    sale, ret = fake.printed
    assert sale.rows[0] == "COPY" and "Nordkind Organic Cotton T-Shirt" in sale.text
    assert "REFUND" in ret.text and "Refund of receipt" in ret.text and ret.rows[0] == "COPY"
    assert ret.drawer_kicks == 0


def test_cmd_reprint_at_the_till_prints_a_copy(
    till: Till, store: LocalStore, fake: FakePrinter
) -> None:
    sell(till, f.JAM.ean)
    assert till.handle_scan("CMD-REPRINT").kind == "reprint_queued"
    assert worker(till).run_once() == 2
    original, copy = fake.printed
    assert "COPY" not in original.text and copy.rows[0] == "COPY"


# -- the till's printer --------------------------------------------------------------------------


def test_no_printer_means_no_worker_and_jobs_wait(store: LocalStore, tmp_path: Path) -> None:
    with make_till(store, tmp_path, None) as till:
        assert till.printer is None
        sell(till, f.MILK.ean)
        status = till.status()
        assert status.printer is None and status.pending_print_jobs == 1


def test_a_bad_printer_url_stops_the_till_at_start(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown kind 'lpt'"):
        make_till(store, tmp_path, None, printer="lpt://printer")


def test_the_printer_url_sets_the_receipt_width(store: LocalStore, tmp_path: Path) -> None:
    target = tmp_path / "lp0"
    with make_till(store, tmp_path, None, printer=f"file://{target}?profile=58mm") as till:
        assert worker(till).profile == PROFILES["58mm"]
        sell(till, f.MILK.ean)
        assert worker(till).run_once() == 1
    rows = read_escpos(target.read_bytes()).rows
    assert max(len(row) for row in rows) == 32


def test_an_idle_printer_is_checked_so_a_fault_shows_before_the_sale(
    till: Till, fake: FakePrinter
) -> None:
    fake.state = status_from_replies(PAPER_OUT)
    assert worker(till).run_once() == 0
    state = worker(till).state
    assert state.fault == "paper_out" and state.pending_jobs == 0
    fake.state = PrinterStatus(online=True)
    worker(till).run_once()  # not yet due again: the last state stands
    assert worker(till).state.fault == "paper_out"
    worker(till).idle_check_s = 0
    worker(till).run_once()
    assert worker(till).state.ready and worker(till).state.message == "The printer is ready"


def test_stopping_the_till_stops_the_worker(
    store: LocalStore, tmp_path: Path, fake: FakePrinter
) -> None:
    till = make_till(store, tmp_path, fake.connect)
    till.start()
    threads = {t.name for t in threading.enumerate()}
    assert "omnitill-printer" in threads
    till.close()
    assert "omnitill-printer" not in {t.name for t in threading.enumerate()}


def test_the_tcp_factory_is_what_the_till_builds(store: LocalStore, tmp_path: Path) -> None:
    with make_till(store, tmp_path, None, printer="tcp://127.0.0.1:9") as till:
        assert worker(till).connection_factory().__class__.__name__ == "TcpConnection"
    assert connection_factory("tcp://127.0.0.1:9")().__class__.__name__ == "TcpConnection"


# -- a round trip through the printer simulator ---------------------------------------------------


def _text_rows(text: str) -> list[str]:
    """The printed words, row by row: no blank rows, no notes, no alignment padding."""
    return [
        row.strip()
        for row in text.splitlines()
        if row.strip() and not row.lstrip().startswith("[") and " cut " not in row
    ]


def test_a_round_trip_through_the_printer_simulator(store: LocalStore, tmp_path: Path) -> None:
    simulator = pytest.importorskip("hardware_sim.printer")
    with simulator.PrinterSimulator(
        port=0, out_dir=tmp_path / "paper", width=80, fault="paper-out"
    ) as sim:
        url = f"tcp://127.0.0.1:{sim.port}?profile=80mm-48&timeout=2"
        with make_till(store, tmp_path, None, printer=url) as till:
            done = sell(till, f.BREAD.ean, f.BUTTER.ean, pay="CMD-PAY-CASH-1000")
            assert worker(till).run_once() == 0  # paper out: the sale is done, the job waits
            state = till.status().printer
            assert state is not None and state.fault == "paper_out"
            assert sim.receipts == [] and sim.held == []

            sim.set_fault(None)
            assert worker(till).run_once() == 1
            [printed] = sim.wait_for_receipts(1)
            rows = _text_rows(printed.text)
            for expected in (
                "Omnitill Demo Berlin",
                f"Receipt {done.data['receipt_number']}",
                "Backstube Rye Bread 500 g €2.99 A",
                "Alpenhof Butter 250 g €2.49 A",
                "TOTAL €5.48",
                "Cash €10.00",
                "Change €4.52",
                "Customers who bought Backstube Rye Bread 500 g",  # the name, from the sale
                "also bought:",
                "Sonnhof Strawberry Jam 450 g €3.49",
                "Alpenhof Fresh Milk 1 l €1.29",
            ):
                assert any(" ".join(row.split()) == expected for row in rows), (expected, rows)
            assert f"[CODE128: R{done.data['receipt_number']}]" in printed.text
            assert [kick.pin for kick in printed.receipt.drawer_kicks] == [2]

            # A receipt with everything on it: what the simulator read is what we laid out.
            receipt = sample_receipt()
            with store.transaction() as db:
                db.execute(
                    "INSERT INTO print_jobs(job_id, kind, status, created_at, document) "
                    "VALUES ('sample', 'sale', 'pending', ?, ?)",
                    [NOW.isoformat(), receipt.model_dump_json(by_alias=True)],
                )
            assert worker(till).run_once() == 1
            second = sim.wait_for_receipts(2)[1]
            expected_text = read_escpos(render_receipt(receipt, PROFILES["80mm-48"])).text
            assert _text_rows(second.text) == _text_rows(expected_text)
            assert f"[QR: {RECEIPT_URL}]" in second.text
            assert "[CODE128: RS001-T1-000042]" in second.text
            assert worker(till).run_once() == 0
        assert len(sim.receipts) == 2  # each printed once
