"""The bare-metal driver's side of its conductor calls: what it asks, and the RPC client.

Agents never open the database: the ``baremetal`` virt driver asks the conductor for the
nodes (Vigil's own inventory), the ring's inputs (members, liveness, records), and to apply
its moves (liveness re-checked, then compare-and-set hand-overs). The endpoint that answers is
:mod:`vigil.conductor.baremetal`; this module is what the agent imports, so it speaks only in
words (:mod:`vigil.objects.baremetal`) and never stands on the persistence layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vigil import rpc
from vigil.objects.baremetal import Move, MoveResult, Node, Provisioning, RingView
from vigil.objects.primitive import unpack


class BaremetalConductor(Protocol):
    """What the bare-metal driver asks of the conductor (RPC in production)."""

    def list_nodes(self) -> list[Node]: ...

    def ring_view(self, host: str, *, with_nodes: bool = False) -> RingView: ...

    def apply(self, host: str, moves: Sequence[Move]) -> MoveResult: ...

    def provision(self, host: str, instance_uuid: str) -> Provisioning: ...

    def unprovision(self, host: str, instance_uuid: str) -> int: ...


class BaremetalConductorAPI(rpc.ConductorClientBase):
    """Client side, over RPC; every call raises MessagingUnavailable on failure."""

    def list_nodes(self) -> list[Node]:
        return unpack(Node, self._call("baremetal_list_nodes"))

    def ring_view(self, host: str, *, with_nodes: bool = False) -> RingView:
        return RingView.from_primitive(self._call("baremetal_ring_view", host=host,
                                                  with_nodes=with_nodes))

    def apply(self, host: str, moves: Sequence[Move]) -> MoveResult:
        data = self._call("baremetal_apply", host=host, moves=[m.to_primitive() for m in moves])
        return MoveResult.from_primitive(data)

    def provision(self, host: str, instance_uuid: str) -> Provisioning:
        return Provisioning(self._call("baremetal_provision", host=host,
                                       instance_uuid=instance_uuid))

    def unprovision(self, host: str, instance_uuid: str) -> int:
        return int(self._call("baremetal_unprovision", host=host, instance_uuid=instance_uuid))
