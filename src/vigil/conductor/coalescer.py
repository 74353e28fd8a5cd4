"""Coalesced state reports.

Nova's db driver issues one UPDATE per service per report_interval: 10,000 services at 10 s is
1,000 writes a second, and when the database falls behind, live services are declared dead.
Here reports only add an id to a set; every ``interval`` one flush writes the whole set in
``ceil(n / batch_size)`` UPDATE statements with the database's clock.

A flush that fails drops its ids: writing them later would stamp an old report with a new time
and hide a death that happened meanwhile. The agents report again next interval; meanwhile the
report path is unhealthy, so readers say UNKNOWN rather than DOWN.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from vigil import daemon_metrics
from vigil.clock import Clock, RealClock
from vigil.db import services as services_db
from vigil.errors import DatabaseUnavailable
from vigil.objects.services import ReportVerdict

LOG = logging.getLogger(__name__)


@dataclass
class FlushStats:
    flushes: int = 0
    reports: int = 0
    failures: int = 0
    last_size: int = 0


class ReportCoalescer:
    """Collects heartbeats and the report-path probe; writes them once per tick."""

    def __init__(
        self,
        engine: Engine,
        *,
        conductor: str,
        interval: float,
        batch_size: int,
        path_max_gap: dt.timedelta,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._conductor = conductor
        self._interval = interval
        self._batch_size = batch_size
        self._path_max_gap = path_max_gap
        self._clock = clock or RealClock()
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._probed = False
        self._deleted: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._last_path_write: float | None = None
        self._last_flush_ok = True
        self.stats = FlushStats()

    @property
    def last_path_write(self) -> float | None:
        """When (this clock's monotonic time, taken *before* the write began) the last
        report-path beat that was committed started: the conductor's consumption lease runs
        from it (:mod:`vigil.conductor.consumption`). Taken before, so that it never lies
        after the database's ``last_beat`` that readers judge by."""
        return self._last_path_write

    # -- called from RPC handlers; never touch the database -----------------------------------
    def add(self, service_id: int) -> ReportVerdict:
        """Queue a heartbeat. DELETED if the row was found deleted by an earlier flush."""
        with self._lock:
            if service_id in self._deleted:
                return ReportVerdict.DELETED
            self._pending.add(service_id)
        return ReportVerdict.OK

    def probe(self) -> None:
        """The report path delivered a probe; the next flush records the path as healthy."""
        with self._lock:
            self._probed = True

    def discard(self, service_id: int) -> None:
        """Drop a queued heartbeat: a report flushed after a clean leave would undo the leave."""
        with self._lock:
            self._pending.discard(service_id)

    def forget_deleted(self, service_id: int) -> None:
        """A deleted row was revived (service restarted): accept its reports again."""
        with self._lock:
            self._deleted.discard(service_id)

    # -- the writer ---------------------------------------------------------------------------
    def flush(self) -> int:
        """Write what has been gathered. Returns the number of heartbeats written."""
        with self._lock:
            ids, self._pending = self._pending, set()
            probed, self._probed = self._probed, False
        started = time.perf_counter()
        began = self._clock.monotonic()
        try:
            missing = services_db.record_reports(self._engine, sorted(ids), self._batch_size)
            if probed:
                services_db.beat_report_path(self._engine, self._conductor, self._path_max_gap)
        except DatabaseUnavailable as exc:
            self._last_flush_ok = False
            daemon_metrics.FLUSH_FAILURES.inc()
            self.stats.failures += 1
            if self._failing_since is None:
                self._failing_since = self._clock.monotonic()
                LOG.error("cannot write state reports, dropping %d; will keep trying: %s",
                          len(ids), exc)
            return 0
        self._last_flush_ok = True
        if probed:
            self._last_path_write = began
        daemon_metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        daemon_metrics.FLUSH_BATCH.observe(len(ids))
        if self._failing_since is not None:
            LOG.warning("state reports are being written again after %.1f s",
                        self._clock.monotonic() - self._failing_since)
            self._failing_since = None
        if missing:
            LOG.warning("reports from deleted services %s ignored", sorted(missing))
            with self._lock:
                self._deleted.update(missing)
        self.stats.flushes += 1
        self.stats.reports += len(ids) - len(missing)
        self.stats.last_size = len(ids)
        return len(ids) - len(missing)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="report-coalescer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._clock.wait(self._stop, self._interval):
            try:
                self.flush()
            except Exception:  # the writer loop must survive anything; it is logged
                LOG.exception("unexpected error flushing state reports")

    def stop(self) -> bool:
        """Stop the writer after a last flush; True if that flush wrote what it held (then
        no report taken by this conductor is lost, and its report-path row may go)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                return False  # wedged in a write: what it holds is not known to be written
        self.flush()
        return self._last_flush_ok
