"""A conductor takes reports off the queue only while it can write them.

The hazard: reports are shared round-robin among the conductors on the topic. A conductor that
keeps consuming while its database writes fail or hang (the database unreachable from its
host, a stalled connection, a wedged writer thread) swallows a share of every service's
reports; the other conductors still beat the report path, so readers would take the stale
heartbeats as deaths and call live services down.

The rule (a lease on consumption): a conductor consumes only while its last committed
report-path write is younger than ``[conductor] stop_consuming_after``, on its own monotonic
clock, measured from before that write began. When the lease runs out it stops its RPC server
(no database needed for that), so the broker hands every report to the other conductors. It
resumes by itself: it keeps trying a *join* write (:func:`vigil.db.services.join_report_path`),
and once one commits it starts consuming again under a fresh lease.

What readers rely on (:func:`vigil.objects.liveness.reports_healthy_since`): a conductor whose
row stopped beating consumed for at most ``stop_consuming_after`` after its last beat, which
is less than the path's gap tolerance; and a conductor that resumes restarts its
``healthy_since`` (:func:`vigil.objects.liveness.join_healthy_since`), so the reports it
swallowed make stale heartbeats read ``unknown`` for a whole ``service_down_time``, never
``down``.

:func:`decide` is the rule, pure and table-tested; :class:`ConsumptionGuard` is the thread
that applies it to an RPC server.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vigil.clock import Clock, RealClock
from vigil.errors import DatabaseUnavailable

LOG = logging.getLogger(__name__)


class Action(enum.Enum):
    """What the guard does now.

    KEEP: consuming, and the lease holds; check again after ``Decision.recheck_in``.
    STOP: consuming, but the lease ran out: stop the RPC server now, before anything else
        (the database may hang whatever we ask of it).
    JOIN: not consuming: try a join write; if it commits, start the RPC server.
    """

    KEEP = "keep"
    STOP = "stop"
    JOIN = "join"


@dataclass(frozen=True)
class Decision:
    action: Action
    recheck_in: float  # seconds until the guard must look again


def decide(consuming: bool, now: float, last_write: float | None, stop_after: float,
           check_interval: float) -> Decision:
    """The consumption rule, on one process's monotonic clock.

    ``last_write``: when the last committed report-path write (beat or join) began, or None if
    none has committed yet. A consuming conductor keeps consuming while
    ``now - last_write < stop_after`` and is told to look again no later than the lease's
    end, so that it stops on time however long ``check_interval`` is; a stopped one tries to
    join every ``check_interval``.
    """
    if not consuming:
        return Decision(Action.JOIN, check_interval)
    if last_write is None:
        return Decision(Action.STOP, check_interval)
    left = stop_after - (now - last_write)
    if left <= 0:
        return Decision(Action.STOP, check_interval)
    return Decision(Action.KEEP, min(check_interval, left))


class Server(Protocol):
    """The RPC server the guard drives (``vigil.conductor.manager._ReleasingServer`` over
    oslo.messaging): ``stop`` stops taking messages at once and leaves the messages in hand to
    finish by themselves; ``start`` may follow at once; ``wait`` waits for every message taken
    since the first start (the shutdown's)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait(self) -> None: ...


class ConsumptionGuard:
    """Starts and stops one RPC server by :func:`decide`, from its own thread.

    ``last_write`` reads the coalescer's last committed beat; ``join`` writes the conductor's
    report-path row (raising :class:`~vigil.errors.DatabaseUnavailable` when it cannot).
    Joins are timed from before they began, like beats. The guard's own thread never holds
    a lock across a database call, so a hung join delays only the guard's next resume.
    """

    def __init__(self, server: Server, *, last_write: Callable[[], float | None],
                 join: Callable[[], object], stop_after: float, check_interval: float,
                 clock: Clock | None = None) -> None:
        self._server = server
        self._last_write = last_write
        self._join = join
        self._stop_after = stop_after
        self._check_interval = check_interval
        self._clock = clock or RealClock()
        self._lock = threading.Lock()
        self._consuming = False
        self._started_once = False
        self._joined_at: float | None = None
        self._stopped = False  # shut down for good
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.stops = 0  # times the lease ran out (for tests and logs)
        self.resumes = 0

    @property
    def consuming(self) -> bool:
        with self._lock:
            return self._consuming

    def _lease_start(self) -> float | None:
        beats = [t for t in (self._last_write(), self._joined_at) if t is not None]
        return max(beats) if beats else None

    def step(self) -> Decision:
        """Apply the rule once; returns what was decided (the thread calls this in a loop)."""
        with self._lock:
            consuming = self._consuming
        decision = decide(consuming, self._clock.monotonic(), self._lease_start(),
                          self._stop_after, self._check_interval)
        if decision.action is Action.STOP:
            self._stop_consuming()
        elif decision.action is Action.JOIN:
            self._try_join()
        return decision

    def _stop_consuming(self) -> None:
        with self._lock:
            if not self._consuming:
                return
            self._consuming = False
            self.stops += 1
        LOG.error("report path: nothing committed for %.1f s (database or broker trouble); "
                  "not taking reports until a join write commits (other conductors get them)",
                  self._stop_after)
        self._server.stop()

    def _try_join(self) -> None:
        with self._lock:
            if self._stopped or self._consuming:
                return
            resuming = self._started_once
        # The old server is not waited for: its handlers (maybe stuck on the database) drain
        # by themselves (Server.stop), so consuming starts again as soon as a join commits.
        began = self._clock.monotonic()
        try:
            self._join()
        except DatabaseUnavailable as exc:
            LOG.debug("report path: join failed, still not consuming: %s", exc)
            return
        with self._lock:
            if self._stopped or self._consuming:
                return
            self._joined_at = began
            self._consuming = True
            self._started_once = True
        if resuming:
            self.resumes += 1
            LOG.warning("report path: joined again; taking reports again")
        self._server.start()

    def start(self) -> None:
        """Join and start consuming now if the database answers; then guard from a thread."""
        self._try_join()
        self._thread = threading.Thread(target=self._run, name="consumption-guard",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        timeout = self._check_interval
        while not self._clock.wait(self._halt, timeout):
            try:
                timeout = self.step().recheck_in
            except Exception:  # the guard must outlive anything; logged, retried next check
                LOG.exception("consumption guard step failed")
                timeout = self._check_interval

    def stop(self) -> bool:
        """Stop guarding and consuming, waiting for in-flight messages; True if it was
        consuming (so the server has been stopped and waited for here)."""
        self._halt.set()
        with self._lock:
            self._stopped = True
            was, self._consuming = self._consuming, False
        if self._thread is not None:
            self._thread.join(timeout=5)
        if was:
            self._server.stop()
            self._server.wait()
        return was
