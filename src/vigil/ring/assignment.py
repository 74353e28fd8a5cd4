"""Which bare-metal nodes a compute service should own, and which hand-overs to attempt.

Pure decisions, no I/O and no clock reads: everything is passed in, so every rule is
table-tested and property-tested apart from the database and the timers around it
(:mod:`vigil.compute.virt.baremetal` calls these; :mod:`vigil.baremetal.ownership` applies
the moves as compare-and-set statements). The moves themselves are words every stage shares
(:class:`vigil.objects.baremetal.Move`).

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
The observer's settled view (:class:`MembershipDebouncer`) gives the ring's members, the
*eligible* members (UP without a break for the debounce: they may be given nodes) and the
*departed* hosts (DOWN: their nodes may be taken). A node's *target* is the first eligible
member of its ring preference list. Observer ``me``, for each node:

1. ``me`` owns it: keep it, unless an eligible member comes before ``me`` in the node's
   preference list and the node holds no instance; then *release* it for that member to
   take (Nova: "nodes with instances it manages" stay). ``me``'s own liveness does not
   enter: a late heartbeat of ``me`` must not make it drop everything; if ``me`` is really
   DOWN, rule 3 moves its nodes anyway.
2. Another service owns it and that service is UP or UNKNOWN: never touch it (Nova: "minus
   nodes with an instance managed by another live service"). UNKNOWN is not DOWN: a service
   whose liveness cannot be read may well be running and managing the node.
3. ``me`` is its target and UP: *take* it if it has no record (create one), if it was
   released, or if its owner has departed (or has no service at all) -- instance included:
   that is what Nova could not do (a node whose service died stayed unmanageable).

A departed owner's node that its target has not taken one debounce later goes to the next
eligible member of its preference list, and so on (:data:`LADDER` steps): the target may
have died too, unnoticed yet (its heartbeat is still fresh), and without this the node
would wait for that second death to be detected as well. Every take is a compare-and-set,
so two members trying the same node at the step's edge cost a lost race, never two owners.

Why the target skips members that are not eligible instead of waiting for the ring to drop
them: the ring's membership is debounced so that it does not reshuffle at every blip, but a
dead owner's nodes must not wait for that too. Skipping ineligible members in the preference
walk hands a departed owner's nodes to the member the ring would give them to once it drops
the dead one (the walk goes on along the partition table), while the ring itself stays as it
was until the membership has settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from vigil.objects.baremetal import RELEASED, Move, MoveKind
from vigil.objects.liveness import State
from vigil.ring.hashring import HashRing

__all__ = [
    "LADDER",
    "Membership",
    "MembershipDebouncer",
    "NodeOwnership",
    "Plan",
    "plan",
    "targets",
]

LADDER = 3
"""How far down its preference list a departed owner's node may go, one member per debounce
the owner has been departed."""


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


@dataclass(frozen=True)
class Plan:
    """The observer's moves for one tick, and the nodes it keeps (and reports) afterwards
    if every take wins."""

    takes: tuple[Move, ...] = ()
    releases: tuple[Move, ...] = ()
    kept: frozenset[str] = field(default_factory=frozenset)


def targets(ring: HashRing, nodes: Iterable[str],
            eligible: AbstractSet[str]) -> dict[str, str | None]:
    """Each node's target: the first member of its ring preference list that is eligible;
    None when no member is."""
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
         states: Mapping[str, State], eligible: AbstractSet[str] | None = None,
         departed: Mapping[str, int] | AbstractSet[str] | None = None) -> Plan:
    """The moves ``me`` should attempt given the records, the ring and current liveness.

    ``states`` maps compute hosts to their state now (batch liveness). ``eligible``: the
    ring members that may be targets (default: those UP; one not UP in ``states`` never is).
    ``departed``: hosts whose nodes may be taken, each with its ladder step (1: only the
    target may take; a set counts 1 each; default: those DOWN, 1 each; a host not DOWN in
    ``states`` never has departed; one without a service row always has, for good). Never
    proposes a move away from an owner that is UP or UNKNOWN: only a released record, a
    missing one, or a departed owner's record can be taken, and ``me`` only releases its own.
    """
    up = {m for m, s in states.items() if s is State.UP}
    down = {m for m, s in states.items() if s is State.DOWN}
    can_target = up if eligible is None else up & set(eligible)
    if departed is None:
        periods = dict.fromkeys(down, 1)
    elif isinstance(departed, Mapping):
        periods = {h: n for h, n in departed.items() if h in down and n >= 1}
    else:
        periods = dict.fromkeys(down & set(departed), 1)
    facts = list(nodes)
    mine = [n for n in facts if n.owner == me]
    others = [n for n in facts if n.owner != me]
    # For my own nodes, I count as eligible whatever my liveness says (rule 1).
    target = targets(ring, (n.node for n in others), can_target)
    target.update(targets(ring, (n.node for n in mine), can_target | {me}))
    takes: list[Move] = []
    releases: list[Move] = []
    kept: set[str] = set()
    for n in mine:
        t = target[n.node]
        if t is None or t == me or n.busy:
            kept.add(n.node)
        else:
            releases.append(Move(n.node, MoveKind.RELEASE, n.record_id, me))
    if me in can_target:
        skip = frozenset(m for m in ring.members if m not in can_target)
        for n in others:
            if n.owner is None:
                if target[n.node] == me:
                    takes.append(Move(n.node, MoveKind.CREATE, n.record_id, None))
            elif n.owner == RELEASED:
                if target[n.node] == me:
                    takes.append(Move(n.node, MoveKind.TAKE_RELEASED, n.record_id, RELEASED))
            elif n.owner in periods or n.owner not in states:
                # (No service row at all: an operator deleted it; it cannot be managing
                # anything, its reports are refused.)
                step = min(periods.get(n.owner, LADDER), LADDER)
                if target[n.node] == me or (step > 1 and me in ring.get_nodes(
                        n.node, step, ignore=skip)):
                    takes.append(Move(n.node, MoveKind.TAKE_FROM_DOWN, n.record_id, n.owner))
    return Plan(tuple(takes), tuple(releases), frozenset(kept))


@dataclass(frozen=True)
class Membership:
    """One observer's settled view.

    ``members``: the ring's members (each one's presence has settled). ``eligible``: members
    that may be given nodes (UP without a break for the debounce). ``departed``: hosts DOWN
    now (their nodes may be taken), each with 1 + the whole debounce periods it has been so
    (the ladder's step, up to :data:`LADDER`).
    """

    members: frozenset[str]
    eligible: frozenset[str]
    departed: Mapping[str, int]


class MembershipDebouncer:
    """Ring membership that changes only once a member's liveness has settled.

    Three rules, all on the observer's monotonic clock (passed in by the caller):

    * A member is *present* while it is not DOWN (UP, or UNKNOWN: a member whose liveness
      cannot be read has not left). The ring's members change per member, once that
      member's presence has differed from the ring's continuously for ``debounce`` seconds.
      Per member, not for the set as a whole: one flapping service must not hold back
      another's real change (kazoo's ``PatientChildrenWatch`` waits for the whole set, which
      one flapper can delay forever). A ring that followed every blip would reshuffle nodes.
    * A member is *eligible* to be given nodes only while it has been seen UP without a
      break for ``debounce`` seconds: a service that came back gets its share only once it
      has stayed up, so one flapping faster than the debounce never pulls nodes back.
    * A host has *departed* (its nodes may be taken) as soon as it is seen DOWN: DOWN is
      already the liveness module's settled verdict (a heartbeat older than
      service_down_time while reports were getting through), and a dead service's nodes
      must not wait a debounce on top of it. What the debounce stops is the other half of a
      flap: the service gets nothing back until it has stayed up (eligibility, above), so a
      flapping service loses its nodes once, not at every flap. The DOWN streak, counted in
      debounce periods, drives the ladder (:func:`plan`); only UP breaks it: UNKNOWN in
      between (the report path degraded for a while) is no sign of life.

    A starting observer is patient too: its ring starts empty and each member joins it once
    seen present for ``debounce`` seconds (the observer itself included, so it takes nothing
    before then). So agents started together agree on the ring before any of them takes a node
    (adopting the first picture at once would let the first agent up take every node, only
    to hand most of them over a debounce later), and an empty ring gives no node a target:
    a restarted agent keeps what it owns and takes nothing meanwhile.
    """

    def __init__(self, debounce: float) -> None:
        if not debounce >= 0:
            raise ValueError(f"debounce must be >= 0, not {debounce!r}")
        self.debounce = debounce
        self._members: frozenset[str] = frozenset()
        # member -> when its observed presence first differed from the ring's
        self._pending: dict[str, float] = {}
        # member -> since when it has been seen UP without a break
        self._up_since: dict[str, float] = {}
        # host -> since when it has been seen DOWN without a break
        self._down_since: dict[str, float] = {}

    @staticmethod
    def _streak(since: dict[str, float], now_in: AbstractSet[str], now: float) -> None:
        for host in [h for h in since if h not in now_in]:
            del since[host]
        for host in now_in:
            since.setdefault(host, now)

    def observe(self, states: Mapping[str, State], members: Iterable[str],
                now: float) -> Membership:
        """Record one observation: every compute host's state, and which hosts are ring
        members (running the bare-metal driver); returns the settled view."""
        candidates = frozenset(members)
        present = frozenset(m for m in candidates
                            if states.get(m, State.DOWN) is not State.DOWN)
        self._streak(self._up_since,
                     {m for m in candidates if states.get(m) is State.UP}, now)
        # UNKNOWN does not break a DOWN streak: it is the absence of proof (the report path
        # is degraded), not a sign of life -- a service that really came back shows UP.
        for host in [h for h in self._down_since
                     if states.get(h, State.UP) is State.UP]:
            del self._down_since[host]
        for host, state in states.items():
            if state is State.DOWN:
                self._down_since.setdefault(host, now)
        differing = present ^ self._members
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
        wait = self.debounce
        departed: dict[str, int] = {}
        for host, since in self._down_since.items():
            if states.get(host) is State.DOWN:
                step = 1 + int(min((now - since) // wait, LADDER)) if wait > 0 else LADDER
                departed[host] = min(step, LADDER)
        return Membership(
            members=self._members,
            eligible=frozenset(m for m, t in self._up_since.items()
                               if now - t >= wait and m in self._members),
            departed=departed)
