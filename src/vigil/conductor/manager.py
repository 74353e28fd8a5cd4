"""Conductor RPC endpoint and server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import rpc
from vigil.conductor.baremetal import BaremetalConductorManager
from vigil.conductor.coalescer import ReportCoalescer
from vigil.conductor.compute import ComputeConductorManager
from vigil.conductor.consumption import ConsumptionGuard
from vigil.db import services as services_db
from vigil.errors import ConfigError, DatabaseUnavailable, MessagingUnavailable
from vigil.objects.services import ReportVerdict, ServiceRecord
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.options import timing_from

LOG = logging.getLogger(__name__)


class ConductorManager:
    """What agents may ask of the database. Also usable in-process (see LocalConductorAPI)."""

    target = messaging.Target(version="1.0")

    def __init__(self, conf: cfg.ConfigOpts, engine: Engine, coalescer: ReportCoalescer) -> None:
        self._conf = conf
        self._engine = engine
        self.coalescer = coalescer

    def service_get_or_create(
        self, ctxt: dict[str, Any], host: str, binary: str, topic: str
    ) -> dict[str, Any]:
        record, created = services_db.service_get_or_create(
            self._engine, host, binary, topic, enabled=self._conf.enable_new_services
        )
        self.coalescer.forget_deleted(record.id)
        LOG.info("%s service %s/%s (id %d, version %d)",
                 "registered" if created else "re-registered", host, binary, record.id,
                 record.version)
        return record.to_primitive()

    def report_state(self, ctxt: dict[str, Any], service_id: int) -> str:
        return self.coalescer.add(int(service_id)).value

    def service_leave(self, ctxt: dict[str, Any], service_id: int) -> None:
        self.coalescer.discard(int(service_id))
        services_db.record_leave(self._engine, int(service_id))

    def probe(self, ctxt: dict[str, Any]) -> None:
        self.coalescer.probe()


class LocalConductorAPI:
    """ConductorAPI without messaging, for the conductor's own service record."""

    def __init__(self, manager: ConductorManager) -> None:
        self._m = manager

    def service_get_or_create(self, host: str, binary: str, topic: str) -> ServiceRecord:
        try:
            return ServiceRecord.from_primitive(
                self._m.service_get_or_create({}, host, binary, topic))
        except DatabaseUnavailable as exc:
            raise MessagingUnavailable(str(exc)) from exc

    def report_state(self, service_id: int, *, timeout: float | None = None) -> ReportVerdict:
        return ReportVerdict(self._m.report_state({}, service_id))  # in process: no wait

    def service_leave(self, service_id: int) -> None:
        self._m.service_leave({}, service_id)


class _ReleasingServer:
    """oslo.messaging RPC servers, one per consumption period, whose stop() really stops
    taking messages and whose restart waits for nothing.

    oslo.messaging's ``stop()`` only ends the polling loop: the consumer stays registered on
    the broker, which (prefetch unlimited by default) keeps handing this connection its share
    of the queue, to sit there unacknowledged until the connection closes. A conductor told to
    stop consuming would hold reports back rather than let the others take them. So stop also
    closes the listener's connection at once, which returns those messages to the queue.

    oslo.messaging starts a stopped server again only after ``wait()``, which returns once
    every in-flight handler has finished and the old connection is closed: during a database
    failover the handlers hang on the lost writer and closing a connection to a cut-off broker
    blocks, so a conductor resumed seconds after the database was back (8 s in issue 14's
    partition scenario, with every conductor stopped: no report got through for 12 s). So
    each start makes a new server, and a stopped one drains in a thread of its own; only the
    shutdown's ``wait()`` waits for them all.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._server: Any = None
        self._draining: list[threading.Thread] = []

    def start(self) -> None:
        server = self._make()
        server.start()
        self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        listener = getattr(server, "listener", None)
        if listener is not None:
            listener.cleanup()
        drain = threading.Thread(target=server.wait, name="rpc-server-drain", daemon=True)
        drain.start()
        self._draining = [t for t in self._draining if t.is_alive()] + [drain]

    def wait(self) -> None:
        for drain in self._draining:
            drain.join()


class Conductor:
    """The conductor's RPC server, its report coalescer and its report-path prober.

    ``group_factory`` builds the ServiceGroup that bare metal needs for batch liveness, on
    first use: the composition root hands it in, so the conductor never reaches up to build
    one itself.
    """

    def __init__(
        self, conf: cfg.ConfigOpts, engine: Engine, transport: messaging.Transport, *,
        group_factory: Callable[[], ServiceGroup],
    ) -> None:
        self.conf = conf
        self.host = conf.host
        max_gap = timing_from(conf).path_max_gap
        stop_after = stop_consuming_after(conf, max_gap.total_seconds())
        self.coalescer = ReportCoalescer(
            engine,
            conductor=conf.host,
            interval=conf.conductor.coalesce_interval,
            batch_size=conf.conductor.batch_size,
            path_max_gap=max_gap,
        )
        self.manager = ConductorManager(conf, engine, self.coalescer)
        # Bare metal needs batch liveness; its ServiceGroup is built on first use.
        self.baremetal = BaremetalConductorManager(engine, group_factory)
        endpoints = [self.manager, ComputeConductorManager(engine), self.baremetal]
        self._servers = _ReleasingServer(lambda: messaging.get_rpc_server(
            transport, rpc.conductor_target(server=conf.host), endpoints,
            executor="threading"))
        # The probe goes through the same transport to this conductor by name: if the broker
        # or this server's consumer is broken, no probe arrives and the path is not beaten.
        self._probe_client = messaging.get_rpc_client(
            transport, rpc.conductor_target(server=conf.host),
            timeout=conf.conductor.probe_interval * 2,
        )
        self._engine = engine
        # Consumes only while its writes commit (vigil.conductor.consumption): a conductor
        # that cannot write must not take reports away from those that can.
        self.guard = ConsumptionGuard(
            self._servers,
            last_write=lambda: self.coalescer.last_path_write,
            join=lambda: services_db.join_report_path(engine, conf.host, max_gap),
            stop_after=stop_after,
            check_interval=min(conf.conductor.probe_interval, stop_after / 4),
        )
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._started = False

    def start(self) -> None:
        self._started = True
        self.guard.start()
        self.coalescer.start()
        self._prober = threading.Thread(target=self._probe_loop, name="report-path-probe",
                                        daemon=True)
        self._prober.start()
        LOG.info("conductor %s listening on topic %s", self.host, rpc.CONDUCTOR_TOPIC)

    def _probe_loop(self) -> None:
        interval = self.conf.conductor.probe_interval
        while not self._stop.wait(interval):
            try:
                self._probe_client.prepare(retry=0).call({}, "probe")
            except Exception as exc:  # broker down or slow: the missing beat is the signal
                LOG.debug("report-path probe failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if not self._started:
            return  # oslo.messaging's wait() blocks forever on a server never started
        try:
            self.guard.stop()
        except Exception:  # shutting down; a broken transport must not block the exit
            LOG.exception("error stopping the conductor RPC server")
        if self.coalescer.stop():
            # Every report taken is written: the row goes, so that it does not read as a
            # conductor that stopped beating while still taking reports.
            try:
                services_db.leave_report_path(self._engine, self.host)
            except DatabaseUnavailable as exc:
                LOG.warning("could not remove this conductor's report-path row: %s", exc)
        if self._prober is not None:
            self._prober.join(timeout=5)


def stop_consuming_after(conf: cfg.ConfigOpts, max_gap: float) -> float:
    """``[conductor] stop_consuming_after``, checked against the intervals it must sit between.

    Above one report-path beat (``probe_interval + coalesce_interval``, or a healthy conductor
    would stop between two beats), and below the path's gap tolerance (readers assume a
    conductor whose beats stopped consumed for no longer than that; the guard's check and the
    server's stop take a moment more). Unset: halfway between the two, at most 5 s (how long
    a wedged conductor may swallow reports).
    """
    beat = conf.conductor.probe_interval + conf.conductor.coalesce_interval
    configured = conf.conductor.stop_consuming_after
    value = float(configured) if configured is not None else min(5.0, (beat + max_gap) / 2)
    if not beat < value < max_gap:
        raise ConfigError(
            f"[conductor] stop_consuming_after ({value:g}) must lie above one report-path "
            f"beat (probe_interval + coalesce_interval = {beat:g} s) and below the report "
            f"path's gap tolerance ({max_gap:g} s, from service_down_time, report_interval "
            "and coalesce_interval)")
    return value
