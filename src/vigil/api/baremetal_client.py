"""HTTP clients with the methods ``vigil node`` and ``vigil ring`` call on
:class:`vigil.baremetal.nodes.NodesAPI` and :class:`vigil.baremetal.ring.RingAPI`
(``/v2.1/vigil/nodes`` and ``/v2.1/vigil/ring``), so those commands print the same through a
Vigil API as from the database (the Protocols in :mod:`vigil.cli.resources`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from vigil.api.client import ApiSession
from vigil.api.ha_client import segment
from vigil.baremetal.ring import RingReport
from vigil.objects.baremetal import NodePower

NODES = "/v2.1/vigil/nodes"
RING = "/v2.1/vigil/ring"


@dataclass(frozen=True)
class RemoteNode:
    """A node as the API showed it (``NodeView.to_dict()``)."""

    data: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class NodesClient(ApiSession):
    """The bare-metal inventory: create, list, show, delete."""

    def create(self, *, cpus: Any, memory_mb: Any, local_gb: Any, name: Any = None,
               uuid: Any = None, resource_class: Any = "baremetal",
               power_state: Any = NodePower.OFF, maintenance: Any = False) -> RemoteNode:
        spec: dict[str, Any] = {
            "name": name, "resource_class": resource_class, "maintenance": maintenance,
            "properties": {"cpus": cpus, "memory_mb": memory_mb, "local_gb": local_gb},
            "power_state": power_state.value if isinstance(power_state, NodePower)
            else power_state}
        if uuid is not None:
            spec["uuid"] = uuid
        return RemoteNode(self._call("POST", NODES, json={"node": spec})["node"])

    def list(self) -> builtins.list[RemoteNode]:
        return [RemoteNode(n) for n in self._call("GET", NODES)["nodes"]]

    def get(self, ident: str) -> RemoteNode:
        return RemoteNode(self._call("GET", f"{NODES}/{segment(ident)}")["node"])

    def delete(self, ident: str) -> RemoteNode:
        node = self.get(ident)  # what the database mode prints: the node as it was
        self._call("DELETE", f"{NODES}/{node.data['uuid']}")
        return node


class RingClient(ApiSession):
    """The bare-metal hash ring, as ``vigil ring show`` prints it."""

    def show(self, node: str | None = None) -> RingReport:
        params = {"node": node} if node is not None else {}
        ring = self._call("GET", RING, params=params)["ring"]
        return RingReport(members=ring["members"], nodes=ring["nodes"],
                          unmanaged=ring["unmanaged"], node=ring.get("node"))
