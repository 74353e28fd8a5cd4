"""The scheduler's passes over a real database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from tests.unit.compute.helpers import add_host, assert_accounting, make_conf, make_group
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.launch.settings import scheduler_settings
from vigil.objects.compute import VmState
from vigil.scheduler.manager import SchedulerManager


def manager(engine: Engine, **scheduler: object) -> SchedulerManager:
    return SchedulerManager(scheduler_settings(make_conf(scheduler=scheduler)), engine,
                            make_group(engine))


def boot(engine: Engine, n: int, flavor: str = "m1.tiny", **kw: object) -> list[str]:
    fl = flavors_db.flavor_get(engine, flavor)
    return [instances_db.instance_create(engine, name=f"vm{i}", flavor=fl, **kw).uuid  # type: ignore[arg-type]
            for i in range(n)]


def test_host_states_cost_the_same_queries_for_3_or_60_hosts(sqlite_engine: Engine) -> None:
    """ComputeFilter reads liveness in one batch, never one query per host."""
    m = manager(sqlite_engine)
    counts = []
    for n in (3, 60):
        for i in range(n):
            add_host(sqlite_engine, f"n{n}-{i}")
        with count_statements(sqlite_engine) as statements:
            assert len(m.read_hosts().hosts) >= n
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 5, counts  # + one read of the hosts' HA facts


def test_a_pass_places_more_than_one_batch_and_spreads(sqlite_engine: Engine) -> None:
    for h in ("h1", "h2", "h3"):
        add_host(sqlite_engine, h, vcpus=64, memory_mb=8192)
    uuids = boot(sqlite_engine, 12, "m1.small")  # 2048 MB each: 4 per host fit
    outcomes = manager(sqlite_engine, batch_size=5).schedule_pending()
    assert {o.instance_uuid for o in outcomes} == set(uuids)
    per_host: dict[str | None, int] = {}
    for inst in instances_db.instances(sqlite_engine):
        per_host[inst.host] = per_host.get(inst.host, 0) + 1
    assert per_host == {"h1": 4, "h2": 4, "h3": 4}
    assert_accounting(sqlite_engine)
    # Full: the next one fails, with RamFilter named in its fault.
    [late] = boot(sqlite_engine, 1, "m1.small")
    manager(sqlite_engine).schedule_pending()
    fault = instances_db.instance_get(sqlite_engine, late).fault or ""
    assert "RamFilter removed 3 (short of RAM)" in fault


def test_zone_and_requested_host(sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "a1", zone="az-a")
    add_host(sqlite_engine, "b1", zone="az-b")
    add_host(sqlite_engine, "b2", zone="az-b")
    [in_a] = boot(sqlite_engine, 1, availability_zone="az-a")
    [on_b2] = boot(sqlite_engine, 1, requested_host="b2")
    [nowhere] = boot(sqlite_engine, 1, availability_zone="az-c")
    manager(sqlite_engine).schedule_pending()
    assert instances_db.instance_get(sqlite_engine, in_a).host == "a1"
    assert instances_db.instance_get(sqlite_engine, on_b2).host == "b2"
    failed = instances_db.instance_get(sqlite_engine, nowhere)
    assert failed.vm_state == VmState.ERROR and "AvailabilityZoneFilter removed 3" in (
        failed.fault or "")


def test_negative_ram_multiplier_stacks(sqlite_engine: Engine) -> None:
    add_host(sqlite_engine, "h1")
    add_host(sqlite_engine, "h2")
    boot(sqlite_engine, 4)
    manager(sqlite_engine, ram_weight_multiplier=-1.0).schedule_pending()
    assert {i.host for i in instances_db.instances(sqlite_engine)} == {"h1"}


def test_parallel_workers_of_one_pass_never_oversubscribe(any_engine: Engine) -> None:
    """workers > 1 share one host picture; the database's claims keep it exact."""
    for i in range(4):
        add_host(any_engine, f"h{i}", vcpus=3, memory_mb=4096, local_gb=50)
    uuids = boot(any_engine, 30, "m1.tiny")  # 12 fit (3 vCPUs x 4 hosts, ratio 1.0)
    outcomes = manager(any_engine, workers=6, host_subset_size=2).schedule_pending()
    assert {o.instance_uuid for o in outcomes} == set(uuids)
    assert sum(1 for o in outcomes if o.host is not None) == 12
    assert_accounting(any_engine)
    for inst in instances_db.instances(any_engine):
        assert (inst.host is None) == (inst.vm_state == VmState.ERROR)
