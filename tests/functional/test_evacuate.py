"""Evacuation end to end with real processes over RabbitMQ.

A conductor, a scheduler and two ``process``-driver computes run as separate process groups
sharing one SQLite database and one instances_path (shared storage). Instances are real
processes appending "<unix time> <host> <pid>" to their directory's heartbeat file, which is
what this test trusts: not the database's word, but which host's process actually writes.

Host h1 "crashes" (SIGKILL to its whole process group, instances included), is forced down and
its instances are evacuated to h2. Then every instance must be writing from exactly one host,
h2, none may be lost, and h1, restarted, must not start the evacuated instances again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from tests.functional.procs import db_sync, heartbeats, pid_alive, wait_for
from vigil import launch
from vigil.compute.hypervisors import HypervisorsAPI
from vigil.compute.servers import ServersAPI, settled
from vigil.errors import Conflict
from vigil.launch import servers_from
from vigil.objects.liveness import State

pytestmark = pytest.mark.slow

VIGIL = str(Path(sys.executable).with_name("vigil"))


class Cluster:
    """The daemons this test started, each in its own process group."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.generation: dict[str, int] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        log = open(self.logs / f"{name}.{gen}.log", "wb")  # noqa: SIM115 - closed by the child
        proc = subprocess.Popen([VIGIL, "--config-file", str(self.config), *args],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        self.procs[f"{name}.{gen}"] = proc
        return proc

    def log(self, name: str) -> str:
        gen = self.generation[name]
        return (self.logs / f"{name}.{gen}.log").read_text(errors="replace")

    def kill_group(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            self.kill_group(proc)

    def dump(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def cluster(tmp_path: Path, make_conf: Any, rabbit_vhost_url: str,
            exchange: str) -> Iterator[tuple[Cluster, cfg.ConfigOpts, Path]]:
    instances = tmp_path / "instances"
    conf, path = make_conf({
        "DEFAULT": {"transport_url": rabbit_vhost_url, "control_exchange": exchange,
                    "report_interval": 0.5, "service_down_time": 2,
                    "rpc_response_timeout": 5},
        "database": {"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.2},
        "compute": {"compute_driver": "process", "instances_path": str(instances),
                    "instance_sync_interval": 1, "update_resources_interval": 1,
                    "vcpus": 4, "memory_mb": 8192, "local_gb": 100},
        "scheduler": {"pending_poll_interval": 0.5},
    })
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Cluster(path, logs)
    try:
        yield c, conf, instances
    finally:
        c.stop_all()


def test_evacuation_moves_every_instance_exactly_once(
    cluster: tuple[Cluster, cfg.ConfigOpts, Path],
) -> None:
    c, conf, instances = cluster
    try:
        run_scenario(c, conf, instances)
    except BaseException:
        print(c.dump())  # the daemons' logs, shown with the failure
        raise


def run_scenario(c: Cluster, conf: cfg.ConfigOpts, instances: Path) -> None:
    db_sync(c.config)  # only `vigil db sync` migrates
    c.start("conductor", "conductor")
    engine = launch.engine_from(conf)
    group = launch.group_from(conf, engine)
    hypervisors = HypervisorsAPI(engine, group)
    # The others need the conductor's RPC server (the schema was synced above).
    wait_for(lambda: "listening on topic" in c.log("conductor"), 90, "the conductor")
    c.start("scheduler", "scheduler")
    h1 = c.start("h1", "compute", "--host", "h1")
    c.start("h2", "compute", "--host", "h2")

    def states() -> dict[str, str]:
        return {v.node.host: v.state.value for v in hypervisors.list()}

    wait_for(lambda: states() == {"h1": "up", "h2": "up"}, 90, "both hypervisors up")
    api: ServersAPI = servers_from(conf, engine, group)
    try:
        # Three on h1 (the host that will crash), one on h2; the fourth asks the scheduler.
        booted = [api.create(name=f"vm{i}", flavor="m1.tiny", host="h1").record.uuid
                  for i in range(3)]
        booted.append(api.create(name="vm3", flavor="m1.tiny", host="h2").record.uuid)
        for uuid in booted:
            view = api.wait(uuid, settled, timeout=60)
            assert view.status == "ACTIVE", view.to_dict()
        placement = {u: api.get(u).record.host for u in booted}
        assert sorted(placement.values()) == ["h1", "h1", "h1", "h2"]
        on_h1 = [u for u, h in placement.items() if h == "h1"]
        started = time.time()
        for uuid in booted:  # every instance really runs, on its host
            lines = wait_for(lambda u=uuid: heartbeats(instances, u, started), 30,
                             f"heartbeats of {uuid}")
            assert {h for _, h, _ in lines} == {placement[uuid]}
        h1_pids = {u: heartbeats(instances, u, started)[-1][2] for u in on_h1}

        # h1 crashes: its agent and its instances, the whole process group.
        c.kill_group(h1)
        wait_for(lambda: not any(pid_alive(p) for p in h1_pids.values()), 15,
                 "h1's instance processes to die with its group")
        # Its heartbeat is still fresh (or its liveness unreadable): evacuation is refused.
        with pytest.raises(Conflict):
            api.evacuate(on_h1[0])

        # The operator fences h1 and forces it down (through the CLI, as an operator would).
        out = subprocess.run([VIGIL, "--config-file", str(c.config), "service", "set", "h1",
                              "vigil-compute", "--down"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: states()["h1"] == "down", 20, "h1 down")
        # Forced down is not enough (the refusal above): h1's last report must also have aged
        # past service_down_time. The test used to rely on the CLI being slow enough for that.
        wait_for(lambda: group.members("compute", host="h1")[0].reporting is State.DOWN, 30,
                 "h1's last report to age past service_down_time")
        evacuated_at = time.time()
        # One through the CLI (with --wait), the others through the service functions.
        out = subprocess.run([VIGIL, "--config-file", str(c.config), "server", "evacuate",
                              on_h1[0], "--wait", "--timeout", "60", "--format", "json"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"OS-EXT-SRV-ATTR:host": "h2"' in out.stdout
        for uuid in on_h1[1:]:
            assert api.evacuate(uuid).status == "REBUILD"
        for uuid in on_h1:
            view = api.wait(uuid, settled, timeout=60)
            assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        assert hypervisors.get("h1").node.running_vms == 0
        assert hypervisors.get("h2").node.running_vms == 4

        def exactly_once_on_h2(since: float) -> None:
            for uuid in booted:
                lines = heartbeats(instances, uuid, since)
                assert len(lines) >= 2, f"{uuid} lost: {len(lines)} heartbeats since {since}"
                assert {h for _, h, _ in lines} == {"h2"}, (uuid, lines)
                assert len({p for _, _, p in lines}) == 1, (uuid, lines)  # one copy only
                assert lines[-1][0] > lines[0][0]  # advancing

        # Let every evacuated copy write a while, then judge a fresh window of ~2.5 s.
        wait_for(lambda: all(len(heartbeats(instances, u, evacuated_at)) >= 2
                             for u in on_h1), 30, "evacuated instances writing on h2")
        window = time.time()
        time.sleep(2.5)  # an observation window, not synchronisation: lines must accumulate
        exactly_once_on_h2(window)
        for uuid in on_h1:  # the disk was reused: the h1 lines are still in the same file
            assert any(h == "h1" for _, h, _ in heartbeats(instances, uuid, started))

        # h1 comes back (still forced down) and must not restart what now lives on h2.
        c.start("h1", "compute", "--host", "h1")
        wait_for(lambda: "compute h1 initialised" in c.log("h1"), 90, "h1 to initialise")
        runtime = Path(conf.state_path) / "compute" / "h1"
        wait_for(lambda: not list(runtime.glob("*.json")), 30,
                 "h1 to drop its stale instance records")
        window = time.time()
        time.sleep(2.5)  # observation window: any copy h1 started would show up here
        exactly_once_on_h2(window)
        assert "spawning instance" not in c.log("h1")
        assert "destroying local copy" in c.log("h1")
    finally:
        api.close()
        engine.dispose()
