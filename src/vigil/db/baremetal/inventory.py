"""Vigil's own bare-metal inventory (``baremetal_nodes``): what Ironic would be, for the
processes that may open the database. A node's compute-node record and its ownership are
:mod:`.ownership`'s; deleting a node takes its record with it, in one transaction."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Connection, Engine

from vigil.db._query import insert_unique, translate_errors
from vigil.db.baremetal_models import BareMetalNode, BareMetalNodeRecord
from vigil.db.compute_models import ComputeNode
from vigil.db.types import utcnow
from vigil.errors import Conflict, NotFound
from vigil.objects.baremetal import HYPERVISOR_TYPE, Node, NodePower

_NODE_COLS = (BareMetalNode.uuid, BareMetalNode.name, BareMetalNode.resource_class,
              BareMetalNode.properties, BareMetalNode.power_state, BareMetalNode.maintenance,
              BareMetalNode.instance_uuid, BareMetalNode.created_at, BareMetalNode.updated_at)


def _node(row: Any) -> Node:
    (uuid, name, rclass, props, power, maintenance, instance_uuid, created, updated) = row
    props = props or {}
    return Node(uuid=uuid, name=name, resource_class=rclass, cpus=int(props.get("cpus", 0)),
                memory_mb=int(props.get("memory_mb", 0)), local_gb=int(props.get("local_gb", 0)),
                power_state=NodePower(power), maintenance=bool(maintenance),
                instance_uuid=instance_uuid, created_at=created, updated_at=updated)


@translate_errors
def node_create(engine: Engine, *, cpus: int, memory_mb: int, local_gb: int,
                name: str | None = None, uuid: str | None = None,
                resource_class: str = HYPERVISOR_TYPE, power_state: NodePower = NodePower.OFF,
                maintenance: bool = False) -> Node:
    """A new node; Conflict if a live node already has its uuid or name. The caller has
    validated the values (:mod:`vigil.baremetal.nodes`)."""
    node_uuid = uuid or str(uuidlib.uuid4())
    taken = BareMetalNode.uuid == node_uuid
    if name is not None:
        taken = or_(taken, BareMetalNode.name == name)
    row = insert_unique(
        engine, BareMetalNode,
        dict(uuid=node_uuid, name=name, resource_class=resource_class,
             properties={"cpus": cpus, "memory_mb": memory_mb, "local_gb": local_gb},
             power_state=power_state, maintenance=maintenance, instance_uuid=None,
             created_at=utcnow(), deleted=0),
        taken=taken, conflict=f"a node with uuid {node_uuid} or name {name!r} already exists",
        read=select(*_NODE_COLS).where(BareMetalNode.uuid == node_uuid,
                                       BareMetalNode.deleted == 0))
    return _node(row)


@translate_errors
def nodes(engine: Engine) -> list[Node]:
    """Live nodes, oldest first: one statement whatever their number."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_NODE_COLS).where(BareMetalNode.deleted == 0)
                            .order_by(BareMetalNode.id))
        return [_node(r) for r in rows]


def _find(conn: Connection, ident: str) -> Any:
    for cond in (BareMetalNode.uuid == ident, BareMetalNode.name == ident):
        row = conn.execute(select(BareMetalNode.id, *_NODE_COLS)
                           .where(cond, BareMetalNode.deleted == 0)).first()
        if row is not None:
            return row
    raise NotFound(f"bare-metal node {ident} not found")


@translate_errors
def node_get(engine: Engine, ident: str) -> Node:
    """By uuid, then by name."""
    with engine.connect() as conn:
        return _node(_find(conn, ident)[1:])


@translate_errors
def node_delete(engine: Engine, ident: str) -> Node:
    """Delete a node that holds no instance, and its compute-node record with it.

    One transaction: the record goes with the node, so no record outlives its node (it would
    keep counting capacity that no longer exists), and the record's running_vms = 0 is part
    of the UPDATE's WHERE so a claim landing meanwhile makes the delete fail, not vanish.
    """
    with engine.begin() as conn:
        row = _find(conn, ident)
        node = _node(row[1:])
        if node.instance_uuid is not None:
            raise Conflict(f"node {node.uuid} holds instance {node.instance_uuid}: delete the "
                           "instance first")
        link = conn.execute(select(BareMetalNodeRecord.compute_node_id).where(
            BareMetalNodeRecord.node_uuid == node.uuid)).scalar()
        if link is not None:
            busy = conn.execute(select(ComputeNode.running_vms).where(
                ComputeNode.id == link, ComputeNode.deleted == 0)).scalar()
            if busy:
                raise Conflict(f"node {node.uuid} has an instance placed on it: delete the "
                               "instance first")
            conn.execute(update(ComputeNode).where(
                ComputeNode.id == link, ComputeNode.deleted == 0, ComputeNode.running_vms == 0,
            ).values(deleted=ComputeNode.id, deleted_at=utcnow(), updated_at=utcnow()))
            conn.execute(delete(BareMetalNodeRecord).where(
                BareMetalNodeRecord.node_uuid == node.uuid))
        result = conn.execute(update(BareMetalNode).where(
            BareMetalNode.id == row[0], BareMetalNode.deleted == 0,
            BareMetalNode.instance_uuid.is_(None),
        ).values(deleted=BareMetalNode.id, deleted_at=utcnow(), updated_at=utcnow()))
        if result.rowcount != 1:
            raise Conflict(f"node {node.uuid} changed while being deleted; try again")
    return node
