"""Filters and weighers, in memory: Hypothesis explores host pictures a fleet could show."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from vigil.objects import capacity
from vigil.objects.compute import NodeRecord
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.scheduler import filters as flt
from vigil.scheduler.host_state import HostState
from vigil.scheduler.weights import RAMWeigher, weigh

T0 = dt.datetime(2026, 1, 1)
ALL_FILTERS = flt.load(list(flt.ALL))


def service(i: int, disabled: bool) -> ServiceRecord:
    return ServiceRecord(id=i, uuid=f"s{i}", host=f"h{i}", binary="vigil-compute",
                         topic="compute", report_count=1, disabled=disabled,
                         disabled_reason=None, forced_down=False, version=1, last_seen_up=T0,
                         left_at=None, created_at=T0, updated_at=T0)


def node(i: int, total: tuple[int, int, int], used: tuple[int, int, int],
         ratios: tuple[float, float, float], zone: str) -> NodeRecord:
    return NodeRecord(
        id=i, uuid=f"n{i}", host=f"h{i}", hypervisor_hostname=f"h{i}", hypervisor_type="fake",
        hypervisor_version=1, host_ip=None, availability_zone=zone, vcpus=total[0],
        memory_mb=total[1], local_gb=total[2], vcpus_used=used[0], memory_mb_used=used[1],
        local_gb_used=used[2], running_vms=0, cpu_allocation_ratio=ratios[0],
        ram_allocation_ratio=ratios[1], disk_allocation_ratio=ratios[2], created_at=T0,
        updated_at=T0)


@st.composite
def host_states(draw: st.DrawFn) -> list[HostState]:
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        total = (draw(st.integers(1, 64)), draw(st.integers(256, 65536)),
                 draw(st.integers(1, 2000)))
        used = tuple(draw(st.integers(0, t * 2)) for t in total)
        ratios = tuple(draw(st.sampled_from([0.5, 1.0, 1.5, 16.0])) for _ in range(3))
        svc = draw(st.one_of(st.none(), st.booleans().map(lambda d, i=i: service(i, d))))
        out.append(HostState(node(i, total, used, ratios, draw(st.sampled_from(["a", "b"]))),  # type: ignore[arg-type]
                             svc, draw(st.sampled_from(list(State))), "unused"))
        out[-1].zone = out[-1].node.availability_zone or "nova"
    return out


specs = st.builds(
    flt.RequestSpec, instance_uuid=st.just("i"), flavor_name=st.just("f"),
    vcpus=st.integers(1, 16), memory_mb=st.integers(64, 16384), root_gb=st.integers(0, 200),
    availability_zone=st.sampled_from([None, "a", "b"]),
    requested_host=st.sampled_from([None, "h0", "h3"]),
    ignore_hosts=st.sampled_from([(), ("h1",)]))


def eligible(h: HostState, spec: flt.RequestSpec) -> bool:
    n = h.node
    return (h.service is not None and not h.service.disabled and h.state is State.UP
            and n.vcpus_used + spec.vcpus <= n.vcpus * n.cpu_allocation_ratio
            and n.memory_mb_used + spec.memory_mb <= n.memory_mb * n.ram_allocation_ratio
            and n.local_gb_used + spec.root_gb <= n.local_gb * n.disk_allocation_ratio
            and (spec.availability_zone is None or h.zone == spec.availability_zone)
            and (spec.requested_host is None or h.host == spec.requested_host)
            and h.host not in spec.ignore_hosts)


@given(host_states(), specs)
def test_filters_keep_exactly_the_eligible_hosts(hosts: list[HostState],
                                                 spec: flt.RequestSpec) -> None:
    result = flt.run_filters(ALL_FILTERS, hosts, spec)
    assert [h.host for h in result.hosts] == [h.host for h in hosts if eligible(h, spec)]
    # Never a host that is down, unknown, disabled or without a service.
    for h in result.hosts:
        assert h.state is State.UP and h.service is not None and not h.service.disabled
        assert capacity.fits(h.node, vcpus=spec.vcpus, memory_mb=spec.memory_mb,
                             root_gb=spec.root_gb)


@given(host_states(), specs)
def test_explanation_accounts_for_every_removed_host(hosts: list[HostState],
                                                     spec: flt.RequestSpec) -> None:
    result = flt.run_filters(ALL_FILTERS, hosts, spec)
    assert sum(n for _, n, _ in result.removed) == result.considered - len(result.hosts)
    text = result.explain(spec)
    assert text.startswith("No valid host was found.")
    for name, n, _ in result.removed:
        assert (f"{name} removed {n}" in text) == (n > 0)


def test_unknown_is_not_up_for_the_compute_filter() -> None:
    h = HostState(node(0, (8, 8192, 100), (0, 0, 0), (1, 1, 1), "nova"), service(0, False),
                  State.UNKNOWN, "nova")
    spec = flt.RequestSpec("i", "f", 1, 512, 1)
    assert not flt.ComputeFilter().host_passes(h, spec)
    h.state = State.UP
    assert flt.ComputeFilter().host_passes(h, spec)


@given(host_states())
def test_ram_weigher_spreads_to_the_most_free_ram(hosts: list[HostState]) -> None:
    ranked = weigh([RAMWeigher(1.0)], hosts)
    frees = [h.node.free_ram_mb for _, h in ranked]
    assert frees == sorted(frees, reverse=True)
    stacked = weigh([RAMWeigher(-1.0)], hosts)
    assert [h.node.free_ram_mb for _, h in stacked] == sorted(frees)


def test_ratios_are_applied_as_nova_does() -> None:
    # 4 pCPU x 16 = 64 vCPU; 1000 MB x 1.5 = 1500 MB; 10 GB x 1.0.
    n = node(0, (4, 1000, 10), (63, 1000, 9), (16.0, 1.5, 1.0), "nova")
    assert capacity.fits(n, vcpus=1, memory_mb=500, root_gb=1)
    assert not capacity.fits(n, vcpus=2, memory_mb=500, root_gb=1)
    assert not capacity.fits(n, vcpus=1, memory_mb=501, root_gb=1)
    assert not capacity.fits(n, vcpus=1, memory_mb=500, root_gb=2)
