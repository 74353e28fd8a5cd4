"""Properties of vigil.ring.HashRing: determinism, minimal movement, replicas, weights, errors.

Most property tests use small rings (few vnodes, 2**10..2**12 partitions) so that Hypothesis
can try many member sets quickly; the movement and balance tests use the default parameters,
which are what the tolerances are about.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vigil.ring
from vigil.errors import EmptyRingError
from vigil.ring import HashRing

SMALL = {"vnodes": 16, "partition_bits": 10}

names = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)
member_sets = st.lists(names, min_size=1, max_size=12, unique=True)
keys = st.one_of(st.text(max_size=20), st.binary(max_size=20))

FAST = settings(deadline=None, max_examples=25)


def fleet(count: int, prefix: str = "compute") -> list[str]:
    return [f"{prefix}-{i:03d}.cell1.example.org" for i in range(count)]


def moved_fraction(before: HashRing, after: HashRing) -> float:
    pairs = zip(before.partitions, after.partitions, strict=True)
    return sum(a != b for a, b in pairs) / len(before.partitions)


# -- determinism -----------------------------------------------------------------------------


@FAST
@given(members=member_sets, data=st.data())
def test_insertion_order_does_not_matter(members: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(members))
    one = HashRing(members, **SMALL)
    two = HashRing(shuffled, **SMALL)
    assert one.partitions == two.partitions
    weights = {m: float(i + 1) for i, m in enumerate(members)}
    three = HashRing(weights, **SMALL)
    four = HashRing({m: weights[m] for m in shuffled}, **SMALL)
    assert three.partitions == four.partitions
    for key in data.draw(st.lists(keys, max_size=5)):
        assert one.get_node(key) == two.get_node(key)
        assert one.get_nodes(key, 3) == two.get_nodes(key, 3)


def test_known_answers() -> None:
    """Pinned outputs: if these change, every deployment remaps its keys on upgrade."""
    ring = HashRing(["alpha", "bravo", "charlie", "delta"], vnodes=64, partition_bits=12)
    digest = hashlib.sha256("\n".join(ring.partitions).encode()).hexdigest()
    assert digest == "f5cdbbb44b37d0859e4646dfc1c1f0732d9e71500b0d41d4ccea385f79e0aed3"
    assert [ring.get_node(f"instance-{i}") for i in range(1, 6)] == [
        "alpha",
        "alpha",
        "charlie",
        "bravo",
        "alpha",
    ]
    assert ring.get_nodes("instance-1", 4) == ["alpha", "charlie", "delta", "bravo"]


_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    from vigil.ring import HashRing
    members = json.loads(sys.argv[1])
    ring = HashRing(members)
    print(json.dumps({
        "table": hashlib.sha256("\\n".join(ring.partitions).encode()).hexdigest(),
        "nodes": [ring.get_nodes(f"key-{i}", 3) for i in range(50)],
        "hash": hash("probe"),
    }))
    """
)


def test_same_mapping_in_fresh_interpreters_with_other_hash_seeds() -> None:
    members = [f"host-{i}" for i in range(20)]
    ring = HashRing(list(reversed(members)))
    expected_table = hashlib.sha256("\n".join(ring.partitions).encode()).hexdigest()
    expected_nodes = [ring.get_nodes(f"key-{i}", 3) for i in range(50)]
    salted = set()
    for seed in ("1", "4242"):
        # The child imports the same vigil as this process, installed or not.
        src = str(Path(vigil.ring.__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=path)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(members)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        got = json.loads(out)
        salted.add(got["hash"])
        assert got["table"] == expected_table
        assert got["nodes"] == expected_nodes
    assert len(salted) == 2  # the two children really hashed str differently


# -- the ring itself -------------------------------------------------------------------------


def _reference_owners(members: list[str], vnodes: int, bits: int) -> list[str]:
    """Plain Ketama ring from the documented point recipe: sorted points and bisect."""
    points = []
    for name in sorted(members):
        stream = hashlib.shake_128(b"vigil.ring/v1\x00" + name.encode()).digest(6 * vnodes)
        for i in range(vnodes):
            (position,) = struct.unpack(">Q", b"\x00\x00" + stream[6 * i : 6 * i + 6])
            points.append((position, name))
    points.sort()
    positions = [p for p, _ in points]
    owners = []
    for part in range(1 << bits):
        at = bisect.bisect_left(positions, part << (48 - bits))
        owners.append(points[at % len(points)][1])
    return owners


@settings(deadline=None, max_examples=15)
@given(members=st.lists(names, min_size=2, max_size=6, unique=True))
def test_unbounded_ring_is_the_successor_on_the_ring(members: list[str]) -> None:
    ring = HashRing(members, vnodes=8, partition_bits=9, max_load=None)
    assert list(ring.partitions) == _reference_owners(members, 8, 9)


# -- movement --------------------------------------------------------------------------------


@FAST
@given(members=st.lists(names, min_size=2, max_size=10, unique=True), data=st.data())
def test_unbounded_ring_removal_moves_only_the_removed_members_keys(
    members: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(members))
    before = HashRing(members, max_load=None, **SMALL)
    after = HashRing([m for m in members if m != gone], max_load=None, **SMALL)
    for old, new in zip(before.partitions, after.partitions, strict=True):
        if old == gone:
            assert new != gone
        else:
            assert new == old


@FAST
@given(members=st.lists(names, min_size=1, max_size=10, unique=True), joiner=names)
def test_unbounded_ring_addition_moves_keys_only_to_the_new_member(
    members: list[str], joiner: str
) -> None:
    if joiner in members:
        return
    before = HashRing(members, max_load=None, **SMALL)
    after = HashRing([*members, joiner], max_load=None, **SMALL)
    for old, new in zip(before.partitions, after.partitions, strict=True):
        assert new in (old, joiner)


@pytest.mark.parametrize("count", [5, 30])
def test_removal_moves_the_removed_members_keys_and_very_few_others(count: int) -> None:
    members = fleet(count)
    before = HashRing(members)
    for gone in (members[0], members[count // 2]):
        after = HashRing([m for m in members if m != gone])
        pairs = list(zip(before.partitions, after.partitions, strict=True))
        assert all(new != gone for _, new in pairs)
        others = sum(old != new for old, new in pairs if old != gone) / len(pairs)
        # The load bound may shift a handful of partitions between the remaining members:
        # at most 5 % of what the removal itself moves (1/count of the keys).
        assert others <= 0.05 / count


@pytest.mark.parametrize("count", [5, 30])
def test_adding_one_member_moves_about_one_over_n_plus_one(count: int) -> None:
    members = fleet(count)
    before = HashRing(members)
    for joiner in ("compute-new-a", "compute-new-b"):
        after = HashRing([*members, joiner])
        ratio = moved_fraction(before, after) * (count + 1)
        assert 0.9 <= ratio <= 1.1, ratio
        to_joiner = sum(new == joiner for new in after.partitions) / len(after.partitions)
        assert moved_fraction(before, after) - to_joiner <= 0.05 / (count + 1)


def test_adding_one_member_moves_about_one_over_n_plus_one_by_key_count() -> None:
    members = fleet(20)
    before, after = HashRing(members), HashRing([*members, "compute-new"])
    sample = [f"instance-{i}" for i in range(20_000)]
    moved = sum(before.get_node(k) != after.get_node(k) for k in sample) / len(sample)
    assert 0.85 / 21 <= moved <= 1.15 / 21


# -- replicas and ignore ---------------------------------------------------------------------


@FAST
@given(members=member_sets, key=keys, replicas=st.integers(1, 15))
def test_replicas_are_distinct_ordered_members_led_by_the_owner(
    members: list[str], key: str | bytes, replicas: int
) -> None:
    ring = HashRing(members, **SMALL)
    got = ring.get_nodes(key, replicas)
    assert len(got) == min(replicas, len(members))
    assert len(set(got)) == len(got)
    assert set(got) <= set(members)
    assert got[0] == ring.get_node(key)
    assert ring.get_nodes(key, replicas + 1)[: len(got)] == got


@FAST
@given(members=member_sets, key=keys, replicas=st.integers(1, 15), data=st.data())
def test_ignore_is_respected(
    members: list[str], key: str | bytes, replicas: int, data: st.DataObject
) -> None:
    ring = HashRing(members, **SMALL)
    ignore = data.draw(st.sets(st.sampled_from(members)) | st.sets(names, max_size=3))
    got = ring.get_nodes(key, replicas, ignore=ignore)
    live = [m for m in members if m not in ignore]
    assert len(got) == min(replicas, len(live))
    assert not set(got) & set(ignore)
    assert len(set(got)) == len(got)
    # Ignoring members is the same as skipping them in the full preference order.
    everyone = ring.get_nodes(key, len(members))
    assert got == [m for m in everyone if m not in ignore][:replicas]


def test_ignoring_every_member_gives_no_nodes() -> None:
    ring = HashRing(["a", "b"], **SMALL)
    assert ring.get_nodes("k", 2, ignore=["a", "b", "zzz"]) == []


def test_str_and_bytes_keys_agree() -> None:
    ring = HashRing(fleet(7), **SMALL)
    for key in ("instance-1", "ünïcødé", "\ud800lone-surrogate"):
        data = key.encode("utf-8", "surrogatepass")
        assert ring.get_node(key) == ring.get_node(data)
        assert ring.get_nodes(key, 3) == ring.get_nodes(data, 3)
        assert ring.partition_of(key) == ring.partition_of(data)


def test_assignments_lists_each_key_under_its_owners() -> None:
    ring = HashRing(fleet(6), **SMALL)
    sample = [f"k{i}" for i in range(300)]
    owners = ring.assignments(sample)
    assert set(owners) == ring.members
    assert sorted(k for ks in owners.values() for k in ks) == sorted(sample)
    for member, held in owners.items():
        assert all(ring.get_node(k) == member for k in held)
    doubled = ring.assignments(sample, replicas=2)
    assert sum(len(ks) for ks in doubled.values()) == 2 * len(sample)
    for key in sample[:20]:
        assert [m for m, ks in doubled.items() if key in ks] == sorted(ring.get_nodes(key, 2))


# -- balance and weights ---------------------------------------------------------------------


def test_balance_at_100_members_is_within_the_bound() -> None:
    ring = HashRing(fleet(100))
    shares = list(ring.ownership().values())
    assert max(shares) * 100 <= 1.05
    assert min(shares) * 100 >= 0.8
    assert sum(shares) == pytest.approx(1.0)


def test_weights_are_roughly_proportional() -> None:
    weights = {"small": 1.0, "medium": 2.0, "large": 3.0, "huge": 4.0, "tiny": 0.5}
    ring = HashRing(weights)
    total = sum(weights.values())
    shares = ring.ownership()
    for member, weight in weights.items():
        assert 0.93 <= shares[member] / (weight / total) <= 1.05, member
    sample = [f"instance-{i}" for i in range(20_000)]
    counts = Counter(ring.get_node(k) for k in sample)
    for member, weight in weights.items():
        assert counts[member] / len(sample) == pytest.approx(weight / total, rel=0.1)


def test_equal_weights_equal_a_plain_member_list() -> None:
    members = fleet(5)
    assert (
        HashRing(members, **SMALL).partitions
        == HashRing(dict.fromkeys(members, 1), **SMALL).partitions
    )


def test_membership_views() -> None:
    ring = HashRing({"b": 2, "a": 1}, **SMALL)
    assert ring.members == frozenset({"a", "b"})
    assert isinstance(ring.members, frozenset)
    assert dict(ring.weights) == {"a": 1.0, "b": 2.0}
    with pytest.raises(TypeError):
        ring.weights["c"] = 1.0  # type: ignore[index]
    assert len(ring) == 2 and "a" in ring and "c" not in ring
    assert list(ring) == ["a", "b"]
    assert len(ring.partitions) == 1 << SMALL["partition_bits"]


# -- errors ----------------------------------------------------------------------------------


def test_empty_ring_raises_a_clear_error() -> None:
    ring = HashRing([])
    assert ring.members == frozenset()
    assert ring.ownership() == {}
    for call in (lambda: ring.get_node("k"), lambda: ring.get_nodes("k", 2)):
        with pytest.raises(EmptyRingError, match="no members"):
            call()
    assert issubclass(EmptyRingError, ValueError)
    with pytest.raises(EmptyRingError):
        ring.assignments(["k"])
    assert ring.assignments([]) == {}


@pytest.mark.parametrize("replicas", [0, -1])
def test_replicas_below_one_are_rejected(replicas: int) -> None:
    ring = HashRing(["a"], **SMALL)
    with pytest.raises(ValueError, match="replicas"):
        ring.get_nodes("k", replicas)
    with pytest.raises(ValueError, match="replicas"):
        ring.assignments(["k"], replicas=replicas)


@pytest.mark.parametrize("replicas", [1.0, "2", True])
def test_replicas_must_be_an_int(replicas: object) -> None:
    with pytest.raises(TypeError):
        HashRing(["a"], **SMALL).get_nodes("k", replicas)  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [0, -1, 0.0, float("nan"), float("inf"), -float("inf")])
def test_bad_weight_values_are_rejected(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        HashRing({"a": 1.0, "b": weight})


@pytest.mark.parametrize("weight", ["1", None, True, [1]])
def test_bad_weight_types_are_rejected(weight: object) -> None:
    with pytest.raises(TypeError, match="weight"):
        HashRing({"a": 1.0, "b": weight})


def test_unknown_member_has_no_share_and_weights_reject_unknown_lookups() -> None:
    ring = HashRing({"a": 1.0}, **SMALL)
    with pytest.raises(KeyError):
        ring.weights["nope"]
    assert "nope" not in ring.ownership()


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ("compute-1", TypeError),  # a bare string is not a member list
        ([b"bytes-name"], TypeError),
        ([1, 2], TypeError),
        ([""], ValueError),
        ({"": 1.0}, ValueError),
    ],
)
def test_bad_members_are_rejected(members: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        HashRing(members)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vnodes": 0},
        {"vnodes": 1.5},
        {"partition_bits": 0},
        {"partition_bits": 25},
        {"max_load": 0.99},
        {"max_load": float("nan")},
        {"vnodes": 1 << 23},  # too many points
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        HashRing(["a", "b"], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [1, None, 1.5, ["k"], bytearray(b"k")])
def test_bad_key_types_are_rejected(key: object) -> None:
    ring = HashRing(["a", "b"], **SMALL)
    with pytest.raises(TypeError):
        ring.get_node(key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ring.get_nodes(key, 2)  # type: ignore[arg-type]


def test_ignore_must_not_be_a_bare_string() -> None:
    with pytest.raises(TypeError):
        HashRing(["a", "b"], **SMALL).get_nodes("k", 1, ignore="a")
