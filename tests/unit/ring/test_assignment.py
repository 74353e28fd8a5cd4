"""The pure ownership decisions: table tests of every rule, then properties over random
fleets (Hypothesis), then the membership debounce."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ring import HashRing
from vigil.ring.assignment import (
    RELEASED,
    MembershipDebouncer,
    Move,
    MoveKind,
    NodeOwnership,
    plan,
    targets,
)
from vigil.servicegroup.liveness import State

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
    ("mine, I am forced down: released to the target", "b", one(A_NODE, "b"),
     {**ALL_UP, "b": DOWN}, "release"),
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
def fleets(draw: st.DrawFn) -> tuple[HashRing, dict[str, State], set[str], list[NodeOwnership]]:
    members = draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=5, unique=True))
    states = {h: draw(STATE) for h in HOSTS if draw(st.booleans()) or h in members}
    eligible = {m for m in members if draw(st.booleans()) or draw(st.booleans())}
    owner = st.sampled_from([None, RELEASED, "ghost", *HOSTS])
    nodes = [NodeOwnership(NODES[i], i if draw(st.booleans()) else None, draw(owner),
                           draw(st.booleans()))
             for i in range(draw(st.integers(1, 24)))]
    # A node without a live record has no owner; one with an owner has a record.
    nodes = [NodeOwnership(n.node, n.record_id if n.owner is None else NODES.index(n.node),
                           n.owner, n.busy) for n in nodes]
    return _ring(tuple(sorted(members))), states, eligible, nodes


_RINGS: dict[tuple[str, ...], HashRing] = {}


def _ring(members: tuple[str, ...]) -> HashRing:
    # Ring builds cost ~0.1 s; Hypothesis draws the same few member sets again and again.
    if members not in _RINGS:
        _RINGS[members] = HashRing(members, vnodes=64, partition_bits=10)
    return _RINGS[members]


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_never_a_move_away_from_an_up_or_unknown_owner(
    fleet: tuple[HashRing, dict[str, State], set[str], list[NodeOwnership]],
) -> None:
    ring, states, eligible, nodes = fleet
    by_node = {n.node: n for n in nodes}
    for me in HOSTS:
        p = plan(me, nodes, ring, states, eligible)
        for move in p.takes:
            owner = by_node[move.node].owner
            assert owner != me
            assert owner in (None, RELEASED) or states.get(owner, DOWN) is DOWN, move
            assert states.get(me) is UP and me in eligible
        for move in p.releases:
            n = by_node[move.node]
            assert n.owner == me and not n.busy  # only my own, only without an instance
        owned = {n.node for n in nodes if n.owner == me}
        released = {m.node for m in p.releases}
        assert p.kept | released == owned and not p.kept & released
        assert not {m.node for m in p.takes} & owned


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_observers_sharing_a_view_never_race_for_a_node(
    fleet: tuple[HashRing, dict[str, State], set[str], list[NodeOwnership]],
) -> None:
    ring, states, eligible, nodes = fleet
    takers: dict[str, list[str]] = {}
    for me in HOSTS:
        for move in plan(me, nodes, ring, states, eligible).takes:
            takers.setdefault(move.node, []).append(me)
    assert all(len(t) == 1 for t in takers.values()), takers
    up_eligible = {m for m in eligible if states.get(m) is UP} & ring.members
    for n in nodes:
        takeable = n.owner in (None, RELEASED) or (
            n.owner not in HOSTS or states.get(n.owner, DOWN) is DOWN)
        if up_eligible and takeable:
            assert n.node in takers, n  # nothing takeable is left orphaned


@settings(max_examples=150, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_ticks_converge_to_every_node_owned_by_a_live_member(
    fleet: tuple[HashRing, dict[str, State], set[str], list[NodeOwnership]],
    rnd: random.Random,
) -> None:
    """Agents ticking in any order, each move applied as a compare-and-set on a shared
    table: within three rounds every node is owned by an UP member, each free node by its
    target, and further ticks move nothing."""
    ring, states, eligible, nodes = fleet
    live = {m for m in eligible if states.get(m) is UP} & ring.members
    owner = {n.node: n.owner for n in nodes}
    busy = {n.node: n.busy for n in nodes}

    def tick(me: str) -> int:
        facts = [NodeOwnership(k, 1, v, busy[k]) for k, v in owner.items()]
        p = plan(me, facts, ring, states, eligible)
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
    target = targets(ring, owner, live)
    for node, who in owner.items():
        if who in live:
            assert who == target[node] or busy[node]
        else:
            # Only a node whose owner is alive-but-not-eligible (UP or UNKNOWN) may keep it.
            assert who not in (None, RELEASED) and states.get(who, DOWN) is not DOWN
    assert sum(tick(me) for me in HOSTS) == 0


# -- debounce -------------------------------------------------------------------------------------
def test_a_starting_observer_waits_the_debounce_too() -> None:
    d = MembershipDebouncer(10)
    m = d.observe({"a", "b"}, now=0)
    assert m.members == m.eligible == frozenset()  # nobody is a target: nothing moves
    assert d.observe({"a", "b"}, 9).members == frozenset()
    m = d.observe({"a", "b"}, 10)
    assert m.members == {"a", "b"} and m.eligible == {"a", "b"}


def settled(members: set[str], debounce: float = 10, at: float = -100) -> MembershipDebouncer:
    d = MembershipDebouncer(debounce)
    d.observe(members, at)
    d.observe(members, at + debounce)
    return d


def test_a_join_is_adopted_and_eligible_after_the_debounce() -> None:
    d = settled({"a"})
    d.observe({"a"}, 0)
    assert d.observe({"a", "b"}, 1).members == {"a"}
    assert d.observe({"a", "b"}, 10.9).members == {"a"}
    m = d.observe({"a", "b"}, 11)
    assert m.members == {"a", "b"} and m.eligible == {"a", "b"}


def test_a_leave_makes_the_member_ineligible_at_once_and_drops_it_after_the_debounce() -> None:
    d = settled({"a", "b"})
    d.observe({"a", "b"}, 0)
    m = d.observe({"a"}, 1)
    assert m.members == {"a", "b"} and m.eligible == {"a"}  # no reshuffle yet
    assert d.observe({"a"}, 11).members == {"a"}


def test_a_member_back_within_the_debounce_stays_in_the_ring_but_waits_to_be_eligible() -> None:
    d = settled({"a", "b"})
    d.observe({"a", "b"}, 0)
    d.observe({"a"}, 1)
    m = d.observe({"a", "b"}, 5)
    assert m.members == {"a", "b"} and m.eligible == {"a"}
    assert d.observe({"a", "b"}, 14.9).eligible == {"a"}
    assert d.observe({"a", "b"}, 15).eligible == {"a", "b"}


def test_a_flapping_member_never_changes_the_ring_nor_becomes_eligible() -> None:
    d = settled({"a"}, 3)
    d.observe({"a"}, 0)
    for t in range(1, 200):
        m = d.observe({"a", "f"} if t % 2 else {"a"}, t)
        assert m.members == {"a"} and m.eligible == {"a"}


def test_one_flapping_member_does_not_hold_back_another_join() -> None:
    d = settled({"a"}, 3)
    d.observe({"a"}, 0)
    m = None
    for t in range(1, 6):
        m = d.observe({"a", "b", "f"} if t % 2 else {"a", "b"}, t)
    assert m is not None and m.members == {"a", "b"} and m.eligible == {"a", "b"}


def test_zero_debounce_follows_every_change() -> None:
    d = MembershipDebouncer(0)
    d.observe({"a"}, 0)
    assert d.observe({"b"}, 0).members == {"b"}


def test_negative_debounce_is_refused() -> None:
    with pytest.raises(ValueError):
        MembershipDebouncer(-1)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 5), st.lists(
    st.tuples(st.floats(0, 3), st.frozensets(st.sampled_from("abcd"))), min_size=1,
    max_size=40))
def test_debounce_properties(debounce: float,
                             steps: list[tuple[float, frozenset[str]]]) -> None:
    """A member's ring presence changes only after it was observed different for the whole
    debounce; eligible members are live, in the ring, and up for the whole debounce."""
    d = MembershipDebouncer(debounce)
    now = 0.0
    history: list[tuple[float, frozenset[str]]] = []
    previous: frozenset[str] = frozenset()
    for gap, live in steps:
        now += gap
        history.append((now, live))
        m = d.observe(live, now)
        assert m.eligible <= live & m.members
        for member in m.eligible:
            # seen live at every observation of the last ``debounce`` seconds, and seen
            # for at least that long
            assert all(member in seen for t, seen in history if now - t < debounce)
            assert now - min(t for t, seen in history if member in seen) >= debounce
        for member in m.members ^ previous:
            # it flipped now: every observation of the last debounce seconds agreed, and
            # the first of those is at least a debounce ago
            window = [seen for t, seen in history if now - t < debounce]
            present = member in m.members
            assert all((member in seen) == present for seen in window)
            if present:
                assert now - min(t for t, seen in history if member in seen) >= debounce
        previous = m.members
