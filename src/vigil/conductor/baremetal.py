"""Conductor RPC endpoint of the bare-metal driver.

Agents never open the database: the ``baremetal`` virt driver asks the conductor for the
nodes (Vigil's own inventory), the ring's inputs (:meth:`baremetal_ring_view`: members,
liveness, records), and to apply its moves (:meth:`baremetal_apply`: liveness re-checked,
then compare-and-set hand-overs). See :mod:`vigil.baremetal.ownership`; the agent's side of
these calls (what it asks, and the RPC client) is :mod:`vigil.baremetal.rpcapi`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import oslo_messaging as messaging
from sqlalchemy.engine import Engine

from vigil.baremetal.ownership import Ownership
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import provisioning as provisioning_db
from vigil.errors import DatabaseUnavailable, MessagingUnavailable
from vigil.objects.baremetal import NODE_WIRE, Move, MoveResult, Node, Provisioning, RingView
from vigil.objects.primitive import pack, unpack
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)


class BaremetalConductorManager:
    """The endpoint, registered next to the conductor's others (same topic and target).

    Its ServiceGroup is built on first use from ``group_factory`` (no second liveness client
    unless bare metal is used), or handed in with :meth:`use_group` when the process already
    has one whose in-process backend must be shared (``vigil up``).
    """

    target = messaging.Target(version="1.0")

    def __init__(self, engine: Engine, group_factory: Callable[[], ServiceGroup]) -> None:
        self._engine = engine
        self._factory = group_factory
        self._ownership: Ownership | None = None
        self._lock = threading.Lock()

    def use_group(self, group: ServiceGroup) -> None:
        with self._lock:
            self._ownership = Ownership(self._engine, group)

    @property
    def ownership(self) -> Ownership:
        with self._lock:
            if self._ownership is None:
                self._ownership = Ownership(self._engine, self._factory())
            return self._ownership

    def baremetal_list_nodes(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return pack(inventory_db.nodes(self._engine), NODE_WIRE)

    def baremetal_ring_view(self, ctxt: dict[str, Any], host: str,
                            with_nodes: bool = False) -> dict[str, Any]:
        return self.ownership.view(host, with_nodes=with_nodes).to_primitive()

    def baremetal_apply(self, ctxt: dict[str, Any], host: str,
                        moves: list[dict[str, Any]]) -> dict[str, Any]:
        return self.ownership.apply(
            host, [Move.from_primitive(m) for m in moves]).to_primitive()

    def baremetal_provision(self, ctxt: dict[str, Any], host: str, instance_uuid: str) -> str:
        return provisioning_db.provision(self._engine, host, instance_uuid)

    def baremetal_unprovision(self, ctxt: dict[str, Any], host: str,
                              instance_uuid: str) -> int:
        return provisioning_db.unprovision(self._engine, instance_uuid)


class LocalBaremetalConductor:
    """The same calls without messaging (tests, benchmarks), arguments and answers through
    JSON; database errors surface as MessagingUnavailable, as the agent sees them over RPC."""

    def __init__(self, manager: BaremetalConductorManager) -> None:
        self._m = manager

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            # Through JSON both ways, as over RPC: what does not survive it fails here too.
            answer = fn({}, *json.loads(json.dumps(args)))
        except DatabaseUnavailable as exc:
            raise MessagingUnavailable(str(exc)) from exc
        return json.loads(json.dumps(answer))

    def list_nodes(self) -> list[Node]:
        nodes: list[Node] = unpack(Node, self._run(self._m.baremetal_list_nodes))
        return nodes

    def ring_view(self, host: str, *, with_nodes: bool = False) -> RingView:
        return RingView.from_primitive(self._run(self._m.baremetal_ring_view, host,
                                                 with_nodes))

    def apply(self, host: str, moves: Sequence[Move]) -> MoveResult:
        return MoveResult.from_primitive(self._run(
            self._m.baremetal_apply, host, [m.to_primitive() for m in moves]))

    def provision(self, host: str, instance_uuid: str) -> Provisioning:
        return Provisioning(self._run(self._m.baremetal_provision, host, instance_uuid))

    def unprovision(self, host: str, instance_uuid: str) -> int:
        return int(self._run(self._m.baremetal_unprovision, host, instance_uuid))
