"""Conductor endpoints of the compute agents: inventory, instance ownership, state reports.

Agents never open the database; they call these over RPC. Every instance write from an agent is
a compare-and-set that names the agent's host and the task state it expects, so a host that
lost an instance (evacuated while it was down) can never flip it back to itself: its write
matches nothing, and the agent learns the instance is not its own.
"""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging
from sqlalchemy.engine import Engine

from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.ha import hosts as hosts_db
from vigil.errors import NotFound
from vigil.objects.compute import Inventory

LOG = logging.getLogger(__name__)

# What an agent may write on an instance it holds.
AGENT_FIELDS = {"vm_state", "task_state", "power_state", "fault"}
AGENT_NOW_FIELDS = {"launched_at"}


class ComputeConductorManager:
    target = messaging.Target(version="1.0")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def compute_node_update(self, ctxt: dict[str, Any], host: str,
                            inventory: dict[str, Any]) -> dict[str, Any]:
        node = nodes_db.compute_node_update(self._engine, host,
                                            Inventory.from_primitive(inventory))
        return node.to_primitive()

    def instance_get(self, ctxt: dict[str, Any], instance_uuid: str) -> dict[str, Any] | None:
        """The instance, deleted or not (an agent cleaning up needs to tell moved from gone)."""
        try:
            return instances_db.instance_get(self._engine, instance_uuid,
                                             read_deleted=True).to_primitive()
        except NotFound:
            return None

    def host_view(self, ctxt: dict[str, Any], host: str) -> dict[str, Any]:
        """What a host's reconciliation needs, in one call: the instances placed on it and its
        HA facts (quarantined? in maintenance?)."""
        placed = instances_db.instances(self._engine, host=host)
        return {"host": hosts_db.host_get(self._engine, host).to_primitive(),
                "instances": [i.to_primitive() for i in placed]}

    def instance_start(self, ctxt: dict[str, Any], instance_uuid: str, host: str,
                       generation: int, kind: str) -> dict[str, Any]:
        """May ``host`` start this instance now?
        (:func:`vigil.db.compute.instances.instance_start`)"""
        return instances_db.instance_start(self._engine, instance_uuid, host, generation,
                                           kind).to_primitive()

    def quarantine_ack(self, ctxt: dict[str, Any], host: str, seq: int) -> bool:
        """The host's agent runs nothing any more under quarantine ``seq``."""
        return hosts_db.quarantine_ack(self._engine, host, seq)

    def instance_update(self, ctxt: dict[str, Any], instance_uuid: str, host: str,
                        values: dict[str, Any], task_states: list[str | None],
                        now_fields: list[str], generation: int | None = None,
                        unless_quarantined: bool = False) -> dict[str, Any] | None:
        bad = (set(values) - AGENT_FIELDS) | (set(now_fields) - AGENT_NOW_FIELDS)
        if bad:
            raise ValueError(f"an agent may not write {sorted(bad)}")
        inst = instances_db.instance_update(self._engine, instance_uuid, values, host=host,
                                            task_states=task_states, now_fields=now_fields,
                                            generation=generation,
                                            unless_quarantined=unless_quarantined)
        return inst.to_primitive() if inst is not None else None

    def instance_spawn_failed(self, ctxt: dict[str, Any], instance_uuid: str, host: str,
                              task_state: str, fault: str) -> dict[str, Any] | None:
        """ERROR with the fault, and the claim given back (a failed spawn holds nothing)."""
        inst = instances_db.instance_fail(self._engine, instance_uuid, fault,
                                          expected_task_state=task_state, release=True, host=host)
        return inst.to_primitive() if inst is not None else None
