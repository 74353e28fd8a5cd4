"""The one door through which anything starts: ``instance_start`` and the ownership
generation, quarantine and its acknowledgement, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import add_host, make_conf, make_group, set_state
from vigil.db import api as db
from vigil.db import compute_api as cdb
from vigil.db import ha_api, hosts_api
from vigil.objects.compute import InstanceRecord, TaskState, VmState
from vigil.objects.ha import HostRecord
from vigil.scheduler.manager import SchedulerManager


def placed(engine: Engine, host: str) -> InstanceRecord:
    flavor = cdb.flavor_get(engine, "m1.tiny")
    inst = cdb.instance_create(engine, name="vm", flavor=flavor, requested_host=host)
    out = SchedulerManager(make_conf(), engine, make_group(engine)).schedule_instance(inst.uuid)
    assert out.host == host, out
    return cdb.instance_get(engine, inst.uuid)


def quarantine(engine: Engine, host: str, recovery_id: int = 7) -> int:
    hosts_api.ensure(engine, host)
    with engine.begin() as conn:
        return hosts_api.quarantine(conn, host, recovery_id=recovery_id, reason="fence decided",
                                    now=db.db_now(engine))


def test_a_claim_starts_a_new_generation_and_grants_only_it(any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    add_host(any_engine, "h2")
    inst = placed(any_engine, "h1")
    assert inst.generation == 1 and inst.task_state == TaskState.SPAWNING
    grant = cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation, "spawn")
    assert grant.granted and grant.reason is None
    # Another host, an old generation, the wrong kind: refused, and why.
    assert cdb.instance_start(any_engine, inst.uuid, "h2", inst.generation,
                              "spawn").reason == "moved"
    assert cdb.instance_start(any_engine, inst.uuid, "h1", 0, "spawn").reason == "moved"
    assert cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                              "resume").reason == "busy"
    with pytest.raises(ValueError, match="unknown start kind"):
        cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation, "reboot")
    cdb.instance_destroy(any_engine, inst.uuid)
    assert cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                              "spawn").reason == "deleted"


def test_an_evacuation_takes_the_instance_out_of_its_hosts_generation(
        any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    add_host(any_engine, "h2")
    inst = placed(any_engine, "h1")
    active = cdb.instance_update(any_engine, inst.uuid, {"vm_state": VmState.ACTIVE,
                                                         "task_state": None},
                                 host="h1", task_states=[TaskState.SPAWNING])
    assert active is not None
    assert cdb.instance_start(any_engine, inst.uuid, "h1", active.generation,
                              "resume").granted
    set_state(any_engine, db.service_get_by_host_binary(any_engine, "h1", "vigil-compute"),
              "stale")
    moved = cdb.instance_update(any_engine, inst.uuid, {"task_state": TaskState.REBUILDING},
                                host="h1", task_states=[None], generation=active.generation,
                                new_owner=True)
    assert moved is not None and moved.generation == active.generation + 1
    # h1 read the old generation (it came back with a stale picture): never granted again.
    assert cdb.instance_start(any_engine, inst.uuid, "h1", active.generation,
                              "resume").reason == "moved"
    assert cdb.instance_start(any_engine, inst.uuid, "h1", moved.generation,
                              "resume").reason == "busy"
    claimed = SchedulerManager(make_conf(), any_engine, make_group(any_engine)
                               ).schedule_instance(inst.uuid)
    assert claimed.host == "h2"
    now = cdb.instance_get(any_engine, inst.uuid)
    assert now.generation == moved.generation + 1
    assert cdb.instance_start(any_engine, inst.uuid, "h2", now.generation, "rebuild").granted
    assert cdb.instance_start(any_engine, inst.uuid, "h1", now.generation,
                              "rebuild").reason == "moved"


def test_a_quarantined_host_is_granted_nothing_until_released(any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    inst = placed(any_engine, "h1")
    seq = quarantine(any_engine, "h1")
    assert quarantine(any_engine, "h1") == seq  # idempotent for the same recovery
    assert cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation,
                              "spawn").reason == "quarantined"
    # The confirmation of a start in flight fails too.
    assert cdb.instance_update(any_engine, inst.uuid, {"vm_state": VmState.ACTIVE,
                                                       "task_state": None},
                               host="h1", task_states=[TaskState.SPAWNING],
                               generation=inst.generation, unless_quarantined=True) is None
    facts = hosts_api.host_get(any_engine, "h1")
    assert facts.quarantined and facts.quarantine_recovery_id == 7 and not facts.quarantine_acked
    assert hosts_api.quarantine_ack(any_engine, "h1", seq)
    assert not hosts_api.quarantine_ack(any_engine, "h1", seq + 1)  # not the current one
    assert hosts_api.host_get(any_engine, "h1").quarantine_acked
    # Only the recovery that holds it releases it from inside the workflow.
    with any_engine.begin() as conn:
        assert not hosts_api.release_in(conn, "h1", recovery_id=8, actor="monitor",
                                        reason="x", now=db.db_now(any_engine))
        assert hosts_api.release_in(conn, "h1", recovery_id=7, actor="monitor",
                                    reason="evacuations over", now=db.db_now(any_engine))
    facts = hosts_api.host_get(any_engine, "h1")
    assert not facts.quarantined and not facts.quarantine_acked
    assert (facts.released_by, facts.release_reason) == ("monitor", "evacuations over")
    assert cdb.instance_start(any_engine, inst.uuid, "h1", inst.generation, "spawn").granted
    # A new quarantine is a new number: an acknowledgement of the old one does not count.
    seq2 = quarantine(any_engine, "h1", recovery_id=9)
    assert seq2 == seq + 1 and not hosts_api.quarantine_ack(any_engine, "h1", seq)


def test_operator_release_and_maintenance_record_the_actor(any_engine: Engine) -> None:
    assert hosts_api.host_get(any_engine, "nowhere") == HostRecord("nowhere")
    rec, held = hosts_api.operator_release(any_engine, "h1", actor="alice", reason="r")
    assert held is None and not rec.quarantined and rec.released_by is None
    quarantine(any_engine, "h1", recovery_id=3)
    rec, held = hosts_api.operator_release(any_engine, "h1", actor="alice", reason="fixed")
    assert held == 3 and not rec.quarantined
    assert (rec.released_by, rec.release_reason) == ("alice", "fixed")
    on = hosts_api.set_maintenance(any_engine, "h1", True, actor="bob", reason="upgrade")
    assert on.maintenance and on.maintenance_by == "bob" and on.maintenance_since is not None
    again = hosts_api.set_maintenance(any_engine, "h1", True, actor="carol", reason="longer")
    assert again.maintenance_since == on.maintenance_since and again.maintenance_by == "carol"
    off = hosts_api.set_maintenance(any_engine, "h1", False, actor="bob", reason=None)
    assert not off.maintenance and off.maintenance_reason is None
    assert set(hosts_api.hosts(any_engine)) == {"h1"}


def test_evacuation_request_needs_the_quarantine_and_starts_a_generation(
        any_engine: Engine) -> None:
    add_host(any_engine, "h1")
    inst = placed(any_engine, "h1")
    svc = db.service_get_by_host_binary(any_engine, "h1", "vigil-compute")
    token = ha_api.lease_acquire(any_engine, "ha-monitor", "m1", 30)
    assert token is not None
    rec = ha_api.recovery_open(any_engine, token, host="h1", service_id=svc.id,
                               trigger="monitor", was_disabled=False, was_forced_down=False,
                               detail="test")
    assert rec is not None
    # Not quarantined (by this recovery): nothing is taken from the host.
    assert ha_api.evacuation_request(any_engine, token, rec.id, inst.uuid, "h1",
                                     inst.generation) == ha_api.NOT_QUARANTINED
    quarantine(any_engine, "h1", recovery_id=rec.id)
    assert ha_api.evacuation_request(any_engine, token, rec.id, inst.uuid, "h1",
                                     inst.generation + 5) is not None  # stale picture
    assert ha_api.evacuation_request(any_engine, token, rec.id, inst.uuid, "h1",
                                     inst.generation) is None
    now = cdb.instance_get(any_engine, inst.uuid)
    assert (now.task_state, now.generation) == (TaskState.REBUILDING, inst.generation + 1)
