"""Bare metal's words: nodes, their compute-node records, the one shape of an ownership move
from the ring's decision to the database's compare-and-set, and the agent's picture of the ring.

A move is decided by :func:`vigil.ring.assignment.plan` on the agent, completed there with the
inventory to write, carried over RPC as it is, re-checked by the conductor
(:mod:`vigil.baremetal.ownership`) and applied by the database
(:mod:`vigil.db.baremetal.ownership`): one :class:`Move` and one :class:`MoveResult` all the
way, so no stage can drop or rename a field another one needs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from vigil.objects.compute import Inventory
from vigil.objects.liveness import State
from vigil.objects.primitive import Primitive, pack, unpack

RELEASED = ""
"""Owner of a record its live owner gave up and nobody has taken yet."""

HYPERVISOR_TYPE = "baremetal"
"""The ``hypervisor_type`` of a node's compute-node record (and a node's default resource
class)."""


class NodePower(enum.StrEnum):
    """A node's power as its source describes it (Ironic's words).

    ON: it runs (an instance provisioned on it runs). OFF: it is off.
    """

    ON = "power on"
    OFF = "power off"


class Provisioning(enum.StrEnum):
    """What putting an instance on the node its claim chose did (Ironic's ``instance_uuid``).

    PROVISIONED: done; the node runs the instance, and its record takes no other claim.
    ALREADY: the node already holds this instance: treat it as started.
    BUSY: the node holds another instance (two claims raced for one whole node): this spawn
        fails.
    NOT_HERE: the instance is not placed on a record this host owns (any more): this spawn
        fails.
    """

    PROVISIONED = "provisioned"
    ALREADY = "already"
    BUSY = "busy"
    NOT_HERE = "not_here"


@dataclass(frozen=True)
class Node(Primitive):
    """A bare-metal node as its source describes it (whatever the source)."""

    uuid: str
    name: str | None
    resource_class: str
    cpus: int
    memory_mb: int
    local_gb: int
    power_state: NodePower
    maintenance: bool
    instance_uuid: str | None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class RecordState(Primitive):
    """A node's compute-node record as the ownership decisions need it.

    ``record_id`` is the record the node's ownership row points to; ``live`` says whether
    that record still exists (an operator may have deleted it with its service). The other
    fields are the live record's, for deciding whether its inventory needs rewriting.
    """

    node_uuid: str
    record_id: int
    live: bool
    host: str | None
    running_vms: int
    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    availability_zone: str | None


# What crosses RPC of a node (no timestamps) and of a record: positional rows under one list
# of field names (:func:`vigil.objects.primitive.pack`), at 500 rows a tick.
NODE_WIRE = ("uuid", "name", "resource_class", "cpus", "memory_mb", "local_gb", "power_state",
             "maintenance", "instance_uuid")
RECORD_WIRE = tuple(f.name for f in dataclasses.fields(RecordState))


class MoveKind(enum.StrEnum):
    """A compare-and-set a host may attempt on a node's record; it learns whether it won."""

    CREATE = "create"
    """No live record: create one owned by me (the ring's target). ``record_id`` is the
    deleted record to replace, or None if the node never had one."""
    TAKE_RELEASED = "take_released"
    """The record was released: ``host = me WHERE host = ''``."""
    TAKE_FROM_DOWN = "take_from_down"
    """The owner has departed: ``host = me WHERE host = <owner>``, its instances with it."""
    RELEASE = "release"
    """Give my record up (``host = '' WHERE host = me``) for the target to take; only for a
    node without an instance."""
    UPDATE = "update"
    """Rewrite the inventory of a record I still own (``WHERE host = me``); no hand-over."""

    @property
    def takes(self) -> bool:
        """The move makes the record mine."""
        return self in (MoveKind.CREATE, MoveKind.TAKE_RELEASED, MoveKind.TAKE_FROM_DOWN)


@dataclass(frozen=True, slots=True)
class Move(Primitive):
    """One compare-and-set on ``node``'s record ``record_id``: from owner ``expected`` (None:
    no live record; :data:`RELEASED`; a departed host; or, for RELEASE and UPDATE, the host
    applying it) to the host applying it (RELEASE: to :data:`RELEASED`).

    ``inventory``: what the record should say, for the moves that write it (takes and
    updates); the ring's plan leaves it None and the agent fills it in before sending.
    """

    node: str
    kind: MoveKind
    record_id: int | None
    expected: str | None
    inventory: Inventory | None = None


@dataclass
class MoveResult(Primitive):
    """What became of a host's moves.

    ``taken``: node -> record id now owned by the host. ``lost``: compare-and-sets that
    matched nothing (another taker won, or the picture was stale). ``refused``: takes whose
    liveness re-check failed (the conductor's, before any write). ``released``: records given
    up. ``updated``: inventories rewritten. ``gone``: records the host wanted to update but no
    longer owns (taken from it while it was DOWN).
    """

    taken: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    updated: int = 0
    gone: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RingView:
    """What an agent needs to decide its moves.

    ``states``: every compute host's liveness now. ``members``: the hosts running the
    bare-metal driver (registered with their service's current version), whatever their
    state. ``records``: every node's record. ``nodes``: Vigil's own inventory when asked
    for with it (one round trip per tick instead of two for agents on the database source).
    """

    states: dict[str, State]
    members: list[str]
    records: list[RecordState]
    nodes: list[Node] | None = None

    def to_primitive(self) -> dict[str, Any]:
        out = {"states": {h: s.value for h, s in self.states.items()},
               "members": list(self.members),
               "records": pack(self.records, RECORD_WIRE)}
        if self.nodes is not None:
            out["nodes"] = pack(self.nodes, NODE_WIRE)
        return out

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> RingView:
        nodes = data.get("nodes")
        return cls(states={h: State(s) for h, s in data["states"].items()},
                   members=list(data["members"]),
                   records=unpack(RecordState, data["records"]),
                   nodes=unpack(Node, nodes) if nodes is not None else None)
