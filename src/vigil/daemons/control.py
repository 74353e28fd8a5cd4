"""``vigil conductor``, ``vigil compute`` and ``vigil scheduler``, and the control plane ``vigil
up`` runs in one process (see :mod:`vigil.daemons`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import daemon_metrics, launch, rpc
from vigil.compute import agent
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.conductor.manager import Conductor, LocalConductorAPI
from vigil.ha.hostproc import write_record
from vigil.names import CONDUCTOR_BINARY, CONDUCTOR_TOPIC, SCHEDULER_BINARY, SCHEDULER_TOPIC
from vigil.scheduler.manager import Scheduler
from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup
from vigil.signals import stop_on_signals

LOG = logging.getLogger(__name__)


def start_conductor(conf: cfg.ConfigOpts, engine: Engine, transport: messaging.Transport,
                    group: ServiceGroup) -> tuple[Conductor, Service]:
    """Start the conductor and register it as a service of its own (directly, no RPC)."""
    conductor = Conductor(conf, engine, transport,
                          group_factory=lambda: launch.group_from(conf, engine))
    conductor.start()
    svc = Service(host=conf.host, binary=CONDUCTOR_BINARY, topic=CONDUCTOR_TOPIC,
                  conductor=LocalConductorAPI(conductor.manager), group=group,
                  report_interval=conf.report_interval)
    svc.start()
    return conductor, svc


def run_conductor(conf: cfg.ConfigOpts) -> int:
    engine = launch.engine_from(conf, require_schema=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    daemon_metrics.serve(conf.conductor.metrics_port, conf.metrics_host)
    with stop_on_signals(conf) as stop:
        conductor, svc = start_conductor(conf, engine, transport, group)
        stop.wait()
        svc.stop()
        conductor.stop()
    group.driver.close()
    return 0


def run_compute(conf: cfg.ConfigOpts, host: str) -> int:
    transport = rpc.get_transport(conf)
    conductor = rpc.report_client(conf, transport)
    group = launch.group_from(conf)
    # This process (its group, with its process-driver instances) is the host: recorded for
    # the HA monitor's process fence agent.
    write_record(conf.state_path, host)
    with stop_on_signals(conf) as stop:
        compute = agent.ComputeAgent(conf, host, transport, conductor, group)
        compute.start()
        stop.wait()
        compute.stop()
    group.driver.close()
    return 0


def start_scheduler(conf: cfg.ConfigOpts, engine: Engine, transport: messaging.Transport,
                    group: ServiceGroup, conductor: ConductorClient,
                    host: str | None = None) -> tuple[Scheduler, Service]:
    """Start a scheduler (RPC server and worker) and its service record, reported through the
    conductor like any agent's."""
    scheduler = Scheduler(conf, engine, group, transport, computes=ComputeAgentAPI(transport),
                          host=host)
    scheduler.start()
    svc = Service(host=host or conf.host, binary=SCHEDULER_BINARY, topic=SCHEDULER_TOPIC,
                  conductor=conductor, group=group, report_interval=conf.report_interval)
    svc.start()
    return scheduler, svc


@dataclass
class ControlPlane:
    """A conductor and a scheduler in this process, with the conductor client the agents use
    (``vigil up``, the in-process tests, the boot benchmark)."""

    conductor: Conductor
    conductor_service: Service
    scheduler: Scheduler
    scheduler_service: Service
    client: rpc.ConductorAPI

    def stop(self) -> None:
        """The scheduler first (it reports through the conductor), then the conductor."""
        self.scheduler_service.stop()
        self.scheduler.stop()
        self.conductor_service.stop()
        self.conductor.stop()


def start_control_plane(conf: cfg.ConfigOpts, engine: Engine, transport: messaging.Transport,
                        group: ServiceGroup, *, rpc_timeout: float) -> ControlPlane:
    conductor, conductor_svc = start_conductor(conf, engine, transport, group)
    client = rpc.ConductorAPI(transport, timeout=rpc_timeout)
    scheduler, scheduler_svc = start_scheduler(conf, engine, transport, group, client)
    return ControlPlane(conductor, conductor_svc, scheduler, scheduler_svc, client)


def run_scheduler(conf: cfg.ConfigOpts) -> int:
    engine = launch.engine_from(conf, require_schema=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    conductor = rpc.report_client(conf, transport)
    with stop_on_signals(conf) as stop:
        scheduler, svc = start_scheduler(conf, engine, transport, group, conductor)
        stop.wait()
        svc.stop()
        scheduler.stop()
    group.driver.close()
    return 0
