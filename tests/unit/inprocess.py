"""The whole control plane in one process, as ``vigil up`` runs it: real conductor, scheduler
and fake-driver compute agents over oslo.messaging's fake:// transport, a ServersAPI in front,
and (``monitor=True``) the HA monitor in a thread. Shared by the in-process flow tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import make_conf
from vigil import launch, rpc
from vigil.compute.agent import ComputeAgent
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI
from vigil.compute.virt.fake import FakeDriver
from vigil.daemons.control import start_control_plane
from vigil.ha.monitor import Monitor
from vigil.launch.monitor import monitor_from
from vigil.launch.settings import compute_settings, virt_driver
from vigil.scheduler.rpcapi import SchedulerAPI
from vigil.servicegroup.api import ServiceGroup


def local(agent: ComputeAgent) -> set[str]:
    """The instances an agent's fake driver really runs."""
    assert isinstance(agent.driver, FakeDriver)
    return set(agent.driver.list_instances())


@dataclass
class Stack:
    conf: cfg.ConfigOpts
    engine: Engine
    group: ServiceGroup
    agents: dict[str, ComputeAgent]  # stopped at the end: replace a dead one's entry
    servers: ServersAPI
    # A started agent for a host (a restart); with a driver: one that kept its instances.
    new_agent: Callable[..., ComputeAgent]
    started_monitor: Monitor | None = None
    # The shared fake:// transport and the agents' conductor client (for extra members).
    transport: Any = None
    client: Any = None

    @property
    def monitor(self) -> Monitor:
        """The HA monitor running in a thread (``inprocess_stack(..., monitor=True)``)."""
        if self.started_monitor is None:
            raise RuntimeError("this stack runs no monitor: inprocess_stack(monitor=True)")
        return self.started_monitor


def base_sections(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Fast intervals: liveness, the conductor's coalescing, the agents' periodic tasks."""
    return {
        "DEFAULT": {"state_path": str(tmp_path), "report_interval": 0.2,
                    "service_down_time": 1.0, "transport_url": "fake://"},
        "database": {"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        "conductor": {"coalesce_interval": 0.05, "probe_interval": 0.1},
        "compute": {"instance_sync_interval": 0.3, "update_resources_interval": 0.3},
    }


@contextmanager
def inprocess_stack(tmp_path: Path, hosts: Iterable[str], *, monitor: bool = False,
                    **sections: dict[str, Any]) -> Iterator[Stack]:
    """Start the stack with one agent per host; ``sections`` add to (or override options of)
    ``base_sections``; everything is stopped on exit, the monitor first."""
    groups = base_sections(tmp_path)
    for name, values in sections.items():
        groups.setdefault(name, {}).update(values)
    conf = make_conf(**groups)
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    plane = start_control_plane(conf, engine, transport, group, rpc_timeout=5)
    client = plane.client

    def new_agent(host: str, driver: Any = None) -> ComputeAgent:
        a = ComputeAgent(compute_settings(conf), host, transport, client, group,
                         driver=driver or virt_driver(conf, host, "fake"))
        a.start()
        return a

    agents = {h: new_agent(h) for h in hosts}
    servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                         computes=ComputeAgentAPI(transport))
    stack = Stack(conf, engine, group, agents, servers, new_agent, transport=transport,
                  client=client)
    stop = threading.Event()
    thread = None
    if monitor:
        stack.started_monitor = monitor_from(conf, engine, group)
        thread = threading.Thread(target=stack.monitor.run, args=(stop,), daemon=True)
        thread.start()
    try:
        yield stack
    finally:
        stop.set()
        if thread is not None:
            thread.join(10)
        for a in agents.values():
            a.stop()
        plane.stop()
        transport.cleanup()
        engine.dispose()
