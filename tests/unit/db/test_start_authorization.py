"""The one door through which anything starts: ``instance_start`` and the ownership
generation, quarantine and its acknowledgement, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import add_host, make_conf, make_group, set_state
from vigil.compute import evacuation
from vigil.db import db_now
from vigil.db import services as services_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.launch.settings import scheduler_settings
from vigil.objects.compute import InstanceRecord, TaskState, VmState
from vigil.objects.ha import HostRecord
from vigil.scheduler.manager import SchedulerManager

AFTER_FENCE = {"task_states": evacuation.AFTER_FENCE.task_states,
               "vm_states": evacuation.AFTER_FENCE.vm_states}


def placed(engine: Engine, host: str) -> InstanceRecord:
    flavor = flavors_db.flavor_get(engine, "m1.tiny")
    inst = instances_db.instance_create(engine, name="vm", flavor=flavor, requested_host=host)
    out = SchedulerManager(scheduler_settings(make_conf()), engine,
                           make_group(engine)).schedule_instance(inst.uuid)
    assert out.host == host, out
    return instances_db.instance_get(engine, inst.uuid)


def quarantine(engine: Engine, host: str, recovery_id: int = 7) -> int:
    hosts_db.ensure(engine, host)
    with engine.begin() as conn:
        return hosts_db.quarantine(conn, host, recovery_id=recovery_id, reason="fence decided",
                                   now=db_now(engine))


def test_a_claim_starts_a_new_generation_and_grants_only_it(any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    add_host(any_engine, "h2")
    inst = placed(any_engine, "h1")
    assert inst.generation == 1 and inst.task_state == TaskState.SPAWNING
    grant = instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation, "spawn")
    assert grant.granted and grant.reason is None
    # Another host, an old generation, the wrong kind: refused, and why.
    assert instances_db.instance_start(any_engine, inst.uuid, "h2", inst.generation,
                                       "spawn").reason == "moved"
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", 0, "spawn").reason == "moved"
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                                       "resume").reason == "busy"
    with pytest.raises(ValueError, match="unknown start kind"):
        instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation, "reboot")
    instances_db.instance_destroy(any_engine, inst.uuid)
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                                       "spawn").reason == "deleted"


def test_an_evacuation_takes_the_instance_out_of_its_hosts_generation(
        any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    add_host(any_engine, "h2")
    inst = placed(any_engine, "h1")
    active = instances_db.instance_update(any_engine, inst.uuid, {"vm_state": VmState.ACTIVE,
                                                                  "task_state": None},
                                 host="h1", task_states=[TaskState.SPAWNING])
    assert active is not None
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", active.generation,
                                       "resume").granted
    set_state(any_engine, services_db.service_get_by_host_binary(any_engine, "h1", "vigil-compute"),
              "stale")
    moved = instances_db.instance_update(any_engine, inst.uuid,
                                         {"task_state": TaskState.REBUILDING},
                                host="h1", task_states=[None], generation=active.generation,
                                new_owner=True)
    assert moved is not None and moved.generation == active.generation + 1
    # h1 read the old generation (it came back with a stale picture): never granted again.
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", active.generation,
                                       "resume").reason == "moved"
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", moved.generation,
                                       "resume").reason == "busy"
    claimed = SchedulerManager(scheduler_settings(make_conf()), any_engine, make_group(any_engine)
                               ).schedule_instance(inst.uuid)
    assert claimed.host == "h2"
    now = instances_db.instance_get(any_engine, inst.uuid)
    assert now.generation == moved.generation + 1
    assert instances_db.instance_start(any_engine, inst.uuid, "h2", now.generation,
                                       "rebuild").granted
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", now.generation,
                                       "rebuild").reason == "moved"


def test_a_quarantined_host_is_granted_nothing_until_released(any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    inst = placed(any_engine, "h1")
    seq = quarantine(any_engine, "h1")
    assert quarantine(any_engine, "h1") == seq  # idempotent for the same recovery
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                                       "spawn").reason == "quarantined"
    # The confirmation of a start in flight fails too.
    assert instances_db.instance_update(any_engine, inst.uuid, {"vm_state": VmState.ACTIVE,
                                                                "task_state": None},
                               host="h1", task_states=[TaskState.SPAWNING],
                               generation=inst.generation, unless_quarantined=True) is None
    facts = hosts_db.host_get(any_engine, "h1")
    assert facts.quarantined and facts.quarantine_recovery_id == 7 and not facts.quarantine_acked
    assert hosts_db.quarantine_ack(any_engine, "h1", seq)
    assert not hosts_db.quarantine_ack(any_engine, "h1", seq + 1)  # not the current one
    assert hosts_db.host_get(any_engine, "h1").quarantine_acked
    # Only the recovery that holds it releases it from inside the workflow.
    with any_engine.begin() as conn:
        assert not hosts_db.release_in(conn, "h1", recovery_id=8, actor="monitor",
                                       reason="x", now=db_now(any_engine))
        assert hosts_db.release_in(conn, "h1", recovery_id=7, actor="monitor",
                                   reason="evacuations over", now=db_now(any_engine))
    facts = hosts_db.host_get(any_engine, "h1")
    assert not facts.quarantined and not facts.quarantine_acked
    assert (facts.released_by, facts.release_reason) == ("monitor", "evacuations over")
    assert instances_db.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                                       "spawn").granted
    # A new quarantine is a new number: an acknowledgement of the old one does not count.
    seq2 = quarantine(any_engine, "h1", recovery_id=9)
    assert seq2 == seq + 1 and not hosts_db.quarantine_ack(any_engine, "h1", seq)


def test_operator_release_and_maintenance_record_the_actor(any_engine: Engine) -> None:
    assert hosts_db.host_get(any_engine, "nowhere") == HostRecord("nowhere")
    rec, held = hosts_db.operator_release(any_engine, "h1", actor="alice", reason="r")
    assert held is None and not rec.quarantined and rec.released_by is None
    quarantine(any_engine, "h1", recovery_id=3)
    rec, held = hosts_db.operator_release(any_engine, "h1", actor="alice", reason="fixed")
    assert held == 3 and not rec.quarantined
    assert (rec.released_by, rec.release_reason) == ("alice", "fixed")
    on = hosts_db.set_maintenance(any_engine, "h1", True, actor="bob", reason="upgrade")
    assert on.maintenance and on.maintenance_by == "bob" and on.maintenance_since is not None
    again = hosts_db.set_maintenance(any_engine, "h1", True, actor="carol", reason="longer")
    assert again.maintenance_since == on.maintenance_since and again.maintenance_by == "carol"
    off = hosts_db.set_maintenance(any_engine, "h1", False, actor="bob", reason=None)
    assert not off.maintenance and off.maintenance_reason is None
    assert set(hosts_db.hosts(any_engine)) == {"h1"}


def test_evacuation_request_needs_the_quarantine_and_starts_a_generation(
        any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    inst = placed(any_engine, "h1")
    svc = services_db.service_get_by_host_binary(any_engine, "h1", "vigil-compute")
    token = lease_db.lease_acquire(any_engine, "ha-monitor", "m1", 30)
    assert token is not None
    rec = recoveries_db.recovery_open(any_engine, token, host="h1", service_id=svc.id,
                                      trigger="monitor", was_disabled=False, was_forced_down=False,
                                      detail="test")
    assert rec is not None
    # Not quarantined (by this recovery): nothing is taken from the host.
    assert evacuations_db.evacuation_request(
        any_engine, token, rec.id, inst.uuid, "h1", inst.generation,
        **AFTER_FENCE) == evacuations_db.NOT_QUARANTINED
    quarantine(any_engine, "h1", recovery_id=rec.id)
    assert evacuations_db.evacuation_request(
        any_engine, token, rec.id, inst.uuid, "h1", inst.generation + 5,
        **AFTER_FENCE) is not None  # stale picture
    assert evacuations_db.evacuation_request(any_engine, token, rec.id, inst.uuid, "h1",
                                             inst.generation, **AFTER_FENCE) is None
    now = instances_db.instance_get(any_engine, inst.uuid)
    assert (now.task_state, now.generation) == (TaskState.REBUILDING, inst.generation + 1)
