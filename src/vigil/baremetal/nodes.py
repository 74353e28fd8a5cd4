"""Bare-metal node operations: what ``vigil node`` and ``/v2.1/vigil/nodes`` both call.

Every operation validates all of its input before writing anything, so bad input changes
nothing (one line of explanation, InvalidInput: HTTP 400, exit status 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from vigil import formats, ids
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.db.baremetal import provisioning as provisioning_db
from vigil.errors import InvalidInput
from vigil.objects.baremetal import HYPERVISOR_TYPE, RELEASED, Node, NodePower, Provisioning

MAX_INT = 2**31 - 1
POWER_VALUES = tuple(p.value for p in NodePower)
MAX_NAME = 255
_RESOURCE_CLASS = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


@dataclass(frozen=True)
class NodeView:
    """A node with the host whose compute service manages it (None: nobody yet)."""

    node: Node
    owner: str | None

    def to_dict(self) -> dict[str, Any]:
        n = self.node
        return {
            "uuid": n.uuid,
            "name": n.name,
            "resource_class": n.resource_class,
            "properties": {"cpus": n.cpus, "memory_mb": n.memory_mb, "local_gb": n.local_gb},
            "power_state": n.power_state,
            "maintenance": n.maintenance,
            "instance_uuid": n.instance_uuid,
            "owner": self.owner,
            "created_at": formats.timestamp(n.created_at),
            "updated_at": formats.timestamp(n.updated_at),
        }


def _count(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer, not {value!r}")
    if not minimum <= value <= MAX_INT:
        raise InvalidInput(f"{name} must be between {minimum} and {MAX_INT}, not {value}")
    return value


def validate(*, name: Any, cpus: Any, memory_mb: Any, local_gb: Any, uuid: Any,
             resource_class: Any, power_state: Any, maintenance: Any) -> dict[str, Any]:
    """The node's values, checked; InvalidInput (one line) for the first bad one."""
    if name is not None:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise InvalidInput("name must be a non-empty string without surrounding spaces")
        if len(name) > MAX_NAME:
            raise InvalidInput(f"name must be at most {MAX_NAME} characters")
        if ids.is_uuid(name):
            raise InvalidInput("name must not be a UUID (nodes are looked up by either)")
    if uuid is not None:
        stored = ids.parse_uuid(uuid) if isinstance(uuid, str) else None
        if stored is None:
            raise InvalidInput(f"uuid must be a UUID, not {uuid!r}")
        uuid = stored
    if not isinstance(resource_class, str) or not _RESOURCE_CLASS.match(resource_class):
        raise InvalidInput("resource_class must be 1-80 letters, digits, '_', '.' or '-'")
    if power_state not in POWER_VALUES:
        raise InvalidInput(f"power_state must be one of {', '.join(POWER_VALUES)}")
    if not isinstance(maintenance, bool):
        raise InvalidInput("maintenance must be true or false")
    return {"name": name, "uuid": uuid, "resource_class": resource_class,
            "power_state": NodePower(power_state), "maintenance": maintenance,
            "cpus": _count("cpus", cpus, minimum=1),
            "memory_mb": _count("memory_mb", memory_mb, minimum=1),
            "local_gb": _count("local_gb", local_gb, minimum=0)}


class NodesAPI:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _owners(self) -> dict[str, str | None]:
        return {r.node_uuid: (r.host if r.live and r.host != RELEASED else None)
                for r in ownership_db.record_states(self.engine)}

    def create(self, *, cpus: Any, memory_mb: Any, local_gb: Any, name: Any = None,
               uuid: Any = None, resource_class: Any = HYPERVISOR_TYPE,
               power_state: Any = NodePower.OFF, maintenance: Any = False) -> NodeView:
        values = validate(name=name, cpus=cpus, memory_mb=memory_mb, local_gb=local_gb,
                          uuid=uuid, resource_class=resource_class, power_state=power_state,
                          maintenance=maintenance)
        return NodeView(inventory_db.node_create(self.engine, **values), None)

    def list(self) -> list[NodeView]:
        owners = self._owners()
        return [NodeView(n, owners.get(n.uuid)) for n in inventory_db.nodes(self.engine)]

    def get(self, ident: str) -> NodeView:
        node = inventory_db.node_get(self.engine, ident.strip())
        return NodeView(node, self._owners().get(node.uuid))

    def delete(self, ident: str) -> NodeView:
        """Refused (Conflict, nothing changed) while the node holds an instance."""
        return NodeView(inventory_db.node_delete(self.engine, ident.strip()), None)


class DatabaseNodeSource:
    """Vigil's own inventory (:mod:`vigil.baremetal.source`'s protocols), for the processes
    that may open the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_nodes(self) -> list[Node]:
        return inventory_db.nodes(self.engine)

    def provision(self, host: str, instance_uuid: str) -> Provisioning:
        return provisioning_db.provision(self.engine, host, instance_uuid)

    def unprovision(self, host: str, instance_uuid: str) -> int:
        return provisioning_db.unprovision(self.engine, instance_uuid)
