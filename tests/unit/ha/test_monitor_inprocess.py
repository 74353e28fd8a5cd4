"""The monitor end to end in one process, as ``vigil up`` runs it: real conductor, scheduler
and fake-driver agents over fake://, the db liveness driver, the simulated fence agent.

A host "dies" by its agent stopping without leaving (its heartbeat goes stale while the report
path stays healthy: DOWN). The monitor must disable, fence, force down and evacuate it, leave a
non-evacuable instance alone, and re-enable the host when its agent comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.compute.helpers import make_conf
from vigil import launch, rpc
from vigil.compute import virt
from vigil.compute.agent import ComputeAgent
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI, settled
from vigil.compute.virt.fake import FakeDriver
from vigil.daemons import start_conductor, start_scheduler
from vigil.db import api as db
from vigil.db import ha_api
from vigil.ha.fence.simulated import SimulatedFence
from vigil.ha.monitor import Monitor, monitor_from
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
        scheduler={"pending_poll_interval": 0.2},
        ha={"detection_grace": 0.3, "poll_interval": 0.1, "lease_ttl": 2.0,
            "allow_unproven_death": True, "fence_agent": "simulated"})
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    conductor, conductor_svc = start_conductor(conf, engine, transport, group)
    client = rpc.ConductorAPI(transport, timeout=5)
    scheduler, scheduler_svc = start_scheduler(conf, engine, transport, group, client)

    def agent(host: str) -> ComputeAgent:
        a = ComputeAgent(conf, host, transport, client, group, driver=virt.load(conf, host,
                                                                                  "fake"))
        a.start()
        return a

    agents = {h: agent(h) for h in ("c1", "c2", "c3")}
    servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                         computes=ComputeAgentAPI(transport))
    stop = threading.Event()
    monitor = monitor_from(conf, engine, group)
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield {"conf": conf, "engine": engine, "agents": agents, "servers": servers,
               "monitor": monitor, "new_agent": agent}
    finally:
        stop.set()
        thread.join(10)
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


def test_monitor_recovers_a_dead_host_and_re_enables_it(stack: dict[str, Any]) -> None:
    servers: ServersAPI = stack["servers"]
    engine = stack["engine"]
    agents: dict[str, ComputeAgent] = stack["agents"]
    monitor: Monitor = stack["monitor"]
    wait_for(lambda: monitor.election.is_leader(), 10, "a leader")
    wait_for(lambda: len(db.snapshot(engine, topic="compute").services) == 3, 10, "3 hosts")
    moving = [servers.create(name=f"vm{i}", flavor="m1.tiny", host="c1").record.uuid
              for i in range(2)]
    pinned = servers.create(name="pinned", flavor="m1.tiny", host="c1",
                            evacuable=False).record.uuid
    for u in [*moving, pinned]:
        assert servers.wait(u, settled, timeout=10).status == "ACTIVE"
    assert not ha_api.recoveries(engine)  # healthy fleet: nothing opened

    agents["c1"].stop(leave=False)  # the host dies: no more reports, no clean leave
    rec = wait_for(lambda: next(iter(ha_api.recoveries(engine, host="c1")), None), 15,
                   "a recovery of c1")
    rec = wait_for(lambda: (r := ha_api.recovery_get(engine, rec.id)).phase
                   == ha_api.EVACUATED and r, 20, "c1 evacuated")
    assert rec.status == ha_api.WAITING and rec.fence_attempts == 1
    for u in moving:
        view = servers.get(u)
        assert view.status == "ACTIVE" and view.record.host in ("c2", "c3"), view.to_dict()
        assert u in local(agents[view.record.host])
    assert servers.get(pinned).record.host == "c1"  # not evacuable: left alone
    svc = db.service_get_by_host_binary(engine, "c1", "vigil-compute")
    assert svc.forced_down and svc.disabled and svc.disabled_reason.startswith("vigil-ha:")
    assert SimulatedFence(stack["conf"].ha.simulated_power_dir).status(
        "c1", timeout=1).value == "off"

    agents["c1"] = stack["new_agent"]("c1")  # the host comes back
    rec = wait_for(lambda: (r := ha_api.recovery_get(engine, rec.id)).status
                   == ha_api.DONE and r, 15, "c1 re-enabled")
    svc = db.service_get_by_host_binary(engine, "c1", "vigil-compute")
    assert not svc.forced_down and not svc.disabled
    kinds = [e.kind for e in ha_api.events(engine, rec.id)]
    assert kinds[:5] == ["detected", "disabled", "fence_started", "fenced", "forced_down"]
    assert kinds.count("evacuation_requested") == 2
    assert kinds.count("instance_evacuated") == 2
    assert kinds.count("not_evacuated") == 1
    assert kinds[-2:] == ["evacuated", "re_enabled"]
    # The returned host runs only what the database places there: the pinned instance.
    wait_for(lambda: local(agents["c1"]) == {pinned}, 10, "c1 to run only the pinned one")
    assert len(ha_api.events_of_kind(engine, "fence_started")) == 1
