"""Atomic claims on SQLite, PostgreSQL and MariaDB, with real threads racing."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import (
    STATES,
    add_flavor,
    add_host,
    assert_accounting,
    clear,
    make_conf,
    make_group,
)
from vigil.db import services as services_db
from vigil.db.compute import claims as claims_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.errors import Conflict
from vigil.launch.settings import scheduler_settings
from vigil.objects import capacity
from vigil.objects.compute import FlavorRecord, InstanceRecord, TaskState, VmState
from vigil.objects.liveness import State
from vigil.scheduler.manager import SchedulerManager


def boot(engine: Engine, flavor: FlavorRecord, name: str = "vm",
         **kw: object) -> InstanceRecord:
    return instances_db.instance_create(engine, name=name, flavor=flavor, **kw)  # type: ignore[arg-type]


def test_claim_takes_room_and_refuses_when_full(any_engine: Engine) -> None:
    node = add_host(any_engine, "h1", vcpus=2, memory_mb=1024, local_gb=10)
    flavor = add_flavor(any_engine, 1, 512, 5)
    a, b, c = (boot(any_engine, flavor, f"vm{i}") for i in range(3))
    for inst in (a, b):
        res = claims_db.claim(any_engine, inst, node, expected_task_state=TaskState.SCHEDULING,
                              new_task_state=TaskState.SPAWNING)
        assert res.instance is not None and res.instance.host == "h1"
        assert res.instance.task_state == TaskState.SPAWNING
    res = claims_db.claim(any_engine, c, node, expected_task_state=TaskState.SCHEDULING,
                          new_task_state=TaskState.SPAWNING)
    assert res.instance is None and res.reason == "node"
    # The refused claim changed nothing: c still waits, the node is exactly full.
    assert instances_db.instance_get(any_engine, c.uuid).task_state == TaskState.SCHEDULING
    full = nodes_db.compute_node_get(any_engine, node.id)
    assert (full.vcpus_used, full.memory_mb_used, full.local_gb_used, full.running_vms) == (
        2, 1024, 10, 2)
    assert_accounting(any_engine)


def test_claim_of_a_taken_or_deleted_instance_changes_nothing(any_engine: Engine) -> None:
    n1 = add_host(any_engine, "h1")
    n2 = add_host(any_engine, "h2")
    flavor = add_flavor(any_engine, 1, 512, 1)
    inst = boot(any_engine, flavor)
    assert claims_db.claim(any_engine, inst, n1, expected_task_state=TaskState.SCHEDULING,
                           new_task_state=TaskState.SPAWNING).instance is not None
    again = claims_db.claim(any_engine, inst, n2, expected_task_state=TaskState.SCHEDULING,
                            new_task_state=TaskState.SPAWNING)
    assert again.instance is None and again.reason == "instance"
    gone = boot(any_engine, flavor, "gone")
    instances_db.instance_destroy(any_engine, gone.uuid)
    assert claims_db.claim(any_engine, gone, n2, expected_task_state=TaskState.SCHEDULING,
                           new_task_state=TaskState.SPAWNING).reason == "instance"
    assert nodes_db.compute_node_get(any_engine, n2.id).running_vms == 0
    assert_accounting(any_engine)


def test_evacuation_claim_moves_usage_and_delete_releases(any_engine: Engine) -> None:
    n1 = add_host(any_engine, "h1")
    n2 = add_host(any_engine, "h2")
    flavor = add_flavor(any_engine, 2, 1024, 10)
    inst = claims_db.claim(any_engine, boot(any_engine, flavor), n1,
                           expected_task_state=TaskState.SCHEDULING,
                           new_task_state=TaskState.SPAWNING).instance
    assert inst is not None
    inst = instances_db.instance_update(any_engine, inst.uuid, {"task_state": TaskState.REBUILDING},
                                        host="h1", task_states=[TaskState.SPAWNING])
    assert inst is not None
    moved = claims_db.claim(any_engine, inst, n2, expected_task_state=TaskState.REBUILDING,
                            new_task_state=TaskState.REBUILD_SPAWNING, source_host="h1").instance
    assert moved is not None and moved.host == "h2" and moved.compute_node_id == n2.id
    assert nodes_db.compute_node_get(any_engine, n1.id).vcpus_used == 0
    assert nodes_db.compute_node_get(any_engine, n2.id).vcpus_used == 2
    assert_accounting(any_engine)
    # An agent of the old host cannot write the instance any more.
    assert instances_db.instance_update(any_engine, inst.uuid, {"vm_state": VmState.ACTIVE},
                                        host="h1",
                               task_states=[TaskState.REBUILD_SPAWNING]) is None
    dead = instances_db.instance_destroy(any_engine, inst.uuid)
    assert dead.deleted and dead.vm_state == VmState.DELETED
    assert nodes_db.compute_node_get(any_engine, n2.id).running_vms == 0
    assert_accounting(any_engine)


def test_flavor_names_are_unique_among_live_flavors(any_engine: Engine) -> None:
    f = flavors_db.flavor_create(any_engine, name="x", vcpus=1, memory_mb=1, root_gb=0)
    with pytest.raises(Conflict):
        flavors_db.flavor_create(any_engine, name="x", vcpus=1, memory_mb=1, root_gb=0)
    flavors_db.flavor_delete(any_engine, f.id)
    assert flavors_db.flavor_create(any_engine, name="x", vcpus=2, memory_mb=1,
                                    root_gb=0).vcpus == 2
    assert [f.name for f in flavors_db.flavors(any_engine)][:2] == ["x", "m1.tiny"]


hosts_strategy = st.lists(
    st.tuples(st.sampled_from(STATES), st.integers(1, 6), st.integers(1, 8),
              st.integers(1, 6)),
    min_size=1, max_size=6)
flavors_strategy = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(0, 3)),
                            min_size=1, max_size=30)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hosts=hosts_strategy, wanted=flavors_strategy, threads=st.integers(2, 6),
       subset=st.integers(1, 3))
def test_concurrent_boots_never_oversubscribe_nor_use_unfit_hosts(
    any_engine: Engine, hosts: list[tuple[str, int, int, int]],
    wanted: list[tuple[int, int, int]], threads: int, subset: int,
) -> None:
    """Several schedulers (one per thread, each its own manager) place the same burst of
    instances. Afterwards: no node over capacity, counters equal the instances' sums, nothing
    on a host that was down, unknown or disabled, and every instance that failed fits nowhere."""
    clear(any_engine)
    for i, (state, cpu, ram, disk) in enumerate(hosts):
        add_host(any_engine, f"h{i}", state=state, vcpus=cpu, memory_mb=ram * 256,
                 local_gb=disk * 5)
    group = make_group(any_engine)
    snap = services_db.snapshot(any_engine)
    by_id = group.states(snap)
    eligible = {f"h{i}" for i, h in enumerate(hosts) if h[0] == "up"}
    # The helpers produce the states they claim to (disabled hosts are up, but disabled).
    assert {s.host for s in snap.services if by_id[s.id] is State.UP} == eligible | {
        f"h{i}" for i, h in enumerate(hosts) if h[0] == "disabled"}
    assert {s.host for s in snap.services if by_id[s.id] is State.UNKNOWN} == {
        f"h{i}" for i, h in enumerate(hosts) if h[0] == "unknown"}
    insts = [boot(any_engine, add_flavor(any_engine, v, m * 256, d * 5), f"vm{k}")
             for k, (v, m, d) in enumerate(wanted)]
    settings = scheduler_settings(
        make_conf(scheduler={"max_claim_attempts": 1000, "host_subset_size": subset}))
    todo = list(reversed(insts))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        manager = SchedulerManager(settings, any_engine, group)
        while True:
            with lock:
                if not todo:
                    return
                inst = todo.pop()
            try:
                manager.schedule_instance(inst.uuid)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors
    assert_accounting(any_engine)
    nodes = {n.host: n for n in nodes_db.compute_nodes(any_engine)}
    for inst in instances_db.instances(any_engine):
        if inst.host is not None:
            assert inst.host in eligible and inst.task_state == TaskState.SPAWNING
        else:
            assert inst.vm_state == VmState.ERROR and inst.fault is not None
            assert inst.fault.startswith("No valid host was found.")
            # Usage only grew during the burst: what does not fit now did not fit then.
            assert not any(capacity.fits(nodes[h], vcpus=inst.vcpus, memory_mb=inst.memory_mb,
                                         root_gb=inst.root_gb) for h in eligible), inst
