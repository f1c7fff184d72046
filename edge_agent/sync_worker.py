"""The sync worker: one background thread that pushes the till's outbox and pulls HQ's feed.

The till never waits for it. Sales are written to the local store with their outbox op; this
worker sends them when it can and the cashier sees its state in :class:`SyncStatus`.

Push (after every sale through :meth:`SyncWorker.kick`, and every ``push_interval_s``)
    Pending ops go in ``seq`` order, in batches of up to 500, with the outbox size in the
    ``X-Omnitill-Backlog`` header. HQ's verdicts are applied with ``outbox.record_results``:
    ``applied`` and ``duplicate`` (a retry after a lost answer) mark the op done, ``rejected``
    moves that op alone to the dead letters. HQ validates each op's payload itself, so when it
    refuses the *whole* push as invalid (400/413/422) the envelope is broken and retrying cannot
    help: the batch goes to the dead letters for staff, with HQ's message.

    Nothing is ever dropped for an error the till cannot judge. The ops stay pending, the error
    shows in the status and the push is retried with backoff when:

    - HQ cannot be reached, times out or answers 5xx (the till keeps selling offline);
    - the token is refused (401/403: revoked or wrong; staff must fix it, the sales wait);
    - HQ reports a ``seq`` gap (409): HQ expects an op the till no longer has pending, which
      only staff can sort out (the dead letters and HQ's quarantine say which);
    - the URL answers 404 (not an Omnitill HQ: a configuration mistake, not bad sales).

Pull (every ``pull_interval_s``, after a push)
    Pages are applied until ``has_more`` is false, each page together with its cursor in one
    local transaction (``feed.apply_page``). A 409 means the cursor is older than HQ keeps its
    tombstones: the downstream cache is cleared (``feed.reset_downstream``, never the outbox or
    the sales) and pulled again from the start.

Backoff
    After ``n`` failed cycles in a row the next one waits a random time in
    ``[0, min(60 s, 0.5 s * 2**(n-1))]`` ("full jitter"), so a chain's tills coming back after an
    HQ outage do not all knock at once. A success resets it. A kick does not cut a backoff short.

Idle between cycles
    The worker shares the till's process (and its interpreter lock) with the scan path, so
    between cycles its thread only waits on an ``Event``: no polling, no busy retries. A backoff
    is one wait; a sale's kick during a backoff does not even wake it; a push interval with
    nothing to send makes no request and no status callback. Against an unreachable HQ the
    thread therefore runs once per backoff (a refused connection and a status update, about a
    millisecond of work), and with the 60 s cap that is on average once every 30 s.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge_agent import feed, outbox
from edge_agent.hq_client import HQClient
from edge_agent.store import LocalStore
from shared.errors import (
    AuthError,
    BatchTooLarge,
    Conflict,
    CursorExpired,
    InvalidInput,
    NotFound,
    OmnitillError,
    SequenceGap,
    StorageError,
    TransportError,
)
from shared.protocol import DEFAULT_PULL_LIMIT, MAX_PUSH_OPS
from shared.wire import utc_now

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "ClientSource",
    "SyncStatus",
    "SyncWorker",
    "backoff_delay",
]

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
#: After this many transport failures in a row a discovered server is looked for again.
REDISCOVER_AFTER = 3

#: A fixed client, a factory asked for one until it gives one (zeroconf discovery), or none.
ClientSource = HQClient | Callable[[], HQClient | None] | None


def backoff_delay(
    failures: int, rng: random.Random, *, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S
) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (full jitter)."""
    if failures < 1:
        return 0.0
    ceiling = min(cap, base * 2 ** min(failures - 1, 64))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the till's status bar shows about its link to HQ."""

    online: bool
    pending_ops: int
    dead_letters: int
    last_push_at: datetime | None
    last_pull_at: datetime | None
    last_error: str | None
    server_url: str | None


class SyncWorker:
    """Pushes the outbox and pulls the feed on a daemon thread (or one cycle at a time).

    ``client`` is an :class:`HQClient`, a factory that returns one or ``None`` (asked again at
    every cycle until it gives one; the worker then owns and closes it), or ``None`` (no HQ:
    the till works offline). ``clock`` (monotonic seconds) and ``sleep`` can be replaced in
    tests; by default the thread waits on an event that :meth:`kick` and :meth:`stop` set.
    """

    def __init__(
        self,
        store: LocalStore,
        client: ClientSource,
        *,
        push_interval_s: float = 5.0,
        pull_interval_s: float = 15.0,
        on_status: Callable[[SyncStatus], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        pull_limit: int = DEFAULT_PULL_LIMIT,
        batch_size: int = MAX_PUSH_OPS,
    ) -> None:
        if push_interval_s <= 0 or pull_interval_s <= 0:
            raise ValueError("push_interval_s and pull_interval_s must be positive")
        if not 1 <= batch_size <= MAX_PUSH_OPS:
            raise ValueError(f"batch_size must be between 1 and {MAX_PUSH_OPS}")
        self._store = store
        self._client: HQClient | None = client if isinstance(client, HQClient) else None
        self._factory = None if isinstance(client, HQClient) or client is None else client
        self._push_interval = push_interval_s
        self._pull_interval = pull_interval_s
        self._on_status = on_status
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._pull_limit = pull_limit
        self._batch_size = batch_size

        self._lock = threading.Lock()  # guards the fields below
        self._online = False
        self._last_push_at: datetime | None = None
        self._last_pull_at: datetime | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self._kicked = False

        self._cycle_lock = threading.Lock()  # one cycle at a time (thread or run_once)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public --------------------------------------------------------------------------------

    @property
    def status(self) -> SyncStatus:
        """The current status, with the outbox counted now (cheap: an index count)."""
        with self._lock:
            online, error = self._online, self._last_error
            pushed, pulled = self._last_push_at, self._last_pull_at
            url = self._client.base_url if self._client is not None else None
        return SyncStatus(
            online=online,
            pending_ops=outbox.pending_count(self._store),
            dead_letters=outbox.dead_count(self._store),
            last_push_at=pushed,
            last_pull_at=pulled,
            last_error=error,
            server_url=url,
        )

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    @property
    def retry_delay(self) -> float:
        """The backoff chosen after the last failure (0 after a success)."""
        with self._lock:
            return self._retry_delay

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="omnitill-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the thread after the request in flight (if any) and close an owned client."""
        self._stopping.set()
        self._wake.set()
        if self._thread is threading.current_thread():
            return  # called from a status callback: the loop ends after this cycle
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("sync worker still busy after %.0f s; leaving it (daemon)", timeout)
            self._thread = None
        if self._factory is not None:
            with self._cycle_lock, self._lock:
                client, self._client = self._client, None
            if client is not None:
                client.close()

    def kick(self) -> None:
        """Push soon (called after every sale); honours a backoff in progress: the thread is not
        even woken during one (it pushes when the backoff ends)."""
        with self._lock:
            self._kicked = True
            backing_off = self._clock() < self._retry_at
        if not backing_off:
            self._wake.set()

    def run_once(self) -> SyncStatus:
        """One push (everything pending) and one pull (every page), now, on this thread."""
        with self._cycle_lock:
            self._cycle(pull=True)
        status = self.status
        self._notify(status)
        return status

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        # Between cycles the thread is blocked on one Event (no polling, no timer of its own):
        # it holds no interpreter lock and costs the scans on the till's other threads nothing.
        # It wakes when the next push or pull is due, when a backoff ends, or for kick/stop.
        next_push = next_pull = self._clock()
        while True:
            # Cleared before the state is read (stop and kick set their flag, then the event):
            # a kick or stop from now on sets it again, so the wait below returns at once.
            self._wake.clear()
            if self._stopping.is_set():
                break
            now = self._clock()
            with self._lock:
                retry_at, kicked = self._retry_at, self._kicked
            if now < retry_at:
                wait = retry_at - now
            else:
                due_pull = now >= next_pull
                if due_pull or kicked or now >= next_push:
                    with self._lock:
                        self._kicked = False
                    if not due_pull and outbox.pending_count(self._store) == 0:
                        # Nothing to send and no pull due: no request, nothing new to show.
                        next_push = now + self._push_interval
                        continue
                    with self._cycle_lock:
                        ok = self._cycle(pull=due_pull)
                    self._notify(self.status)
                    now = self._clock()
                    # A failed cycle is due again as soon as its backoff (retry_at) is over.
                    next_push = now + self._push_interval if ok else now
                    if ok and due_pull:
                        next_pull = now + self._pull_interval
                    continue
                wait = min(next_push, next_pull) - now
            self._pause(max(0.0, wait))

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        self._wake.wait(seconds)

    def _notify(self, status: SyncStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:  # the UI's problem must not stop the sales from syncing
            log.exception("sync status callback failed")

    # -- one cycle -----------------------------------------------------------------------------

    def _cycle(self, *, pull: bool) -> bool:
        """Push, then pull if asked; record the outcome. True on success."""
        if not pull and outbox.pending_count(self._store) == 0:
            # Nothing to send and no pull due: no request, so nothing learnt about HQ either.
            return True
        client = self._current_client()
        if client is None:
            self._failed("No HQ server: none configured and none found on the network")
            return False
        failure, note = self._step(lambda: self._push_all(client))
        blocked = failure is not None and isinstance(failure[0], TransportError | AuthError)
        if pull and not blocked and not self._stopping.is_set():
            # A push stuck on a seq gap must not also freeze prices and customer cards.
            pull_failure, _ = self._step(lambda: self._pull_all(client))
            failure = failure or pull_failure
        if failure is not None:
            exc, message = failure
            if isinstance(exc, TransportError):
                self._failed(message, online=False, transport=True)
            elif isinstance(exc, AuthError | Conflict | NotFound):
                # HQ answered, so it is online; these need a person (token, seq gap, URL).
                self._failed(message, online=True)
            else:
                self._failed(message, online=None)
            return False
        with self._lock:
            recovered = not self._online or self._failures > 0
            self._online = True
            self._failures = 0
            self._retry_delay = 0.0
            self._retry_at = 0.0
            self._last_error = note
        if recovered:
            log.info("sync with HQ at %s working", client.base_url)
        return True

    @staticmethod
    def _step(
        step: Callable[[], str | None],
    ) -> tuple[tuple[Exception, str] | None, str | None]:
        """Run one half of a cycle: ((error, message) or None, note)."""
        try:
            return None, step()
        except StorageError as exc:
            return (exc, f"The till's database: {exc.message}"), None
        except OmnitillError as exc:
            return (exc, exc.message), None
        except Exception as exc:  # never let the worker die: the till would stop syncing
            log.exception("sync step failed unexpectedly")
            return (exc, f"Unexpected sync error: {exc!r}"), None

    def _current_client(self) -> HQClient | None:
        with self._lock:
            client = self._client
        if client is None and self._factory is not None:
            try:
                client = self._factory()
            except OmnitillError as exc:
                log.warning("looking for HQ failed: %s", exc.message)
                client = None
            with self._lock:
                self._client = client
        return client

    def _failed(
        self, message: str, *, online: bool | None = False, transport: bool = False
    ) -> None:
        with self._lock:
            self._failures += 1
            self._retry_delay = backoff_delay(self._failures, self._rng)
            self._retry_at = self._clock() + self._retry_delay
            first = self._failures == 1
            if online is not None:
                self._online = online
            self._last_error = message
            drop = (
                transport
                and self._factory is not None
                and self._client is not None
                and self._failures % REDISCOVER_AFTER == 0
            )
            client, failures, delay = self._client, self._failures, self._retry_delay
            if drop:
                self._client = None
        if drop and client is not None:
            # The server may have moved (new address after a restart): discover it again.
            client.close()
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "sync failed (%d in a row, retry in %.1f s): %s", failures, delay, message)

    def _push_all(self, client: HQClient) -> str | None:
        """Push every pending op; returns a note when ops went to the dead letters."""
        note: str | None = None
        while not self._stopping.is_set():
            batch = outbox.pending(self._store, limit=self._batch_size)
            if not batch:
                break
            backlog = outbox.pending_count(self._store)
            try:
                response = client.push(batch, backlog=backlog)
            except BatchTooLarge as exc:
                if self._batch_size == 1:
                    outbox.note_failure(self._store, batch, exc.message)
                    raise
                self._batch_size = max(1, self._batch_size // 2)
                log.warning("HQ takes smaller batches; now sending %d ops", self._batch_size)
                continue
            except InvalidInput as exc:
                # HQ cannot read the push at all (a newer op type, a version mismatch). Its seq
                # numbers are not used up at HQ, so dead-lettering the ops here would leave a
                # gap that blocks every later sale. Keep them, say so, and retry with backoff
                # until HQ or the till is upgraded: nothing is lost.
                log.error(
                    "HQ cannot read a push of %d ops (seq %d-%d); kept pending: %s",
                    len(batch),
                    batch[0].seq,
                    batch[-1].seq,
                    exc.message,
                )
                outbox.note_failure(self._store, batch, exc.message)
                raise
            except SequenceGap as exc:
                log.error(
                    "HQ expects seq %d but this till's oldest pending op is seq %d: ops in "
                    "between are not pending here (see the dead letters); retrying",
                    exc.expected,
                    batch[0].seq,
                )
                outbox.note_failure(self._store, batch, exc.message)
                raise
            except OmnitillError as exc:
                outbox.note_failure(self._store, batch, exc.message)
                raise
            settled = outbox.record_results(self._store, batch, list(response.results))
            with self._lock:
                self._online = True
                self._last_push_at = utc_now()
            rejected = [r for r in response.results if r.status == "rejected"]
            if rejected:
                note = f"HQ rejected {len(rejected)} ops (see dead letters): {rejected[0].error}"
            if settled == 0:
                # HQ answered but settled nothing: retrying at once would loop.
                raise Conflict(
                    f"HQ gave no verdict for the ops from seq {batch[0].seq} on "
                    f"(it has applied up to seq {response.last_seq}); will retry"
                )
            # Fewer verdicts than ops means HQ stopped at a gap: the next round shows it.
        return note

    def _pull_all(self, client: HQClient) -> None:
        cursor = feed.current_cursor(self._store)
        refetched = False
        while not self._stopping.is_set():
            try:
                page = client.pull(cursor, limit=self._pull_limit)
            except CursorExpired as exc:
                if refetched:
                    raise
                log.warning("%s; clearing the local cache and pulling from the start", exc.message)
                feed.reset_downstream(self._store)
                cursor, refetched = None, True
                continue
            if page.changes or page.cursor != cursor:
                feed.apply_page(
                    self._store, [change.model_dump() for change in page.changes], page.cursor
                )
            cursor = page.cursor
            if not page.has_more:
                with self._lock:
                    self._online = True
                    self._last_pull_at = utc_now()
                return
