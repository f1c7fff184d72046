"""Keyboard-wedge detection with synthetic timings: scanner bursts are scans, people type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.ui.wedge import WedgeDetector, WedgeOutcome
from shared.errors import InvalidInput


def feed_all(
    detector: WedgeDetector, text: str, *, start_ms: float = 0.0, step_ms: float
) -> list[WedgeOutcome]:
    return [detector.feed(c, start_ms + i * step_ms) for i, c in enumerate(text)]


def scans(outcomes: list[WedgeOutcome]) -> list[str]:
    return [o.scan for o in outcomes if o.scan is not None]


def delivered(outcomes: list[WedgeOutcome]) -> str:
    return "".join(o.deliver for o in outcomes)


def test_a_scanner_burst_ended_by_enter_is_a_scan() -> None:
    detector = WedgeDetector()
    outcomes = feed_all(detector, "4000000000017\r", step_ms=4)
    assert scans(outcomes) == ["4000000000017"]
    assert delivered(outcomes) == ""  # nothing reaches the focused field
    assert detector.pending == ""


def test_human_typing_goes_to_the_field_and_is_never_a_scan() -> None:
    detector = WedgeDetector()
    outcomes = feed_all(detector, "blue shirt\r", step_ms=120)
    assert scans(outcomes) == []
    assert delivered(outcomes) == "blue shirt\r"


def test_a_burst_without_enter_is_released_after_the_interval() -> None:
    detector = WedgeDetector(max_interval_ms=30)
    outcomes = feed_all(detector, "abcd", step_ms=5)
    assert delivered(outcomes) == ""
    assert detector.deadline_ms == 15 + 30
    assert detector.flush(40) == ""  # not yet
    assert detector.flush(45) == "abcd"
    assert detector.pending == "" and detector.deadline_ms is None


def test_a_short_fast_burst_with_enter_is_typing() -> None:
    detector = WedgeDetector(min_length=4)
    outcomes = feed_all(detector, "abc\r", step_ms=5)
    assert scans(outcomes) == []
    assert delivered(outcomes) == "abc\r"


def test_a_slow_enter_after_a_burst_is_not_a_scan() -> None:
    detector = WedgeDetector(max_interval_ms=30)
    outcomes = feed_all(detector, "12345678", step_ms=5)
    late = detector.feed("\r", 35 + 200)
    assert scans([*outcomes, late]) == []
    assert delivered([*outcomes, late]) == "12345678\r"


def test_typing_then_a_scan_splits_cleanly() -> None:
    detector = WedgeDetector()
    typed = feed_all(detector, "ab", step_ms=150)
    burst = feed_all(detector, "CMD-TOTAL\r", start_ms=1000, step_ms=3)
    assert delivered(typed) + delivered(burst) == "ab"
    assert scans(burst) == ["CMD-TOTAL"]


def test_a_slow_character_releases_what_was_held_before_it() -> None:
    detector = WedgeDetector()
    assert detector.feed("x", 0) == WedgeOutcome()
    assert detector.feed("y", 200) == WedgeOutcome(deliver="x")
    assert detector.pending == "y"
    assert detector.release() == "y"


def test_control_characters_release_and_pass_through() -> None:
    detector = WedgeDetector()
    detector.feed("a", 0)
    assert detector.feed("\t", 2) == WedgeOutcome(deliver="a\t")


def test_line_feed_terminator() -> None:
    detector = WedgeDetector(terminator="\n")
    assert scans(feed_all(detector, "R00012345\n", step_ms=2)) == ["R00012345"]
    # A carriage return is then just a control key.
    assert delivered(feed_all(detector, "abcd\r", start_ms=100, step_ms=2)) == "abcd\r"


@pytest.mark.parametrize(
    "kwargs",
    [{"terminator": "\t"}, {"max_interval_ms": 0}, {"min_length": 0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        WedgeDetector(**kwargs)  # type: ignore[arg-type]


def test_feed_takes_one_character() -> None:
    with pytest.raises(InvalidInput, match="one character"):
        WedgeDetector().feed("ab", 0)


@given(
    text=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    gaps=st.lists(st.floats(min_value=31, max_value=2000), min_size=1),
)
def test_nothing_typed_at_human_speed_is_ever_lost_or_scanned(text: str, gaps: list[float]) -> None:
    detector = WedgeDetector(max_interval_ms=30)
    now, out = 0.0, []
    for i, char in enumerate(text + "\r"):
        now += gaps[i % len(gaps)]
        out.append(detector.feed(char, now))
    assert scans(out) == []
    assert delivered(out) + detector.release() == text + "\r"


@given(code=st.text(alphabet="0123456789ABCDEFR-", min_size=4, max_size=60))
def test_every_fast_burst_with_enter_is_its_scan(code: str) -> None:
    detector = WedgeDetector()
    out = feed_all(detector, code + "\r", start_ms=500, step_ms=1)
    assert scans(out) == [code] and delivered(out) == ""
