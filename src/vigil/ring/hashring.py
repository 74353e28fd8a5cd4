"""A pure, deterministic consistent hash ring with bounded load.

Nothing here does I/O, reads the clock or uses Python's salted ``hash()``: a ring is a pure
function of its members, weights and parameters, so every process that builds a ring from
the same members maps every key the same way, whatever its ``PYTHONHASHSEED`` or the order
the members were given in.

Algorithm
---------
1. **Ring.** Every member puts ``vnodes * weight`` points (default 1,024 per unit of weight)
   on a 48-bit circle: the big-endian 6-byte words of the SHAKE-128 stream of
   ``b"vigil.ring/v1\\0" + member``. A member's points depend on its own name only.
2. **Partition table.** The circle is cut into ``2**partition_bits`` equal partitions
   (default 2**17 = 131,072). A partition belongs to the first point at or after its start,
   as on a Ketama ring: when a member leaves, its partitions go to the members whose points
   follow its own and no other partition changes owner.
3. **Bounded load.** A member owning more than ``floor(max_load * fair share)`` partitions
   (default ``max_load=1.05``) sheds the excess, the partitions farthest from its points
   first, each to the next distinct member along the table that is under its own bound.
4. **Lookup.** ``blake2s(key, digest_size=4)``, top ``partition_bits`` bits, table index:
   one hash and one tuple index, O(1) whatever the number of members. Replicas and
   ``ignore`` walk the table onwards from the key's partition, collecting distinct members.

Why this algorithm: measurements
--------------------------------
Made while choosing, on the project machine (CPython 3.11, 2 shared vCPUs, so times vary
by 2x with load); "moved" is the share of keys that change owner when one member joins /
leaves 100 members, over the ideal 1/(N+1) / 1/N; bench/ring_bench.py prints the final
figures for this module next to tooz's.

===================================  ========  ========  ===========  ===================
candidate                            max/mean  max/mean  moved        build, 1,000
                                     100       1,000     join/leave   members (CPU)
===================================  ========  ========  ===========  ===================
tooz HashRing (32 md5 points each)   1.42      1.63      1.05 / 0.93  0.05 s
Ketama ring, 256 points, no bound    1.16      1.47      1.05 / 0.95  0.8 s
Maglev table, 65,537 slots           1.001     1.007     1.59 / 1.56  0.2 s; moves 7x
                                                                      the ideal at 1,000
HRW (rendezvous) table, 2**16 parts  1.08      ~1.4 est  1.0 / 1.0    8.8 s at 100 members
ring 256 points, 2**16 + bound       1.05      1.04      1.20 / 1.17  0.8 s
ring 512 points, 2**17 + bound       1.05      1.05      1.07 / 1.05  0.4 s
**ring 1,024 points, 2**17 + bound** 1.05      1.05      1.02 / 1.03  0.45-0.7 s
===================================  ========  ========  ===========  ===================

(The "moved" figures of the last two rows are means over 12 random 100-member fleets; the
others come from one fleet. The two 256-point rows were timed in an earlier prototype
that sorted all points, hence their slow builds.)

* Rendezvous (HRW) hashing moves the minimum but costs O(members) hashes per lookup; a
  partition table filled by HRW costs partitions x members hashes to build (6.5 M at 100
  members, 8.8 s), and its balance is only binomial: with P partitions the spread of a
  member's load is sqrt(N/P), 12 % at 1,000 members and 2**16 partitions.
* Jump consistent hash needs the members numbered; removing any member but the last one
  renumbers the others and moves most keys.
* A ring with V points per member spreads the load by about 1/sqrt(V) (tooz's 32 points
  give the 1.42 / 1.63 above); reaching 1.05 at 1,000 members by points alone needs about
  4,000 points per member, 4 M points, many seconds in pure Python.
* Maglev balances perfectly but reshuffles many slots on every change.
* No scheme can be both strictly monotone (a removal moves only the removed member's keys)
  and bounded for every member set: strict monotonicity means each partition ranks all
  possible members in a fixed order, and each member's load is then a sum of independent
  pieces. So the bound is a separate step on top of the ring. What it costs in movement is
  roughly (share of members at the bound) x ideal; with 1,024 points per member and 2**17
  partitions about 3 % of the ideal at 100 members. Lookups stay O(1) and the bound
  guarantees max/mean <= ``max_load`` at any size.

The price, exactly: with ``max_load`` set, a removal moves the removed member's keys plus
a few whose owners' bound changed (about 3 % of the ideal at 100 members; at 1,000
members, where each member holds only ~131 partitions, join and leave move 1.3-1.5x the
ideal). ``max_load=None`` drops the bound: the ring is then strictly monotone, a removal
moves only the removed member's keys and an addition moves keys only to the new member,
with the ring's looser balance.

Build cost is about one pure-Python step per point (members x vnodes) plus a few passes
over the table: a 1,000-member ring (1 M points) takes 0.45-0.7 s of CPU, a 100-member
ring 0.1-0.18 s. Rings are immutable; build a new one when the membership changes.

Hashes: BLAKE2s and SHAKE-128 are in ``hashlib.algorithms_guaranteed`` (always present,
whatever the OpenSSL build), fast on short inputs, and give 32-bit and arbitrary-length
outputs directly. MD5, as tooz uses, is blocked in FIPS-restricted builds unless called
with ``usedforsecurity=False``, and tooz turns its digest into an int through a hex string.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from hashlib import blake2s, shake_128
from itertools import chain
from numbers import Real
from types import MappingProxyType
from typing import TypeVar

from vigil.errors import EmptyRingError

__all__ = ["HashRing"]

DEFAULT_VNODES = 1024
DEFAULT_PARTITION_BITS = 17
DEFAULT_MAX_LOAD = 1.05

MAX_MEMBERS = 1 << 16  # a member's index is stored in the low 16 bits of each point
MAX_POINTS = 1 << 23  # total vnodes after weighting: a guard against absurd weights
_POINT_BYTES = 6  # 48-bit positions on the circle
_DOMAIN = b"vigil.ring/v1\x00"

K = TypeVar("K", str, bytes)
T = TypeVar("T")


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"ring keys must be str or bytes, not {type(key).__name__}")


def _check_replicas(replicas: int) -> None:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise TypeError(f"replicas must be an int, not {replicas!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, not {replicas}")


def _normalise(members: Iterable[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(members, (str, bytes)):
        raise TypeError("members must be an iterable of member names, not a single string")
    if isinstance(members, Mapping):
        items: Iterable[tuple[object, object]] = members.items()
    else:
        items = ((m, 1.0) for m in members)
    weights: dict[str, float] = {}
    for name, weight in items:
        if not isinstance(name, str):
            raise TypeError(f"member names must be str, not {type(name).__name__}")
        if not name:
            raise ValueError("member names must not be empty")
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise TypeError(f"weight of {name!r} must be a real number, not {weight!r}")
        value = float(weight)
        if not math.isfinite(value) or value <= 0.0:
            raise ValueError(f"weight of {name!r} must be finite and > 0, not {weight!r}")
        weights[name] = value
    return weights


def _points(name: str, index: int, count: int) -> tuple[int, ...]:
    """The member's ring points as 64-bit ints: 48-bit position, then 16-bit member index.

    The index (the member's rank among the sorted names) only breaks ties between equal
    positions, which keeps those ties deterministic and independent of other members.
    """
    stream = shake_128(_DOMAIN + name.encode("utf-8", "surrogatepass")).digest(_POINT_BYTES * count)
    buf = bytearray(8 * count)
    for byte in range(_POINT_BYTES):
        buf[byte::8] = stream[byte::_POINT_BYTES]
    buf[6::8] = bytes((index >> 8,)) * count
    buf[7::8] = bytes((index & 0xFF,)) * count
    return struct.unpack(f">{count}Q", buf)


def _walk(table: Sequence[T], start: int, distinct: int) -> Iterator[T]:
    """Entries of ``table`` from ``start`` onwards, wrapping once, in growing slices.

    Stops early once ``distinct`` different entries have been produced (the caller cannot
    want more); the slices keep the per-entry cost low while the first ones stay short.
    """
    size = len(table)
    pos = start % size if size else 0
    left = size
    chunk = 16
    seen: set[T] = set()
    while left:
        n = min(chunk, left, size - pos)
        block = table[pos : pos + n]
        yield from block
        seen.update(block)
        if len(seen) >= distinct:
            return
        left -= n
        pos = (pos + n) % size
        chunk *= 2


def _build_table(
    names: list[str],
    weights: dict[str, float],
    vnodes: int,
    bits: int,
    max_load: float | None,
) -> list[int]:
    """Owner index (into ``names``) of every partition."""
    size = 1 << bits
    shift = 64 - bits
    count = len(names)
    if count == 1:
        return [0] * size

    # 1. Ring: the smallest point inside each partition ("none" = 1 << 64).
    none = 1 << 64
    first = [none] * size
    for index, name in enumerate(names):
        npoints = max(1, round(vnodes * weights[name]))
        for point in _points(name, index, npoints):
            part = point >> shift
            if point < first[part]:
                first[part] = point

    # 2. Each partition's owner is the first point at or after its start: its own smallest
    # point, or for an empty partition the next partition's owner. ``dist`` is how far that
    # point lies from the partition's start (a partition is ``1 << shift`` wide).
    low = (1 << shift) - 1
    owner = [point & 0xFFFF for point in first]
    dist = [point & low for point in first]
    empty = [part for part, point in enumerate(first) if point == none]
    if empty:
        width = 1 << shift
        lead = next(part for part, point in enumerate(first) if point != none)
        # Empty partitions before the first non-empty one chain to it; the rest chain
        # forwards and the last ones wrap round to partition 0, which is settled by then.
        split = bisect_left(empty, lead)
        for part in chain(reversed(empty[:split]), reversed(empty[split:])):
            following = part + 1 if part + 1 < size else 0
            owner[part] = owner[following]
            dist[part] = dist[following] + width
    if max_load is None:
        return owner

    # 3. Bounded load: members over their bound shed their farthest partitions to the next
    # distinct member along the table that is under its own bound.
    total = math.fsum(weights[name] for name in names)
    caps = []
    for name in names:
        fair = size * weights[name] / total
        caps.append(max(math.ceil(fair), math.floor(max_load * fair)))
    tally = Counter(owner)
    load = [tally[index] for index in range(count)]
    over = {index for index in range(count) if load[index] > caps[index]}
    if not over:
        return owner
    held: dict[int, list[tuple[int, int]]] = {index: [] for index in over}
    for part, index in enumerate(owner):
        if index in over:
            held[index].append((-dist[part], part))
    shed: list[tuple[int, int]] = []
    for index, parts in held.items():
        parts.sort()
        excess = load[index] - caps[index]
        shed.extend(parts[:excess])
        load[index] -= excess
    shed.sort()
    base = owner[:]
    for _, part in shed:
        seen = {base[part]}
        target = -1
        for index in _walk(base, part + 1, count):
            if index not in seen:
                seen.add(index)
                if load[index] < caps[index]:
                    target = index
                    break
        if target < 0:  # only members that own no partition at all are left
            target = next(i for i in range(count) if load[i] < caps[i])
        owner[part] = target
        load[target] += 1
    return owner


class HashRing:
    """Consistent hash ring mapping keys to members; immutable once built.

    ``members`` is an iterable of names (all weight 1) or a mapping name -> weight (> 0).
    A member with weight 2 gets twice the keys of one with weight 1. ``vnodes`` is the
    number of ring points per unit of weight, ``partition_bits`` sets the table size
    (2**bits partitions) and ``max_load`` bounds every member's share at ``max_load`` times
    its fair share (``None``: no bound, strictly monotone ring). Rings built with the same
    members, weights and parameters map every key identically, in any process.
    """

    __slots__ = ("_index", "_max_load", "_members", "_names", "_shift", "_table", "_weights")

    def __init__(
        self,
        members: Iterable[str] | Mapping[str, float],
        *,
        vnodes: int = DEFAULT_VNODES,
        partition_bits: int = DEFAULT_PARTITION_BITS,
        max_load: float | None = DEFAULT_MAX_LOAD,
    ) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise ValueError(f"vnodes must be an int >= 1, not {vnodes!r}")
        if (
            isinstance(partition_bits, bool)
            or not isinstance(partition_bits, int)
            or not 1 <= partition_bits <= 24
        ):
            raise ValueError(f"partition_bits must be an int in [1, 24], not {partition_bits!r}")
        if max_load is not None:
            if isinstance(max_load, bool) or not isinstance(max_load, Real):
                raise TypeError(f"max_load must be a real number or None, not {max_load!r}")
            if not (math.isfinite(max_load) and max_load >= 1.0):
                raise ValueError(f"max_load must be finite and >= 1.0, not {max_load!r}")
            max_load = float(max_load)
        weights = _normalise(members)
        if len(weights) > MAX_MEMBERS:
            raise ValueError(f"at most {MAX_MEMBERS} members are supported")
        names = sorted(weights)
        npoints = sum(max(1, round(vnodes * w)) for w in weights.values())
        if npoints > MAX_POINTS:
            raise ValueError(
                f"{npoints} ring points (vnodes x weights) exceed {MAX_POINTS}: scale the weights"
                " down (only their ratios matter for balance) or lower vnodes"
            )
        self._names = tuple(names)
        self._members = frozenset(names)
        self._weights = MappingProxyType({name: weights[name] for name in names})
        self._index = {name: i for i, name in enumerate(names)}
        self._max_load = max_load
        self._shift = 32 - partition_bits
        if names:
            owners = _build_table(names, weights, vnodes, partition_bits, max_load)
            self._table: tuple[str, ...] = tuple([names[i] for i in owners])
        else:
            self._table = ()

    # -- membership ---------------------------------------------------------------------

    @property
    def members(self) -> frozenset[str]:
        return self._members

    @property
    def weights(self) -> Mapping[str, float]:
        """Read-only member -> weight mapping, in name order."""
        return self._weights

    @property
    def partitions(self) -> tuple[str, ...]:
        """Owner of every partition, in hash order (empty for an empty ring)."""
        return self._table

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __repr__(self) -> str:
        return (
            f"HashRing(members={len(self._names)}, partitions={len(self._table)}, "
            f"max_load={self._max_load!r})"
        )

    def ownership(self) -> dict[str, float]:
        """Share of the key space (0..1) each member owns, from the partition table."""
        if not self._table:
            return {}
        tally = Counter(self._table)
        size = len(self._table)
        return {name: tally[name] / size for name in self._names}

    # -- lookups ------------------------------------------------------------------------

    def partition_of(self, key: str | bytes) -> int:
        """Index of the partition ``key`` hashes to."""
        digest = blake2s(_key_bytes(key), digest_size=4).digest()
        return int.from_bytes(digest, "big") >> self._shift

    def get_node(self, key: str | bytes) -> str:
        """The member that owns ``key``; same as ``get_nodes(key)[0]``."""
        # The hot path: one hash and one tuple index. Exceptions are free in 3.11 until raised.
        if type(key) is str:
            try:
                data = key.encode()
            except UnicodeEncodeError:
                data = key.encode("utf-8", "surrogatepass")
        elif type(key) is bytes:
            data = key
        else:
            data = _key_bytes(key)
        try:
            return self._table[
                int.from_bytes(blake2s(data, digest_size=4).digest(), "big") >> self._shift
            ]
        except IndexError:
            raise EmptyRingError("the hash ring has no members") from None

    def get_nodes(
        self, key: str | bytes, replicas: int = 1, ignore: Iterable[str] = ()
    ) -> list[str]:
        """Up to ``replicas`` distinct members for ``key``, in preference order.

        The first is the key's owner (unless ignored); the others follow along the table.
        Members in ``ignore`` are skipped (unknown names in it are allowed), and the result
        has ``min(replicas, members not ignored)`` entries.
        """
        _check_replicas(replicas)
        if isinstance(ignore, (str, bytes)):
            raise TypeError("ignore must be an iterable of member names, not a single string")
        table = self._table
        if not table:
            raise EmptyRingError("the hash ring has no members")
        part = self.partition_of(key)
        names = self._names
        if ignore:
            skip = frozenset(ignore)
            wanted = min(replicas, len(names) - len(skip & self._members))
            if wanted <= 0:
                return []
            seen = set(skip)
        else:
            wanted = min(replicas, len(names))
            seen = set()
        found: list[str] = []
        # Usually a few steps along the table find enough members; the long walk (in
        # slices) is for many replicas or many ignored members.
        size = len(table)
        pos = part
        for _ in range(min(size, 64)):
            member = table[pos]
            if member not in seen:
                seen.add(member)
                found.append(member)
                if len(found) == wanted:
                    return found
            pos = pos + 1 if pos + 1 < size else 0
        for member in chain(_walk(table, pos, len(names)), names):
            if member not in seen:
                seen.add(member)
                found.append(member)
                if len(found) == wanted:
                    break
        return found

    def assignments(self, keys: Iterable[K], replicas: int = 1) -> dict[str, list[K]]:
        """Every member (in name order) with the keys it holds, in input order.

        With ``replicas > 1`` a key is listed under each of its ``replicas`` members.
        """
        _check_replicas(replicas)
        result: dict[str, list[K]] = {name: [] for name in self._names}
        for key in keys:
            if replicas == 1:
                result[self.get_node(key)].append(key)
            else:
                for member in self.get_nodes(key, replicas):
                    result[member].append(key)
        return result
