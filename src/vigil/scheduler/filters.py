"""Host filters (Nova's names). A filter answers for one host from the in-memory HostState;
none of them touches the database. The capacity filters ask :mod:`vigil.objects.capacity`, the
rule the claim's SQL is built from."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from vigil.errors import ConfigError
from vigil.objects import capacity
from vigil.objects.liveness import State
from vigil.scheduler.host_state import HostState


@dataclass(frozen=True)
class RequestSpec:
    """What an instance asks for."""

    instance_uuid: str
    flavor_name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    availability_zone: str | None = None
    requested_host: str | None = None
    ignore_hosts: tuple[str, ...] = ()


class BaseFilter(abc.ABC):
    name: ClassVar[str]
    # Completes "N hosts were ..." in a fault message.
    why: ClassVar[str]

    @abc.abstractmethod
    def host_passes(self, host: HostState, spec: RequestSpec) -> bool: ...


class ComputeFilter(BaseFilter):
    """The host's compute service is up and enabled, and the host is neither quarantined (it
    could not start the instance) nor in maintenance (the HA monitor does not look after it).
    UNKNOWN is not up: no new work goes to a host whose liveness cannot be read (it is not
    treated as down either: see evacuate)."""

    name = "ComputeFilter"
    why = "down, of unknown state, disabled, quarantined or in maintenance"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return (host.service is not None and not host.service.disabled
                and host.state is State.UP and not host.quarantined and not host.maintenance)


class CoreFilter(BaseFilter):
    name = "CoreFilter"
    why = "short of vCPUs"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return capacity.VCPUS.fits(host.node, spec.vcpus)


class RamFilter(BaseFilter):
    name = "RamFilter"
    why = "short of RAM"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return capacity.MEMORY.fits(host.node, spec.memory_mb)


class DiskFilter(BaseFilter):
    name = "DiskFilter"
    why = "short of disk"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return capacity.DISK.fits(host.node, spec.root_gb)


class AvailabilityZoneFilter(BaseFilter):
    name = "AvailabilityZoneFilter"
    why = "in another availability zone"

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        return spec.availability_zone is None or host.zone == spec.availability_zone


ALL: dict[str, type[BaseFilter]] = {
    c.name: c for c in (ComputeFilter, CoreFilter, RamFilter, DiskFilter, AvailabilityZoneFilter)
}


def load(names: Sequence[str]) -> list[BaseFilter]:
    out: list[BaseFilter] = []
    for name in names:
        try:
            out.append(ALL[name]())
        except KeyError:
            raise ConfigError(f"unknown scheduler filter {name!r}; choose among "
                              + ", ".join(ALL)) from None
    return out


@dataclass(frozen=True)
class FilterResult:
    hosts: list[HostState]
    # (filter name, hosts it removed, why) in order, for the fault of a failed boot.
    removed: list[tuple[str, int, str]]
    considered: int

    def explain(self, spec: RequestSpec) -> str:
        """Nova's NoValidHost text, followed by what each filter removed."""
        parts = []
        if spec.requested_host is not None:
            parts.append(f"requested host {spec.requested_host}")
        if spec.ignore_hosts:
            parts.append("excluding " + ", ".join(spec.ignore_hosts))
        scope = f" ({'; '.join(parts)})" if parts else ""
        text = (f"No valid host was found. {self.considered} candidate host(s){scope} for "
                f"flavor {spec.flavor_name} ({spec.vcpus} vCPU, {spec.memory_mb} MB RAM, "
                f"{spec.root_gb} GB disk)")
        if spec.availability_zone is not None:
            text += f" in zone {spec.availability_zone}"
        details = [f"{name} removed {n} ({why})" for name, n, why in self.removed if n]
        return text + (": " + "; ".join(details) if details else "") + "."


def run_filters(filters: Sequence[BaseFilter], hosts: Sequence[HostState],
                spec: RequestSpec) -> FilterResult:
    candidates = [h for h in hosts if h.host not in spec.ignore_hosts
                  and (spec.requested_host is None or h.host == spec.requested_host)]
    considered = len(candidates)
    removed: list[tuple[str, int, str]] = []
    for f in filters:
        kept = [h for h in candidates if f.host_passes(h, spec)]
        removed.append((f.name, len(candidates) - len(kept), f.why))
        candidates = kept
    return FilterResult(candidates, removed, considered)
