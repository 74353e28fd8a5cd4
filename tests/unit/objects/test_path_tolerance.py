"""The report path's gap tolerance, checked against a simulation of the real pipeline.

:func:`path_max_gap` claims: if no two consecutive report-path beats are further apart than
it, a live service's written heartbeats are never more than ``service_down_time`` apart, so
a stale heartbeat with a continuous path really is a death. The simulation below models what
the conductor does (reports and probes gathered, one flush per coalescing tick, a flush in an
outage fails and drops what it held; a message sent during an outage is lost) and lets
Hypothesis search for intervals, jitter and an outage that break the claim.
"""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.objects.liveness import REPORT_JITTER, path_max_gap


def simulate(
    *,
    report_interval: float,
    coalesce: float,
    probe: float,
    outage: tuple[float, float],
    horizon: float,
    rng: random.Random,
) -> tuple[list[float], list[float]]:
    """(beat times, written heartbeat times) of one conductor and one live service."""
    start, end = outage

    def in_outage(t: float) -> bool:
        return start <= t <= end

    phase = rng.uniform(0, coalesce)
    flushes = [phase + k * coalesce for k in range(math.ceil(horizon / coalesce) + 1)]

    def flush_after(t: float) -> float:
        return flushes[max(0, math.ceil((t - phase) / coalesce))]

    sends, t = [], rng.uniform(0, report_interval)
    while t < horizon:
        sends.append(t)
        t += report_interval * (1 + rng.uniform(-REPORT_JITTER, REPORT_JITTER))
    probes = [k * probe for k in range(1, math.ceil(horizon / probe))]

    written = sorted({f for f in map(flush_after, (s for s in sends if not in_outage(s)))
                      if not in_outage(f)})
    beats = sorted({f for f in map(flush_after, (p for p in probes if not in_outage(p)))
                    if not in_outage(f)})
    return beats, written


def max_spacing(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@settings(max_examples=500, deadline=None)
@given(
    report_interval=st.floats(0.05, 10),
    coalesce=st.floats(0.01, 0.5),  # the rest are fractions of report_interval
    probe=st.floats(0.01, 0.5),
    slack=st.floats(0, 1),
    outage_at=st.floats(0, 1),
    outage_len=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaps_within_the_tolerance_never_make_a_live_service_stale(
    report_interval: float, coalesce: float, probe: float, slack: float, outage_at: float,
    outage_len: float, seed: int,
) -> None:
    coalesce, probe = coalesce * report_interval, probe * report_interval
    # The smallest service_down_time vigil.conf.validate accepts, plus some slack.
    down_time = (2 * (1 + REPORT_JITTER) * report_interval + 2 * coalesce + probe + coalesce
                 + slack * report_interval)
    tolerance = path_max_gap(down_time, report_interval, coalesce).total_seconds()
    assert tolerance >= probe + coalesce - 1e-6
    start = 2 * down_time + outage_at * down_time
    outage = (start, start + outage_len * tolerance)
    beats, written = simulate(report_interval=report_interval, coalesce=coalesce, probe=probe,
                              outage=outage, horizon=start + 4 * down_time + 2 * tolerance,
                              rng=random.Random(seed))
    if max_spacing(beats) <= tolerance:
        assert max_spacing(written) <= down_time + 1e-9


def test_a_longer_gap_can_make_a_live_service_look_stale() -> None:
    """The bound matters: an outage of twice the tolerance can hide a live service for longer
    than service_down_time (which is why continuity then breaks)."""
    report_interval, coalesce, probe = 1.0, 0.1, 0.05
    down_time = 3.0
    tolerance = path_max_gap(down_time, report_interval, coalesce).total_seconds()
    worst = 0.0
    for seed in range(300):
        rng = random.Random(seed)
        start = 10 + rng.uniform(0, 1)
        beats, written = simulate(report_interval=report_interval, coalesce=coalesce,
                                  probe=probe, outage=(start, start + 2 * tolerance),
                                  horizon=30, rng=rng)
        assert max_spacing(beats) > tolerance
        worst = max(worst, max_spacing(written))
    assert worst > down_time
