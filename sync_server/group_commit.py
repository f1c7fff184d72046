"""Group commit: one writer thread applies queued work in groups, one transaction per group.

SQLite has one writer. When fifty tills push at once, fifty request threads used to queue on
the write lock, and the interpreter lock made it worse: the thread holding the database's
write lock gives up the interpreter lock on every row it steps and must win it back from
threads busy parsing JSON (a convoy), so the lock was held several times longer than the work
needed. Here request handlers only enqueue the raw push and await a future; one thread takes
everything queued (up to ``max_items``), applies it in one transaction with a savepoint per
item, commits once (one fsync for the whole group) and only then answers each waiting request.

Each item succeeds or fails alone (its savepoint is rolled back), except when the transaction
itself fails (disk full, database error): then every item of the group gets that error and
nothing of the group is stored. An answer is never sent before the commit, so an ack still
means stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.errors import ServerUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Waiting(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]


class GroupCommitter(Generic[T, R]):
    """Feeds queued items to ``apply`` in groups from one thread; see the module docstring.

    ``apply(items)`` runs in the writer thread and returns one outcome per item, in order (a
    result, or the exception that item met). An exception raised by ``apply`` itself fails the
    whole group.
    """

    def __init__(
        self,
        apply: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        name: str,
        max_items: int = 16,
    ) -> None:
        self._apply = apply
        self._name = name
        self._max_items = max_items
        self._queue: queue.SimpleQueue[_Waiting[T, R] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.groups = 0
        self.items = 0
        #: When a group last ran, and when one last ended with more items already waiting.
        self._last_group_at = -math.inf
        self._last_backlog_at = -math.inf

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    def saturated(self, within: float = 0.5) -> bool:
        """Whether, in the last ``within`` seconds, a group ended with the next already waiting.

        Background work that takes the same database write lock (recommendation counting)
        yields while this is true: the tills' pushes come first.
        """
        return time.monotonic() - self._last_backlog_at < within

    def active(self, within: float = 5.0) -> bool:
        """Whether a group ran in the last ``within`` seconds (tills are pushing)."""
        return time.monotonic() - self._last_group_at < within

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its outcome (raised if it is an error)."""
        if not self.running:
            raise ServerUnavailable("HQ is shutting down; try again shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put(_Waiting(item, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop_after = False
            while len(group) < self._max_items:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop_after = True
                    break
                group.append(more)
            self._last_group_at = time.monotonic()
            self._run_group(group)
            if not self._queue.empty():
                # The next group was already waiting when this one was answered: the writer
                # has had no pause, and work behind it queues up.
                self._last_backlog_at = time.monotonic()
            if stop_after:
                self._drain()
                return

    def _drain(self) -> None:
        """Items queued after the stop request still get an answer."""
        while True:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                return
            if waiting is not None:
                self._run_group([waiting])

    def _run_group(self, group: list[_Waiting[T, R]]) -> None:
        outcomes: Sequence[R | BaseException]
        try:
            outcomes = self._apply([w.item for w in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(group)} items")
        except Exception as exc:  # the whole group failed: every waiter hears why
            log.warning("%s: a group of %d failed: %s", self._name, len(group), exc)
            outcomes = [exc] * len(group)
        self.groups += 1
        self.items += len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.loop.call_soon_threadsafe(_settle, waiting.future, outcome)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # the client went away; what was applied stays applied (a lost ack)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
