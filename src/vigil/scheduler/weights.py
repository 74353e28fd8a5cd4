"""Weighers (Nova's scheme): each weigher's raw values are normalised to [0, 1] over the
candidates, multiplied by its multiplier and summed; the highest total wins."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from vigil.scheduler.host_state import HostState


class BaseWeigher(abc.ABC):
    def __init__(self, multiplier: float) -> None:
        self.multiplier = multiplier

    @abc.abstractmethod
    def raw(self, host: HostState) -> float: ...


class RAMWeigher(BaseWeigher):
    """Free RAM after the allocation ratio: with a positive multiplier, new instances spread
    to the emptiest hosts (Nova's default)."""

    def raw(self, host: HostState) -> float:
        return host.node.free_ram_mb


def normalize(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


def weigh(weighers: Sequence[BaseWeigher],
          hosts: Sequence[HostState]) -> list[tuple[float, HostState]]:
    """Hosts best first; ties broken by host name so decisions are reproducible."""
    totals = [0.0] * len(hosts)
    for w in weighers:
        for i, v in enumerate(normalize([w.raw(h) for h in hosts])):
            totals[i] += w.multiplier * v
    ranked = sorted(zip(totals, hosts, strict=True), key=lambda th: (-th[0], th[1].host))
    return ranked
