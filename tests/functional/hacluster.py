"""The HA functional tests' harness: a cluster of real ``vigil`` processes (conductor,
scheduler, ``process``-driver computes, monitors), each in its own process group, sharing one
database and one instances_path; the ``ha_cluster`` fixture (in conftest.py) gives each test one.

Instances are real processes appending "<unix time> <host> <pid>" to their heartbeat file:
that file, not the database, is what proves where each instance runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Engine

from tests.conftest import write_config
from tests.functional.procs import db_sync, heartbeats, wait_for
from vigil import conf as vconf
from vigil import launch
from vigil.compute.servers import ServersAPI, settled
from vigil.db import services as services_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.launch import servers_from
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup

# The console script (what an operator runs), not ``python -m``.
VIGIL = str(Path(sys.executable).with_name("vigil"))


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
        if args[:1] == ("conductor",):
            db_sync(self.configs[config])  # only `vigil db sync` migrates (idempotent)
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

    def close(self) -> None:
        """Kill every daemon (process group) and release this harness's connections."""
        self.stop_all()
        if self.group is not None:
            self.group.driver.close()
        if self.engine is not None:
            self.engine.dispose()

    def dump(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))

    # -- database views -----------------------------------------------------------------------
    def db(self) -> Engine:
        if self.engine is None:
            assert self.conf is not None
            self.engine = launch.engine_from(self.conf)
        return self.engine

    def compute_hosts(self) -> dict[str, ServiceRecord]:
        try:
            return {s.host: s for s in services_db.snapshot(self.db(), topic="compute").services}
        except Exception:  # the conductor has not created the schema yet
            return {}

    def states(self) -> dict[str, str]:
        assert self.conf is not None
        if self.group is None:  # one liveness client for the whole test (zk: one session)
            self.group = launch.group_from(self.conf, self.db())
        group = self.group
        try:
            snap = services_db.snapshot(self.db(), topic="compute")
        except Exception:  # schema not there yet
            return {}
        states = group.states(snap)
        return {s.host: states[s.id].value for s in snap.services}

    def fences(self) -> int:
        try:
            return len(recoveries_db.events_of_kind(self.db(), "fence_started"))
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
        lease = lease_db.lease_get(self.db(), "ha-monitor")
        if lease is None or not lease.held or lease.holder is None:
            return None
        pid = int(lease.holder.split(":")[1])
        return next((n for n, p in self.procs.items() if p.pid == pid), None)


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
