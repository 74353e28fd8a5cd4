"""The whole boot / delete / evacuate flow in one process, as ``vigil up`` runs it: real
conductor, scheduler and agents over oslo.messaging's fake:// transport, fake virt driver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.wait import wait_for
from tests.unit.inprocess import Stack, inprocess_stack, local
from vigil.compute.hypervisors import HypervisorsAPI
from vigil.compute.servers import settled
from vigil.db import services as services_db
from vigil.errors import Conflict
from vigil.objects.liveness import State
from vigil.registry import Registry


def reporting(stack: Stack, host: str) -> State:
    """The host's compute liveness ignoring forced_down: does it really report?"""
    snap = services_db.snapshot(stack.engine, host=host, topic="compute")
    return stack.group.states(snap, honour_forced_down=False)[snap.services[0].id]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # A long scan interval: a boot that is quick here was woken by the cast.
    with inprocess_stack(tmp_path, ("c1", "c2"), scheduler={"pending_poll_interval": 30}) as s:
        yield s


def test_boot_delete_and_evacuate_in_one_process(stack: Stack) -> None:
    servers = stack.servers
    agents = stack.agents
    hv = HypervisorsAPI(stack.engine, stack.group)
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

    registry = Registry(stack.engine, stack.group)
    registry.update(registry.find("c1", "vigil-compute"), forced_down=True)
    on_c1 = [u for u, h in hosts.items() if h == "c1"]
    # c1 still reports: forced down is an operator's word, not a kill. Evacuating now would
    # run each instance twice until c1's next reconciliation.
    with pytest.raises(Conflict, match="forced_down alone is not enough"):
        servers.evacuate(on_c1[0])
    # c1's agent dies without leaving; its instances survive in its driver (a host whose
    # agent crashed): once c1 is DOWN, the operator's evacuation is accepted.
    c1_driver = agents["c1"].driver
    agents["c1"].stop(leave=False)
    wait_for(lambda: reporting(stack, "c1") is State.DOWN, 10, "c1 to be down")
    for u in on_c1:
        servers.evacuate(u)
    for u in on_c1:
        view = servers.wait(u, settled, timeout=10)
        assert (view.status, view.record.host) == ("ACTIVE", "c2")
    # c1's agent comes back with the instances it left behind: its reconciliation finds them
    # placed elsewhere and destroys its copies (and cannot start them: new generations).
    agents["c1"] = stack.new_agent("c1", c1_driver)
    wait_for(lambda: not local(agents["c1"]), 5, "c1 to drop its stale copies")
    assert local(agents["c2"]) == set(uuids) - {doomed}
