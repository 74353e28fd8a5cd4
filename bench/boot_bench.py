"""Boot benchmark: 1,000 instances across 100 simulated hosts.

Two figures:

1. Scheduling decisions per second: the scheduler alone placing instances that wait in the
   database (filters, weigher, atomic claim per instance; no agents), both in its normal batch
   passes (one host picture per batch) and one instance at a time (a fresh host picture, i.e.
   one batch-liveness snapshot, per decision).
2. End-to-end boots per second: the whole stack in one process as ``vigil up`` runs it
   (conductor, scheduler and 100 compute agents with the fake driver over fake:// messaging):
   from the first ``create`` until every instance is ACTIVE, i.e. scheduled, claimed, cast to
   its agent, spawned and reported through the conductor.

Run:  .venv/bin/python bench/boot_bench.py [--hosts 100] [--instances 1000] [--db URL]
The default database is a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import conf as vconf
from vigil import launch, rpc
from vigil.compute.agent import ComputeAgent
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI
from vigil.daemons.control import start_control_plane
from vigil.db import migration
from vigil.db import services as services_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.compute_models import Instance
from vigil.db.engine import make_engine
from vigil.launch.settings import compute_settings, scheduler_settings, virt_driver
from vigil.objects.compute import PENDING_TASKS, Inventory, VmState
from vigil.scheduler.manager import SchedulerManager
from vigil.scheduler.rpcapi import SchedulerAPI


def make_conf(state: Path, url: str, overrides: dict[str, dict[str, Any]]) -> cfg.ConfigOpts:
    conf = vconf.load([], default_files=[])
    conf.set_override("state_path", str(state))
    conf.set_override("connection", url, group="database")
    for group, values in overrides.items():
        for key, value in values.items():
            conf.set_override(key, value, group=None if group == "DEFAULT" else group)
    return conf


def fresh_engine(url: str) -> Engine:
    engine = make_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    migration.sync(engine)
    return engine


def count_active(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Instance).where(
            Instance.deleted == 0, Instance.vm_state == VmState.ACTIVE,
            Instance.task_state.is_(None))).scalar_one())


def count_pending(engine: Engine) -> int:
    """Instances still waiting for a scheduler (no host claimed yet)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Instance).where(
            Instance.deleted == 0, Instance.task_state.in_(PENDING_TASKS))).scalar_one())


def bench_decisions(url: str, state: Path, hosts: int, instances: int,
                    workers: int) -> dict[str, float]:
    """The scheduler alone: hosts registered and up, instances waiting."""
    engine = fresh_engine(url)
    # Hosts report once, at setup: a long down time keeps them up however slow the machine.
    conf = make_conf(state, url, {"DEFAULT": {"report_interval": 600,
                                              "service_down_time": 3600},
                                  "scheduler": {"workers": workers}})
    group = launch.group_from(conf, engine)
    inv = virt_driver(conf, "x", "fake").inventory()
    for i in range(hosts):
        host = f"host-{i:03d}"
        svc, _ = services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
        services_db.record_reports(engine, [svc.id], 500)
        nodes_db.compute_node_update(engine, host, Inventory(**{
            **inv.to_primitive(), "hypervisor_hostname": host}))
    flavor = flavors_db.flavor_get(engine, "m1.tiny")
    manager = SchedulerManager(scheduler_settings(conf), engine, group)
    out: dict[str, float] = {}

    for label in ("batch", "single"):
        uuids = [instances_db.instance_create(engine, name=f"{label}-{i}", flavor=flavor).uuid
                 for i in range(instances)]
        t0 = time.perf_counter()
        if label == "batch":
            outcomes = manager.schedule_pending()
        else:
            outcomes = [manager.schedule_instance(u) for u in uuids]
        elapsed = time.perf_counter() - t0
        placed = sum(1 for o in outcomes if o.host is not None)
        assert placed == instances, f"{label}: placed {placed} of {instances}"
        out[label] = placed / elapsed
    engine.dispose()
    return out


def bench_end_to_end(url: str, state: Path, hosts: int, instances: int,
                     callers: int, workers: int) -> dict[str, float]:
    """The whole stack in one process, as ``vigil up`` runs it."""
    engine = fresh_engine(url)
    conf = make_conf(state, url, {
        "DEFAULT": {"transport_url": "fake://", "report_interval": 10,
                    "service_down_time": 60},
        "compute": {"instance_sync_interval": 60, "update_resources_interval": 60},
        "scheduler": {"pending_poll_interval": 1.0, "workers": workers},
    })
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    plane = start_control_plane(conf, engine, transport, group, rpc_timeout=60)
    client = plane.client
    agents = [ComputeAgent(compute_settings(conf), f"host-{i:03d}", transport, client, group,
                           driver=virt_driver(conf, f"host-{i:03d}", "fake"))
              for i in range(hosts)]
    for a in agents:
        a.start()
    deadline = time.monotonic() + 120
    while not all(a.initialized.is_set() for a in agents):
        assert time.monotonic() < deadline, "agents did not initialise"
        time.sleep(0.05)
    servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                         computes=ComputeAgentAPI(transport))
    try:
        t0 = time.perf_counter()
        # Concurrent callers, as an API server's worker threads would be.
        with ThreadPoolExecutor(max_workers=callers) as pool:
            list(pool.map(lambda i: servers.create(name=f"vm-{i}", flavor="m1.tiny"),
                          range(instances)))
        created = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        scheduled = None
        while (active := count_active(engine)) < instances:
            assert time.monotonic() < deadline, f"only {active} of {instances} ACTIVE"
            if scheduled is None and not count_pending(engine):
                scheduled = time.perf_counter() - t0
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        per_host = {a.host: len(a.driver.list_instances()) for a in agents}
        return {"boots_per_s": instances / elapsed, "seconds": elapsed,
                "scheduled_after": scheduled if scheduled is not None else elapsed,
                "create_per_s": instances / created, "min_per_host": min(per_host.values()),
                "max_per_host": max(per_host.values())}
    finally:
        # Concurrently: each RPC server's stop waits for its listener's next poll.
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda a: a.stop(leave=False), agents))
        plane.stop()
        transport.cleanup()
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--callers", type=int, default=8,
                   help="threads calling create concurrently (default 8)")
    p.add_argument("--scheduler-workers", type=int, default=1,
                   help="[scheduler] workers (default 1; try 4 on PostgreSQL)")
    p.add_argument("--db", help="SQLAlchemy URL of an EMPTY scratch database (its tables are "
                   "dropped); default: a temporary SQLite file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="vigil-boot-bench-") as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.sqlite"
        backend = sa.engine.make_url(url).get_backend_name()
        decisions = bench_decisions(url, Path(tmp) / "d", args.hosts, args.instances,
                                    args.scheduler_workers)
        e2e = bench_end_to_end(url, Path(tmp) / "e", args.hosts, args.instances,
                               args.callers, args.scheduler_workers)
    cmd = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/boot_bench.py",
                                             *(argv if argv is not None else sys.argv[1:])])
    print(f"boot benchmark: {args.instances} instances (m1.tiny), {args.hosts} hosts "
          f"(fake driver), database {backend}, fake:// messaging, "
          f"{args.scheduler_workers} scheduler worker(s)")
    print(f"  scheduling decisions/s, batch passes:        {decisions['batch']:8.0f}")
    print(f"  scheduling decisions/s, one at a time:       {decisions['single']:8.0f}")
    print(f"  end-to-end boots/s (create -> ACTIVE, {args.callers} callers): "
          f"{e2e['boots_per_s']:5.0f}"
          f"   ({e2e['seconds']:.1f} s for all; all created after "
          f"{args.instances / e2e['create_per_s']:.1f} s, all scheduled after "
          f"{e2e['scheduled_after']:.1f} s)")
    print(f"  instances per host: min {e2e['min_per_host']}, max {e2e['max_per_host']}")
    print(f"reproduce: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
