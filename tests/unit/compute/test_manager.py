"""The agent's decisions, against the real conductor endpoint and database, fake driver."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import (
    DirectConductor,
    add_host,
    assert_accounting,
    make_conf,
    make_group,
    set_state,
)
from vigil.compute.manager import ComputeManager
from vigil.compute.virt.fake import FakeDriver
from vigil.db import db_now
from vigil.db import services as services_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.launch.settings import scheduler_settings, virt_settings
from vigil.objects.compute import InstanceRecord, PowerState, StartKind, TaskState, VmState
from vigil.scheduler.manager import SchedulerManager


def agent(engine: Engine, host: str, driver: FakeDriver | None = None) -> ComputeManager:
    driver = driver or FakeDriver.from_settings(virt_settings(make_conf()), host)
    return ComputeManager(host, driver, DirectConductor(engine))


def fake(m: ComputeManager) -> FakeDriver:
    assert isinstance(m.driver, FakeDriver)
    return m.driver


def placed(engine: Engine, host: str, name: str = "vm") -> InstanceRecord:
    """An instance booted with a requested host and scheduled (claimed) there."""
    flavor = flavors_db.flavor_get(engine, "m1.tiny")
    inst = instances_db.instance_create(engine, name=name, flavor=flavor, requested_host=host)
    out = SchedulerManager(scheduler_settings(make_conf()), engine,
                           make_group(engine)).schedule_instance(inst.uuid)
    assert out.host == host, out
    return instances_db.instance_get(engine, inst.uuid)


def evacuate_to(engine: Engine, inst: InstanceRecord, target: str) -> InstanceRecord:
    """An evacuation from a host that stopped reporting, as ServersAPI.evacuate requests it."""
    set_state(engine, services_db.service_get_by_host_binary(engine, inst.host or "",
                                                             "vigil-compute"),
              "stale")
    assert instances_db.instance_update(engine, inst.uuid, {"task_state": TaskState.REBUILDING,
                                                            "requested_host": target},
                               host=inst.host, task_states=[None], new_owner=True) is not None
    out = SchedulerManager(scheduler_settings(make_conf()), engine,
                           make_group(engine)).schedule_instance(inst.uuid)
    assert out.host == target, out
    return instances_db.instance_get(engine, inst.uuid)


def test_build_request_spawns_and_reports_active(sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    h1 = agent(sqlite_engine, "h1")
    inst = placed(sqlite_engine, "h1")
    assert inst.task_state == TaskState.SPAWNING
    h1.build_and_run_instance({}, inst.uuid)
    now = instances_db.instance_get(sqlite_engine, inst.uuid)
    assert (now.vm_state, now.task_state, now.power_state) == (VmState.ACTIVE, None,
                                                               PowerState.RUNNING)
    assert now.launched_at is not None
    assert fake(h1).calls == [("spawn", inst.uuid)]
    h1.build_and_run_instance({}, inst.uuid)  # a duplicate message changes nothing
    assert fake(h1).calls == [("spawn", inst.uuid)]


def test_a_late_build_request_for_an_instance_placed_elsewhere_is_ignored(
        sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    add_host(sqlite_engine, "h2")
    inst = placed(sqlite_engine, "h2")
    h1 = agent(sqlite_engine, "h1")
    h1.build_and_run_instance({}, inst.uuid)
    h1.rebuild_instance({}, inst.uuid)
    assert fake(h1).calls == []
    assert instances_db.instance_get(sqlite_engine, inst.uuid).task_state == TaskState.SPAWNING


def test_returning_host_destroys_evacuated_and_deleted_copies_and_resumes_its_own(
        sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    add_host(sqlite_engine, "h2")
    h1 = agent(sqlite_engine, "h1")
    moved, gone, kept = (placed(sqlite_engine, "h1", n) for n in ("moved", "gone", "kept"))
    for inst in (moved, gone, kept):
        h1.build_and_run_instance({}, inst.uuid)
    # h1 "dies" here: a new agent process has a driver that still lists moved and gone (a
    # host whose processes survived), and no longer runs kept.
    evacuate_to(sqlite_engine, instances_db.instance_get(sqlite_engine, moved.uuid), "h2")
    instances_db.instance_destroy(sqlite_engine, gone.uuid)
    driver = FakeDriver.from_settings(virt_settings(make_conf()), "h1")
    driver.spawn(moved)
    driver.spawn(gone)
    driver.calls.clear()
    back = agent(sqlite_engine, "h1", driver)
    back.reconcile(at_start=True)
    assert sorted(driver.calls) == sorted([("destroy", moved.uuid), ("destroy", gone.uuid),
                                           ("spawn", kept.uuid)])
    assert driver.list_instances() == [kept.uuid]
    # The evacuated instance is left as it is: waiting for h2, not touched by h1.
    assert instances_db.instance_get(sqlite_engine,
                                     moved.uuid).task_state == TaskState.REBUILD_SPAWNING
    assert instances_db.instance_get(sqlite_engine, moved.uuid).host == "h2"


def test_lost_spawn_request_is_redone_by_reconciliation(sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    inst = placed(sqlite_engine, "h1")  # the cast to h1 was never delivered
    h1 = agent(sqlite_engine, "h1")
    h1.reconcile()
    assert instances_db.instance_get(sqlite_engine, inst.uuid).vm_state == VmState.ACTIVE
    assert fake(h1).calls == [("spawn", inst.uuid)]


def test_an_instance_that_stopped_running_goes_to_error_not_restarted(
        sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    inst = placed(sqlite_engine, "h1")
    h1 = agent(sqlite_engine, "h1")
    h1.build_and_run_instance({}, inst.uuid)
    fake(h1).destroy(inst.uuid, keep_disk=True)  # the instance died behind the agent's back
    h1.reconcile()
    now = instances_db.instance_get(sqlite_engine, inst.uuid)
    assert now.vm_state == VmState.ERROR and now.power_state == PowerState.SHUTDOWN
    assert now.fault is not None and "not running on h1" in now.fault
    assert fake(h1).list_instances() == []


class BrokenDriver(FakeDriver):
    def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
        raise OSError("no space left on device")


def test_failed_spawn_is_an_error_with_fault_and_gives_the_claim_back(
        sqlite_engine: Engine) -> None:
    node = add_host(sqlite_engine, "h1")
    inst = placed(sqlite_engine, "h1")
    h1 = agent(sqlite_engine, "h1", BrokenDriver.from_settings(virt_settings(make_conf()), "h1"))
    h1.build_and_run_instance({}, inst.uuid)
    now = instances_db.instance_get(sqlite_engine, inst.uuid)
    assert now.vm_state == VmState.ERROR and now.host is None
    assert now.fault == "Spawn failed on h1: no space left on device"
    assert nodes_db.compute_node_get(sqlite_engine, node.id).running_vms == 0
    assert_accounting(sqlite_engine)


def test_agents_cannot_write_placement_through_the_conductor(sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    inst = placed(sqlite_engine, "h1")
    with pytest.raises(ValueError, match="may not write"):
        DirectConductor(sqlite_engine).endpoint.instance_update(
            {}, inst.uuid, "h1", {"host": "h9"}, [TaskState.SPAWNING], [])


def test_inventory_report_creates_then_updates_one_node(sqlite_engine: Engine) -> None:
    conf = make_conf(compute={"vcpus": 3, "cpu_allocation_ratio": 2.0})
    h1 = agent(sqlite_engine, "h1", FakeDriver.from_settings(virt_settings(conf), "h1"))
    first = h1.update_resources()
    again = h1.update_resources()
    assert first.id == again.id and (again.vcpus, again.cpu_allocation_ratio) == (3, 2.0)
    assert (again.memory_mb, again.ram_allocation_ratio) == (32768, 1.5)  # Nova's defaults
    assert len(nodes_db.compute_nodes(sqlite_engine)) == 1


def test_an_instance_the_database_never_heard_of_is_left_alone(sqlite_engine: Engine) -> None:
    """"Not found" is not "deleted" (deleted rows stay, soft-deleted): no destroy, no disk
    removal on a database restored from backup or a misrouted answer."""
    add_host(sqlite_engine, "h1")
    stranger = placed(sqlite_engine, "h1")
    h1 = agent(sqlite_engine, "h1")
    fake(h1).spawn(dataclasses.replace(stranger, uuid="99999999-9999-9999-9999-999999999999"))
    fake(h1).calls.clear()
    h1.reconcile()
    h1.terminate_instance({}, "99999999-9999-9999-9999-999999999999")
    assert ("destroy", "99999999-9999-9999-9999-999999999999") not in fake(h1).calls
    assert "99999999-9999-9999-9999-999999999999" in fake(h1).list_instances()


# -- quarantine and authorized starts ---------------------------------------------------------
def quarantine(engine: Engine, host: str, recovery_id: int = 1) -> int:
    from vigil.db.ha import hosts as hosts_db

    hosts_db.ensure(engine, host)
    with engine.begin() as conn:
        return hosts_db.quarantine(conn, host, recovery_id=recovery_id, reason="fence decided",
                                   now=db_now(engine))


def release(engine: Engine, host: str) -> None:
    from vigil.db.ha import hosts as hosts_db

    hosts_db.operator_release(engine, host, actor="test", reason="test")


def test_a_quarantined_host_stops_everything_acknowledges_and_starts_nothing(
        sqlite_engine: Engine) -> None:
    from vigil.db.ha import hosts as hosts_db

    add_host(sqlite_engine, "h1")
    add_host(sqlite_engine, "h2")
    h1 = agent(sqlite_engine, "h1")
    kept, moved = placed(sqlite_engine, "h1", "kept"), placed(sqlite_engine, "h1", "moved")
    for inst in (kept, moved):
        h1.build_and_run_instance({}, inst.uuid)
    waiting = placed(sqlite_engine, "h1", "waiting")  # its build request not delivered yet
    seq = quarantine(sqlite_engine, "h1")
    late = placed(sqlite_engine, "h2", "late")  # a request for another host, misrouted here
    h1.rebuild_instance({}, late.uuid)
    h1.reconcile()
    assert h1.quarantined and fake(h1).list_instances() == []
    assert hosts_db.host_get(sqlite_engine, "h1").quarantine_acked
    assert hosts_db.host_get(sqlite_engine, "h1").quarantine_seq == seq
    assert instances_db.instance_get(sqlite_engine, kept.uuid).power_state == PowerState.SHUTDOWN
    # While quarantined: no resume, no spawn, whatever asks.
    fake(h1).calls.clear()
    h1.reconcile(at_start=True)
    h1.build_and_run_instance({}, waiting.uuid)
    assert fake(h1).calls == []
    # The recovery moves one away; an operator releases the host: it resumes what stays and
    # spawns what waits, never the moved one.
    evacuate_to(sqlite_engine, instances_db.instance_get(sqlite_engine, moved.uuid), "h2")
    release(sqlite_engine, "h1")
    h1.reconcile()
    assert not h1.quarantined
    assert sorted(fake(h1).list_instances()) == sorted([kept.uuid, waiting.uuid])
    assert instances_db.instance_get(sqlite_engine, kept.uuid).vm_state == VmState.ACTIVE
    assert instances_db.instance_get(sqlite_engine, kept.uuid).power_state == PowerState.RUNNING


def test_a_start_refused_or_unconfirmed_leaves_no_copy_running(sqlite_engine: Engine) -> None:
    """The returning-host race: the agent read an instance as its own and idle, then the
    monitor took it (new generation) before the agent started it; or the host was quarantined
    between the grant and the confirmation."""

    class QuarantineDuringSpawn(FakeDriver):
        def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
            super().spawn(instance, rebuild=rebuild)
            quarantine(sqlite_engine, "h1")

    add_host(sqlite_engine, "h1")
    add_host(sqlite_engine, "h2")
    inst = placed(sqlite_engine, "h1")
    h1 = agent(sqlite_engine, "h1",
               QuarantineDuringSpawn.from_settings(virt_settings(make_conf()), "h1"))
    assert not h1.spawn_if_mine(inst.uuid, TaskState.SPAWNING)
    assert fake(h1).list_instances() == []  # started, not confirmed: destroyed at once
    assert ("destroy", inst.uuid) in fake(h1).calls
    release(sqlite_engine, "h1")
    stale = instances_db.instance_get(sqlite_engine, inst.uuid)
    evacuate_to(sqlite_engine, instances_db.instance_update(
        sqlite_engine, inst.uuid, {"vm_state": VmState.ACTIVE, "task_state": None}, host="h1",
        task_states=[TaskState.SPAWNING]) or stale, "h2")
    plain = agent(sqlite_engine, "h1")
    assert not plain._start(stale, StartKind.SPAWN)  # the picture it read is an old generation
    assert fake(plain).calls == []
