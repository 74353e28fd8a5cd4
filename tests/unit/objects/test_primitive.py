"""The one JSON codec of records that cross RPC: enums, datetimes and nested records come back
as they left, through real JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from vigil.objects.baremetal import NODE_WIRE, Move, MoveKind, MoveResult, Node, NodePower
from vigil.objects.compute import (
    InstanceRecord,
    Inventory,
    PowerState,
    StartGrant,
    StartRefusal,
    TaskState,
    VmState,
)
from vigil.objects.primitive import pack, unpack

NOW = dt.datetime(2026, 12, 3, 12, 0, 0, 123456)


def through_json(data: object) -> Any:
    return json.loads(json.dumps(data))


def test_an_instance_keeps_its_enums_and_datetimes() -> None:
    inst = InstanceRecord(
        id=1, uuid="u", name="vm", flavorid="f", flavor_name="m1.tiny", vcpus=1, memory_mb=512,
        root_gb=1, availability_zone=None, requested_host=None, host="h1", node="h1",
        compute_node_id=3, vm_state=VmState.ACTIVE, task_state=None,
        power_state=PowerState.RUNNING, generation=2, evacuable=True, fault=None, fault_at=None,
        launched_at=NOW, terminated_at=None, created_at=NOW, updated_at=None, deleted=False)
    wire = through_json(inst.to_primitive())
    assert isinstance(wire, dict)
    assert (wire["vm_state"], wire["task_state"], wire["power_state"]) == ("active", None, 1)
    back = InstanceRecord.from_primitive(wire)
    assert back == inst
    assert back.vm_state is VmState.ACTIVE and back.power_state is PowerState.RUNNING
    moving = InstanceRecord.from_primitive({**wire, "task_state": "rebuild_spawning"})
    assert moving.task_state is TaskState.REBUILD_SPAWNING


def test_a_refused_start_says_why_as_a_member() -> None:
    back = StartGrant.from_primitive(through_json(
        StartGrant(False, StartRefusal.QUARANTINED).to_primitive()))
    assert back.reason is StartRefusal.QUARANTINED and not back.granted
    assert StartGrant.from_primitive({"granted": True}) == StartGrant(True)


def test_a_move_carries_its_inventory_and_a_result_its_lists() -> None:
    inv = Inventory("node-1", "baremetal", 1, 4, 4096, 10, 1.0, 1.0, 1.0, None, "nova")
    move = Move("node-1", MoveKind.TAKE_FROM_DOWN, 7, "dead-host", inv)
    back = Move.from_primitive(through_json(move.to_primitive()))
    assert back == move and back.kind is MoveKind.TAKE_FROM_DOWN and back.inventory == inv
    release = Move("node-2", MoveKind.RELEASE, 8, "me")
    assert Move.from_primitive(through_json(release.to_primitive())) == release
    result = MoveResult(taken={"node-1": 7}, lost=["node-3"], refused=["node-4"], updated=2)
    assert MoveResult.from_primitive(through_json(result.to_primitive())) == result


def test_packed_nodes_come_back_with_their_power_as_a_member() -> None:
    nodes = [Node("n1", "one", "baremetal", 4, 4096, 10, NodePower.ON, False, "i1"),
             Node("n2", None, "baremetal", 2, 2048, 5, NodePower.OFF, True, None)]
    back = unpack(Node, through_json(pack(nodes, NODE_WIRE)))
    assert back == nodes
    assert [n.power_state for n in back] == [NodePower.ON, NodePower.OFF]
    assert back[0].power_state is NodePower.ON
