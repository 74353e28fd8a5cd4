"""The monitor end to end in one process, as ``vigil up`` runs it: real conductor, scheduler
and fake-driver agents over fake://, the db liveness driver, the simulated fence agent.

A host "dies" by its agent stopping without leaving (its heartbeat goes stale while the report
path stays healthy: DOWN). The monitor must disable, fence, force down and evacuate it, leave a
non-evacuable instance alone, and re-enable the host when its agent comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.wait import wait_for
from tests.unit.inprocess import Stack, inprocess_stack, local
from vigil.compute.servers import settled
from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.ha.fence.simulated import SimulatedFence
from vigil.objects.ha import Phase, RecoveryStatus


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with inprocess_stack(
            tmp_path, ("c1", "c2", "c3"), monitor=True,
            scheduler={"pending_poll_interval": 0.2},
            ha={"detection_grace": 0.3, "poll_interval": 0.1, "lease_ttl": 2.0,
                "allow_unproven_death": True, "fence_agent": "simulated"}) as s:
        yield s


def test_monitor_recovers_a_dead_host_and_re_enables_it(stack: Stack) -> None:
    servers = stack.servers
    engine = stack.engine
    agents = stack.agents
    monitor = stack.monitor
    wait_for(lambda: monitor.election.is_leader(), 10, "a leader")
    wait_for(lambda: len(services_db.snapshot(engine, topic="compute").services) == 3, 10,
             "3 hosts")
    moving = [servers.create(name=f"vm{i}", flavor="m1.tiny", host="c1").record.uuid
              for i in range(2)]
    pinned = servers.create(name="pinned", flavor="m1.tiny", host="c1",
                            evacuable=False).record.uuid
    for u in [*moving, pinned]:
        assert servers.wait(u, settled, timeout=10).status == "ACTIVE"
    assert not recoveries_db.recoveries(engine)  # healthy fleet: nothing opened

    agents["c1"].stop(leave=False)  # the host dies: no more reports, no clean leave
    rec = wait_for(lambda: next(iter(recoveries_db.recoveries(engine, host="c1")), None), 15,
                   "a recovery of c1")
    rec = wait_for(lambda: (r := recoveries_db.recovery_get(engine, rec.id)).phase
                   == Phase.EVACUATED and r, 20, "c1 evacuated")
    assert rec.status == RecoveryStatus.WAITING and rec.fence_attempts == 1
    for u in moving:
        view = servers.get(u)
        assert view.status == "ACTIVE" and view.record.host in ("c2", "c3"), view.to_dict()
        assert u in local(agents[view.record.host])
    assert servers.get(pinned).record.host == "c1"  # not evacuable: left alone
    svc = services_db.service_get_by_host_binary(engine, "c1", "vigil-compute")
    assert svc.forced_down and svc.disabled and svc.disabled_reason.startswith("vigil-ha:")
    assert SimulatedFence(stack.conf.ha.simulated_power_dir).status(
        "c1", timeout=1).value == "off"

    agents["c1"] = stack.new_agent("c1")  # the host comes back
    rec = wait_for(lambda: (r := recoveries_db.recovery_get(engine, rec.id)).status
                   == RecoveryStatus.DONE and r, 15, "c1 re-enabled")
    svc = services_db.service_get_by_host_binary(engine, "c1", "vigil-compute")
    assert not svc.forced_down and not svc.disabled
    kinds = [e.kind for e in recoveries_db.events(engine, rec.id)]
    assert kinds[:6] == ["detected", "disabled", "quarantined", "fence_started", "fenced",
                         "forced_down"]
    assert kinds.count("evacuation_requested") == 2
    assert kinds.count("instance_evacuated") == 2
    assert kinds.count("not_evacuated") == 1
    assert kinds[-3:] == ["evacuated", "released", "re_enabled"]
    assert not hosts_db.host_get(engine, "c1").quarantined
    # The returned host runs only what the database places there: the pinned instance.
    wait_for(lambda: local(agents["c1"]) == {pinned}, 10, "c1 to run only the pinned one")
    assert len(recoveries_db.events_of_kind(engine, "fence_started")) == 1
