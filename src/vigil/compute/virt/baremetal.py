"""The ``baremetal`` virt driver: a share of the bare-metal nodes, decided by a hash ring.

Each compute host running this driver is a member of one ring; on start and on every
resource tick (:meth:`BaremetalDriver.report_nodes`, called by the agent's resource
tracker instead of reporting one node of its own) it

1. lists the nodes (its :class:`~vigil.baremetal.source.NodeSource`) and asks the conductor
   for the ring's inputs (members, liveness of every compute host, every node's record);
2. debounces the membership on its own monotonic clock
   (:class:`~vigil.ring.assignment.MembershipDebouncer`) and rebuilds the ring only when
   the settled membership changed;
3. decides its moves (:func:`~vigil.ring.assignment.plan`) -- take what the ring gives it
   from nobody, from a release or from a DOWN owner, instance included; release what the
   ring gives a member before it and holds no instance; keep the rest;
4. has the conductor apply them (liveness re-checked, compare-and-set each), and rewrites
   the inventory of the records it kept only where it changed.

It reports (and runs instances on) exactly the records the database says it owns after
that tick; a record it loses between ticks is found lost at the next one, and every write it
makes in between is conditional on still owning the record, so a stale belief never writes.

Instances take whole nodes. Spawning is provisioning the node the claim chose (an atomic
``instance_uuid`` set, as Ironic's); a second claim racing onto the same node fails its
spawn, and the record stops accepting claims as soon as one lands.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

from vigil.baremetal.inventory import needs_update, record_inventory
from vigil.baremetal.rpcapi import BaremetalConductor, BaremetalConductorAPI
from vigil.baremetal.source import NodeSource, Provisioner
from vigil.clock import Clock, RealClock
from vigil.compute.virt.driver import NewTransport, VirtDriver, VirtSettings
from vigil.errors import InstanceExists, NodeBusy, NotPlacedHere
from vigil.objects.baremetal import (
    Move,
    MoveKind,
    MoveResult,
    Node,
    NodePower,
    Provisioning,
    RecordState,
)
from vigil.objects.compute import InstanceRecord, Inventory, PowerState
from vigil.ring import HashRing
from vigil.ring.assignment import Membership, MembershipDebouncer, NodeOwnership, plan

LOG = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """One tick's outcome (for logs, tests and the churn benchmark)."""

    members: frozenset[str] = frozenset()
    eligible: frozenset[str] = frozenset()
    owned: frozenset[str] = frozenset()
    result: MoveResult = field(default_factory=MoveResult)
    ring_rebuilt: bool = False


class BaremetalDriver(VirtDriver):
    name = "baremetal"

    def __init__(
        self,
        host: str,
        conductor: BaremetalConductor,
        *,
        source: NodeSource | None = None,
        provisioner: Provisioner | None = None,
        debounce: float = 0.0,
        zone: str | None = None,
        clock: Clock | None = None,
        transport: object | None = None,
    ) -> None:
        self.host = host
        self.conductor = conductor
        self.source: NodeSource = source or _ConductorNodes(conductor)
        self.provisioner: Provisioner = provisioner or conductor
        self.zone = zone
        self.clock = clock or RealClock()
        self.debouncer = MembershipDebouncer(debounce)
        self._transport = transport  # owned (cleaned up at stop) when from_settings built it
        self._ring = HashRing([])
        self._ring_members: frozenset[str] = frozenset()
        self._sync_lock = threading.Lock()  # one tick at a time
        self._lock = threading.Lock()  # guards the two maps below
        self._owned: dict[str, Node] = {}
        # Instances provisioned here since the last tick saw them: the reconciliation must
        # not take a just-spawned instance for one whose node lost it.
        self._spawned: dict[str, str] = {}
        self.last: SyncReport = SyncReport()

    @classmethod
    def from_settings(cls, settings: VirtSettings, host: str, *,
                      new_transport: NewTransport | None = None) -> BaremetalDriver:
        if new_transport is None:
            raise TypeError("the baremetal driver talks to the conductor: it needs "
                            "new_transport")
        transport = new_transport()
        api = BaremetalConductorAPI(transport, settings.rpc_response_timeout)
        return cls(host, api, debounce=settings.membership_debounce,
                   zone=settings.inventory.availability_zone, transport=transport)

    # -- the ring ------------------------------------------------------------------------------
    def _ring_for(self, membership: Membership) -> bool:
        if membership.members == self._ring_members:
            return False
        self._ring = HashRing(membership.members)
        self._ring_members = membership.members
        LOG.info("bare-metal ring of %s: %d member(s): %s", self.host, len(self._ring),
                 ", ".join(sorted(self._ring_members)) or "none")
        return True

    def report_nodes(self) -> SyncReport:
        """One tick: decide and apply this host's moves, then report what it owns.

        Raises Unavailable if the source or the conductor cannot be reached; the previous
        tick's picture then stays (every write is conditional on owning the record anyway).
        """
        with self._sync_lock:
            if isinstance(self.source, _ConductorNodes):  # both in one round trip
                view = self.conductor.ring_view(self.host, with_nodes=True)
                listed = view.nodes or []
            else:
                listed = self.source.list_nodes()
                view = self.conductor.ring_view(self.host)
            nodes = {n.uuid: n for n in listed}
            membership = self.debouncer.observe(view.states, view.members,
                                                self.clock.monotonic())
            rebuilt = self._ring_for(membership)
            records: dict[str, RecordState] = {r.node_uuid: r for r in view.records}
            facts = []
            for uuid, node in nodes.items():
                rec = records.get(uuid)
                facts.append(NodeOwnership(
                    node=uuid,
                    record_id=rec.record_id if rec is not None else None,
                    owner=rec.host if rec is not None and rec.live else None,
                    busy=node.instance_uuid is not None
                    or (rec is not None and rec.live and rec.running_vms > 0)))
            decided = plan(self.host, facts, self._ring, view.states,
                           eligible=membership.eligible, departed=membership.departed)
            moves = [m for m in decided.releases if m.record_id is not None]
            for m in decided.takes:
                rec = records.get(m.node)
                running = rec.running_vms if rec is not None and rec.live else 0
                moves.append(replace(m, inventory=record_inventory(nodes[m.node], self.zone,
                                                                   running)))
            for uuid in decided.kept:
                rec = records[uuid]
                wanted = record_inventory(nodes[uuid], self.zone, rec.running_vms)
                if needs_update(rec, wanted):
                    moves.append(Move(uuid, MoveKind.UPDATE, rec.record_id, self.host, wanted))
            result = self.conductor.apply(self.host, moves)
            owned = (set(decided.kept) - set(result.gone)) | set(result.taken)
            with self._lock:
                self._owned = {uuid: nodes[uuid] for uuid in owned}
                seen = {n.instance_uuid for n in self._owned.values() if n.instance_uuid}
                for instance_uuid in [i for i in self._spawned if i in seen]:
                    del self._spawned[instance_uuid]
            from_down = sum(1 for m in decided.takes if m.kind is MoveKind.TAKE_FROM_DOWN
                            and m.node in result.taken)
            if result.taken or result.released or result.gone:
                LOG.info("bare metal %s: owns %d node(s); took %d (%d from down services), "
                         "released %d, lost %d", self.host, len(owned), len(result.taken),
                         from_down, len(result.released), len(result.gone))
            self.last = SyncReport(membership.members, membership.eligible, frozenset(owned),
                                   result, rebuilt)
            return self.last

    @property
    def owned_nodes(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._owned)

    # -- the VirtDriver interface --------------------------------------------------------------
    def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
        outcome = self.provisioner.provision(self.host, instance.uuid)
        if outcome == Provisioning.ALREADY:
            raise InstanceExists(instance.uuid)
        if outcome == Provisioning.BUSY:
            raise NodeBusy(f"node {instance.node} already holds another instance (two claims "
                           "raced for one whole node)")
        if outcome != Provisioning.PROVISIONED:
            raise NotPlacedHere(f"instance {instance.uuid} is not placed on a node {self.host} "
                                "manages")
        with self._lock:
            self._spawned[instance.uuid] = instance.node or ""
        LOG.info("instance %s provisioned on node %s", instance.uuid, instance.node)

    def destroy(self, instance_uuid: str, *, keep_disk: bool) -> None:
        # ``keep_disk`` does not apply: whether the node keeps the instance is decided by
        # where the instance lives now (unprovision keeps the node it is placed on).
        cleared = self.provisioner.unprovision(self.host, instance_uuid)
        with self._lock:
            self._spawned.pop(instance_uuid, None)
            for uuid, node in list(self._owned.items()):
                if node.instance_uuid == instance_uuid and cleared:
                    self._owned[uuid] = _without_instance(node)
        if cleared:
            LOG.info("instance %s removed from %d node(s)", instance_uuid, cleared)

    def list_instances(self) -> list[str]:
        with self._lock:
            found = {n.instance_uuid for n in self._owned.values() if n.instance_uuid}
            return sorted(found | set(self._spawned))

    def power_state(self, instance_uuid: str) -> PowerState:
        with self._lock:
            if instance_uuid in self._spawned:
                return PowerState.RUNNING
            for node in self._owned.values():
                if node.instance_uuid == instance_uuid:
                    return _power(node)
        # Not in the last tick's picture: provisioned, or its node taken, since. The
        # manager asks about instances the database places here; an answer from a stale
        # picture would report a running machine as dead. Ask the source.
        for node in self.source.list_nodes():
            if node.instance_uuid == instance_uuid:
                return _power(node)
        return PowerState.NOSTATE

    def inventory(self) -> Inventory:
        raise NotImplementedError(
            "a bare-metal host reports one record per node it owns (report_nodes), never a "
            "record of its own: that would count capacity no machine has")

    def cleanup(self) -> None:
        cleanup = getattr(self._transport, "cleanup", None)
        if cleanup is not None:
            cleanup()


def _power(node: Node) -> PowerState:
    return PowerState.RUNNING if node.power_state == NodePower.ON else PowerState.SHUTDOWN


def _without_instance(node: Node) -> Node:
    return replace(node, instance_uuid=None, power_state=NodePower.OFF)


class _ConductorNodes:
    """Vigil's own inventory through the conductor (agents never open the database)."""

    def __init__(self, conductor: BaremetalConductor) -> None:
        self._conductor = conductor

    def list_nodes(self) -> list[Node]:
        return self._conductor.list_nodes()


__all__ = ["BaremetalDriver", "SyncReport"]
