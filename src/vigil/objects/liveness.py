"""Pure liveness rules. No I/O, no clock reads: every input is passed in.

All timestamps handed to these functions come from *one* clock, the database's (rows are
written with ``utcnow()`` on the server and read back together with the server's ``now``).

They sit on the ground floor, below the persistence layer and the liveness facade, because
both apply them: the conductor's report-path write (:func:`next_healthy_since`, inside its
transaction in :mod:`vigil.db.services`) and every reader's verdict (:func:`record_states`, the
RPC half of the policy in :mod:`vigil.servicegroup.api`; the ``db`` driver's verdict is the
same function). A rule that lived in either would make the other climb up to it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vigil.objects.services import ServiceRecord

# A heartbeat at most this far in the future still counts as fresh: PostgreSQL's statement
# timestamp of a reader may precede a concurrent writer's commit by a few milliseconds.
# Anything further ahead is not trusted (Nova's abs() let such a row look alive forever).
FUTURE_TOLERANCE = dt.timedelta(seconds=1)

# Agents wait report_interval * (1 +/- REPORT_JITTER) between reports (see vigil.service).
REPORT_JITTER = 0.1


class State(enum.Enum):
    """What is known about a service.

    UP: it reported within ``service_down_time``; schedule work on it.
    DOWN: there is evidence it is gone (stale heartbeat while reports were getting through, a
        clean leave, or an operator's forced_down). The HA monitor may act on it.
    UNKNOWN: the liveness source could not be read or cannot be trusted right now. Never treat
        as down: do not fence, do not evacuate; do not place new work on it either.
    """

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class SessionState(enum.Enum):
    """This process's session with its liveness backend (kazoo's ``KazooState`` as the model).

    CONNECTED: the backend answers. Its verdicts may be acted on, members this process keeps
        alive are in it.
    SUSPENDED: the backend does not answer right now (the connection dropped, the last request
        failed or timed out), but what it holds may still stand: a ZooKeeper session survives
        until its timeout, TTL keys until they expire. Readers get UNKNOWN; the HA monitor
        must not fence on what it read (nor on a DOWN read before, without reading again);
        agents keep beating, which reconnects.
    LOST: the session is gone and everything it held with it (ZooKeeper expired it, or it was
        never established): this process's members are absent from the backend until they
        are re-created, which the driver does by itself once connected again. Treat as
        SUSPENDED, and expect this process's own members to read DOWN elsewhere meanwhile.

    Backends without sessions (memcached, Redis, etcd over HTTP) are CONNECTED or SUSPENDED,
    judged by their last request; ``db`` is always CONNECTED (a database error is reported by
    the read itself).
    """

    CONNECTED = "connected"
    SUSPENDED = "suspended"
    LOST = "lost"


@dataclass(frozen=True)
class Heartbeat:
    """A service's liveness facts from its row."""

    last_seen_up: dt.datetime | None
    created_at: dt.datetime
    left_at: dt.datetime | None = None
    forced_down: bool = False

    @property
    def last(self) -> dt.datetime:
        """The last sign of life: the last report, or the registration before any report."""
        return self.last_seen_up if self.last_seen_up is not None else self.created_at


def heartbeat_state(
    hb: Heartbeat,
    now: dt.datetime,
    down_after: dt.timedelta,
    reports_healthy_since: dt.datetime | None,
) -> State:
    """RPC liveness of one service (not counting forced_down): :func:`heartbeat_states` for one.

    ``reports_healthy_since`` is when the report path (messaging -> conductor -> database) last
    became continuously healthy, or None if it is not healthy now. A stale heartbeat proves death
    only if reports could get through for the whole ``down_after`` window; otherwise the service
    may simply have been unable to report, and the answer is UNKNOWN. (The rule is written once,
    in the batch form every list and scheduler pass uses; this is a view of it.)
    """
    return heartbeat_states([(hb.last, hb.left_at)], now, down_after, reports_healthy_since)[0]


def heartbeat_states(
    heartbeats: Iterable[tuple[dt.datetime, dt.datetime | None]],
    now: dt.datetime,
    down_after: dt.timedelta,
    reports_healthy_since: dt.datetime | None,
) -> list[State]:
    """RPC liveness of many ``(last sign of life, left_at)`` at once, in their order: the one
    home of the heartbeat rule (a clean leave is DOWN; a sign of life from too far in the future
    is UNKNOWN; fresh within ``down_after`` is UP; stale is DOWN only if the report path has been
    healthy for the whole window, else UNKNOWN), with the thresholds computed once: this is the
    per-service cost of every list and every scheduler pass.

    A list in the input's order, not a dict by id: the readers walk their rows in that order
    anyway, and a dict cost an insertion and a lookup per service for nothing (issue 12).
    """
    fresh_from = now - down_after
    future_limit = now + FUTURE_TOLERANCE
    up, down, unknown = State.UP, State.DOWN, State.UNKNOWN
    stale_state = (
        down
        if reports_healthy_since is not None and reports_healthy_since <= fresh_from
        else unknown
    )
    return [down if left_at is not None
            else unknown if last > future_limit
            else up if last >= fresh_from
            else stale_state
            for last, left_at in heartbeats]


@dataclass(frozen=True)
class LivenessView:
    """What the reader knows besides the rows: the database's now and the report-path health."""

    now: dt.datetime
    down_after: dt.timedelta
    reports_healthy_since: dt.datetime | None


def record_state_list(records: Sequence[ServiceRecord], view: LivenessView) -> list[State]:
    """RPC liveness of many rows, in their order (forced_down excluded: that is the facade's
    policy)."""
    return heartbeat_states(
        ((r.last_seen_up or r.created_at, r.left_at) for r in records),
        view.now, view.down_after, view.reports_healthy_since,
    )


def record_states(records: Sequence[ServiceRecord], view: LivenessView) -> dict[int, State]:
    """RPC liveness of many rows, by id (:func:`record_state_list` keyed by id)."""
    return dict(zip([r.id for r in records], record_state_list(records, view), strict=True))


def combine(*states: State) -> State:
    """Either source saying DOWN makes it DOWN; else any UNKNOWN makes it UNKNOWN; else UP."""
    if State.DOWN in states:
        return State.DOWN
    if State.UNKNOWN in states:
        return State.UNKNOWN
    return State.UP


def path_max_gap(
    service_down_time: float, report_interval: float, coalesce_interval: float
) -> dt.timedelta:
    """The longest gap between report-path beats that cannot make a live service look dead.

    A live service reports at least every ``(1 + REPORT_JITTER) * report_interval``, and a
    report waits up to one coalescing tick to be written. When the path pauses between two
    beats ``g`` apart, the reports written in between may be lost; the last report certainly
    written before the pause was sent at most one interval and one tick before the first beat,
    and the first one after it is written at most one interval and one tick after the second
    beat. Their timestamps are therefore at most
    ``g + 2 * (1 + REPORT_JITTER) * report_interval + 2 * coalesce_interval`` apart. While that
    stays within ``service_down_time``, a stale heartbeat still proves a death; a longer gap
    breaks the path's continuity, and stale heartbeats read ``unknown`` until the path has
    been healthy for a whole ``service_down_time`` again. (``tests/unit/objects/
    test_path_tolerance.py`` checks this bound by simulation.) Negative when the intervals
    leave no room at all; :func:`vigil.conf.validate` refuses such settings.
    """
    return dt.timedelta(
        seconds=service_down_time
        - 2 * (1 + REPORT_JITTER) * report_interval
        - 2 * coalesce_interval
    )


@dataclass(frozen=True)
class LivenessTiming:
    """The liveness clock settings, and every value derived from them, in one place.

    Built once from configuration (:func:`vigil.servicegroup.drivers.options.timing_from`) and
    handed to the facade and to every driver, so that a formula has one home: the report
    path's gap tolerance was computed from raw options by the conductor, the reader and the
    validator, and the young-backend rule was written out by two drivers.

    report_interval: seconds between an agent's reports (jittered by ``REPORT_JITTER``).
    service_down_time: a service whose last sign of life is older is stale (Nova's option).
    coalesce_interval: the conductor's write tick; a report waits up to one tick.
    """

    report_interval: float
    service_down_time: float
    coalesce_interval: float

    @property
    def down_after(self) -> dt.timedelta:
        """The age of a heartbeat beyond which it is stale."""
        return dt.timedelta(seconds=self.service_down_time)

    @property
    def path_max_gap(self) -> dt.timedelta:
        """The report path's gap tolerance (:func:`path_max_gap`, which derives it)."""
        return path_max_gap(self.service_down_time, self.report_interval,
                            self.coalesce_interval)

    @property
    def trust_after(self) -> float:
        """How long a liveness server must have been up before a missing key means DOWN.

        A freshly (re)started memcached or Redis is empty: a key is missing until its member
        beats again, which a live member does within ``service_down_time``. Servers report
        their uptime in whole seconds, truncated, hence one second more, so that a young
        server is never trusted.
        """
        return self.service_down_time + 1.0


@dataclass(frozen=True)
class PathBeat:
    """One conductor's report-path record."""

    last_beat: dt.datetime
    healthy_since: dt.datetime


def next_healthy_since(
    previous: PathBeat | None, now: dt.datetime, max_gap: dt.timedelta
) -> dt.datetime:
    """The ``healthy_since`` a conductor records on a successful probe at ``now``.

    Continuity breaks when the previous beat is more than ``max_gap`` old (or missing): then
    health starts again from now.
    """
    if previous is None or now - previous.last_beat > max_gap or previous.last_beat > now:
        return now
    return previous.healthy_since


def reports_healthy_since(
    beats: Iterable[PathBeat], now: dt.datetime, max_gap: dt.timedelta
) -> dt.datetime | None:
    """Since when every report taken off the queue has been written, judged per conductor.

    Reports are shared round-robin among the conductors consuming the topic, so the path is
    only as healthy as its worst consumer: a conductor that still takes reports but cannot
    write them swallows a share of every service's reports, and a stale heartbeat then proves
    nothing. Hence the *latest* start among the rows, not the earliest:

    * a beating conductor (last beat within ``max_gap``) counts from its ``healthy_since``;
      a conductor that joins inherits the path's ``healthy_since`` (:func:`join_healthy_since`),
      so adding one opens no hole, while one that resumes after a gap restarts from then;
    * a row whose beats stopped (or lie in the future) is a conductor that may have kept
      taking reports without writing them: it stops consuming within
      ``[conductor] stop_consuming_after`` (< ``max_gap``) of its last write, so its hole
      ends by ``last_beat + max_gap``, which counts as a start too. A conductor that stops
      cleanly deletes its row after its last flush: it leaves no hole.

    None when no conductor is beating: nobody can report. The answer may lie after ``now``
    (a hole still open): stale heartbeats then read UNKNOWN, as they should.
    """
    fresh: list[dt.datetime] = []
    holes: list[dt.datetime] = []
    for b in beats:
        age = now - b.last_beat
        if -FUTURE_TOLERANCE <= age <= max_gap:
            fresh.append(b.healthy_since)
        else:
            holes.append(b.last_beat + max_gap)
    if not fresh:
        return None
    return max(fresh + holes)


def join_healthy_since(
    own: PathBeat | None, others: Iterable[PathBeat], now: dt.datetime, max_gap: dt.timedelta
) -> dt.datetime:
    """The ``healthy_since`` a conductor records when it (re)starts consuming at ``now``.

    With a row of its own, health restarts from now: the row was left by a crash, or by this
    conductor when it stopped consuming because its beats stopped committing (a stalled
    database, or a broker that no longer delivered its probes). Either way reports may have
    been lost, and a join is not a beat: it proves the database answers, not that reports get
    through. Without a row (a first start, or after a clean stop, which removes it), it has
    swallowed nothing: it inherits the path's health from the other conductors, or starts
    from now if none is beating.
    """
    if own is not None:
        return now
    inherited = reports_healthy_since(others, now, max_gap)
    return inherited if inherited is not None and inherited <= now else now
