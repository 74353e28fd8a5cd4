"""The ring as the operator sees it: ``vigil ring show`` and ``/v2.1/vigil/ring``.

Built from the conductor's instantaneous picture (the live bare-metal members now), not
from any one agent's debounced view: it shows where the ring *would* map each node once the
membership has settled, next to who owns each node in the database right now. The two
differ while a change is being absorbed (a new member waiting out the debounce, a dead one's
nodes being taken) and for nodes that keep their instance on their old owner.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from vigil.baremetal.ownership import host_states
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import members as members_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.objects.baremetal import RELEASED
from vigil.objects.liveness import State
from vigil.ring import HashRing
from vigil.servicegroup.api import ServiceGroup

PREFERENCE = 3  # how much of a node's preference list to show


@dataclass(frozen=True)
class RingReport:
    members: list[dict[str, Any]]
    nodes: int
    unmanaged: int
    node: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"members": self.members, "nodes": self.nodes,
                               "unmanaged": self.unmanaged}
        if self.node is not None:
            out["node"] = self.node
        return out


class RingAPI:
    def __init__(self, engine: Engine, group: ServiceGroup) -> None:
        self.engine = engine
        self.group = group

    def show(self, node: str | None = None) -> RingReport:
        """Members (live or not) with the nodes each owns and the ring maps to it; with
        ``node`` (uuid or name), where that node maps and who owns it."""
        wanted = inventory_db.node_get(self.engine, node.strip()) if node is not None else None
        states, versions = host_states(self.engine, self.group)
        registered = members_db.members(self.engine)
        members = sorted(h for h, v in registered.items() if versions.get(h) == v)
        live = [m for m in members if states.get(m) is State.UP]
        ring = HashRing(live)
        inventory = inventory_db.nodes(self.engine)
        records = {r.node_uuid: r for r in ownership_db.record_states(self.engine)}
        owners: dict[str, str | None] = {}
        for n in inventory:
            r = records.get(n.uuid)
            owners[n.uuid] = r.host if r is not None and r.live and r.host != RELEASED else None
        owned = Counter(o for o in owners.values() if o is not None)
        mapped = Counter(ring.get_node(n.uuid) for n in inventory) if live else Counter()
        unmanaged = sum(1 for o in owners.values()
                        if o is None or states.get(o, State.DOWN) is not State.UP)
        rows = []
        for host in sorted(set(members) | set(owned)):
            rows.append({"host": host, "state": states.get(host, State.DOWN).value,
                         "member": host in members, "nodes_owned": owned.get(host, 0),
                         "nodes_mapped": mapped.get(host, 0)})
        detail = None
        if wanted is not None:
            owner = owners.get(wanted.uuid)
            detail = {"uuid": wanted.uuid, "name": wanted.name,
                      "maps_to": ring.get_node(wanted.uuid) if live else None,
                      "preference": ring.get_nodes(wanted.uuid, PREFERENCE) if live else [],
                      "owner": owner,
                      "owner_state": states.get(owner, State.DOWN).value if owner else None,
                      "instance_uuid": wanted.instance_uuid}
        return RingReport(rows, len(inventory), unmanaged, detail)
