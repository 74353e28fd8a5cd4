"""Ownership compare-and-sets on SQLite, PostgreSQL and MariaDB: concurrent takers of one
node, exactly one wins; a record never gets a second owner; releases only without an
instance; deleted records are replaced; provisioning takes whole nodes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.unit.baremetal.helpers import (
    boot_on,
    live_records,
    node,
    own,
    race,
    record,
)
from vigil.baremetal.inventory import record_inventory
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.db.baremetal import provisioning as provisioning_db
from vigil.db.compute import claims as claims_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.compute_models import ComputeNode
from vigil.errors import Conflict
from vigil.objects import capacity
from vigil.objects.baremetal import RELEASED, Node, NodePower, Provisioning
from vigil.objects.compute import NodeRecord, TaskState

TAKERS = 8


def closed(rec: NodeRecord) -> bool:
    """No room for even the smallest instance, and the usage within capacity (whole node)."""
    return (not capacity.fits(rec, vcpus=1, memory_mb=1, root_gb=0)
            and rec.vcpus_used <= rec.vcpus * rec.cpu_allocation_ratio
            and rec.memory_mb_used <= rec.memory_mb * rec.ram_allocation_ratio
            and rec.local_gb_used <= rec.local_gb * rec.disk_allocation_ratio)


def test_concurrent_creators_of_one_node_one_wins(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    inv = record_inventory(n, "nova")
    results = race(TAKERS, lambda i: ownership_db.take(any_engine, n.uuid, f"h{i}", expected=None,
                                                       record_id=None, inventory=inv))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1, results
    assert live_records(any_engine, n.uuid) == [(results[winners[0]], f"h{winners[0]}")]
    (state,) = ownership_db.record_states(any_engine)
    assert (state.record_id, state.host, state.live) == (results[winners[0]],
                                                         f"h{winners[0]}", True)


def test_concurrent_takers_of_a_released_record_one_wins(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "old")
    assert ownership_db.release(any_engine, n.uuid, rid, "old")
    assert record(any_engine, rid) == (RELEASED, 0, 0)  # released: counts for nothing
    inv = record_inventory(n, "nova")
    results = race(TAKERS, lambda i: ownership_db.take(any_engine, n.uuid, f"h{i}",
                                                       expected=RELEASED, record_id=rid,
                                                       inventory=inv))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1 and results[winners[0]] == rid
    assert record(any_engine, rid) == (f"h{winners[0]}", n.cpus, 0)
    assert live_records(any_engine, n.uuid) == [(rid, f"h{winners[0]}")]


def test_concurrent_takers_from_a_dead_owner_one_wins_and_gets_the_instance(
        any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "dead")
    inst = boot_on(any_engine, rid)
    assert inst.host == "dead"
    inv = record_inventory(n, "nova", running_vms=1)
    results = race(TAKERS, lambda i: ownership_db.take(any_engine, n.uuid, f"h{i}", expected="dead",
                                                       record_id=rid, inventory=inv))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1
    new_owner = f"h{winners[0]}"
    assert record(any_engine, rid)[0] == new_owner
    moved = instances_db.instance_get(any_engine, inst.uuid)
    assert (moved.host, moved.compute_node_id, moved.node) == (new_owner, rid, n.uuid)
    # The usage stayed with the record: still one instance claimed on it, and the inventory
    # rewrite kept it closed to other claims (whole node).
    node_row = nodes_db.compute_node_get(any_engine, rid)
    assert node_row.running_vms == 1 and closed(node_row)


def test_a_take_on_a_stale_picture_matches_nothing(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    inv = record_inventory(n, "nova")
    # "b" thinks the owner is "c" (a stale view): nothing changes.
    assert ownership_db.take(any_engine, n.uuid, "b", expected="c", record_id=rid,
                             inventory=inv) is None
    # A second creation of a node that has a live record fails on the node's link row.
    assert ownership_db.take(any_engine, n.uuid, "b", expected=None, record_id=None,
                             inventory=inv) is None
    assert live_records(any_engine, n.uuid) == [(rid, "a")]


def test_release_only_by_the_owner_and_only_without_an_instance(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    assert not ownership_db.release(any_engine, n.uuid, rid, "b")  # not b's to give
    inst = boot_on(any_engine, rid)
    assert not ownership_db.release(any_engine, n.uuid, rid, "a")  # holds a claim
    instances_db.instance_destroy(any_engine, inst.uuid)
    assert ownership_db.release(any_engine, n.uuid, rid, "a")
    assert not ownership_db.release(any_engine, n.uuid, rid, "a")  # already released


def test_a_released_record_refuses_a_claim_decided_before_the_release(
        any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    seen = nodes_db.compute_node_get(any_engine, rid)  # the scheduler's picture
    assert ownership_db.release(any_engine, n.uuid, rid, "a")
    flavor = flavors_db.flavor_get(any_engine, "m1.tiny")
    inst = instances_db.instance_create(any_engine, name="late", flavor=flavor)
    result = claims_db.claim(any_engine, inst, seen, expected_task_state=TaskState.SCHEDULING,
                             new_task_state=TaskState.SPAWNING)
    assert result.instance is None and result.reason == "node"


def test_a_deleted_record_is_replaced_once(any_engine: Engine) -> None:
    """Nova's third failure: a compute node record deleted and never recreated."""
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    nodes_db.compute_nodes_soft_delete(any_engine, "a")  # e.g. with its service
    (state,) = ownership_db.record_states(any_engine)
    assert (state.record_id, state.live, state.host) == (rid, False, None)
    inv = record_inventory(n, "nova")
    results = race(TAKERS, lambda i: ownership_db.take(any_engine, n.uuid, f"h{i}", expected=None,
                                                       record_id=rid, inventory=inv))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0] != rid
    (state,) = ownership_db.record_states(any_engine)
    assert (state.record_id, state.live) == (winners[0], True)
    assert len(live_records(any_engine, n.uuid)) == 1


def test_inventory_updates_only_by_the_owner(any_engine: Engine) -> None:
    n = node(any_engine, "n1", cpus=8)
    rid = own(any_engine, n, "a")
    bigger = record_inventory(Node(**{**n.__dict__, "cpus": 16}), "nova")
    assert not ownership_db.record_update(any_engine, rid, "b", bigger)
    assert record(any_engine, rid)[1] == 8
    assert ownership_db.record_update(any_engine, rid, "a", bigger)
    assert record(any_engine, rid)[1] == 16


def test_provisioning_takes_whole_nodes(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    first = boot_on(any_engine, rid, "first")
    second = boot_on(any_engine, rid, "second")  # raced in before the record closed
    assert provisioning_db.provision(any_engine, "b", first.uuid) == Provisioning.NOT_HERE
    assert provisioning_db.provision(any_engine, "a", first.uuid) == Provisioning.PROVISIONED
    assert provisioning_db.provision(any_engine, "a", first.uuid) == Provisioning.ALREADY
    assert provisioning_db.provision(any_engine, "a", second.uuid) == Provisioning.BUSY
    assert inventory_db.node_get(any_engine, n.uuid).instance_uuid == first.uuid
    assert closed(nodes_db.compute_node_get(any_engine, rid))
    # The node's instance is placed there: a stale copy's cleanup keeps it.
    assert provisioning_db.unprovision(any_engine, first.uuid) == 0
    instances_db.instance_destroy(any_engine, first.uuid)
    assert provisioning_db.unprovision(any_engine, first.uuid) == 1
    cleared = inventory_db.node_get(any_engine, n.uuid)
    assert (cleared.instance_uuid, cleared.power_state) == (None, NodePower.OFF)


def test_delete_refuses_a_node_with_an_instance_and_changes_nothing(any_engine: Engine) -> None:
    n = node(any_engine, "n1")
    rid = own(any_engine, n, "a")
    inst = boot_on(any_engine, rid)

    def rows() -> list[tuple[object, ...]]:
        with any_engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(ComputeNode.id, ComputeNode.deleted,
                                                              ComputeNode.running_vms))]

    before = rows()
    with pytest.raises(Conflict, match="instance"):
        inventory_db.node_delete(any_engine, "n1")
    assert rows() == before and inventory_db.node_get(any_engine, "n1").uuid == n.uuid
    instances_db.instance_destroy(any_engine, inst.uuid)
    inventory_db.node_delete(any_engine, "n1")
    assert inventory_db.nodes(any_engine) == [] and ownership_db.record_states(any_engine) == []
    assert record(any_engine, rid)[2] != 0  # its record went with it
