"""``/metrics``: Prometheus exposition of the fleet and of the API, correct under any number of
API workers.

Two kinds of figures, kept apart because they add up differently across processes:

* **The fleet's state**, read from the database at scrape time (:class:`FleetCollector`):
  services by binary and state, the report path's health, recoveries by phase and status,
  fences by result, evacuations by status, quarantined and maintenance hosts, the HA leases'
  epochs. Every worker reads the
  same rows, so whichever worker answers the scrape gives the same numbers: nothing is kept in
  a process, nothing needs summing. Counters (fences) are counts of rows that are never
  deleted, so they only grow.
* **The API's own latency** (``vigil_api_request_duration_seconds`` by method, route template
  and status), observed in each worker by :class:`MetricsMiddleware`. With several workers,
  each writes its observations to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
  mode, which ``vigil api --workers`` sets up and a gunicorn unit must set) and the scrape sums
  every worker's files; a single process keeps them in memory.

A scrape costs five grouped SELECTs and one liveness snapshot (three statements), whatever the
fleet's size. A database that does not answer gives ``vigil_database_up 0`` and no fleet
figures rather than an error, so Prometheus still records the API's own metrics.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.db import services as services_db
from vigil.db._query import translate_errors
from vigil.db.ha_models import HaLease, Host, Recovery, RecoveryEvacuation, RecoveryEvent
from vigil.errors import VigilError
from vigil.objects.liveness import State
from vigil.registry import Registry

LOG = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The recovery events that end a fence attempt, and the result label each gives.
FENCE_RESULTS = {"fenced": "success", "fence_failed": "failure"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class FleetCollector(Collector):
    """The fleet's figures, read from the database at each scrape (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vigil_database_up",
                               "1 if the database answered this scrape's reads, else 0")
        try:
            families = list(self._families())
        except VigilError as exc:  # the database's errors, translated (Unavailable & co.)
            LOG.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        services = GaugeMetricFamily(
            "vigil_services", "Services by binary and liveness state (up, down, unknown)",
            labels=["binary", "state"])
        group = self.registry.group
        snap = services_db.snapshot(self.registry.engine)
        states = group.states(snap)
        counts = Counter((s.binary, states[s.id].value) for s in snap.services)
        for binary in sorted({b for b, _ in counts}):
            for state in State:
                services.add_metric([binary, state.value], counts[(binary, state.value)])
        yield services
        # The report path (agents -> messaging -> conductor -> database), as readers judge it:
        # a stale service reads "down" only after a whole service_down_time of health.
        view = group.view(snap)
        since = view.reports_healthy_since
        healthy = 0.0 if since is None else max(0.0, (view.now - since).total_seconds())
        yield GaugeMetricFamily(
            "vigil_report_path_up",
            "1 if some conductor's report path is beating (reports get through), else 0",
            value=0 if since is None else 1)
        yield GaugeMetricFamily(
            "vigil_report_path_healthy_seconds",
            "How long reports have been getting through without a gap (0 when not); stale "
            "services read 'unknown', not 'down', until this reaches service_down_time",
            value=healthy)
        yield from _database_families(self.registry.engine)


@translate_errors
def _database_families(engine: Engine) -> Iterator[Metric]:
    with engine.connect() as conn:
        recoveries = conn.execute(select(Recovery.phase, Recovery.status, func.count())
                                  .group_by(Recovery.phase, Recovery.status)).all()
        fences = conn.execute(select(RecoveryEvent.kind, func.count())
                              .where(RecoveryEvent.kind.in_(list(FENCE_RESULTS)))
                              .group_by(RecoveryEvent.kind)).all()
        evacuations = conn.execute(select(RecoveryEvacuation.status, func.count())
                                   .group_by(RecoveryEvacuation.status)).all()
        quarantined, maintenance = conn.execute(select(
            func.count(Host.quarantined_at),
            func.coalesce(func.sum(case((Host.maintenance, 1), else_=0)), 0))).one()
        leases = conn.execute(select(HaLease.name, HaLease.epoch)).all()
    family = GaugeMetricFamily("vigil_recoveries", "Recoveries by phase and status",
                               labels=["phase", "status"])
    for phase, status, count in recoveries:
        family.add_metric([phase, status], count)
    yield family
    counter = CounterMetricFamily("vigil_fences", "Finished fence attempts by result",
                                  labels=["result"])
    by_kind = dict(fences)
    for kind, result in FENCE_RESULTS.items():
        counter.add_metric([result], by_kind.get(kind, 0))
    yield counter
    family = GaugeMetricFamily("vigil_evacuations", "Instance evacuations by status",
                               labels=["status"])
    for status, count in evacuations:
        family.add_metric([status], count)
    yield family
    yield GaugeMetricFamily("vigil_hosts_quarantined",
                            "Hosts quarantined (fenced, not yet released)", value=quarantined)
    yield GaugeMetricFamily("vigil_hosts_maintenance", "Hosts in maintenance",
                            value=int(maintenance))
    family = GaugeMetricFamily("vigil_leader_epoch",
                               "Epoch (fencing token) of each HA lease, e.g. the monitor's",
                               labels=["lease"])
    for name, epoch in leases:
        family.add_metric([name], epoch)
    yield family


class ApiMetrics:
    """One app's metrics: its latency histogram and the registry a scrape renders."""

    def __init__(self, registry: Registry) -> None:
        self.latency = Histogram(
            "vigil_api_request_duration_seconds",
            "Time to answer an API request, by method, route template and status",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS,
            # In no global registry: each app renders its own (tests build many apps in one
            # process). Multiprocess, the values also go to files, collected by render().
            registry=None)
        self.fleet = FleetCollector(registry)

    def render(self) -> bytes:
        """The exposition text: this scrape's fleet figures and every worker's latency."""
        scrape = CollectorRegistry(auto_describe=True)
        if multiprocess():
            MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]
        else:
            scrape.register(_Single(self.latency))
        scrape.register(self.fleet)
        return bytes(generate_latest(scrape))


class _Single(Collector):
    def __init__(self, metric: Histogram) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        return iter(self.metric.collect())


class MetricsMiddleware:
    """Observes every HTTP request's latency under its route template (``/v2.1/os-services/
    {service_id}``, not the id: one series per route, not per object)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status[0])).observe(
                self.clock() - started)
