"""The liveness rules, table-tested on one injected clock (no waiting)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.objects.liveness import (
    FUTURE_TOLERANCE,
    Heartbeat,
    PathBeat,
    State,
    combine,
    heartbeat_state,
    join_healthy_since,
    next_healthy_since,
    reports_healthy_since,
)

NOW = dt.datetime(2026, 11, 22, 12, 0, 0)
DOWN = dt.timedelta(seconds=60)
HEALTHY = NOW - dt.timedelta(hours=1)  # report path healthy for a long time


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("name", "hb", "healthy_since", "expected"),
    [
        ("fresh report", Heartbeat(ago(5), ago(500)), HEALTHY, State.UP),
        ("exactly service_down_time is still up", Heartbeat(ago(60), ago(500)), HEALTHY,
         State.UP),
        ("a microsecond past the boundary is down",
         Heartbeat(NOW - DOWN - dt.timedelta(microseconds=1), ago(500)), HEALTHY, State.DOWN),
        ("stale report", Heartbeat(ago(61), ago(500)), HEALTHY, State.DOWN),
        ("never reported, just created", Heartbeat(None, ago(3)), HEALTHY, State.UP),
        ("never reported, created long ago", Heartbeat(None, ago(600)), HEALTHY, State.DOWN),
        ("future timestamp within tolerance", Heartbeat(NOW + dt.timedelta(milliseconds=300),
                                                        ago(500)), HEALTHY, State.UP),
        ("far-future timestamp is not trusted (no abs())",
         Heartbeat(NOW + dt.timedelta(hours=2), ago(500)), HEALTHY, State.UNKNOWN),
        ("stale while the report path is down", Heartbeat(ago(300), ago(900)), None,
         State.UNKNOWN),
        ("stale but the path recovered only 10 s ago", Heartbeat(ago(300), ago(900)), ago(10),
         State.UNKNOWN),
        ("stale and the path healthy for exactly one down time", Heartbeat(ago(300), ago(900)),
         ago(60), State.DOWN),
        ("fresh while the path is down is still up", Heartbeat(ago(5), ago(900)), None,
         State.UP),
        ("left cleanly after the last report", Heartbeat(ago(5), ago(900), left_at=ago(2)),
         HEALTHY, State.DOWN),
        ("left cleanly, even while the path is down",
         Heartbeat(ago(5), ago(900), left_at=ago(2)), None, State.DOWN),
        ("a late report after leaving does not undo the leave",
         Heartbeat(ago(1), ago(900), left_at=ago(2)), HEALTHY, State.DOWN),
    ],
)
def test_heartbeat_state(
    name: str, hb: Heartbeat, healthy_since: dt.datetime | None, expected: State
) -> None:
    assert heartbeat_state(hb, NOW, DOWN, healthy_since) is expected, name


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((State.UP, State.UP), State.UP),
        ((State.UP, State.DOWN), State.DOWN),
        ((State.DOWN, State.UP), State.DOWN),
        ((State.UNKNOWN, State.DOWN), State.DOWN),
        ((State.UP, State.UNKNOWN), State.UNKNOWN),
        ((State.UNKNOWN, State.UNKNOWN), State.UNKNOWN),
    ],
)
def test_combine_either_down_is_down(states: tuple[State, ...], expected: State) -> None:
    assert combine(*states) is expected


def test_path_continuity() -> None:
    gap = dt.timedelta(seconds=10)
    first = next_healthy_since(None, NOW, gap)
    assert first == NOW
    beat = PathBeat(last_beat=ago(5), healthy_since=ago(100))
    assert next_healthy_since(beat, NOW, gap) == ago(100)
    broken = PathBeat(last_beat=ago(11), healthy_since=ago(100))
    assert next_healthy_since(broken, NOW, gap) == NOW
    clock_went_back = PathBeat(last_beat=NOW + dt.timedelta(seconds=30), healthy_since=ago(100))
    assert next_healthy_since(clock_went_back, NOW, gap) == NOW


GAP = dt.timedelta(seconds=10)


def beat(last: float, since: float) -> PathBeat:
    return PathBeat(last_beat=ago(last), healthy_since=ago(since))


@pytest.mark.parametrize(
    ("beats", "expected"),
    [
        ([], None),  # no conductor: nobody can report
        ([beat(30, 1000)], None),  # its only conductor stopped beating
        ([beat(1, 50)], ago(50)),
        # Two beating: the later start counts (one that resumed after a gap swallowed reports).
        ([beat(1, 50), beat(2, 500)], ago(50)),
        # One stopped beating 30 s ago (maybe wedged, still taking reports): its hole ends by
        # its last beat + the gap tolerance, which is later than the other's start.
        ([beat(30, 1000), beat(1, 500)], ago(20)),
        # ... which for a stall just past the tolerance is just now.
        ([beat(11, 1000), beat(1, 500)], ago(1)),
        # An old hole, long closed, changes nothing that matters (it is older than any window).
        ([beat(3600, 7200), beat(1, 500)], ago(500)),
        # A beat from the future is not trusted: a hole from then on.
        ([PathBeat(NOW + dt.timedelta(seconds=30), ago(100)), beat(1, 500)],
         NOW + dt.timedelta(seconds=40)),
    ],
)
def test_reports_healthy_since_is_the_worst_conductors(
    beats: list[PathBeat], expected: dt.datetime | None
) -> None:
    assert reports_healthy_since(beats, NOW, GAP) == expected


@pytest.mark.parametrize(
    ("own", "others", "expected"),
    [
        (None, [], NOW),  # first conductor: health starts now
        (None, [beat(1, 500)], ago(500)),  # joining opens no hole: inherit the path's start
        (None, [beat(30, 1000)], NOW),  # the others stopped beating: start now
        # A row of its own: a crash, or a stop because its beats stopped (a stalled database,
        # a broker that lost its probes). A join proves the database answers, not that
        # reports get through: health restarts, however fresh the row.
        (beat(5, 100), [beat(1, 500)], NOW),
        (beat(30, 100), [beat(1, 500)], NOW),
    ],
)
def test_join_healthy_since(own: PathBeat | None, others: list[PathBeat],
                            expected: dt.datetime) -> None:
    assert join_healthy_since(own, others, NOW, GAP) == expected


@given(
    age=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    down=st.floats(min_value=0.1, max_value=1e4),
    healthy_for=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
)
def test_properties(age: float, down: float, healthy_for: float | None) -> None:
    """UP exactly when fresh; DOWN only when the path was healthy all window long."""
    hb = Heartbeat(NOW - dt.timedelta(seconds=age), ago(2e6))
    down_after = dt.timedelta(seconds=down)
    since = None if healthy_for is None else NOW - dt.timedelta(seconds=healthy_for)
    state = heartbeat_state(hb, NOW, down_after, since)
    age_td = NOW - hb.last
    if state is State.UP:
        assert -FUTURE_TOLERANCE <= age_td <= down_after
    if state is State.DOWN:
        assert age_td > down_after
        assert since is not None and since <= NOW - down_after
    if -FUTURE_TOLERANCE <= age_td <= down_after:
        assert state is State.UP
