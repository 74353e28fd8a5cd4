"""The ``baremetal`` driver in one process: real database, real conductor endpoint (called
directly, answers through JSON as over RPC), real liveness from the services table, a fake
monotonic clock per agent for the debounce."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest
from sqlalchemy.engine import Engine

from tests.unit.baremetal.helpers import node, service
from tests.unit.compute.helpers import DirectConductor, make_conf, make_group, set_state
from vigil.clock import FakeClock
from vigil.compute.manager import ComputeManager
from vigil.compute.virt.baremetal import BaremetalDriver
from vigil.conductor.baremetal import BaremetalConductorManager, LocalBaremetalConductor
from vigil.db import services as services_db
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.db.compute import claims as claims_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.launch.settings import scheduler_settings
from vigil.objects import capacity
from vigil.objects.baremetal import RELEASED, Node
from vigil.objects.compute import PowerState, TaskState, VmState
from vigil.ring import HashRing
from vigil.scheduler.manager import SchedulerManager

DEBOUNCE = 10.0
HOSTS = ("h1", "h2", "h3")


class Fleet:
    def __init__(self, engine: Engine, hosts: Iterable[str] = HOSTS, nodes: int = 30) -> None:
        self.engine = engine
        self.group = make_group(engine)
        endpoint = BaremetalConductorManager(engine, lambda: self.group)
        self.conductor = LocalBaremetalConductor(endpoint)
        self.nodes = [node(engine, f"n{i}") for i in range(nodes)]
        self.clock = FakeClock()
        self.drivers: dict[str, BaremetalDriver] = {}
        for host in hosts:
            service(engine, host)
            self.drivers[host] = BaremetalDriver(host, self.conductor, debounce=DEBOUNCE,
                                                 zone="nova", clock=self.clock)

    def tick(self, rounds: int = 2, hosts: Iterable[str] | None = None) -> None:
        for _ in range(rounds):
            for host in hosts or self.drivers:
                self.drivers[host].report_nodes()

    def settle(self) -> None:
        """First ticks register every member and let every agent see every other; once the
        debounce has passed, all agree."""
        self.tick(2)
        self.clock.advance(DEBOUNCE)
        self.tick(2)

    def kill(self, host: str, survivors: Iterable[str]) -> None:
        """``host`` goes DOWN; the survivors see it and take its nodes."""
        set_state(self.engine, services_db.service_get_by_host_binary(self.engine, host,
                                                                      "vigil-compute"), "down")
        self.tick(1, hosts=survivors)

    def owners(self) -> dict[str, str | None]:
        return {r.node_uuid: r.host for r in ownership_db.record_states(self.engine) if r.live}

    def totals(self) -> tuple[int, int, int]:
        """os-hypervisors statistics over the bare-metal records."""
        recs = [n for n in nodes_db.compute_nodes(self.engine) if n.hypervisor_type == "baremetal"]
        return (sum(n.vcpus for n in recs), sum(n.memory_mb for n in recs),
                sum(n.local_gb for n in recs))

    def owned_inventory(self) -> tuple[int, int, int]:
        owners = self.owners()
        owned = [n for n in self.nodes if owners.get(n.uuid) not in (None, RELEASED)]
        return (sum(n.cpus for n in owned), sum(n.memory_mb for n in owned),
                sum(n.local_gb for n in owned))


@pytest.fixture
def fleet(sqlite_engine: Engine) -> Fleet:
    return Fleet(sqlite_engine)


def test_every_node_gets_exactly_one_owner_its_ring_target(fleet: Fleet) -> None:
    fleet.settle()
    owners = fleet.owners()
    ring = HashRing(HOSTS)
    assert owners == {n.uuid: ring.get_node(n.uuid) for n in fleet.nodes}
    assert fleet.totals() == fleet.owned_inventory() == (30 * 8, 30 * 16384, 30 * 100)
    for host, driver in fleet.drivers.items():  # each reports exactly what it owns
        assert driver.owned_nodes == {n for n, o in owners.items() if o == host}
    # A steady fleet writes nothing.
    fleet.tick(1)
    assert all(d.last.result.updated == 0 and not d.last.result.taken
               for d in fleet.drivers.values())


def test_a_dead_services_nodes_are_taken_instance_included(fleet: Fleet) -> None:
    fleet.settle()
    h2_nodes = {n for n, o in fleet.owners().items() if o == "h2"}
    busy = sorted(h2_nodes)[0]
    rec = next(r for r in ownership_db.record_states(fleet.engine) if r.node_uuid == busy)
    inst = instances_db.instance_create(fleet.engine, name="vm",
                                        flavor=flavors_db.flavor_get(fleet.engine, "m1.tiny"))
    assert claims_db.claim(fleet.engine, inst, nodes_db.compute_node_get(fleet.engine,
                                                                         rec.record_id),
                     expected_task_state=TaskState.SCHEDULING,
                     new_task_state=TaskState.SPAWNING).instance is not None
    fleet.drivers["h2"].spawn(instances_db.instance_get(fleet.engine, inst.uuid))

    set_state(fleet.engine, services_db.service_get_by_host_binary(fleet.engine, "h2",
                                                                   "vigil-compute"),
              "down")
    fleet.tick(1, hosts=["h1", "h3"])  # DOWN: taken at once, without waiting for the ring
    owners = fleet.owners()
    assert not {n for n, o in owners.items() if o == "h2"}
    assert set(owners.values()) == {"h1", "h3"} and len(owners) == 30
    new_owner = owners[busy]
    moved = instances_db.instance_get(fleet.engine, inst.uuid)
    assert moved.host == new_owner and moved.node == busy
    # The new owner runs it: its reconciliation finds it powered on, not lost.
    manager = ComputeManager(new_owner, fleet.drivers[new_owner], DirectConductor(fleet.engine))
    instances_db.instance_update(fleet.engine, inst.uuid, {"vm_state": VmState.ACTIVE,
                                                           "task_state": None,
                                                  "power_state": PowerState.RUNNING},
                        task_states=[TaskState.SPAWNING])
    manager.reconcile()
    assert instances_db.instance_get(fleet.engine, inst.uuid).vm_state == VmState.ACTIVE
    assert inst.uuid in fleet.drivers[new_owner].list_instances()
    # The dead agent, had it survived, learns it lost everything and reports none of it.
    fleet.drivers["h2"].report_nodes()
    assert fleet.drivers["h2"].owned_nodes == frozenset()
    assert fleet.totals() == fleet.owned_inventory()


def test_a_returning_service_gets_its_share_back_only_after_the_debounce(fleet: Fleet) -> None:
    fleet.settle()
    before = fleet.owners()
    h2 = services_db.service_get_by_host_binary(fleet.engine, "h2", "vigil-compute")
    fleet.kill("h2", ["h1", "h3"])
    set_state(fleet.engine, h2, "up")
    fleet.clock.advance(DEBOUNCE / 2)
    fleet.tick()
    assert "h2" not in fleet.owners().values()  # back, but not settled yet
    fleet.clock.advance(DEBOUNCE)
    fleet.tick()
    assert fleet.owners() == before
    assert fleet.totals() == fleet.owned_inventory()


def test_a_flapping_service_does_not_pull_nodes_back_and_forth(fleet: Fleet) -> None:
    fleet.settle()
    h2 = services_db.service_get_by_host_binary(fleet.engine, "h2", "vigil-compute")
    # It dies by going silent (its heartbeat goes stale), not by leaving or restarting: a
    # service comes back from a leave only by registering again, a restart, which is a new
    # member version -- an event the other agents see at different ticks (whoever ticks
    # before the agent re-registers sees it absent), not the flap under test.
    set_state(fleet.engine, h2, "stale")
    fleet.tick(1, hosts=["h1", "h3"])
    assert not {n for n, o in fleet.owners().items() if o == "h2"}
    settled = fleet.owners()
    moves = 0
    for i in range(12):  # up and down every 2 s: faster than the 10 s debounce
        # (up for 2 s is not eligible: nothing moves). It stops reporting and starts again
        # without restarting: its reports alone, the same member version.
        if i % 2 == 0:
            services_db.record_reports(fleet.engine, [h2.id], 100)
        else:
            set_state(fleet.engine, h2, "stale")
        fleet.clock.advance(2)
        fleet.tick(1)
        moves += sum(len(d.last.result.taken) for d in fleet.drivers.values())
    assert moves == 0 and fleet.owners() == settled


def test_an_unknown_owner_is_never_robbed(fleet: Fleet) -> None:
    fleet.settle()
    before = fleet.owners()
    # h3's heartbeat is stale but no conductor's report path is healthy: UNKNOWN, not DOWN.
    set_state(fleet.engine, services_db.service_get_by_host_binary(fleet.engine, "h3",
                                                                   "vigil-compute"),
              "unknown")
    for host in ("h1", "h2"):
        service(fleet.engine, host)
    fleet.clock.advance(DEBOUNCE * 2)
    fleet.tick(2, hosts=["h1", "h2"])
    after = fleet.owners()
    assert {n for n, o in after.items() if o == "h3"} == {n for n, o in before.items()
                                                           if o == "h3"}


def test_a_new_node_is_picked_up_and_a_deleted_one_stops_counting(fleet: Fleet) -> None:
    fleet.settle()
    extra = node(fleet.engine, "late", cpus=64)
    fleet.nodes.append(extra)
    fleet.tick(1)
    assert fleet.owners()[extra.uuid] == HashRing(HOSTS).get_node(extra.uuid)
    inventory_db.node_delete(fleet.engine, "late")
    fleet.nodes.remove(extra)
    fleet.tick(1)
    assert extra.uuid not in fleet.owners()
    assert fleet.totals() == fleet.owned_inventory()


def test_a_deleted_record_is_recreated(fleet: Fleet) -> None:
    """Nova deleted compute node records of nodes it thought orphaned and never recreated
    them. Here a record deleted (with its service, by an operator) is replaced at the next
    tick by the node's target."""
    fleet.settle()
    nodes_db.compute_nodes_soft_delete(fleet.engine, "h1")
    fleet.tick(1)
    owners = fleet.owners()
    assert len(owners) == 30 and all(o in HOSTS for o in owners.values())


def test_instances_take_whole_nodes(fleet: Fleet) -> None:
    """Boots through the scheduler: one instance per node; a claim that raced onto an
    occupied node fails its spawn and gives its claim back."""
    fleet.settle()
    scheduler = SchedulerManager(scheduler_settings(make_conf()), fleet.engine, fleet.group)
    managers = {h: ComputeManager(h, d, DirectConductor(fleet.engine))
                for h, d in fleet.drivers.items()}
    flavor = flavors_db.flavor_get(fleet.engine, "m1.tiny")
    placed = []
    for i in range(30):
        inst = instances_db.instance_create(fleet.engine, name=f"vm{i}", flavor=flavor)
        out = scheduler.schedule_instance(inst.uuid)
        assert out.host is not None, out
        managers[out.host].build_and_run_instance({}, inst.uuid)
        placed.append(instances_db.instance_get(fleet.engine, inst.uuid))
    assert all(i.vm_state == VmState.ACTIVE for i in placed)
    assert len({i.node for i in placed}) == 30  # every instance on a node of its own
    inst = instances_db.instance_create(fleet.engine, name="one-too-many", flavor=flavor)
    assert scheduler.schedule_instance(inst.uuid).fault is not None
    # Two claims on one node (the second decided on a picture from before the first):
    # the second spawn fails and gives its claim back.
    instances_db.instance_destroy(fleet.engine, placed[0].uuid)
    managers[placed[0].host or ""].terminate_instance({}, placed[0].uuid)
    fleet.tick(1)  # the owner reopens the freed node
    rec = nodes_db.compute_node_get(fleet.engine, placed[0].compute_node_id or 0)
    first, second = (instances_db.instance_create(fleet.engine, name=n, flavor=flavor)
                     for n in ("first", "second"))
    for inst in (first, second):
        assert claims_db.claim(fleet.engine, inst, rec, expected_task_state=TaskState.SCHEDULING,
                               new_task_state=TaskState.SPAWNING).instance is not None
    for inst in (first, second):
        managers[rec.host].build_and_run_instance({}, inst.uuid)
    states = [instances_db.instance_get(fleet.engine, i.uuid).vm_state for i in (first, second)]
    assert states == [VmState.ACTIVE, VmState.ERROR]
    assert nodes_db.compute_node_get(fleet.engine, rec.id).running_vms == 1
    assert inventory_db.node_get(fleet.engine, rec.hypervisor_hostname).instance_uuid == first.uuid


def test_inventory_is_refused_for_a_baremetal_host(fleet: Fleet) -> None:
    with pytest.raises(NotImplementedError):
        fleet.drivers["h1"].inventory()


def test_capacity_is_never_over_reported_while_nodes_move(fleet: Fleet) -> None:
    fleet.settle()
    inventory = fleet.owned_inventory()
    h1 = services_db.service_get_by_host_binary(fleet.engine, "h1", "vigil-compute")
    seen = Counter[str]()
    moves = 0
    for step in range(10):  # h1 dies twice, long enough to depart, and comes back
        set_state(fleet.engine, h1, "down" if step in (0, 1, 5, 6) else "up")
        fleet.clock.advance(DEBOUNCE)
        for host in HOSTS:  # one agent at a time: check between every single tick
            moves += len(fleet.drivers[host].report_nodes().result.taken)
            totals = fleet.totals()
            assert totals == fleet.owned_inventory()
            assert all(t <= i for t, i in zip(totals, inventory, strict=True))
            seen.update(o for o in fleet.owners().values() if o)
    assert set(seen) >= {"h1", "h2", "h3"} and moves >= 20


def test_node_sources_conform_and_agree(fleet: Fleet) -> None:
    """The database source (API, CLI) and the agents' source through the conductor are the
    same inventory behind the same small protocols."""
    from vigil.baremetal.nodes import DatabaseNodeSource
    from vigil.baremetal.source import NodeSource, Provisioner
    from vigil.compute.virt.baremetal import _ConductorNodes

    direct = DatabaseNodeSource(fleet.engine)
    remote = _ConductorNodes(fleet.conductor)
    assert isinstance(direct, NodeSource) and isinstance(remote, NodeSource)
    assert isinstance(direct, Provisioner) and isinstance(fleet.conductor, Provisioner)

    def key(n: Node) -> tuple[object, ...]:
        return (n.uuid, n.name, n.cpus, n.memory_mb, n.local_gb, n.power_state,
                n.maintenance, n.instance_uuid)

    assert sorted(map(key, direct.list_nodes())) == sorted(map(key, remote.list_nodes()))


def test_a_node_in_maintenance_is_reported_but_takes_no_instance(fleet: Fleet) -> None:
    spare = inventory_db.node_create(fleet.engine, name="spare", cpus=4, memory_mb=4096,
                                     local_gb=10,
                            maintenance=True)
    fleet.settle()
    rec = next(n for n in nodes_db.compute_nodes(fleet.engine)
               if n.hypervisor_hostname == spare.uuid)
    assert rec.vcpus == 4 and rec.cpu_allocation_ratio == 0.0
    assert not capacity.fits(rec, vcpus=1, memory_mb=1, root_gb=0)


def test_up_registers_its_nodes_once(sqlite_engine: Engine) -> None:
    from vigil.up import register_baremetal_nodes

    assert register_baremetal_nodes(sqlite_engine, 4) == 4
    assert register_baremetal_nodes(sqlite_engine, 6) == 2  # a restart finds its nodes
    assert sorted(n.name or "" for n in inventory_db.nodes(sqlite_engine)) == [
        f"bm-{i}" for i in range(1, 7)]
