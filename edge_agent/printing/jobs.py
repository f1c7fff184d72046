"""The print journal: receipts leave the ``print_jobs`` table for the printer, once.

A completed sale (or return) and its print job are committed in one transaction by the sale
engine; from then on the sale is done, whatever the printer does. :class:`PrintWorker` prints
the journal in order, on its own thread, and tells the cashier what the printer is doing.

A job's life
------------
``pending`` -> ``printing`` -> ``done``; or, off the main road:

- ``pending`` stays ``pending`` while the printer cannot print. Where the connection can read
  its status (``tcp``, ``serial``), the printer is asked first (DLE EOT): paper out, cover open,
  offline or an error leave the job waiting, with the reason in ``last_error`` and in the
  status the cashier sees. A printer that cannot be reached (refused, unplugged) is the same.
  The worker retries with backoff (1 s doubling to 30 s) while the fault lasts, and prints the
  job when it clears; a new job or :meth:`PrintWorker.kick` tries at once.
- ``uncertain``: the job was being sent when the send failed half-way, or the till stopped (a
  crash, a power cut) between marking it ``printing`` and marking it ``done``. The receipt may
  have printed, in full or in part. The worker never prints it again on its own: the cashier
  looks at the printer and decides (:meth:`PrintWorker.resolve_uncertain`), and what is printed
  again is a reprint, marked COPY.
- ``failed``: the stored receipt cannot be read or laid out (a bug); kept, never printed, so it
  cannot block the jobs behind it.
- ``expired``: still waiting ``max_age_s`` (2 hours) after the sale, when the customer has long
  gone (a printer that was unset or broken all day): not printed, so a repaired printer does
  not pour out a day of receipts. Any of them can still be reprinted.
- ``dismissed``: an ``uncertain`` job the cashier dealt with.
- ``held``: a sale's receipt waiting for the customer's receipt choice on the cashier's screen
  (``Till.hold_receipts``); never printed on its own, even after a restart. The till makes it
  ``pending`` when the customer wants paper, ``declined`` when not.
- ``declined``: the customer did not want paper (email only, or no receipt); a reprint prints
  the original then, since none was printed.

Not every job is a receipt: ``kind = 'report'`` is an X or Z report and ``kind = 'drawer'`` only
opens the cash drawer (see :mod:`~edge_agent.printing.slips`).

Never a double print
--------------------
A job is marked ``printing`` in its own committed transaction *before* its first byte is sent,
and ``done`` after the last. Nothing moves a job from ``printing`` (or ``uncertain``) back to
``pending``, and only ``pending`` jobs are sent. So a job is sent at most once: if the till dies
after sending but before ``done``, the job is found in ``printing`` at the next start and
becomes ``uncertain``, never printed again automatically. The cost is that a receipt lost in
that window must be reprinted by hand; the other way round would hand a customer two
receipts (and open the drawer twice). Faults found before sending (status, connection refused)
leave the job ``pending``: nothing of it reached the printer.

The drawer
----------
A receipt with a cash tender opens the cash drawer (see :mod:`~edge_agent.printing.render`),
but only within ``drawer_window_s`` (60 s) of the sale: a receipt that waited for paper does not
spring the drawer open minutes later. Reprints never open it, and neither does a receipt whose
sale already had its own ``drawer`` job (a drawer job older than ``drawer_window_s`` is dropped).

Reprints
--------
:meth:`PrintWorker.reprint` queues a copy of any past receipt, by sale id or receipt number,
from the local ``sales`` table: the receipt as first printed when its job is still there, else
rebuilt from the stored sale. It prints ``COPY`` at the top and bottom.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import ValidationError

from edge_agent.printing.connections import PrinterConnection, PrinterStatus
from edge_agent.printing.profiles import DEFAULT_PROFILE, PrinterProfile, profile_named
from edge_agent.printing.render import render_receipt
from edge_agent.printing.slips import ReportSlip, render_drawer_kick, render_report
from edge_agent.store import LocalStore
from shared.catalogue import Store
from shared.errors import CoverOpen, NotFound, PaperOut, PrinterError, PrinterOffline
from shared.receipt import Receipt, receipt_from_return, receipt_from_sale
from shared.sale import Return, Sale
from shared.wire import utc_now

__all__ = ["JOB_STATUSES", "FaultKind", "PrintWorker", "PrinterState", "queue_reprint"]

log = logging.getLogger(__name__)

JOB_STATUSES: Final = (
    "pending",
    "printing",
    "done",
    "uncertain",
    "failed",
    "expired",
    "dismissed",
    "held",
    "declined",
)

FaultKind = Literal["paper_out", "cover_open", "offline", "error"]

BACKOFF_INITIAL_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class PrinterState:
    """What the cashier's status bar shows about the printer."""

    ready: bool
    message: str
    pending_jobs: int = 0
    uncertain_jobs: int = 0
    fault: FaultKind | None = None
    paper_low: bool = False


def _fault_kind(exc: PrinterError) -> FaultKind:
    if isinstance(exc, PaperOut):
        return "paper_out"
    if isinstance(exc, CoverOpen):
        return "cover_open"
    if isinstance(exc, PrinterOffline):
        return "offline"
    return "error"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class _Job:
    job_id: str
    sale_id: str | None
    copy: bool
    created_at: datetime | None
    document: str | None
    kind: str = "sale"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class PrintWorker:
    """Prints the ``print_jobs`` journal; :meth:`start` runs it on a thread, tests call
    :meth:`run_once`.

    ``connection_factory`` makes a fresh :class:`PrinterConnection` per attempt (see
    :func:`edge_agent.printing.connections.connection_factory`); ``on_status`` is called with
    the new :class:`PrinterState` whenever it changes (from the worker's thread).
    """

    def __init__(
        self,
        store: LocalStore,
        connection_factory: Callable[[], PrinterConnection],
        *,
        on_status: Callable[[PrinterState], None] | None = None,
        profile: PrinterProfile | None = None,
        clock: Callable[[], datetime] = utc_now,
        poll_interval_s: float = 1.0,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        drawer_window_s: float = 60.0,
        max_age_s: float | None = 2 * 3600.0,
        idle_check_s: float | None = 30.0,
    ) -> None:
        self.store = store
        self.connection_factory = connection_factory
        self.profile = profile or profile_named(DEFAULT_PROFILE)
        self.on_status = on_status
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.drawer_window_s = drawer_window_s
        self.max_age_s = max_age_s
        self.idle_check_s = idle_check_s
        self._last_check: float | None = None
        self._last_fault: PrinterError | None = None
        self._last_status: PrinterStatus | None = None
        self._state = PrinterState(ready=False, message="Checking the printer")
        self._state_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._recovered = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backoff_s = 0.0

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the last run, then print on a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="omnitill-printer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the job being sent (a receipt is never cut off by stopping)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the print worker did not stop within %.0f s", timeout)
            self._thread = None

    def kick(self) -> None:
        """Try the printer now (a new job was queued)."""
        self._wake.set()

    @property
    def state(self) -> PrinterState:
        with self._state_lock:
            return self._state

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database failing must not kill the printer thread
                log.exception("the print worker failed; retrying")
                self._set_state(replace(self.state, ready=False, message="Printing failed"))
                self.backoff_s = self._next_backoff()
            wait = self.backoff_s if self.backoff_s else self.poll_interval_s
            self._wake.wait(wait)
            self._wake.clear()

    def _next_backoff(self) -> float:
        if not self.backoff_s:
            return self.backoff_initial_s
        return min(self.backoff_max_s, self.backoff_s * 2)

    # -- printing ------------------------------------------------------------------------------

    def recover(self) -> int:
        """Mark jobs left ``printing`` by a previous run ``uncertain``; return how many."""
        with self._run_lock:
            return self._recover()

    def _recover(self) -> int:
        self._recovered = True
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE print_jobs SET status = 'uncertain', last_error = ? "
                "WHERE status = 'printing'",
                [
                    "The till stopped while this receipt was printing: it may not have printed "
                    "completely. Check the printer; reprint it (a copy) if needed"
                ],
            )
            count = int(cursor.rowcount)
        if count:
            log.warning(
                "%s left printing by the last run may not have printed; not printed again "
                "(reprint them if needed)",
                _plural(count, "receipt"),
            )
        return count

    def run_once(self) -> int:
        """Print the pending jobs in order until the printer cannot; return how many printed.

        Raises only for a failing database; printer faults are in :attr:`state`.
        """
        with self._run_lock:
            if not self._recovered:
                self._recover()
            return self._print_pending()

    def _print_pending(self) -> int:
        jobs = self._pending()
        if not jobs:
            self.backoff_s = 0.0
            self._idle()
            return 0
        self._last_check = time.monotonic()
        printed = 0
        status: PrinterStatus | None = None
        try:
            connection = self.connection_factory()
        except PrinterError as exc:
            self._fault(jobs[0], exc)
            return 0
        try:
            for job in jobs:
                if self._stop.is_set() and printed:
                    break
                if self._expired(job):
                    continue
                try:
                    data = self._render(job)
                except Exception as exc:  # a receipt that cannot be laid out: a bug
                    self._failed(job, exc)
                    continue
                try:
                    status = connection.status()
                    fault = status.fault() if status is not None else None
                    if fault is not None:
                        raise fault
                except PrinterError as exc:
                    self._fault(job, exc)
                    return printed
                if not self._mark_printing(job):
                    continue  # somebody else took it
                try:
                    connection.send(data)
                except PrinterError as exc:
                    self._uncertain(job, exc)
                    self._fault(None, exc)
                    return printed
                self._mark_done(job)
                printed += 1
        finally:
            self._close(connection)
        self.backoff_s = 0.0
        self._publish(None, status)
        return printed

    def _idle(self) -> None:
        """Nothing to print: ask the printer now and then, so a fault shows before a sale."""
        now = time.monotonic()
        due = self.idle_check_s is not None and (
            self._last_check is None or now - self._last_check >= self.idle_check_s
        )
        if not due:
            self._publish(self._last_fault, self._last_status)
            return
        self._last_check = now
        status: PrinterStatus | None = None
        connection: PrinterConnection | None = None
        try:
            connection = self.connection_factory()
            status = connection.status()
            fault = status.fault() if status is not None else None
            if fault is not None:
                raise fault
        except PrinterError as exc:
            self._publish(exc, None)
            return
        finally:
            if connection is not None:
                self._close(connection)
        self._publish(None, status)

    def _close(self, connection: PrinterConnection) -> None:
        try:
            connection.close()
        except Exception:  # closing a broken link tells us nothing new
            log.debug("closing the printer connection failed", exc_info=True)

    def _pending(self) -> list[_Job]:
        rows = self.store.query(
            "SELECT job_id, sale_id, copy, created_at, document, kind FROM print_jobs "
            "WHERE status = 'pending' ORDER BY created_at, rowid"
        )
        return [
            _Job(
                job_id=str(row[0]),
                sale_id=None if row[1] is None else str(row[1]),
                copy=bool(row[2]),
                created_at=_parse_time(row[3]),
                document=None if row[4] is None else str(row[4]),
                kind=str(row[5]),
            )
            for row in rows
        ]

    def _age_s(self, job: _Job) -> float | None:
        if job.created_at is None:
            return None
        return (self.clock() - job.created_at).total_seconds()

    def _expired(self, job: _Job) -> bool:
        age = self._age_s(job)
        if self.max_age_s is None or age is None or age <= self.max_age_s:
            return False
        hours = self.max_age_s / 3600
        self._set_job(
            job,
            "expired",
            f"Not printed: still waiting {hours:g} h after the sale. Reprint it if needed",
        )
        log.warning("receipt job %s expired unprinted after %.0f s", job.job_id, age)
        return True

    def _render(self, job: _Job) -> bytes:
        age = self._age_s(job)
        stale = age is not None and age > self.drawer_window_s
        if job.kind == "drawer":
            return b"" if stale else render_drawer_kick(self.profile)
        if job.document is None:
            raise ValueError("the job has no receipt")
        if job.kind == "report":
            return render_report(ReportSlip.model_validate_json(job.document), self.profile)
        receipt = Receipt.model_validate_json(job.document)
        if job.copy and not receipt.copy_:
            receipt = receipt.model_copy(update={"copy_": True})
        return render_receipt(
            receipt,
            self.profile,
            item_names=self._item_names(job.sale_id),
            kick_drawer=False if stale or self._drawer_job(job.sale_id) else None,
        )

    def _drawer_job(self, sale_id: str | None) -> bool:
        """True when the sale opened the drawer with a job of its own."""
        if sale_id is None:
            return False
        row = self.store.query_one(
            "SELECT 1 FROM print_jobs WHERE sale_id = ? AND kind = 'drawer' LIMIT 1", (sale_id,)
        )
        return row is not None

    def _item_names(self, sale_id: str | None) -> Mapping[str, str]:
        """SKU -> name of the sale's lines, for "Customers who bought <item>"."""
        if sale_id is None:
            return {}
        row = self.store.query_one("SELECT payload FROM sales WHERE sale_id = ?", (sale_id,))
        if row is None:
            return {}
        try:
            lines = json.loads(str(row[0])).get("lines", [])
            return {str(line["sku"]): str(line["name"]) for line in lines}
        except (ValueError, AttributeError, KeyError, TypeError):
            return {}

    def _mark_printing(self, job: _Job) -> bool:
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE print_jobs SET status = 'printing', attempts = attempts + 1 "
                "WHERE job_id = ? AND status = 'pending'",
                [job.job_id],
            )
            return int(cursor.rowcount) == 1

    def _mark_done(self, job: _Job) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE print_jobs SET status = 'done', printed_at = ?, last_error = NULL "
                "WHERE job_id = ? AND status = 'printing'",
                [self.clock().isoformat(), job.job_id],
            )
        log.info("receipt job %s printed", job.job_id)

    def _set_job(self, job: _Job, status: str, error: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE print_jobs SET status = ?, last_error = ? WHERE job_id = ?",
                [status, error, job.job_id],
            )

    def _failed(self, job: _Job, exc: Exception) -> None:
        log.error("receipt job %s cannot be printed: %s", job.job_id, exc, exc_info=True)
        self._set_job(job, "failed", f"The receipt cannot be laid out: {exc}")

    def _uncertain(self, job: _Job, exc: PrinterError) -> None:
        log.warning("receipt job %s may be partly printed: %s", job.job_id, exc.message)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE print_jobs SET status = 'uncertain', last_error = ? "
                "WHERE job_id = ? AND status = 'printing'",
                [
                    f"Printing failed part-way: {exc.message}. Check the receipt; reprint it "
                    "(a copy) if needed",
                    job.job_id,
                ],
            )

    def _fault(self, job: _Job | None, exc: PrinterError) -> None:
        """The printer cannot print now: the job waits, the cashier is told, retry later."""
        if job is not None:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE print_jobs SET last_error = ?, attempts = attempts + 1 "
                    "WHERE job_id = ? AND status = 'pending'",
                    [exc.message, job.job_id],
                )
        self.backoff_s = self._next_backoff()
        self._publish(exc, None)

    # -- state ---------------------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        row = self.store.query_one(
            "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'uncertain'), 0) "
            "FROM print_jobs WHERE status IN ('pending', 'uncertain') AND kind != 'drawer'"
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _publish(self, fault: PrinterError | None, status: PrinterStatus | None) -> None:
        self._last_fault, self._last_status = fault, status
        pending, uncertain = self._counts()
        paper_low = status is not None and status.paper_near_end
        if fault is not None:
            waiting = f" ({_plural(pending, 'receipt')} waiting)" if pending else ""
            state = PrinterState(
                ready=False,
                message=f"{fault.message}{waiting}",
                pending_jobs=pending,
                uncertain_jobs=uncertain,
                fault=_fault_kind(fault),
            )
        else:
            if uncertain:
                message = (
                    f"{_plural(uncertain, 'receipt')} may not have printed completely: check, "
                    "and reprint a copy if needed"
                )
            elif paper_low:
                message = "The printer's paper roll is nearly empty: have a new one ready"
            else:
                message = "The printer is ready"
            state = PrinterState(
                ready=True,
                message=message,
                pending_jobs=pending,
                uncertain_jobs=uncertain,
                paper_low=paper_low,
            )
        self._set_state(state)

    def _set_state(self, state: PrinterState) -> None:
        with self._state_lock:
            old, self._state = self._state, state
        if state == old:
            return
        if state.fault is not None and old.fault != state.fault:
            log.warning("printer: %s", state.message)
        elif state.fault is None and old.fault is not None:
            log.info("printer: fault cleared")
        if self.on_status is not None:
            try:
                self.on_status(state)
            except Exception:  # a screen's callback must not stop printing
                log.exception("the printer status callback failed")

    # -- the cashier's decisions ---------------------------------------------------------------

    def uncertain_jobs(self) -> list[dict[str, Any]]:
        """Jobs that may or may not have printed, oldest first (job id, sale, receipt number)."""
        rows = self.store.query(
            "SELECT j.job_id, j.sale_id, s.receipt_number, j.copy, j.last_error, j.created_at "
            "FROM print_jobs j LEFT JOIN sales s ON s.sale_id = j.sale_id "
            "WHERE j.status = 'uncertain' ORDER BY j.created_at, j.rowid"
        )
        return [
            {
                "job_id": str(r[0]),
                "sale_id": r[1],
                "receipt_number": r[2],
                "copy": bool(r[3]),
                "last_error": r[4],
                "created_at": r[5],
            }
            for r in rows
        ]

    def resolve_uncertain(self, job_id: str, *, reprint: bool) -> str | None:
        """The cashier checked an ``uncertain`` job: dismiss it, and with ``reprint`` queue a
        copy of its receipt (returns the new job's id)."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT sale_id, document, kind FROM print_jobs "
                "WHERE job_id = ? AND status = 'uncertain'",
                [job_id],
            ).fetchone()
            if row is None:
                raise NotFound(f"No receipt job {job_id} is waiting for a decision")
            db.execute(
                "UPDATE print_jobs SET status = 'dismissed' WHERE job_id = ?",
                [job_id],
            )
            new_id = None
            if reprint and row[2] == "report":
                new_id = str(uuid.uuid4())
                db.execute(
                    "INSERT INTO print_jobs(job_id, kind, copy, status, created_at, document) "
                    "VALUES (?, 'report', 1, 'pending', ?, ?)",
                    [new_id, self.clock().isoformat(), row[1]],
                )
            elif reprint and row[2] != "drawer":
                if row[0] is not None:
                    new_id = queue_reprint(self.store, str(row[0]), clock=self.clock)
                elif row[1] is not None:
                    new_id = _insert_copy(self.store, None, "sale", str(row[1]), self.clock)
        self._publish(None, None)
        self.kick()
        return new_id

    def reprint(self, key: str) -> str:
        """Queue a copy of a past receipt (sale id or receipt number); return the job's id."""
        job_id = queue_reprint(self.store, key, clock=self.clock)
        self.kick()
        return job_id


# -- reprints -----------------------------------------------------------------------------------


def queue_reprint(store: LocalStore, key: str, *, clock: Callable[[], datetime] = utc_now) -> str:
    """Queue a COPY of the receipt of a past sale or return, by its id or receipt number
    (``R`` + number, as scanned from a receipt's barcode, works too); return the job's id."""
    text = key.strip()
    row = None
    for candidate in dict.fromkeys((text, text.upper(), text.upper().removeprefix("R"))):
        row = store.query_one(
            "SELECT sale_id, kind, payload, receipt_number FROM sales "
            "WHERE sale_id = ? OR receipt_number = ?",
            (candidate, candidate),
        )
        if row is not None:
            break
    if row is None:
        raise NotFound(f"No sale or return {text!r} at this till: check the receipt number")
    sale_id, kind, payload = str(row[0]), str(row[1]), str(row[2])
    job = store.query_one(
        "SELECT document FROM print_jobs WHERE sale_id = ? AND copy = 0 AND document IS NOT NULL "
        "ORDER BY created_at, rowid LIMIT 1",
        (sale_id,),
    )
    document = _copy_document(store, None if job is None else str(job[0]), kind, payload)
    return _insert_copy(store, sale_id, kind, document, clock)


def _insert_copy(
    store: LocalStore, sale_id: str | None, kind: str, document: str, clock: Callable[[], datetime]
) -> str:
    receipt = Receipt.model_validate_json(document).model_copy(update={"copy_": True})
    job_id = str(uuid.uuid4())
    with store.transaction() as db:
        db.execute(
            "INSERT INTO print_jobs(job_id, sale_id, kind, copy, status, created_at, document) "
            "VALUES (?, ?, ?, 1, 'pending', ?, ?)",
            [job_id, sale_id, kind, clock().isoformat(), receipt.model_dump_json(by_alias=True)],
        )
    log.info("reprint of receipt %s queued", receipt.receipt_number)
    return job_id


def _copy_document(store: LocalStore, original: str | None, kind: str, payload: str) -> str:
    if original is not None:
        try:
            Receipt.model_validate_json(original)
            return original
        except ValidationError:
            log.warning("the stored receipt is unreadable; rebuilding it from the sale")
    if kind == "return":
        ret = Return.model_validate_json(payload)
        shop = _shop(store, ret.store_id, ret.currency)
        found = store.query_one(
            "SELECT receipt_number FROM sales WHERE sale_id = ?", (str(ret.original_sale_id),)
        )
        rebuilt = receipt_from_return(
            ret,
            shop,
            original_receipt_number=None if found is None else str(found[0]),
            tax_mode=shop.tax_mode,
        )
    else:
        sale = Sale.model_validate_json(payload)
        rebuilt = receipt_from_sale(sale, _shop(store, sale.store_id, sale.currency))
    return rebuilt.model_dump_json(by_alias=True)


def _shop(store: LocalStore, store_id: str, currency: str) -> Store:
    row = store.query_one("SELECT data FROM store_config WHERE key = ?", (f"store:{store_id}",))
    if row is not None:
        try:
            return Store.model_validate_json(str(row[0]))
        except ValidationError:
            log.warning("the store configuration is unreadable; reprinting with defaults")
    return Store(store_id=store_id, name=store_id, currency=currency)
