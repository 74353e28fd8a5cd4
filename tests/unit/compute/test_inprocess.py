"""The whole boot / delete / evacuate flow in one process, as ``vigil up`` runs it: real
conductor, scheduler and agents over oslo.messaging's fake:// transport, fake virt driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.compute.helpers import make_conf
from vigil import launch, rpc
from vigil.compute import virt
from vigil.compute.agent import ComputeAgent
from vigil.compute.hypervisors import HypervisorsAPI
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI, settled
from vigil.compute.virt.fake import FakeDriver
from vigil.daemons import start_conductor, start_scheduler
from vigil.registry import Registry
from vigil.scheduler.rpcapi import SchedulerAPI


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    conf = make_conf(
        DEFAULT={"state_path": str(tmp_path), "report_interval": 0.2,
                 "service_down_time": 1.0, "transport_url": "fake://"},
        database={"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        conductor={"coalesce_interval": 0.05, "probe_interval": 0.1},
        compute={"instance_sync_interval": 0.3, "update_resources_interval": 0.3},
        # A long scan interval: a boot that is quick here was woken by the cast.
        scheduler={"pending_poll_interval": 30})
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    conductor, conductor_svc = start_conductor(conf, engine, transport, group)
    client = rpc.ConductorAPI(transport, timeout=5)
    scheduler, scheduler_svc = start_scheduler(conf, engine, transport, group, client)
    agents = {h: ComputeAgent(conf, h, transport, client, group,
                              driver=virt.load(conf, h, "fake")) for h in ("c1", "c2")}
    for a in agents.values():
        a.start()
    servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                         computes=ComputeAgentAPI(transport))
    try:
        yield {"engine": engine, "group": group, "agents": agents, "servers": servers,
               "registry": Registry(engine, group),
               "hypervisors": HypervisorsAPI(engine, group)}
    finally:
        for a in agents.values():
            a.stop()
        scheduler_svc.stop()
        scheduler.stop()
        conductor_svc.stop()
        conductor.stop()
        transport.cleanup()
        engine.dispose()


def local(agent: ComputeAgent) -> set[str]:
    assert isinstance(agent.driver, FakeDriver)
    return set(agent.driver.list_instances())


def test_boot_delete_and_evacuate_in_one_process(stack: dict[str, Any]) -> None:
    servers: ServersAPI = stack["servers"]
    agents: dict[str, ComputeAgent] = stack["agents"]
    hv: HypervisorsAPI = stack["hypervisors"]
    wait_for(lambda: sorted((v.node.host, v.state.value) for v in hv.list())
             == [("c1", "up"), ("c2", "up")], 10, "both hypervisors up")
    started = time.monotonic()
    uuids = [servers.create(name=f"vm{i}", flavor="m1.small").record.uuid for i in range(6)]
    for u in uuids:
        assert servers.wait(u, settled, timeout=10).status == "ACTIVE"
    assert time.monotonic() - started < 10  # woken by the cast, not the 30 s scan
    hosts = {u: servers.get(u).record.host for u in uuids}
    assert sorted(hosts.values()) == ["c1"] * 3 + ["c2"] * 3  # spread by free RAM
    assert local(agents["c1"]) == {u for u, h in hosts.items() if h == "c1"}
    assert {v.node.host: v.node.running_vms for v in hv.list()} == {"c1": 3, "c2": 3}

    doomed = next(u for u, h in hosts.items() if h == "c2")
    servers.delete(doomed)
    wait_for(lambda: doomed not in local(agents["c2"]), 5, "the terminate to reach c2")

    registry: Registry = stack["registry"]
    registry.update(registry.find("c1", "vigil-compute"), forced_down=True)
    on_c1 = [u for u, h in hosts.items() if h == "c1"]
    for u in on_c1:
        servers.evacuate(u)
    for u in on_c1:
        view = servers.wait(u, settled, timeout=10)
        assert (view.status, view.record.host) == ("ACTIVE", "c2")
    # c1's agent still runs (forced down is an operator's word, not a kill): its
    # reconciliation finds the instances placed elsewhere and destroys its copies.
    wait_for(lambda: not local(agents["c1"]), 5, "c1 to drop its stale copies")
    assert local(agents["c2"]) == set(uuids) - {doomed}
