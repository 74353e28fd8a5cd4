"""``vigil up``: every daemon in one process on the embedded defaults.

SQLite in ``state_path``, in-process messaging (``fake://``), N simulated compute hosts that
report through the same conductor code path as real ones. State survives a restart: the same
host names revive the same rows.
"""

from __future__ import annotations

import logging

from oslo_config import cfg

from vigil import launch, rpc
from vigil.compute import agent
from vigil.daemons import start_conductor
from vigil.service import Service

LOG = logging.getLogger(__name__)


def compute_names(n: int) -> list[str]:
    return [f"compute-{i}" for i in range(1, n + 1)]


def run_up(conf: cfg.ConfigOpts, *, computes: int) -> int:
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    with launch.stop_on_signals() as stop:
        conductor, conductor_svc = start_conductor(conf, engine, transport, group)
        client = rpc.ConductorAPI(transport, timeout=conf.rpc_response_timeout)
        services: list[Service] = []
        for host in compute_names(computes):
            svc = agent.make_service(conf, host, client, group)
            svc.start()
            services.append(svc)
        LOG.info("Vigil is up: %d compute hosts, database %s, driver %s. "
                 "In another terminal: vigil service list. Ctrl-C stops.",
                 computes, engine.url.render_as_string(), conf.servicegroup_driver)
        stop.wait()
        for svc in services:
            svc.stop()
        conductor_svc.stop()
        conductor.stop()
    group.driver.close()
    LOG.info("Vigil stopped")
    return 0
