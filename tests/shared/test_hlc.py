from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from shared.errors import ProtocolError
from shared.hlc import MAX_COUNTER, HLCTimestamp, HybridLogicalClock, lww_merge

T0 = 1_700_000_000_000  # 2023-11-14, a realistic wall_ms


class ManualClock:
    """A physical clock the test sets by hand (it may stand still or go back)."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def make_clock(
    node: str = "S001-T1",
    ms: int = T0,
    *,
    max_drift_ms: int = 60_000,
    last: HLCTimestamp | None = None,
) -> tuple[HybridLogicalClock, ManualClock]:
    physical = ManualClock(ms)
    clock = HybridLogicalClock(node, now_ms=physical, max_drift_ms=max_drift_ms, last=last)
    return clock, physical


# --- HLCTimestamp ---------------------------------------------------------------------------


def test_encode_matches_the_wire_format() -> None:
    assert HLCTimestamp(1_700_000_000, 0, "T1").encode() == "000001700000000-000000-T1"
    assert str(HLCTimestamp(T0, 42, "S001-T1")) == "001700000000000-000042-S001-T1"


def test_decode_reads_node_ids_that_contain_dashes() -> None:
    stamp = HLCTimestamp.decode("001700000000000-000042-S001-T1")
    assert stamp == HLCTimestamp(T0, 42, "S001-T1")


def test_order_is_wall_then_counter_then_node() -> None:
    stamps = [
        HLCTimestamp(T0 + 1, 0, "A"),
        HLCTimestamp(T0, 5, "A"),
        HLCTimestamp(T0, 0, "B"),
        HLCTimestamp(T0, 0, "A"),
        HLCTimestamp(T0, 5, "B"),
    ]
    assert sorted(stamps) == [
        HLCTimestamp(T0, 0, "A"),
        HLCTimestamp(T0, 0, "B"),
        HLCTimestamp(T0, 5, "A"),
        HLCTimestamp(T0, 5, "B"),
        HLCTimestamp(T0 + 1, 0, "A"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "1700000000000-0-T1",  # not zero-padded
        "001700000000000-000000-",  # no node
        "001700000000000-000000",
        "001700000000000-0000000-T1",  # 7-digit counter
        "001700000000000-065536-T1",  # counter past the limit
        "0017000000000000-000000-T1",  # 16-digit wall
        "001700000000000-000000-T 1",  # space in node
        "001700000000000-000000-T1\n",
        "00170000000000x-000000-T1",
        "+01700000000000-000000-T1",
    ],
)
def test_decode_refuses_garbage_with_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError, match=r"(?i)clock stamp"):
        HLCTimestamp.decode(text)


@pytest.mark.parametrize(
    ("wall_ms", "counter", "node", "message"),
    [
        (-1, 0, "T1", "time -1 is out of range"),
        (10**15, 0, "T1", "out of range"),
        (T0, -1, "T1", "counter -1 is out of range"),
        (T0, MAX_COUNTER + 1, "T1", "counter 65536"),
        (T0, 0, "", "not a valid till id"),
        (T0, 0, "till one", "not a valid till id"),
        (T0, 0, "T" * 65, "not a valid till id"),
    ],
)
def test_impossible_stamps_cannot_be_built(
    wall_ms: int, counter: int, node: str, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        HLCTimestamp(wall_ms, counter, node)


nodes = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
stamps = st.builds(
    HLCTimestamp,
    wall_ms=st.one_of(st.integers(0, 10**15 - 1), st.integers(T0 - 5, T0 + 5)),
    counter=st.one_of(st.integers(0, MAX_COUNTER), st.integers(0, 3)),
    node=st.one_of(nodes, st.sampled_from(["T1", "T1-", "T10", "T1.a", "T2", "HQ"])),
)


@given(stamps, stamps)
def test_encoded_stamps_sort_like_stamps_and_round_trip(a: HLCTimestamp, b: HLCTimestamp) -> None:
    assert HLCTimestamp.decode(a.encode()) == a
    assert (a < b) == (a.encode() < b.encode())
    assert (a == b) == (a.encode() == b.encode())


# --- The clock, event by event ----------------------------------------------------------------


def test_local_events_follow_physical_time_and_count_within_a_millisecond() -> None:
    clock, physical = make_clock("T1")
    assert clock.now() == HLCTimestamp(T0, 0, "T1")
    assert clock.now() == HLCTimestamp(T0, 1, "T1")
    physical.ms = T0 + 10
    assert clock.now() == HLCTimestamp(T0 + 10, 0, "T1")


def test_a_clock_set_back_does_not_make_stamps_go_back() -> None:
    clock, physical = make_clock("T1")
    first = clock.now()
    physical.ms = T0 - 3_600_000  # NTP pulled the clock back an hour
    assert clock.now() == HLCTimestamp(T0, 1, "T1")
    assert clock.now() == HLCTimestamp(T0, 2, "T1")
    physical.ms = T0 + 1
    assert clock.now() == HLCTimestamp(T0 + 1, 0, "T1")
    assert first < clock.last


@pytest.mark.parametrize(
    ("local", "remote", "physical", "expected"),
    [
        # physical time is ahead of both: counter restarts
        ((T0, 3), (T0 + 5, 7), T0 + 9, (T0 + 9, 0)),
        # remote is ahead: take its time, one past its counter
        ((T0, 3), (T0 + 5, 7), T0 + 1, (T0 + 5, 8)),
        # local is ahead: keep our time, one past our counter
        ((T0 + 5, 3), (T0, 7), T0 + 1, (T0 + 5, 4)),
        # local and remote share the time, ahead of physical: one past the larger counter
        ((T0 + 5, 3), (T0 + 5, 7), T0, (T0 + 5, 8)),
        ((T0 + 5, 9), (T0 + 5, 7), T0, (T0 + 5, 10)),
        # all three equal
        ((T0, 2), (T0, 2), T0, (T0, 3)),
    ],
)
def test_receive_follows_the_paper(
    local: tuple[int, int], remote: tuple[int, int], physical: int, expected: tuple[int, int]
) -> None:
    clock, pt = make_clock("B", last=HLCTimestamp(*local, "B"))
    pt.ms = physical
    received = HLCTimestamp(*remote, "A")
    stamp = clock.update(received)
    assert stamp == HLCTimestamp(*expected, "B")
    assert stamp > received
    assert clock.last == stamp


def test_a_remote_clock_too_far_ahead_is_refused_and_changes_nothing() -> None:
    clock, _ = make_clock("S001-T1", max_drift_ms=60_000)
    before = clock.now()
    with pytest.raises(ProtocolError, match=r"'S009-T4' is 60\.001 s ahead .*at most 60 s allowed"):
        clock.update(HLCTimestamp(T0 + 60_001, 0, "S009-T4"))
    assert clock.last == before
    assert clock.now() == HLCTimestamp(T0, before.counter + 1, "S001-T1")
    # exactly at the limit is still accepted
    assert clock.update(HLCTimestamp(T0 + 60_000, 0, "S009-T4")).wall_ms == T0 + 60_000


def test_a_clock_years_off_is_reported_in_days() -> None:
    clock, _ = make_clock("HQ")
    with pytest.raises(ProtocolError, match=r"'T9' is 365\.0 days ahead"):
        clock.update(HLCTimestamp(T0 + 365 * 86_400_000, 0, "T9"))


def test_remote_stamps_from_the_past_are_always_accepted() -> None:
    clock, _ = make_clock("HQ", max_drift_ms=0)
    assert clock.update(HLCTimestamp(T0 - 86_400_000, 5, "T1")) == HLCTimestamp(T0, 0, "HQ")


def test_counter_overflow_is_refused_and_leaves_the_clock_usable() -> None:
    clock, physical = make_clock("T1", last=HLCTimestamp(T0, MAX_COUNTER, "T1"))
    with pytest.raises(ProtocolError, match="more than 65535 stamps"):
        clock.now()
    with pytest.raises(ProtocolError, match="more than 65535 stamps"):
        clock.update(HLCTimestamp(T0, MAX_COUNTER, "T2"))
    assert clock.last == HLCTimestamp(T0, MAX_COUNTER, "T1")
    physical.ms = T0 + 1
    assert clock.now() == HLCTimestamp(T0 + 1, 0, "T1")


def test_a_restarted_clock_seeded_with_its_last_stamp_never_reissues_it() -> None:
    first, _ = make_clock("T1", ms=T0 + 5_000)
    persisted = first.now()
    # the till restarts with its clock set back five seconds
    second = HybridLogicalClock("T1", now_ms=lambda: T0, last=persisted)
    assert second.now() == HLCTimestamp(T0 + 5_000, 1, "T1")


def test_a_clock_needs_a_valid_node_id() -> None:
    with pytest.raises(ProtocolError, match="cannot name a clock"):
        HybridLogicalClock("till 1")


def test_the_default_clock_reads_real_time() -> None:
    import time

    before = time.time_ns() // 1_000_000
    stamp = HybridLogicalClock("T1").now()
    after = time.time_ns() // 1_000_000
    assert before <= stamp.wall_ms <= after


def test_threads_never_get_the_same_stamp() -> None:
    # A stopped physical clock makes every stamp depend on the counter, where a race would show.
    clock, _ = make_clock("T1")
    per_thread: list[list[HLCTimestamp]] = [[] for _ in range(4)]
    start = threading.Barrier(len(per_thread))

    def stamp_many(out: list[HLCTimestamp]) -> None:
        start.wait()
        for _ in range(2_000):
            out.append(clock.now())

    threads = [threading.Thread(target=stamp_many, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [s for out in per_thread for s in out]
    assert len(set(every)) == len(every) == 8_000
    assert max(every) == HLCTimestamp(T0, 7_999, "T1")
    for out in per_thread:
        assert out == sorted(out)


# --- Many tills with skewed clocks ----------------------------------------------------------

MAX_DRIFT = 10_000
NODES = ("HQ", "S001-T1", "S001-T2", "S002-T1")


@dataclass
class SkewedClock:
    """A node's physical clock: the true time plus an offset that may change (and go back)."""

    world: World
    offset_ms: int
    readings: list[int] = field(default_factory=list)

    def __call__(self) -> int:
        reading = self.world.true_ms + self.offset_ms
        self.readings.append(reading)
        self.world.max_reading = max(self.world.max_reading, reading)
        return reading


@dataclass
class World:
    true_ms: int = T0
    max_reading: int = 0


@dataclass(frozen=True)
class Message:
    stamp: HLCTimestamp
    causal_past: HLCTimestamp  # the greatest stamp of any event that happened before the receipt


offsets = st.integers(-MAX_DRIFT // 2, MAX_DRIFT // 2)
node_index = st.integers(0, len(NODES) - 1)


class TillsExchangingPatches(RuleBasedStateMachine):
    """Tills and HQ stamp edits and exchange them while their physical clocks disagree."""

    @initialize(start_offsets=st.lists(offsets, min_size=len(NODES), max_size=len(NODES)))
    def start(self, start_offsets: list[int]) -> None:
        self.world = World()
        self.physical = [SkewedClock(self.world, off) for off in start_offsets]
        self.clocks = [
            HybridLogicalClock(node, now_ms=pc, max_drift_ms=MAX_DRIFT)
            for node, pc in zip(NODES, self.physical, strict=True)
        ]
        self.issued: list[list[HLCTimestamp]] = [[] for _ in NODES]
        self.causal_past: list[HLCTimestamp | None] = [None for _ in NODES]
        self.in_flight: list[tuple[int, Message]] = []

    def record(self, i: int, stamp: HLCTimestamp) -> None:
        own = self.issued[i]
        assert stamp.node == NODES[i]
        assert not own or stamp > own[-1], "a node's stamps must strictly increase"
        past = self.causal_past[i]
        assert past is None or stamp > past, "an event must be stamped after everything before it"
        # The clock's time is a physical time someone read, and not behind this node's own.
        assert self.physical[i].readings[-1] <= stamp.wall_ms <= self.world.max_reading
        own.append(stamp)
        self.causal_past[i] = stamp

    @rule(ms=st.integers(0, 50))
    def time_passes(self, ms: int) -> None:
        self.world.true_ms += ms

    @rule(i=node_index, offset=offsets)
    def a_clock_is_reset(self, i: int, offset: int) -> None:
        # A lower offset turns the clock back (NTP correction, a hand-set clock).
        self.physical[i].offset_ms = offset

    @rule(i=node_index)
    def local_edit(self, i: int) -> None:
        self.record(i, self.clocks[i].now())

    @rule(sender=node_index, receiver=node_index)
    def send(self, sender: int, receiver: int) -> None:
        stamp = self.clocks[sender].now()
        self.record(sender, stamp)
        self.in_flight.append((receiver, Message(stamp, self.causal_past[sender] or stamp)))

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        # Messages may arrive in any order, late, or at their own sender.
        index = data.draw(st.integers(0, len(self.in_flight) - 1))
        receiver, message = self.in_flight.pop(index)
        past = self.causal_past[receiver]
        self.causal_past[receiver] = (
            message.causal_past if past is None else max(past, message.causal_past)
        )
        stamp = self.clocks[receiver].update(message.stamp)
        assert stamp > message.stamp
        self.record(receiver, stamp)

    @invariant()
    def clocks_stay_near_physical_time(self) -> None:
        if not hasattr(self, "clocks"):
            return
        for clock in self.clocks:
            assert clock.last.wall_ms <= self.world.true_ms + MAX_DRIFT // 2


TestTillsExchangingPatches = TillsExchangingPatches.TestCase
TestTillsExchangingPatches.settings = settings(max_examples=60, stateful_step_count=40)


# --- Last writer wins -------------------------------------------------------------------------

Write = tuple[int, HLCTimestamp]


def test_the_first_write_wins_with_no_loser() -> None:
    write = ("Maria", HLCTimestamp(T0, 0, "T1"))
    assert lww_merge(None, write) == (write, None)


def test_the_later_write_wins_and_the_earlier_is_kept_as_loser() -> None:
    old = ("Maria", HLCTimestamp(T0, 0, "T1"))
    new = ("María", HLCTimestamp(T0, 1, "T1"))
    assert lww_merge(old, new) == (new, old)
    assert lww_merge(new, old) == (new, old)


def test_the_till_id_breaks_a_tie_the_same_way_everywhere() -> None:
    t1 = ("Maria", HLCTimestamp(T0, 0, "S001-T1"))
    t2 = ("Mary", HLCTimestamp(T0, 0, "S001-T2"))
    assert lww_merge(t1, t2) == (t2, t1)
    assert lww_merge(t2, t1) == (t2, t1)


def test_a_retried_write_is_idempotent() -> None:
    write = ("Maria", HLCTimestamp(T0, 0, "T1"))
    same = ("Maria", HLCTimestamp(T0, 0, "T1"))
    assert lww_merge(write, same) == (write, None)


def test_two_values_under_one_stamp_are_refused() -> None:
    with pytest.raises(ProtocolError, match="same clock stamp '001700000000000-000003-T1'"):
        lww_merge(("Maria", HLCTimestamp(T0, 3, "T1")), ("Mary", HLCTimestamp(T0, 3, "T1")))


def fold(writes: list[Write]) -> tuple[Write | None, list[Write]]:
    losers: list[Write] = []

    def step(current: Write | None, incoming: Write) -> Write:
        winner, loser = lww_merge(current, incoming)
        if loser is not None:
            losers.append(loser)
        return winner

    winner: Write | None = reduce(step, writes, None)
    return winner, losers


distinct_writes = st.lists(
    st.tuples(st.integers(), stamps), min_size=1, max_size=12, unique_by=lambda w: w[1]
)


@given(st.data(), distinct_writes)
def test_every_order_of_writes_converges_on_the_same_winner(
    data: st.DataObject, writes: list[Write]
) -> None:
    order = data.draw(st.permutations(writes))
    winner, losers = fold(order)
    assert winner == max(writes, key=lambda w: w[1])
    assert winner == fold(writes)[0]
    # Nothing is lost: every other write is kept once, as a loser.
    assert sorted(losers, key=lambda w: w[1]) == sorted(
        (w for w in writes if w is not winner), key=lambda w: w[1]
    )


@given(st.data(), distinct_writes)
def test_replayed_writes_change_nothing(data: st.DataObject, writes: list[Write]) -> None:
    replays = data.draw(st.lists(st.sampled_from(writes), max_size=12))
    order = data.draw(st.permutations(writes + replays))
    winner, losers = fold(order)
    assert winner == max(writes, key=lambda w: w[1])
    assert {w[1] for w in losers} == {w[1] for w in writes} - {max(w[1] for w in writes)}
