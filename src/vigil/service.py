"""The service runner: register, join the group, report every interval, leave on stop.

Failure rules (the hazards this module exists for):
- a failed report is logged once, retried every interval, and its recovery is logged; the
  runner never dies from a report error (``except Exception`` only at the loop's edge);
- if the conductor is unreachable at start, registration is retried with backoff in the
  background: the process comes up and recovers by itself when the conductor does;
- a row deleted while running is logged clearly (an operator deleted a live service);
- reports carry +/-10% jitter so a fleet restarted together does not beat in lockstep;
- the two facts a report makes are sent by two loops: the heartbeat to the liveness backend
  (etcd, ZooKeeper, Redis, memcached: "this process is alive") never waits behind the state
  report to a conductor (RPC), and that report waits at most one interval. A conductor cut off
  with a report in its hands (a partitioned controller) used to hold the one loop for
  ``rpc_response_timeout``: the backend's key expired and a live host was fenced (issue 14's
  partition scenario).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from typing import Protocol

from vigil.clock import Clock, RealClock
from vigil.errors import Unavailable
from vigil.objects.liveness import REPORT_JITTER as JITTER
from vigil.objects.services import ReportVerdict, ServiceRecord

LOG = logging.getLogger(__name__)

# Set by ``vigil supervisor`` for the services it runs: a file this process touches after every
# state report that got through, so its supervisor can tell "alive and reporting" from "alive
# but stuck" without reading the database (vigil.supervisor.units).
REPORT_FILE_ENV = "VIGIL_REPORT_FILE"


class ConductorClient(Protocol):
    """What the runner asks of the conductor (:class:`vigil.rpc.ConductorAPI` over RPC)."""

    def service_get_or_create(self, host: str, binary: str, topic: str) -> ServiceRecord: ...

    def report_state(self, service_id: int, *,
                     timeout: float | None = None) -> ReportVerdict: ...

    def service_leave(self, service_id: int) -> None: ...


class GroupMembership(Protocol):
    """What the runner asks of the liveness backend: the agent side of the ServiceGroup facade
    (:class:`vigil.servicegroup.api.ServiceGroup` in production). Only these three calls: an
    agent keeps itself alive, it never reads anyone's liveness (that side needs the database,
    which agents never open)."""

    def join(self, member: str, group: str) -> None: ...

    def heartbeat(self, member: str, group: str) -> None: ...

    def leave(self, member: str, group: str) -> None: ...


class Service:
    """One running service (a compute agent, the conductor itself, ...)."""

    def __init__(
        self,
        *,
        host: str,
        binary: str,
        topic: str,
        conductor: ConductorClient,
        group: GroupMembership,
        report_interval: float,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.binary = binary
        self.topic = topic
        self._conductor = conductor
        self._group = group
        self._interval = report_interval
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat_thread: threading.Thread | None = None
        # When the last heartbeat to the liveness backend got through (this clock's monotonic).
        self._last_beat: float | None = None
        self.record: ServiceRecord | None = None
        self.registered = threading.Event()
        self.reports_ok = 0
        self._failing_since: float | None = None
        self._failures = 0
        self._deleted_logged = False
        self._joined = False
        self._report_file = os.environ.get(REPORT_FILE_ENV) or None

    @property
    def name(self) -> str:
        return f"{self.binary}@{self.host}"

    def next_delay(self) -> float:
        """The wait before the next report: the interval with +/-10% jitter."""
        return self._interval * (1.0 + self._rng.uniform(-JITTER, JITTER))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"report-{self.name}",
                                        daemon=True)
        self._beat_thread = threading.Thread(target=self._beat_loop, name=f"beat-{self.name}",
                                             daemon=True)
        self._thread.start()
        self._beat_thread.start()

    def register(self) -> bool:
        """Get or create the row and join the group. False (logged) if a backend is down."""
        try:
            self.record = self._conductor.service_get_or_create(self.host, self.binary,
                                                                self.topic)
        except Unavailable as exc:
            self._note_failure("register", exc)
            return False
        self._deleted_logged = False
        try:
            self._group.join(self.host, self.topic)
            self._joined = True
        except Unavailable as exc:
            # The row is registered; the liveness backend is retried by every heartbeat.
            self._note_failure("join the liveness backend", exc)
        LOG.info("%s registered as service %d (version %d)", self.name, self.record.id,
                 self.record.version)
        self.registered.set()
        return True

    def report_once(self) -> bool:
        """One round, as the two loops make it: the heartbeat, then the state report."""
        if self.record is None:
            return self.register()
        beat = self.beat()
        return self.report_state() and beat

    def beat(self) -> bool:
        """The heartbeat to the liveness backend ("this process is alive"). Never waits for
        the conductor."""
        try:
            self._group.heartbeat(self.host, self.topic)
        except Unavailable as exc:
            self._last_beat = None
            self._note_failure("heartbeat to the liveness backend", exc)
            return False
        self._last_beat = self._clock.monotonic()
        return True

    def report_state(self) -> bool:
        """The state report to a conductor (RPC liveness), bounded by one report interval: a
        conductor that holds it longer is skipped by the next report, which the broker gives
        to another."""
        assert self.record is not None
        try:
            verdict = self._conductor.report_state(self.record.id,
                                                   timeout=max(self._interval, 1.0))
        except Unavailable as exc:
            self._note_failure("report state", exc)
            return False
        if verdict is ReportVerdict.DELETED:
            if not self._deleted_logged:
                LOG.error(
                    "%s: service row %d was deleted while this service is running; its "
                    "reports are ignored. Restart the service to register it again.",
                    self.name, self.record.id)
                self._deleted_logged = True
            return False
        if not self._beat_fresh():
            return False  # half of the report is not getting out: not "reporting"
        self._note_success()
        self.reports_ok += 1
        self._mark_report()
        return True

    def _beat_fresh(self) -> bool:
        """A heartbeat got through within the last few intervals. A time, not a flag: a beat
        that hangs (a backend that accepts the connection and never answers) must stop this
        service counting as "reporting" for its supervisor too, as a failed one does."""
        return (self._last_beat is not None
                and self._clock.monotonic() - self._last_beat <= 3 * self._interval)

    @property
    def reporting(self) -> bool:
        """Whether this service's reports are getting out (its last one did)."""
        return self.reports_ok > 0 and self._failing_since is None and self._beat_fresh()

    def _mark_report(self) -> None:
        if self._report_file is None:
            return
        with contextlib.suppress(OSError):  # a full disk must not stop the reports themselves
            with open(self._report_file, "a"):
                pass
            os.utime(self._report_file)

    def _note_failure(self, what: str, exc: Exception) -> None:
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = self._clock.monotonic()
            LOG.warning("%s: cannot %s (will keep retrying): %s", self.name, what, exc)

    def _note_success(self) -> None:
        if self._failing_since is not None:
            LOG.warning("%s: reporting again after %d failed attempts over %.1f s",
                        self.name, self._failures, self._clock.monotonic() - self._failing_since)
            self._failing_since = None
            self._failures = 0

    def _run(self) -> None:
        backoff = min(1.0, self._interval)
        while not self._stop.is_set():
            try:
                if self.record is None:
                    if self.register():
                        self.report_once()
                    else:
                        # Back off up to one report interval while the conductor is away.
                        self._clock.wait(self._stop, backoff)
                        backoff = min(backoff * 2, self._interval)
                        continue
                else:
                    self.report_state()
            except Exception:  # the reporter must outlive any bug in one report
                LOG.exception("%s: unexpected error in state report", self.name)
            self._clock.wait(self._stop, self.next_delay())

    def _beat_loop(self) -> None:
        """Heartbeats to the liveness backend, every interval, once registered (joined)."""
        while not self._stop.is_set():
            if not self.registered.is_set():
                # The report loop registers (and beats once at once); look again shortly.
                self._clock.wait(self._stop, min(self._interval, 0.5))
                continue
            try:
                self.beat()
            except Exception:  # the heartbeat must outlive any bug in one beat
                LOG.exception("%s: unexpected error in heartbeat", self.name)
            self._clock.wait(self._stop, self.next_delay())

    def stop(self, *, leave: bool = True) -> None:
        """Stop reporting; with ``leave`` the service leaves its group (shows down at once)."""
        self._stop.set()
        for thread in (self._thread, self._beat_thread):
            if thread is not None:
                thread.join(timeout=max(5.0, self._interval * 2))
        if not leave or self.record is None:
            return
        try:
            self._group.leave(self.host, self.topic)
        except Unavailable as exc:
            LOG.warning("%s: could not leave the liveness backend: %s", self.name, exc)
        try:
            self._conductor.service_leave(self.record.id)
            LOG.info("%s left group %s", self.name, self.topic)
        except Unavailable as exc:
            LOG.warning("%s: could not record the leave (it will show down after "
                        "service_down_time): %s", self.name, exc)
