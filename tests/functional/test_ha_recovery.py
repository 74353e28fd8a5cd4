"""The HA monitor end to end with real processes over RabbitMQ (and the harness the other
``test_ha_*`` modules share).

A conductor, a scheduler, ``process``-driver computes and ``vigil monitor`` processes run as
separate process groups sharing one database and one instances_path. Instances are real
processes appending "<unix time> <host> <pid>" to their heartbeat file: that file, not the
database, is what proves where each instance runs.

Here: h1 is killed (SIGKILL to its process group, instances included). The monitor alone must
disable it, fence it (process agent), force it down and evacuate its evacuable instances;
afterwards each runs on exactly one other host and none is lost; the non-evacuable one stays.
When h1 comes back the monitor re-enables it, h1 destroys nothing it should keep, restarts the
instance that stayed, and never starts an evacuated one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from oslo_config import cfg
from sqlalchemy.engine import Engine

from tests.conftest import write_config
from vigil import conf as vconf
from vigil import launch
from vigil.compute.servers import ServersAPI, servers_from, settled
from vigil.db import api as db
from vigil.db import ha_api
from vigil.servicegroup.api import ServiceGroup

pytestmark = pytest.mark.slow

VIGIL = str(Path(sys.executable).with_name("vigil"))
T = TypeVar("T")


def wait_for(pred: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def heartbeats(instances: Path, uuid_: str, since: float) -> list[tuple[float, str, int]]:
    path = instances / uuid_ / "heartbeat"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and float(parts[0]) > since:
            out.append((float(parts[0]), parts[1], int(parts[2])))
    return out


def base_sections(tmp_path: Path, rabbit_url: str, exchange: str) -> dict[str, dict[str, Any]]:
    return {
        "DEFAULT": {"transport_url": rabbit_url, "control_exchange": exchange,
                    "report_interval": 0.5, "service_down_time": 2, "rpc_response_timeout": 5,
                    "state_path": str(tmp_path / "state")},
        "database": {"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.2},
        "compute": {"compute_driver": "process", "instances_path": str(tmp_path / "instances"),
                    "instance_sync_interval": 1, "update_resources_interval": 1,
                    "vcpus": 4, "memory_mb": 8192, "local_gb": 100},
        "scheduler": {"pending_poll_interval": 0.5},
        "ha": {"detection_grace": 1, "poll_interval": 0.2, "lease_ttl": 2,
               "allow_unproven_death": True, "fence_agent": "process", "fence_timeout": 10,
               "fence_retry_base": 0.5, "fence_retry_max": 1, "evacuation_retry": 1,
               "max_fences_per_minute": 10},
    }


@dataclass
class HaCluster:
    """The daemons of one test, each in its own process group."""

    tmp: Path
    logs: Path
    configs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    conf: cfg.ConfigOpts | None = None
    engine: Engine | None = None
    group: ServiceGroup | None = None

    def configure(self, sections: dict[str, dict[str, Any]], name: str = "main") -> Path:
        path = write_config(self.tmp / f"vigil-{name}.conf", sections)
        self.configs[name] = path
        if name == "main":
            self.conf = vconf.load(["--config-file", str(path)], default_files=[])
        return path

    def start(self, name: str, *args: str, config: str = "main") -> subprocess.Popen[bytes]:
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        log = open(self.logs / f"{name}.{gen}.log", "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([VIGIL, "--config-file", str(self.configs[config]), *args],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.{self.generation[name]}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL to the process group: the "host" (or monitor) crashes, children and all."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def dump(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    # -- database views -----------------------------------------------------------------------
    def db(self) -> Engine:
        if self.engine is None:
            assert self.conf is not None
            self.engine = launch.engine_from(self.conf)
        return self.engine

    def compute_hosts(self) -> dict[str, db.ServiceRecord]:
        try:
            return {s.host: s for s in db.snapshot(self.db(), topic="compute").services}
        except Exception:  # the conductor has not created the schema yet
            return {}

    def states(self) -> dict[str, str]:
        assert self.conf is not None
        if self.group is None:  # one liveness client for the whole test (zk: one session)
            self.group = launch.group_from(self.conf, self.db())
        group = self.group
        try:
            snap = db.snapshot(self.db(), topic="compute")
        except Exception:  # schema not there yet
            return {}
        states = group.states(snap)
        return {s.host: states[s.id].value for s in snap.services}

    def fences(self) -> int:
        try:
            return len(ha_api.events_of_kind(self.db(), "fence_started"))
        except Exception:  # schema not there yet
            return 0

    def servers(self) -> ServersAPI:
        assert self.conf is not None
        return servers_from(self.conf, self.db())

    def start_base(self, hosts: list[str], monitors: int = 1) -> None:
        """Conductor first (it migrates), then scheduler, hosts and monitors; wait all up."""
        self.start("conductor", "conductor")
        wait_for(lambda: "listening on topic" in self.log("conductor"), 30, "the conductor")
        self.start("scheduler", "scheduler")
        for h in hosts:
            self.start(h, "compute", "--host", h)
        for i in range(1, monitors + 1):
            self.start(f"monitor{i}", "monitor")
        wait_for(lambda: self.states() == dict.fromkeys(hosts, "up"), 90, "all hosts up")

    def leader_name(self) -> str | None:
        lease = ha_api.lease_get(self.db(), "ha-monitor")
        if lease is None or not lease.held or lease.holder is None:
            return None
        pid = int(lease.holder.split(":")[1])
        return next((n for n, p in self.procs.items() if p.pid == pid), None)


@pytest.fixture(name="ha_cluster")
def ha_cluster_fixture(tmp_path: Path) -> Iterator[HaCluster]:
    logs = tmp_path / "logs"
    logs.mkdir()
    c = HaCluster(tmp_path, logs)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop_all()
        if c.group is not None:
            c.group.driver.close()
        if c.engine is not None:
            c.engine.dispose()


def boot(api: ServersAPI, host: str, n: int, *, evacuable: bool = True,
         prefix: str = "vm") -> list[str]:
    uuids = [api.create(name=f"{prefix}-{uuid.uuid4().hex[:6]}", flavor="m1.tiny", host=host,
                        evacuable=evacuable).record.uuid for _ in range(n)]
    for u in uuids:
        view = api.wait(u, settled, timeout=30)
        assert view.status == "ACTIVE" and view.record.host == host, view.to_dict()
    return uuids


def assert_each_on_one_host(instances: Path, uuids: list[str], since: float,
                            allowed: set[str]) -> dict[str, str]:
    """Every instance writes from exactly one host (one process), in ``allowed``."""
    where = {}
    for u in uuids:
        lines = heartbeats(instances, u, since)
        assert len(lines) >= 2, f"{u} lost: {len(lines)} heartbeats since {since}"
        hosts = {h for _, h, _ in lines}
        assert len(hosts) == 1 and hosts <= allowed, (u, lines)
        assert len({p for _, _, p in lines}) == 1, (u, lines)  # one copy only
        where[u] = hosts.pop()
    return where


def test_monitor_fences_forces_down_evacuates_and_re_enables(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(base_sections(c.tmp, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2", "h3"])
    api = c.servers()
    try:
        moving = boot(api, "h1", 2)
        pinned = boot(api, "h1", 1, evacuable=False, prefix="pinned")[0]
        started = time.time()
        wait_for(lambda: all(heartbeats(instances, u, started) for u in [*moving, pinned]), 10,
                 "every instance writing")
        assert c.fences() == 0 and not ha_api.recoveries(c.db())

        c.kill("h1")
        killed_at = time.time()
        rec = wait_for(lambda: next(iter(ha_api.recoveries(c.db(), host="h1")), None), 30,
                       "a recovery of h1")
        rec = wait_for(lambda: (r := ha_api.recovery_get(c.db(), rec.id)).phase
                       == ha_api.EVACUATED and r, 40, "h1 evacuated")
        for u in moving:
            view = api.wait(u, settled, timeout=20)
            assert view.status == "ACTIVE" and view.record.host in ("h2", "h3"), view.to_dict()
        assert api.get(pinned).record.host == "h1"
        svc = c.compute_hosts()["h1"]
        assert svc.forced_down and svc.disabled

        wait_for(lambda: all(len(heartbeats(instances, u, killed_at + 0.5)) >= 2
                             for u in moving), 15, "evacuated instances writing")
        window = time.time()
        time.sleep(2.5)  # an observation window: lines must accumulate
        assert_each_on_one_host(instances, moving, window, {"h2", "h3"})
        assert heartbeats(instances, pinned, window) == []  # it died with h1, stays there

        c.start("h1", "compute", "--host", "h1")  # the host comes back
        rec = wait_for(lambda: (r := ha_api.recovery_get(c.db(), rec.id)).status
                       == ha_api.DONE and r, 30, "h1 re-enabled")
        svc = c.compute_hosts()["h1"]
        assert not svc.forced_down and not svc.disabled
        wait_for(lambda: heartbeats(instances, pinned, time.time() - 1), 20,
                 "the pinned instance resumed on h1")
        window = time.time()
        time.sleep(2.5)
        where = assert_each_on_one_host(instances, [*moving, pinned], window,
                                        {"h1", "h2", "h3"})
        assert where[pinned] == "h1" and all(where[u] != "h1" for u in moving)
        kinds = [e.kind for e in ha_api.events(c.db(), rec.id)]
        assert kinds.count("fence_started") == 1 and kinds.count("fenced") == 1
        assert kinds.count("evacuation_requested") == 2 and kinds[-1] == "re_enabled"
        assert c.fences() == 1
        out = subprocess.run([VIGIL, "--config-file", str(c.configs["main"]), "recovery",
                              "show", str(rec.id)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "re_enabled" in out.stdout, out.stdout + out.stderr
    finally:
        api.close()
