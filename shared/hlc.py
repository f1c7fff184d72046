"""The hybrid logical clock: an order for customer edits made on tills with imperfect clocks.

A customer's name or email can be edited on any till (online or offline) and at HQ. The
customer patch carries only the changed fields, each stamped with the writer's clock, and for
each field the greater stamp wins (last writer wins). Plain wall-clock time is not good enough
for that: till clocks drift, get set by hand and jump backwards after an NTP correction, so an
edit made *after* seeing another could carry an earlier time and lose. A pure logical clock
(Lamport) fixes causality but says nothing about when an edit happened.

A hybrid logical clock (Kulkarni, Demirbas, Madappa, Avva and Leone, "Logical Physical Clocks",
OPODIS 2014) gives both:

- ``wall_ms`` is the greatest physical time (milliseconds since the Unix epoch, UTC) that this
  node has read or heard of, so it stays close to real time and never runs backwards;
- ``counter`` orders events that share a ``wall_ms`` (many edits in one millisecond, or a clock
  that stands still or goes back);
- ``node`` (the till id, or ``HQ``) breaks the remaining ties deterministically, so two tills
  that write the same field at the same stamp still agree on one winner.

If event *a* happened before event *b* (same node, or *b*'s node had received *a*'s stamp),
then ``stamp(a) < stamp(b)``. Stamps are totally ordered by ``(wall_ms, counter, node)``, and
``HLCTimestamp.encode`` writes them as strings that sort the same way, so databases can compare
them as text.

Guards:

- a remote stamp more than ``max_drift_ms`` ahead of this node's physical clock is refused with
  ``ProtocolError``: one till with a wildly wrong clock (a dead CMOS battery says 2040) would
  otherwise drag every clock it syncs with into the future, and its edits would win every
  conflict until then;
- the counter is bounded (``MAX_COUNTER``); reaching it means the physical clock is stuck or far
  behind the stamps in circulation, which should be fixed rather than papered over.

The clock reads time only through the injected ``now_ms`` function, so tests can skew it, stop
it and turn it back.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from shared.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_DRIFT_MS",
    "MAX_COUNTER",
    "HLCTimestamp",
    "HybridLogicalClock",
    "lww_merge",
    "wall_clock_ms",
]

#: The largest counter value; one more is refused (see the module docstring).
MAX_COUNTER: Final = 65_535

#: How far ahead of our own clock a remote stamp may be.
DEFAULT_MAX_DRIFT_MS: Final = 60_000

#: ``wall_ms`` is written with this many digits (enough for the year 33000).
_WALL_DIGITS: Final = 15
_COUNTER_DIGITS: Final = 6
_MAX_WALL_MS: Final = 10**_WALL_DIGITS - 1

#: Same characters as a till id (``shared.wire.TillId``): nothing that needs escaping anywhere.
_NODE_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENCODED_RE: Final = re.compile(
    rf"(?P<wall>[0-9]{{{_WALL_DIGITS}}})-(?P<counter>[0-9]{{{_COUNTER_DIGITS}}})-(?P<node>.+)"
)


def wall_clock_ms() -> int:
    """The system's wall-clock time in whole milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class HLCTimestamp:
    """One stamp of a hybrid logical clock; ordered by ``(wall_ms, counter, node)``."""

    wall_ms: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        # Stamps arrive from other machines, so a bad one is a protocol error, not a bug here.
        if not 0 <= self.wall_ms <= _MAX_WALL_MS:
            raise ProtocolError(
                f"Clock stamp time {self.wall_ms} is out of range "
                f"(milliseconds since 1970, at most {_WALL_DIGITS} digits)"
            )
        if not 0 <= self.counter <= MAX_COUNTER:
            raise ProtocolError(
                f"Clock stamp counter {self.counter} is out of range (0 to {MAX_COUNTER})"
            )
        if not _NODE_RE.fullmatch(self.node):
            raise ProtocolError(
                f"Clock stamp node {self.node!r} is not a valid till id "
                "(1 to 64 letters, digits, '_', '.' or '-')"
            )

    def encode(self) -> str:
        """``"<wall_ms:15>-<counter:6>-<node>"``: fixed width, so text order is stamp order."""
        return f"{self.wall_ms:0{_WALL_DIGITS}d}-{self.counter:0{_COUNTER_DIGITS}d}-{self.node}"

    @classmethod
    def decode(cls, text: str) -> HLCTimestamp:
        """Read a stamp written by ``encode``; anything else is a ``ProtocolError``."""
        match = _ENCODED_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            shown = text[:80] if isinstance(text, str) else type(text).__name__
            raise ProtocolError(
                f"{shown!r} is not a clock stamp "
                "(expected 15 digits, '-', 6 digits, '-', till id, e.g. "
                "'001700000000000-000000-S001-T1')"
            )
        return cls(int(match["wall"]), int(match["counter"]), match["node"])

    def __str__(self) -> str:
        return self.encode()


class HybridLogicalClock:
    """The clock of one node (a till or HQ). Safe to share between threads.

    ``now()`` stamps a local event (an edit, or a message about to be sent); ``update(remote)``
    stamps the receipt of a message carrying ``remote``. Both return a stamp greater than every
    stamp this clock returned before.

    ``last`` seeds the clock with the greatest stamp the node persisted before a restart, so a
    till whose clock was set back while it was off still never reissues an older stamp.
    """

    def __init__(
        self,
        node: str,
        *,
        now_ms: Callable[[], int] = wall_clock_ms,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
        last: HLCTimestamp | None = None,
    ) -> None:
        if not _NODE_RE.fullmatch(node):
            raise ProtocolError(
                f"{node!r} cannot name a clock: use a till id "
                "(1 to 64 letters, digits, '_', '.' or '-')"
            )
        if max_drift_ms < 0:
            raise ValueError(f"max_drift_ms must not be negative, got {max_drift_ms}")
        self._node = node
        self._now_ms = now_ms
        self._max_drift_ms = max_drift_ms
        self._lock = threading.Lock()
        self._wall_ms = last.wall_ms if last is not None else 0
        self._counter = last.counter if last is not None else 0

    @property
    def node(self) -> str:
        return self._node

    @property
    def last(self) -> HLCTimestamp:
        """The greatest stamp so far (persist it to seed the clock after a restart)."""
        with self._lock:
            return HLCTimestamp(self._wall_ms, self._counter, self._node)

    def now(self) -> HLCTimestamp:
        """Stamp a local or send event."""
        with self._lock:
            physical = self._now_ms()
            wall_ms = max(self._wall_ms, physical)
            counter = self._counter + 1 if wall_ms == self._wall_ms else 0
            return self._advance(wall_ms, counter)

    def update(self, remote: HLCTimestamp) -> HLCTimestamp:
        """Stamp the receipt of a message stamped ``remote``; the result is greater than it."""
        with self._lock:
            physical = self._now_ms()
            ahead_ms = remote.wall_ms - physical
            if ahead_ms > self._max_drift_ms:
                raise ProtocolError(
                    f"Clock stamp from {remote.node!r} is {_duration(ahead_ms)} ahead of this "
                    f"clock on {self._node!r} (at most {_duration(self._max_drift_ms)} allowed): "
                    f"check the date and time on {remote.node!r} and on {self._node!r}"
                )
            wall_ms = max(self._wall_ms, remote.wall_ms, physical)
            if wall_ms == self._wall_ms == remote.wall_ms:
                counter = max(self._counter, remote.counter) + 1
            elif wall_ms == self._wall_ms:
                counter = self._counter + 1
            elif wall_ms == remote.wall_ms:
                counter = remote.counter + 1
            else:
                counter = 0
            return self._advance(wall_ms, counter)

    def _advance(self, wall_ms: int, counter: int) -> HLCTimestamp:
        # Checked before the state changes, so a refused stamp leaves the clock as it was.
        if counter > MAX_COUNTER:
            raise ProtocolError(
                f"Clock on {self._node!r} made more than {MAX_COUNTER} stamps within one "
                "millisecond: its physical clock is stuck or far behind; check its date and time"
            )
        stamp = HLCTimestamp(wall_ms, counter, self._node)
        self._wall_ms, self._counter = wall_ms, counter
        return stamp


def _duration(ms: int) -> str:
    """A duration as a person reads it: a wrong clock is often off by hours or years."""
    if ms < 120_000:
        return f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + " s"
    if ms < 7_200_000:
        return f"{ms / 60_000:.1f} min"
    if ms < 172_800_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 86_400_000:.1f} days"


V = TypeVar("V")


def lww_merge(
    current: tuple[V, HLCTimestamp] | None, incoming: tuple[V, HLCTimestamp]
) -> tuple[tuple[V, HLCTimestamp], tuple[V, HLCTimestamp] | None]:
    """Last writer wins for one field: ``(winner, loser)`` of the stored and the incoming write.

    The greater stamp wins (the node is part of the order, so there are no ties between
    writers). The loser is returned so it can be kept for audit; it is ``None`` when there was
    nothing stored or the incoming write is the stored one again (a retried push), which makes
    the merge idempotent. Applying any set of writes in any order leaves the same winner.

    Two different values under one stamp can only come from a node that reused its clock (a
    till restored from a backup with its clock set back); that is refused with
    ``ProtocolError`` rather than resolved by arrival order, which would differ between HQ and
    the tills.
    """
    if current is None:
        return incoming, None
    current_value, current_stamp = current
    incoming_value, incoming_stamp = incoming
    if current_stamp == incoming_stamp:
        if current_value != incoming_value:
            raise ProtocolError(
                f"Two different values carry the same clock stamp {current_stamp.encode()!r}: "
                f"the clock on {current_stamp.node!r} was reused (restored from a backup?)"
            )
        return current, None
    if incoming_stamp > current_stamp:
        return incoming, current
    return current, incoming
