"""The pure ownership decisions: table tests of every rule, then properties over random
fleets (Hypothesis), then the membership debounce."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.objects.baremetal import RELEASED, Move, MoveKind
from vigil.objects.liveness import State
from vigil.ring import HashRing
from vigil.ring.assignment import (
    LADDER,
    Membership,
    MembershipDebouncer,
    NodeOwnership,
    Plan,
    plan,
    targets,
)

UP, DOWN, UNKNOWN = State.UP, State.DOWN, State.UNKNOWN
NODES = [str(uuid.UUID(int=i + 1)) for i in range(64)]
RING3 = HashRing(["a", "b", "c"])


def mapped_to(ring: HashRing, member: str) -> str:
    """A node the ring maps to ``member``."""
    return next(n for n in NODES if ring.get_node(n) == member)


def one(node: str, owner: str | None, *, busy: bool = False) -> NodeOwnership:
    return NodeOwnership(node, None if owner is None else 7, owner, busy)


# -- the rules, one row each ----------------------------------------------------------------------
A_NODE = mapped_to(RING3, "a")
B_NODE = mapped_to(RING3, "b")
ALL_UP = {"a": UP, "b": UP, "c": UP}

RULES: list[tuple[str, str, NodeOwnership, Mapping[str, State], str]] = [
    # (why, observer, node, states, expected outcome: kept | release | none | <MoveKind>)
    ("new node, I am its target", "a", one(A_NODE, None), ALL_UP, "create"),
    ("new node, another's", "b", one(A_NODE, None), ALL_UP, "none"),
    ("I am not up: I take nothing", "a", one(A_NODE, None), {**ALL_UP, "a": UNKNOWN}, "none"),
    ("released, I am its target", "a", one(A_NODE, RELEASED), ALL_UP, "take_released"),
    ("released, another's", "b", one(A_NODE, RELEASED), ALL_UP, "none"),
    ("owner down: taken", "a", one(A_NODE, "b"), {**ALL_UP, "b": DOWN}, "take_from_down"),
    ("owner down with an instance: taken (Nova could not)", "a",
     one(A_NODE, "b", busy=True), {**ALL_UP, "b": DOWN}, "take_from_down"),
    ("owner up: never taken", "a", one(A_NODE, "b"), ALL_UP, "none"),
    ("owner unknown: never taken", "a", one(A_NODE, "b"), {**ALL_UP, "b": UNKNOWN}, "none"),
    ("owner has no service row: as good as down", "a", one(A_NODE, "ghost"), ALL_UP,
     "take_from_down"),
    ("mine and I am its target", "a", one(A_NODE, "a"), ALL_UP, "kept"),
    ("mine, another's target, no instance: released", "b", one(A_NODE, "b"), ALL_UP,
     "release"),
    ("mine, another's target, with an instance: kept", "b", one(A_NODE, "b", busy=True),
     ALL_UP, "kept"),
    ("mine, nobody eligible: kept", "b", one(A_NODE, "b"),
     {"a": DOWN, "b": UNKNOWN, "c": UNKNOWN}, "kept"),
    ("mine, my own liveness unknown: kept (no mass release on a blip)", "b",
     one(B_NODE, "b"), {**ALL_UP, "b": UNKNOWN}, "kept"),
    ("mine, I am forced down: kept (the others take it, I do not drop it)", "b",
     one(B_NODE, "b"), {**ALL_UP, "b": DOWN}, "kept"),
    ("mine, a's node, my liveness unknown: released to a (real rebalancing)", "b",
     one(A_NODE, "b"), {**ALL_UP, "b": UNKNOWN}, "release"),
]


def outcome(me: str, node: NodeOwnership, states: Mapping[str, State]) -> str:
    p = plan(me, [node], RING3, states)
    if p.kept:
        assert not p.takes and not p.releases
        return "kept"
    if p.releases:
        assert p.releases == (Move(node.node, MoveKind.RELEASE, node.record_id, me),)
        return "release"
    if p.takes:
        (move,) = p.takes
        assert move.node == node.node and move.record_id == node.record_id
        assert move.expected == node.owner
        return move.kind.value
    return "none"


@pytest.mark.parametrize(("why", "me", "node", "states", "expected"), RULES,
                         ids=[r[0] for r in RULES])
def test_rule(why: str, me: str, node: NodeOwnership, states: Mapping[str, State],
              expected: str) -> None:
    assert outcome(me, node, states) == expected


def test_a_down_members_nodes_go_to_the_next_member_without_waiting_for_the_ring() -> None:
    node = one(A_NODE, "a")
    nxt = RING3.get_nodes(A_NODE, 2)[1]
    states = {**ALL_UP, "a": DOWN}
    # The ring still has "a" (the debounce has not dropped it), yet its node has a target.
    assert targets(RING3, [A_NODE], {"b", "c"})[A_NODE] == nxt
    assert outcome(nxt, node, states) == "take_from_down"
    other = ({"b", "c"} - {nxt}).pop()
    assert outcome(other, node, states) == "none"


def test_only_eligible_members_are_targets() -> None:
    # "a" is UP but not eligible (it came back less than a debounce ago): not a target yet.
    p = plan("a", [one(A_NODE, None)], RING3, ALL_UP, eligible={"b", "c"})
    assert not p.takes
    nxt = RING3.get_nodes(A_NODE, 2)[1]
    assert plan(nxt, [one(A_NODE, None)], RING3, ALL_UP, eligible={"b", "c"}).takes


def test_a_down_owner_is_robbed_only_once_departed() -> None:
    node = one(A_NODE, "b")
    states = {**ALL_UP, "b": DOWN}
    assert not plan("a", [node], RING3, states, departed=set()).takes
    (move,) = plan("a", [node], RING3, states, departed={"b"}).takes
    assert move.kind is MoveKind.TAKE_FROM_DOWN
    # "departed" never overrides what the liveness says now
    assert not plan("a", [node], RING3, ALL_UP, departed={"b"}).takes


def test_a_departed_owners_node_goes_down_the_ladder_one_debounce_at_a_time() -> None:
    """Its target may have died too, unnoticed yet: the next members step in, one per
    debounce period the owner has been departed."""
    node = one(A_NODE, "a")
    states = {**ALL_UP, "a": DOWN}
    first, second = RING3.get_nodes(A_NODE, 3)[1:]
    for periods, takers in ((1, {first}), (2, {first, second}), (9, {first, second})):
        got = {me for me in ("b", "c")
               if plan(me, [node], RING3, states, departed={"a": periods}).takes}
        assert got == takers, periods


def test_eligible_but_not_up_is_not_a_target() -> None:
    assert targets(RING3, [A_NODE], set())[A_NODE] is None
    p = plan("a", [one(A_NODE, None)], RING3, {**ALL_UP, "a": UNKNOWN}, eligible={"a"})
    assert not p.takes


def test_an_empty_ring_moves_nothing() -> None:
    p = plan("a", [one(n, None) for n in NODES[:5]], HashRing([]), ALL_UP)
    assert p.takes == () and p.releases == () and not p.kept


def test_a_deleted_record_is_replaced_by_the_target() -> None:
    node = NodeOwnership(A_NODE, record_id=41, owner=None)  # link to a deleted record
    (move,) = plan("a", [node], RING3, ALL_UP).takes
    assert (move.kind, move.record_id, move.expected) == (MoveKind.CREATE, 41, None)


# -- properties over random fleets -----------------------------------------------------------------
HOSTS = ["h0", "h1", "h2", "h3", "h4"]
STATE = st.sampled_from([UP, UP, UP, DOWN, UNKNOWN])


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    members = draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=5, unique=True))
    states = {h: draw(STATE) for h in HOSTS if draw(st.booleans()) or h in members}
    eligible = {m for m in members if draw(st.booleans()) or draw(st.booleans())}
    departed = {h for h in HOSTS if draw(st.booleans()) or draw(st.booleans())}
    owner = st.sampled_from([None, RELEASED, "ghost", *HOSTS])
    nodes = [NodeOwnership(NODES[i], i if draw(st.booleans()) else None, draw(owner),
                           draw(st.booleans()))
             for i in range(draw(st.integers(1, 24)))]
    # A node without a live record has no owner; one with an owner has a record.
    nodes = [NodeOwnership(n.node, n.record_id if n.owner is None else NODES.index(n.node),
                           n.owner, n.busy) for n in nodes]
    return Fleet(_ring(tuple(sorted(members))), states, eligible, departed, nodes)


@dataclass
class Fleet:
    ring: HashRing
    states: dict[str, State]
    eligible: set[str]
    departed: set[str]
    nodes: list[NodeOwnership]

    def plan(self, me: str, nodes: list[NodeOwnership] | None = None) -> Plan:
        return plan(me, self.nodes if nodes is None else nodes, self.ring, self.states,
                    self.eligible, self.departed)


_RINGS: dict[tuple[str, ...], HashRing] = {}


def _ring(members: tuple[str, ...]) -> HashRing:
    # Ring builds cost ~0.1 s; Hypothesis draws the same few member sets again and again.
    if members not in _RINGS:
        _RINGS[members] = HashRing(members, vnodes=64, partition_bits=10)
    return _RINGS[members]


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_never_a_move_away_from_an_up_or_unknown_owner(fleet: Fleet) -> None:
    states = fleet.states
    by_node = {n.node: n for n in fleet.nodes}
    for me in HOSTS:
        p = fleet.plan(me)
        for move in p.takes:
            owner = by_node[move.node].owner
            assert owner != me
            assert owner in (None, RELEASED) or owner not in states or (
                states[owner] is DOWN and owner in fleet.departed), move
            assert states.get(me) is UP and me in fleet.eligible
        for move in p.releases:
            n = by_node[move.node]
            assert n.owner == me and not n.busy  # only my own, only without an instance
            # only to an eligible, UP member ranked before me for that node
            preference = fleet.ring.get_nodes(n.node, len(fleet.ring))
            before = preference[:preference.index(me)] if me in preference else preference
            assert any(states.get(m) is UP and m in fleet.eligible for m in before)
        owned = {n.node for n in fleet.nodes if n.owner == me}
        released = {m.node for m in p.releases}
        assert p.kept | released == owned and not p.kept & released
        assert not {m.node for m in p.takes} & owned


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_observers_sharing_a_view_never_race_for_a_node(fleet: Fleet) -> None:
    states = fleet.states
    takers: dict[str, list[str]] = {}
    for me in HOSTS:
        for move in fleet.plan(me).takes:
            takers.setdefault(move.node, []).append(me)
    by_node = {n.node: n for n in fleet.nodes}
    for node, who in takers.items():
        # One taker, except for an owner without a service row: gone for good, its nodes go
        # to the first eligible members of their preference list at once (the ladder).
        assert len(who) == 1 or (by_node[node].owner not in states
                                 and len(who) <= LADDER), (node, who)
    up_eligible = {m for m in fleet.eligible if states.get(m) is UP} & fleet.ring.members
    for n in fleet.nodes:
        takeable = n.owner in (None, RELEASED) or n.owner not in states or (
            states[n.owner] is DOWN and n.owner in fleet.departed)
        if up_eligible and takeable:
            assert n.node in takers, n  # nothing takeable is left orphaned


@settings(max_examples=150, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_ticks_converge_to_every_node_owned_by_a_live_member(fleet: Fleet,
                                                            rnd: random.Random) -> None:
    """Agents ticking in any order, each move applied as a compare-and-set on a shared
    table: within three rounds every free node is owned by its target, every node whose
    owner has departed by an eligible member, and further ticks move nothing."""
    states = fleet.states
    live = {m for m in fleet.eligible if states.get(m) is UP} & fleet.ring.members
    owner = {n.node: n.owner for n in fleet.nodes}
    busy = {n.node: n.busy for n in fleet.nodes}

    def tick(me: str) -> int:
        p = fleet.plan(me, [NodeOwnership(k, 1, v, busy[k]) for k, v in owner.items()])
        moves = 0
        for m in (*p.releases, *p.takes):
            if owner[m.node] == m.expected:  # the compare-and-set
                owner[m.node] = RELEASED if m.kind is MoveKind.RELEASE else me
                moves += 1
        return moves

    for _ in range(3):
        order = list(HOSTS)
        rnd.shuffle(order)
        for me in order:
            tick(me)
    if not live:
        return
    target = targets(fleet.ring, owner, live)
    for node, who in owner.items():
        if who in live:
            assert who == target[node] or busy[node]
        else:
            # Only a host not departed (UP, UNKNOWN, or DOWN not long enough) keeps nodes.
            assert who not in (None, RELEASED) and who in states, (node, who)
            assert states[who] is not DOWN or who not in fleet.departed
    assert sum(tick(me) for me in HOSTS) == 0


# -- debounce -------------------------------------------------------------------------------------
MEMBERS = ("a", "b", "c", "d", "f")


def states_of(up: set[str], unknown: set[str] = frozenset()) -> dict[str, State]:  # type: ignore[assignment]
    return {m: UP if m in up else UNKNOWN if m in unknown else DOWN for m in MEMBERS}


def see(d: MembershipDebouncer, up: set[str], now: float,
        unknown: set[str] = frozenset()) -> Membership:  # type: ignore[assignment]
    return d.observe(states_of(up, unknown), MEMBERS, now)


def settled(up: set[str], debounce: float = 10, at: float = -100) -> MembershipDebouncer:
    d = MembershipDebouncer(debounce)
    see(d, up, at)
    see(d, up, at + debounce)
    return d


def test_a_starting_observer_waits_the_debounce_too() -> None:
    d = MembershipDebouncer(10)
    m = see(d, {"a", "b"}, 0)
    assert m.members == m.eligible == frozenset()  # no targets: nothing moves yet
    assert see(d, {"a", "b"}, 9).members == frozenset()
    m = see(d, {"a", "b"}, 10)
    assert m.members == m.eligible == {"a", "b"} and set(m.departed) == {"c", "d", "f"}
    assert see(MembershipDebouncer(10), {"a"}, 0).departed["b"] == 1  # DOWN: at once


def test_departed_at_once_then_one_ladder_step_per_debounce() -> None:
    d = settled({"a", "b"})
    assert see(d, {"a"}, 0).departed["b"] == 1  # DOWN is already the settled verdict
    assert see(d, {"a"}, 9.9).departed["b"] == 1
    assert see(d, {"a"}, 10).departed["b"] == 2
    assert see(d, {"a"}, 20).departed["b"] == 3
    assert see(d, {"a"}, 1000).departed["b"] == LADDER  # counted up to the ladder's end


def test_a_join_is_adopted_and_eligible_after_the_debounce() -> None:
    d = settled({"a"})
    see(d, {"a"}, 0)
    assert see(d, {"a", "b"}, 1).members == {"a"}
    assert see(d, {"a", "b"}, 10.9).members == {"a"}
    m = see(d, {"a", "b"}, 11)
    assert m.members == {"a", "b"} and m.eligible == {"a", "b"}


def test_a_death_is_ineligible_and_departed_at_once_and_dropped_after_the_debounce() -> None:
    d = settled({"a", "b"})
    m = see(d, {"a"}, 1)
    assert m.members == {"a", "b"} and m.eligible == {"a"}  # no reshuffle yet
    assert m.departed["b"] == 1  # its nodes go to their targets now
    m = see(d, {"a"}, 11)
    assert m.members == {"a"} and m.departed["b"] == 2


def test_unknown_is_neither_eligible_nor_departed_nor_a_departure_from_the_ring() -> None:
    d = settled({"a", "b"})
    for t in range(1, 40):
        m = see(d, {"a"}, t, unknown={"b"})
        assert m.members == {"a", "b"} and m.eligible == {"a"} and "b" not in m.departed


def test_unknown_does_not_break_a_down_streak_but_up_does() -> None:
    d = settled({"a", "b"})
    see(d, {"a"}, 0)
    see(d, {"a"}, 5, unknown={"b"})  # the report path degraded: b is UNKNOWN
    assert "b" not in see(d, {"a"}, 9, unknown={"b"}).departed  # only while DOWN
    assert see(d, {"a"}, 10).departed["b"] == 2  # the streak began at 0
    see(d, {"a", "b"}, 11)  # b reported: a sign of life
    assert see(d, {"a"}, 12).departed["b"] == 1  # a new streak
    assert see(d, {"a"}, 21.9).departed["b"] == 1
    assert see(d, {"a"}, 22).departed["b"] == 2


def test_a_member_back_within_the_debounce_stays_in_the_ring_but_waits_to_be_eligible() -> None:
    d = settled({"a", "b"})
    see(d, {"a"}, 1)
    m = see(d, {"a", "b"}, 5)
    assert m.members == {"a", "b"} and m.eligible == {"a"}
    assert see(d, {"a", "b"}, 14.9).eligible == {"a"}
    assert see(d, {"a", "b"}, 15).eligible == {"a", "b"}


def test_a_flapping_member_never_changes_the_ring_nor_is_eligible() -> None:
    d = settled({"a"}, 3)
    for t in range(1, 200):
        m = see(d, {"a", "f"} if t % 2 else {"a"}, t)
        assert m.members == {"a"} and m.eligible == {"a"}


def test_one_flapping_member_does_not_hold_back_another_join() -> None:
    d = settled({"a"}, 3)
    m = None
    for t in range(1, 6):
        m = see(d, {"a", "b", "f"} if t % 2 else {"a", "b"}, t)
    assert m is not None and m.members == {"a", "b"} and m.eligible == {"a", "b"}


def test_zero_debounce_follows_every_change() -> None:
    d = MembershipDebouncer(0)
    see(d, {"a"}, 0)
    m = see(d, {"b"}, 0)
    assert m.members == m.eligible == {"b"} and "a" in m.departed


def test_negative_debounce_is_refused() -> None:
    with pytest.raises(ValueError):
        MembershipDebouncer(-1)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 5), st.lists(
    st.tuples(st.floats(0, 3), st.dictionaries(st.sampled_from(MEMBERS),
                                               st.sampled_from([UP, DOWN, UNKNOWN]))),
    min_size=1, max_size=40))
def test_debounce_properties(debounce: float,
                             steps: list[tuple[float, dict[str, State]]]) -> None:
    """Ring presence changes only after it was observed different for the whole debounce;
    eligible members were UP, and departed hosts DOWN, at every observation of the last
    debounce, and for at least that long."""
    d = MembershipDebouncer(debounce)
    now = 0.0
    history: list[tuple[float, dict[str, State]]] = []
    previous: frozenset[str] = frozenset()

    def steady(host: str, wanted: Callable[[State], bool]) -> bool:
        window = [s for t, s in history if now - t < debounce]
        since = [t for t, s in history if wanted(s.get(host, DOWN))]
        return all(wanted(s.get(host, DOWN)) for s in window) and bool(since) and (
            now - min(since) >= debounce)

    for gap, states in steps:
        now += gap
        history.append((now, states))
        m = d.observe(states, MEMBERS, now)
        assert m.eligible <= m.members
        for member in m.eligible:
            assert states.get(member) is UP and steady(member, lambda s: s is UP)
        for host, step in m.departed.items():
            # DOWN now, and the step counts the debounces since it was last seen UP
            assert states.get(host) is DOWN and 1 <= step <= LADDER
            if step > 1:
                assert steady(host, lambda s: s is not UP)
        for member in m.members ^ previous:
            present = member in m.members
            assert steady(member, lambda s, p=present: (s is not DOWN) == p)  # type: ignore[misc]
        previous = m.members
