"""Provisioning: the database inventory's side of a bare-metal spawn and destroy (Ironic's
``instance_uuid``). A provisioned node's record closes to further claims in the same
statement (:func:`vigil.db.baremetal.ownership.closed_ratio`)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from vigil.db._query import translate_errors
from vigil.db.baremetal.ownership import closed_ratio
from vigil.db.baremetal_models import BareMetalNode
from vigil.db.compute_models import ComputeNode, Instance
from vigil.db.types import utcnow
from vigil.objects.baremetal import NodePower, Provisioning
from vigil.objects.capacity import RESOURCES


@translate_errors
def provision(engine: Engine, host: str, instance_uuid: str) -> Provisioning:
    """Put ``instance_uuid`` on the node its claim chose, as Ironic's instance_uuid does
    (:class:`~vigil.objects.baremetal.Provisioning` says what each answer means). The record's
    allocation ratios close with it so no other claim fits on the node.
    """
    with engine.begin() as conn:
        inst = conn.execute(select(Instance.host, Instance.compute_node_id).where(
            Instance.uuid == instance_uuid, Instance.deleted == 0)).first()
        if inst is None or inst.host != host or inst.compute_node_id is None:
            return Provisioning.NOT_HERE
        node_uuid = conn.execute(select(ComputeNode.hypervisor_hostname).where(
            ComputeNode.id == inst.compute_node_id, ComputeNode.host == host,
            ComputeNode.deleted == 0)).scalar()
        if node_uuid is None:
            return Provisioning.NOT_HERE
        holder = conn.execute(select(BareMetalNode.instance_uuid).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0)).first()
        if holder is None:
            return Provisioning.NOT_HERE
        if holder[0] == instance_uuid:
            return Provisioning.ALREADY
        result = conn.execute(update(BareMetalNode).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0,
            BareMetalNode.instance_uuid.is_(None),
        ).values(instance_uuid=instance_uuid, power_state=NodePower.ON, updated_at=utcnow()))
        if result.rowcount != 1:
            return Provisioning.BUSY
        conn.execute(update(ComputeNode).where(ComputeNode.id == inst.compute_node_id).values(
            updated_at=utcnow(), **{r.ratio: closed_ratio(r.used, getattr(ComputeNode, r.total))
                                    for r in RESOURCES}))
    return Provisioning.PROVISIONED


@translate_errors
def unprovision(engine: Engine, instance_uuid: str) -> int:
    """Clear ``instance_uuid`` from every node it no longer lives on; returns how many.

    The node its live instance is placed on keeps it: a stale copy being cleaned up by the
    node's previous owner (the node moved, with its instance) must not wipe the node.
    """
    with engine.begin() as conn:
        home = conn.execute(
            select(ComputeNode.hypervisor_hostname)
            .join(Instance, Instance.compute_node_id == ComputeNode.id)
            .where(Instance.uuid == instance_uuid, Instance.deleted == 0)).scalar()
        stmt = update(BareMetalNode).where(BareMetalNode.instance_uuid == instance_uuid,
                                           BareMetalNode.deleted == 0)
        if home is not None:
            stmt = stmt.where(BareMetalNode.uuid != home)
        result = conn.execute(stmt.values(instance_uuid=None, power_state=NodePower.OFF,
                                          updated_at=utcnow()))
        return int(result.rowcount)
