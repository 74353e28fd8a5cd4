"""The process driver with real processes: spawn, heartbeat, destroy, adoption after restart."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from tests.tools.wait import wait_for
from tests.unit.compute.helpers import make_conf
from vigil.compute.virt.process import ProcessDriver, proc_start_time
from vigil.errors import InstanceExists
from vigil.launch.settings import virt_settings
from vigil.objects.compute import InstanceRecord, PowerState

T0 = dt.datetime(2026, 1, 1)


def instance(uuid: str = "11111111-2222-3333-4444-555555555555") -> InstanceRecord:
    return InstanceRecord(
        id=1, uuid=uuid, name="vm", flavorid="1", flavor_name="m1.tiny", vcpus=1,
        memory_mb=512, root_gb=1, availability_zone=None, requested_host=None, host="h1",
        node="h1", compute_node_id=1, vm_state="building", task_state="spawning",
        power_state=0, generation=1, evacuable=True, fault=None, fault_at=None, launched_at=None,
        terminated_at=None, created_at=T0, updated_at=None, deleted=False)


def lines(directory: Path) -> list[list[str]]:
    path = directory / "heartbeat"
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def conf(tmp_path: Path) -> cfg.ConfigOpts:
    return make_conf(DEFAULT={"state_path": str(tmp_path / "state")},
                     compute={"instances_path": str(tmp_path / "instances")})


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids to kill at the end whatever happens (the test's own children)."""
    out: list[int] = []
    yield out
    for pid in out:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_spawn_runs_the_workload_and_destroy_stops_it(conf: cfg.ConfigOpts,
                                                      pids: list[int]) -> None:
    d = ProcessDriver(virt_settings(conf), "h1")
    d.init_host()
    inst = instance()
    d.spawn(inst)
    pid = d.pid(inst.uuid)
    assert pid is not None
    pids.append(pid)
    directory = Path(d.instances_path) / inst.uuid
    wait_for(lambda: len(lines(directory)) >= 2, 5)
    first, second = lines(directory)[:2]
    assert first[1:] == ["h1", str(pid)] and float(second[0]) > float(first[0])
    assert d.list_instances() == [inst.uuid] and d.power_state(inst.uuid) == PowerState.RUNNING
    with pytest.raises(InstanceExists):
        d.spawn(inst)
    d.destroy(inst.uuid, keep_disk=True)
    assert proc_start_time(pid) is None
    assert d.power_state(inst.uuid) == PowerState.NOSTATE and d.list_instances() == []
    assert (directory / "heartbeat").exists()  # kept: it may be shared with the new host
    d.destroy(inst.uuid, keep_disk=False)
    assert not directory.exists()


def test_workload_ignores_sigint_so_ctrl_c_on_the_agent_spares_it(
        conf: cfg.ConfigOpts, pids: list[int]) -> None:
    d = ProcessDriver(virt_settings(conf), "h1")
    d.init_host()
    inst = instance()
    d.spawn(inst)
    pid = d.pid(inst.uuid)
    assert pid is not None
    pids.append(pid)
    directory = Path(d.instances_path) / inst.uuid
    wait_for(lambda: len(lines(directory)) >= 1)
    os.kill(pid, signal.SIGINT)
    count = len(lines(directory))
    wait_for(lambda: len(lines(directory)) > count, 5)
    assert d.power_state(inst.uuid) == PowerState.RUNNING
    d.destroy(inst.uuid, keep_disk=False)


def test_a_restarted_agent_adopts_survivors_and_can_kill_them(conf: cfg.ConfigOpts,
                                                              pids: list[int]) -> None:
    first = ProcessDriver(virt_settings(conf), "h1")
    first.init_host()
    alive, killed = instance("aaaaaaaa-0000-0000-0000-000000000001"), instance(
        "aaaaaaaa-0000-0000-0000-000000000002")
    first.spawn(alive)
    first.spawn(killed)
    pid_alive, pid_killed = first.pid(alive.uuid), first.pid(killed.uuid)
    assert pid_alive is not None and pid_killed is not None
    pids += [pid_alive, pid_killed]
    os.kill(pid_killed, signal.SIGKILL)
    first._local[killed.uuid].proc.wait()  # type: ignore[union-attr]  # reap, as init would
    # A new agent process (a new driver) on the same host finds both records.
    second = ProcessDriver(virt_settings(conf), "h1")
    second.init_host()
    assert sorted(second.list_instances()) == sorted([alive.uuid, killed.uuid])
    assert second.power_state(alive.uuid) == PowerState.RUNNING
    assert second.power_state(killed.uuid) == PowerState.SHUTDOWN
    # The dead one can be spawned again; the live one (not its child) can be destroyed.
    second.spawn(killed)
    new_pid = second.pid(killed.uuid)
    assert new_pid is not None and new_pid != pid_killed
    pids.append(new_pid)
    second.destroy(alive.uuid, keep_disk=True)
    wait_for(lambda: proc_start_time(pid_alive) is None, 5)
    first._local[alive.uuid].proc.wait()  # type: ignore[union-attr]  # reap, as init would
    # Another host's agent sharing state_path sees none of h1's instances.
    other = ProcessDriver(virt_settings(conf), "h2")
    other.init_host()
    assert other.list_instances() == []
    second.destroy(killed.uuid, keep_disk=False)


def test_a_command_that_exits_at_once_is_a_failed_spawn(tmp_path: Path) -> None:
    conf = make_conf(DEFAULT={"state_path": str(tmp_path / "state")},
                     compute={"instances_path": str(tmp_path / "instances"),
                              "process_command": "sh -c 'echo {uuid} on {host}; exit 3'"})
    d = ProcessDriver(virt_settings(conf), "h1")
    d.init_host()
    inst = instance()
    with pytest.raises(RuntimeError, match="status 3"):
        d.spawn(inst)
    log = (Path(d.instances_path) / inst.uuid / "console.log").read_text()
    assert f"{inst.uuid} on h1" in log


def test_inventory_uses_the_machine_and_the_overrides(tmp_path: Path) -> None:
    conf = make_conf(DEFAULT={"state_path": str(tmp_path / "state")},
                     compute={"instances_path": str(tmp_path / "instances"), "memory_mb": 1000,
                              "ram_allocation_ratio": 2.0, "host_ip": "192.0.2.1"})
    inv = ProcessDriver(virt_settings(conf), "h1").inventory()
    assert inv.vcpus == os.cpu_count() and inv.memory_mb == 1000 and inv.local_gb > 0
    assert (inv.ram_allocation_ratio, inv.cpu_allocation_ratio) == (2.0, 16.0)
    assert inv.hypervisor_type == "process" and inv.host_ip == "192.0.2.1"
