"""The headless till: scans in, one line per event out, syncing with HQ in the background.

``omnitill till --headless`` (``edge_agent.cli``) builds a :class:`~edge_agent.till.Till` and a
scanner and calls :func:`run_headless`. The scanner runs on its own thread and queues what it
reads; the main thread hands each scan to the till and writes the event's message as one line
on standard output (``added 1 x Blue T-Shirt €19.99 | total €19.99``), so the store simulator,
scripts and tests can follow the till line by line. Logs go to standard error.

Output lines
------------
- ``ready | till S001-T1 | store S001 | HQ http://... | input stdin`` once the till runs
  (``HQ via zeroconf`` without a URL, ``HQ none (no token)`` without a token);
- one line per scan: the :class:`~edge_agent.till.TillEvent` message (errors start with
  ``failed scan:``, ``unknown product:``, ``refused:``, ``not saved:`` or ``error:``);
- ``EMAIL <address> [consent]`` on a line of its own is not a scan: it emails the last receipt
  to the address through HQ (:meth:`~edge_agent.till.Till.email_receipt`; ``consent`` when the
  customer agreed to offers by email) and answers ``email of receipt ... queued for ...``;
- ``stopped | 0 ops waiting for HQ | 0 print jobs waiting`` when it ends.

A ``sale complete`` line is written only after the sale and its outbox op are committed to the
local database: from then on the sale survives a crash or a power cut and reaches HQ exactly
once.

Stopping
--------
SIGTERM or SIGINT (Ctrl-C) stops the till cleanly: the scan being handled is finished, the sync
worker stops after its request in flight, the database is closed; exit code 0. When the input
ends (standard input closed) the till keeps syncing until it is stopped, except with ``once``:
it then waits until every op has reached HQ and a pull has completed (exit 0), or gives up after
``timeout_s`` (exit 3; the ops stay in the local database and leave at the next start).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from datetime import datetime
from typing import Final, Literal, TextIO

from edge_agent.scanner import Scanner
from edge_agent.till import Till, TillEvent, TillStatus
from shared.wire import utc_now

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_PENDING", "EXIT_USAGE", "handle_line", "run_headless"]

log = logging.getLogger(__name__)

#: Stopped by a signal, or ``once`` finished with everything sent.
EXIT_OK: Final = 0
#: The till could not start (its database cannot be opened) or failed.
EXIT_FAILURE: Final = 1
#: A usage or configuration error (an unknown option, a bad setting or scanner URL).
EXIT_USAGE: Final = 2
#: ``once``: ops were still waiting for HQ when the timeout ran out.
EXIT_PENDING: Final = 3

_POLL_S = 0.1

Item = tuple[Literal["scan", "error", "end"], str]

#: ``EMAIL <address> [consent]``: a typed request, not a barcode (addresses do not scan well).
_EMAIL_LINE = re.compile(r"EMAIL(?:\s+(\S+)(?:\s+(\S+))?)?", re.IGNORECASE)


def _emit(out: TextIO, line: str) -> None:
    out.write(" ".join(line.split("\n")) + "\n")
    out.flush()


def handle_line(till: Till, text: str) -> TillEvent:
    """What one input line does: an ``EMAIL`` request, else a scan."""
    match = _EMAIL_LINE.fullmatch(text.strip())
    if match is None:
        return till.handle_scan(text)
    address, flag = match[1], match[2]
    if address is None or (flag is not None and flag.lower() != "consent"):
        return TillEvent(
            "refused",
            "refused: write EMAIL <address>, and 'consent' after it when the customer agrees "
            "to offers by email (EMAIL maria@example.com consent)",
        )
    return till.email_receipt(address, consent_marketing=flag is not None)


def _synced_since(status: TillStatus, started: datetime) -> bool:
    pulled = status.sync.last_pull_at
    return status.sync.pending_ops == 0 and pulled is not None and pulled >= started


def run_headless(
    till: Till,
    scanner: Scanner,
    *,
    out: TextIO,
    stop: threading.Event,
    input_name: str = "scanner",
    once: bool = False,
    timeout_s: float = 30.0,
) -> int:
    """Run ``till`` on the scans of ``scanner`` until ``stop`` is set; return the exit code.

    The caller owns the till (and closes it afterwards); this starts its sync worker.
    """
    items: queue.Queue[Item] = queue.Queue()

    def read() -> None:
        try:
            scanner.run(
                lambda text: items.put(("scan", text)),
                lambda message: items.put(("error", message)),
                stop,
            )
        except Exception:  # a scanner must not raise; if one does, the till still stops cleanly
            log.exception("the scanner stopped unexpectedly")
        finally:
            items.put(("end", ""))

    started = utc_now()
    till.start()
    reader = threading.Thread(target=read, name="omnitill-scanner", daemon=True)
    reader.start()
    hq = till.settings.server_url or "via zeroconf"
    if till.settings.token is None:
        hq = "none (no token)"
    _emit(
        out,
        f"ready | till {till.settings.till_id} | store {till.settings.store_id} | HQ {hq} | "
        f"input {input_name}",
    )

    code = EXIT_OK
    deadline: float | None = None
    while not stop.is_set():
        if deadline is not None:
            if _synced_since(till.status(), started):
                break
            if time.monotonic() > deadline:
                code = EXIT_PENDING
                break
        try:
            kind, text = items.get(timeout=_POLL_S)
        except queue.Empty:
            continue
        if kind == "scan":
            _emit(out, handle_line(till, text).message)
        elif kind == "error":
            _emit(out, till.scan_failed(text).message)
        else:
            log.info("scan input ended")
            if once:
                deadline = time.monotonic() + timeout_s
                till.sync.kick()
            else:
                log.info("still syncing with HQ until stopped (SIGTERM or Ctrl-C)")
    stop.set()
    reader.join(timeout=1.0)  # a serial scanner closes its port (stdin may stay blocked)
    status = till.status()
    if code == EXIT_PENDING:
        log.error(
            "%d ops still waiting for HQ after %.0f s (%s); they are kept in the till's "
            "database and leave at the next start",
            status.sync.pending_ops,
            timeout_s,
            status.sync.last_error or "no error reported",
        )
    _emit(
        out,
        f"stopped | {status.sync.pending_ops} ops waiting for HQ | "
        f"{status.pending_print_jobs} print jobs waiting",
    )
    return code
