"""The daemons' own Prometheus metrics: what only the process doing the work can see.

The API's ``/metrics`` reads the fleet's state from the database (:mod:`vigil.api.metrics`);
two figures are not in any table, because they are about the work itself:

* the conductor's report writer: how long each flush of coalesced heartbeats takes, how many
  it carried, and how many failed (``vigil_conductor_flush_*``) — the first sign of a database
  that is falling behind the fleet's heartbeats, long before a service looks stale;
* the HA monitor's recoveries: when each step committed, counted from the recovery's opening
  (``vigil_recovery_step_seconds`` by event) — the phase durations an operator compares with
  the failover figures in docs/benchmarks.md.

Each daemon serves them on its own port (``[conductor] metrics_port``, ``[ha] metrics_port``;
0, the default, serves nothing) with prometheus_client's HTTP server, beside the process's
standard ``process_*`` and ``python_*`` figures. Instruments are module-level (one process, one
set); ``vigil up``, which runs both daemons in one process, shares them.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Histogram, start_http_server

LOG = logging.getLogger(__name__)

FLUSH_SECONDS = Histogram(
    "vigil_conductor_flush_seconds",
    "Time to write one tick's coalesced state reports (and the report-path beat).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
FLUSH_BATCH = Histogram(
    "vigil_conductor_flush_reports",
    "State reports carried by one flush.",
    buckets=(0, 1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000))
FLUSH_FAILURES = Counter(
    "vigil_conductor_flush_failures",
    "Flushes that could not write (database unavailable); their reports were dropped.")
RECOVERY_STEP_SECONDS = Histogram(
    "vigil_recovery_step_seconds",
    "When each step of a recovery committed, in seconds since the recovery opened.",
    ["event"],
    buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800))

_served: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def serve(port: int, host: str) -> None:
    """Serve this process's metrics on ``host:port`` (once per port; 0: not at all)."""
    if port <= 0:
        return
    with _lock:
        if port in _served:
            return
        _server, thread = start_http_server(port, addr=host)
        _served[port] = thread
    LOG.info("metrics on http://%s:%d/metrics", host, port)
