"""The conductor's side of bare-metal ownership: ring membership and the hand-overs.

Agents never open the database, so each tick an agent asks the conductor for a
:class:`RingView` (who the live bare-metal members are, every compute host's liveness, and
every node's record), decides its moves with :func:`vigil.ring.assignment.plan`, and sends
them back to :func:`Ownership.apply`.

``apply`` does not trust the picture the agent decided on: it may be a tick old. Before a
take from a named owner it re-reads liveness (one snapshot for the whole batch) and refuses
unless that owner is DOWN *now* and the taker is UP *now* -- the re-check memberlist makes
before acting on a suspicion. Then every move is a compare-and-set in the database
(:mod:`vigil.db.baremetal_api`), so a move decided on a stale picture matches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from vigil.db import api as db
from vigil.db import baremetal_api as bdb
from vigil.db.baremetal_api import RELEASED, Node, RecordState
from vigil.db.compute_api import Inventory
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.liveness import State

LOG = logging.getLogger(__name__)

COMPUTE_TOPIC = "compute"


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
               "records": bdb.pack(self.records, bdb.RECORD_WIRE)}
        if self.nodes is not None:
            out["nodes"] = bdb.pack(self.nodes, bdb.NODE_WIRE)
        return out

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> RingView:
        nodes = data.get("nodes")
        return cls(states={h: State(s) for h, s in data["states"].items()},
                   members=list(data["members"]),
                   records=bdb.unpack(RecordState, data["records"]),
                   nodes=bdb.unpack(Node, nodes) if nodes is not None else None)


@dataclass(frozen=True)
class TakeRequest:
    node: str
    expected: str | None
    record_id: int | None
    inventory: Inventory

    def to_primitive(self) -> dict[str, Any]:
        return {"node": self.node, "expected": self.expected, "record_id": self.record_id,
                "inventory": self.inventory.to_primitive()}

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> TakeRequest:
        return cls(data["node"], data["expected"], data["record_id"],
                   Inventory.from_primitive(data["inventory"]))


@dataclass(frozen=True)
class ReleaseRequest:
    node: str
    record_id: int

    def to_primitive(self) -> dict[str, Any]:
        return {"node": self.node, "record_id": self.record_id}

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> ReleaseRequest:
        return cls(data["node"], int(data["record_id"]))


@dataclass(frozen=True)
class UpdateRequest:
    node: str
    record_id: int
    inventory: Inventory

    def to_primitive(self) -> dict[str, Any]:
        return {"node": self.node, "record_id": self.record_id,
                "inventory": self.inventory.to_primitive()}

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> UpdateRequest:
        return cls(data["node"], int(data["record_id"]),
                   Inventory.from_primitive(data["inventory"]))


@dataclass
class ApplyResult:
    """What became of an agent's moves.

    ``taken``: node -> record id now owned by the agent. ``lost``: compare-and-sets that
    matched nothing (another taker won, or the picture was stale). ``refused``: takes whose
    liveness re-check failed. ``released``: records given up. ``gone``: records the agent
    wanted to update but no longer owns (taken from it while it was DOWN).
    """

    taken: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    updated: int = 0
    gone: list[str] = field(default_factory=list)

    def to_primitive(self) -> dict[str, Any]:
        return {"taken": dict(self.taken), "lost": list(self.lost),
                "refused": list(self.refused), "released": list(self.released),
                "updated": self.updated, "gone": list(self.gone)}

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> ApplyResult:
        return cls(taken={k: int(v) for k, v in data["taken"].items()}, lost=list(data["lost"]),
                   refused=list(data["refused"]), released=list(data["released"]),
                   updated=int(data["updated"]), gone=list(data["gone"]))


def host_states(engine: Engine, group: ServiceGroup) -> tuple[dict[str, State], dict[str, int]]:
    """Every compute host's state (batch liveness, one snapshot) and service version."""
    snap = db.snapshot(engine, topic=COMPUTE_TOPIC)
    states = group.states(snap)
    return ({s.host: states[s.id] for s in snap.services},
            {s.host: s.version for s in snap.services})


class Ownership:
    """The conductor's bare-metal operations over one engine and one ServiceGroup."""

    def __init__(self, engine: Engine, group: ServiceGroup) -> None:
        self.engine = engine
        self.group = group

    def view(self, host: str | None = None, *, with_nodes: bool = False) -> RingView:
        """The ring's inputs; ``host`` (an agent asking) is registered as a member first.

        Registration writes only when the host's service version changed (at each start of
        the agent), so a steady fleet's ticks are reads only.
        """
        nodes = bdb.nodes(self.engine) if with_nodes else None
        states, versions = host_states(self.engine, self.group)
        registered = bdb.members(self.engine)
        if host is not None and host in versions and registered.get(host) != versions[host]:
            bdb.member_register(self.engine, host, versions[host])
            registered[host] = versions[host]
        members = sorted(h for h, v in registered.items() if versions.get(h) == v)
        return RingView(states=states, members=members, records=bdb.record_states(self.engine),
                        nodes=nodes)

    def apply(self, host: str, takes: Sequence[TakeRequest] = (),
              releases: Sequence[ReleaseRequest] = (),
              updates: Sequence[UpdateRequest] = ()) -> ApplyResult:
        """Releases, then takes, then inventory updates: one transaction, each move its own
        compare-and-set (:func:`vigil.db.baremetal_api.apply_moves`)."""
        result = ApplyResult()
        allowed: list[bdb.Take] = []
        if takes:
            states, _ = host_states(self.engine, self.group)
            taker_up = states.get(host) is State.UP
            for t in takes:
                if not taker_up or (t.expected not in (None, RELEASED)
                                    and states.get(t.expected, State.DOWN) is not State.DOWN):
                    result.refused.append(t.node)  # came back (or unreadable) since
                else:
                    allowed.append(bdb.Take(t.node, t.expected, t.record_id, t.inventory))
        out = bdb.apply_moves(self.engine, host, takes=allowed,
                              releases=[(r.node, r.record_id) for r in releases],
                              updates=[(u.record_id, u.inventory) for u in updates])
        result.taken, result.lost, result.released = out.taken, out.lost, out.released
        result.updated, result.gone = out.updated, out.gone
        if result.taken or result.released:
            from_down = sum(1 for t in allowed if t.node in result.taken
                            and t.expected not in (None, RELEASED))
            LOG.info("bare metal: %s took %d node(s) (%d from down services), released %d",
                     host, len(result.taken), from_down, len(result.released))
        return result
