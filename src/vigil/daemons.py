"""The long-running processes: ``vigil conductor`` and ``vigil compute``."""

from __future__ import annotations

import logging

from oslo_config import cfg

from vigil import launch, rpc
from vigil.compute import agent
from vigil.conductor.manager import Conductor, LocalConductorAPI
from vigil.service import Service

LOG = logging.getLogger(__name__)

CONDUCTOR_BINARY = "vigil-conductor"
CONDUCTOR_TOPIC = "conductor"


def start_conductor(conf: cfg.ConfigOpts, engine: object, transport: object,
                    group: object) -> tuple[Conductor, Service]:
    """Start the conductor and register it as a service of its own (directly, no RPC)."""
    conductor = Conductor(conf, engine, transport)  # type: ignore[arg-type]
    conductor.start()
    svc = Service(host=conf.host, binary=CONDUCTOR_BINARY, topic=CONDUCTOR_TOPIC,
                  conductor=LocalConductorAPI(conductor.manager), group=group,  # type: ignore[arg-type]
                  report_interval=conf.report_interval)
    svc.start()
    return conductor, svc


def run_conductor(conf: cfg.ConfigOpts) -> int:
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    with launch.stop_on_signals() as stop:
        conductor, svc = start_conductor(conf, engine, transport, group)
        stop.wait()
        svc.stop()
        conductor.stop()
    group.driver.close()
    return 0


def run_compute(conf: cfg.ConfigOpts, host: str) -> int:
    transport = rpc.get_transport(conf)
    conductor = rpc.ConductorAPI(transport, timeout=conf.rpc_response_timeout)
    group = launch.group_from(conf)
    with launch.stop_on_signals() as stop:
        svc = agent.make_service(conf, host, conductor, group)
        svc.start()
        stop.wait()
        svc.stop()
    group.driver.close()
    return 0


def run_api(conf: cfg.ConfigOpts) -> int:
    """``vigil api``: the REST API on [api] listen:port until SIGTERM/SIGINT."""
    from vigil.api.app import create_app_from_conf
    from vigil.api.server import ApiServer

    server = ApiServer(create_app_from_conf(conf), conf.api.listen, conf.api.port)
    with launch.stop_on_signals() as stop:
        server.start()
        LOG.info("Vigil API listening on %s (auth_strategy %s)", server.url,
                 conf.api.auth_strategy)
        print(f"Vigil API on {server.url}", flush=True)
        stop.wait()
        server.stop()
    return 0
