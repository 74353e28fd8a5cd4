"""The conductor's side of bare-metal ownership: ring membership and the hand-overs.

Agents never open the database, so each tick an agent asks the conductor for a
:class:`~vigil.objects.baremetal.RingView` (who the live bare-metal members are, every compute
host's liveness, and every node's record), decides its moves with
:func:`vigil.ring.assignment.plan`, and sends them back to :func:`Ownership.apply`.

``apply`` does not trust the picture the agent decided on: it may be a tick old. Before a
take from a named owner it re-reads liveness (one snapshot for the whole batch) and refuses
unless that owner is DOWN *now* and the taker is UP *now* -- the re-check memberlist makes
before acting on a suspicion. Then every move is a compare-and-set in the database
(:mod:`vigil.db.baremetal.ownership`), so a move decided on a stale picture matches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import members as members_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.names import COMPUTE_TOPIC
from vigil.objects.baremetal import RELEASED, Move, MoveKind, MoveResult, RingView
from vigil.objects.liveness import State
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)



def host_states(engine: Engine, group: ServiceGroup) -> tuple[dict[str, State], dict[str, int]]:
    """Every compute host's state (batch liveness, one snapshot) and service version."""
    members = group.members(COMPUTE_TOPIC)
    return ({m.host: m.state for m in members}, {m.host: m.record.version for m in members})


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
        nodes = inventory_db.nodes(self.engine) if with_nodes else None
        states, versions = host_states(self.engine, self.group)
        registered = members_db.members(self.engine)
        if host is not None and host in versions and registered.get(host) != versions[host]:
            members_db.member_register(self.engine, host, versions[host])
            registered[host] = versions[host]
        members = sorted(h for h, v in registered.items() if versions.get(h) == v)
        return RingView(states=states, members=members,
                        records=ownership_db.record_states(self.engine),
                        nodes=nodes)

    def apply(self, host: str, moves: Sequence[Move]) -> MoveResult:
        """Releases, then takes, then inventory updates: one transaction, each move its own
        compare-and-set (:func:`vigil.db.baremetal.ownership.apply_moves`). A take from a named
        owner is refused unless, read now, that owner is DOWN and ``host`` is UP."""
        refused: list[str] = []
        allowed: list[Move] = []
        takes = [m for m in moves if m.kind.takes]
        if takes:
            states, _ = host_states(self.engine, self.group)
            taker_up = states.get(host) is State.UP
            for t in takes:
                if not taker_up or (t.expected not in (None, RELEASED)
                                    and states.get(t.expected, State.DOWN) is not State.DOWN):
                    refused.append(t.node)  # came back (or unreadable) since
                else:
                    allowed.append(t)
        result = ownership_db.apply_moves(self.engine, host,
                                          [m for m in moves if not m.kind.takes] + allowed)
        result.refused = refused
        if result.taken or result.released:
            from_down = sum(1 for t in allowed if t.node in result.taken
                            and t.kind is MoveKind.TAKE_FROM_DOWN)
            LOG.info("bare metal: %s took %d node(s) (%d from down services), released %d",
                     host, len(result.taken), from_down, len(result.released))
        return result
