"""Which bare-metal nodes a compute service should own, and which hand-overs to attempt.

Pure decisions, no I/O and no clock reads: everything is passed in, so every rule is
table-tested and property-tested apart from the database and the timers around it
(:mod:`vigil.compute.virt.baremetal` calls these; :mod:`vigil.baremetal.ownership` applies
the moves as compare-and-set statements).

The ownership model
-------------------
Each bare-metal node has at most one live compute-node record, and the record's ``host`` is
its owner: a single column, so two owners at once cannot even be written down. The owner
is one of

* a service's host: that service manages the node (reports it, runs its instance);
* :data:`RELEASED` (the empty string): its live owner gave it up and nobody took it yet;
* ``None``: there is no live record yet (a new node, or its record was deleted).

A move is a compare-and-set on that column, ``SET host = me WHERE host = <expected>``, so of
any number of services attempting the same move exactly one succeeds, and a move decided on
a stale picture matches nothing.

The rules (Nova's ironic driver's rule, made safe)
--------------------------------------------------
A node's *target* is the first member of its ring preference list (the ring of debounced
bare-metal members) whose service is UP right now. Observer ``me``, for each node:

1. ``me`` owns it: keep it if ``me`` is its target, if it has no live target at all, or if it
   holds an instance (Nova: "nodes with instances it manages"). Otherwise *release* it: the
   target is UP and will take it.
2. Another service owns it and that service is UP or UNKNOWN: never touch it (Nova: "minus
   nodes with an instance managed by another live service"). UNKNOWN is not DOWN: a service
   whose liveness cannot be read may well be running and managing the node.
3. ``me`` is its target and ``me`` is UP: *take* it if it has no record (create one), if it
   was released, or if its owner is DOWN -- instance included: that is what Nova could not
   do (a node whose service died stayed unmanageable).

Why the target skips members that are not UP instead of waiting for the ring to drop them:
membership is debounced (a flapping service must not move nodes each time it flaps), but
a dead owner's nodes must not wait for the debounce too. Skipping non-UP members in the
preference walk hands a DOWN owner's nodes to the member the ring would give them to once
it drops the dead one (the walk goes on to the next member along the partition table),
while the ring itself stays as it was until the membership has settled.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from vigil.ring.hashring import HashRing
from vigil.servicegroup.liveness import State

__all__ = [
    "RELEASED",
    "Membership",
    "MembershipDebouncer",
    "Move",
    "MoveKind",
    "NodeOwnership",
    "Plan",
    "plan",
    "targets",
]

RELEASED = ""
"""Owner of a record its live owner gave up and nobody has taken yet."""


class MoveKind(enum.Enum):
    """A compare-and-set the observer may attempt; the caller learns whether it won."""

    CREATE = "create"
    """No live record: create one owned by me (the ring's target). ``record_id`` is the
    deleted record to replace, or None if the node never had one."""
    TAKE_RELEASED = "take_released"
    """The record was released: ``host = me WHERE host = ''``."""
    TAKE_FROM_DOWN = "take_from_down"
    """The owner is DOWN: ``host = me WHERE host = <owner>``, its instances with it."""
    RELEASE = "release"
    """Give my record up (``host = '' WHERE host = me``) for the target to take; only for a
    node without an instance."""


@dataclass(frozen=True, slots=True)
class NodeOwnership:
    """What the database says about one node's record.

    ``record_id``: the record the node's ownership row points to (live or deleted), None if
    none. ``owner``: the live record's host, :data:`RELEASED`, or None without a live record.
    ``busy``: the node holds an instance (claimed on its record, or provisioned).
    """

    node: str
    record_id: int | None
    owner: str | None
    busy: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """One compare-and-set: on ``node``'s record ``record_id``, ``expected`` -> new owner."""

    node: str
    kind: MoveKind
    record_id: int | None
    expected: str | None


@dataclass(frozen=True)
class Plan:
    """The observer's moves for one tick, and the nodes it keeps (and reports) afterwards
    if every take wins."""

    takes: tuple[Move, ...] = ()
    releases: tuple[Move, ...] = ()
    kept: frozenset[str] = field(default_factory=frozenset)


def _live_owner_state(owner: str, states: Mapping[str, State]) -> State:
    # A host with no compute service row at all (deleted by an operator) cannot be managing
    # anything: its reports are refused. That is as good as DOWN.
    return states.get(owner, State.DOWN)


def targets(ring: HashRing, nodes: Iterable[str],
            eligible: AbstractSet[str]) -> dict[str, str | None]:
    """Each node's target: the first member of its ring preference list that is eligible
    (UP now, and settled: see :class:`MembershipDebouncer`); None when no member is."""
    if not len(ring):
        return dict.fromkeys(nodes)
    skip = frozenset(m for m in ring.members if m not in eligible)
    if len(skip) == len(ring):
        return dict.fromkeys(nodes)
    out: dict[str, str | None] = {}
    for node in nodes:
        found = ring.get_nodes(node, 1, ignore=skip) if skip else [ring.get_node(node)]
        out[node] = found[0] if found else None
    return out


def plan(me: str, nodes: Iterable[NodeOwnership], ring: HashRing,
         states: Mapping[str, State], eligible: AbstractSet[str] | None = None) -> Plan:
    """The moves ``me`` should attempt given the records, the ring and current liveness.

    ``states`` maps compute hosts to their state now (batch liveness); ``eligible`` are the
    ring members that may be targets (default: those UP in ``states``; a member not UP in
    ``states`` is never eligible). Never proposes a move away from an owner that is UP or
    UNKNOWN: only a released record, a missing one, or a DOWN owner's record can be taken,
    and ``me`` only releases its own.
    """
    up = {m for m, s in states.items() if s is State.UP}
    can_target = up if eligible is None else up & set(eligible)
    facts = list(nodes)
    target = targets(ring, (n.node for n in facts), can_target)
    me_up = me in up
    takes: list[Move] = []
    releases: list[Move] = []
    kept: set[str] = set()
    for n in facts:
        t = target[n.node]
        if n.owner == me:
            if t is None or t == me or n.busy:
                kept.add(n.node)
            else:
                releases.append(Move(n.node, MoveKind.RELEASE, n.record_id, me))
            continue
        if t != me or not me_up:
            continue
        if n.owner is None:
            takes.append(Move(n.node, MoveKind.CREATE, n.record_id, None))
        elif n.owner == RELEASED:
            takes.append(Move(n.node, MoveKind.TAKE_RELEASED, n.record_id, RELEASED))
        elif _live_owner_state(n.owner, states) is State.DOWN:
            takes.append(Move(n.node, MoveKind.TAKE_FROM_DOWN, n.record_id, n.owner))
    return Plan(tuple(takes), tuple(releases), frozenset(kept))


@dataclass(frozen=True)
class Membership:
    """One observer's settled view. ``members``: the ring's members (each one's presence
    has settled). ``eligible``: members that may be given nodes now (UP, and UP without a
    break for the debounce)."""

    members: frozenset[str]
    eligible: frozenset[str]


class MembershipDebouncer:
    """Ring membership that changes only once a member's liveness has settled.

    Two rules, both on the observer's monotonic clock (passed in by the caller):

    * The ring's members change per member, once that member's observed presence has
      differed from the ring's continuously for ``debounce`` seconds. Per member, not for
      the set as a whole: one flapping service must not hold back another's real change
      (kazoo's ``PatientChildrenWatch`` waits for the whole set, which one flapper can
      delay forever). A ring that follows every flap would reshuffle nodes every time.
    * A member is *eligible* to be given nodes only while it has been seen UP without a
      break for ``debounce`` seconds. A service that died and came back within the debounce
      is still in the ring (no reshuffle) but gets its share back only once it has stayed
      up: a service flapping faster than the debounce never pulls nodes back and forth.
      (Its nodes leave it when it is seen DOWN: that is a death, and the node must not be
      orphaned for the debounce too; see :func:`plan`.)

    A starting observer is patient too: its ring starts empty and each member joins it once
    seen for ``debounce`` seconds, so agents started together agree on the ring before any
    of them takes a node (adopting the first picture at once would let the first agent up
    take every node, only to hand most of them over a debounce later). Meanwhile an empty
    ring gives no node a target, so a restarted agent keeps what it owns and takes nothing.
    """

    def __init__(self, debounce: float) -> None:
        if not debounce >= 0:
            raise ValueError(f"debounce must be >= 0, not {debounce!r}")
        self.debounce = debounce
        self._members: frozenset[str] = frozenset()
        # member -> when its observed presence first differed from the ring's
        self._pending: dict[str, float] = {}
        # member -> since when it has been seen live without a break
        self._up_since: dict[str, float] = {}

    def observe(self, live: Iterable[str], now: float) -> Membership:
        """Record the members observed live (UP) at ``now``; returns the settled view."""
        seen = frozenset(live)
        for member in [m for m in self._up_since if m not in seen]:
            del self._up_since[member]
        for member in seen:
            self._up_since.setdefault(member, now)
        differing = seen ^ self._members
        for member in [m for m in self._pending if m not in differing]:
            del self._pending[member]  # it went back: the wait starts over next time
        flip = set()
        for member in differing:
            since = self._pending.setdefault(member, now)
            if now - since >= self.debounce:
                flip.add(member)
        if flip:
            self._members = self._members ^ frozenset(flip)
            for member in flip:
                del self._pending[member]
        eligible = frozenset(m for m in seen & self._members
                             if now - self._up_since[m] >= self.debounce)
        return Membership(self._members, eligible)
