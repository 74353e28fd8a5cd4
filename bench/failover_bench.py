"""Failover benchmark: from ``kill -9`` of a compute host to each of its instances ACTIVE
elsewhere, per phase, p50 and p99, for the db, zk and etcd liveness drivers.

Each run is a fresh cluster of real processes over RabbitMQ (conductor, scheduler, three
``vigil compute`` hosts, one ``vigil monitor`` with the process fence agent), report_interval
1 s. N instances are booted on h1, h1's process group is killed, and this script polls the
database every 20 ms, timing on its own monotonic clock from the kill:

  detected    the recovery row exists (driver's time to DOWN + detection_grace + a poll)
  fenced      the ``fenced`` event
  forced_down the ``forced_down`` event
  active      each instance ACTIVE on another host (one sample per instance)
  all_active  the last instance ACTIVE elsewhere

Duplicates are checked on every run: each instance requested for evacuation exactly once, one
fence per recovery, every instance ACTIVE on exactly one host other than h1; with
``--virt process`` also from the instances' heartbeat files (one writing host and pid each).

Run:  tests/servers/start.sh   # ZooKeeper and etcd on 127.0.0.1
      .venv/bin/python bench/failover_bench.py --drivers db,zk,etcd --instances 10,100 --runs 20
Options: --virt fake|process (default fake: instances in the agents' memory, so 100 instances
per host stay cheap on a 2-CPU machine; process: real processes and heartbeat files).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.functional.hacluster import HaCluster, base_sections
from tests.functional.procs import heartbeats, wait_for

from vigil.db.compute import instances as instances_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.compute import VmState

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
VERBOSE = False
PHASES = ("detected", "fenced", "forced_down", "active", "all_active")


def sections_for(tmp: Path, driver: str, virt: str, instances: int) -> dict[str, Any]:
    s = base_sections(tmp, RABBIT, f"vigil-bench-{uuid.uuid4().hex[:8]}")
    s["DEFAULT"].update(report_interval=1, service_down_time=3, servicegroup_driver=driver)
    s["compute"].update(compute_driver=virt, vcpus=64, memory_mb=4 * 512 * max(instances, 8),
                        local_gb=4 * max(instances, 8), instance_sync_interval=2,
                        update_resources_interval=2)
    s["scheduler"]["pending_poll_interval"] = 0.5
    s["ha"].update(allow_unproven_death=driver == "db", detection_grace=1, poll_interval=0.1,
                   evacuations_per_second=200, max_inflight_evacuations=200)
    if driver == "zk":
        s["zookeeper"] = {"address": "127.0.0.1:2181", "recv_timeout": 2000,
                          "sg_prefix": f"/vigil-bench-{uuid.uuid4().hex[:8]}"}
    if driver == "etcd":
        s["etcd"] = {"endpoint": "http://127.0.0.1:2379",
                     "prefix": f"/vigil-bench-{uuid.uuid4().hex[:8]}"}
    return s


def one_run(driver: str, virt: str, instances: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-failover-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "logs").mkdir()
        c = HaCluster(tmp, tmp / "logs")
        try:
            c.configure(sections_for(tmp, driver, virt, instances))
            c.start_base(["h1", "h2", "h3"])
            api = c.servers()
            uuids = [api.create(name=f"b{i}", flavor="m1.tiny", host="h1").record.uuid
                     for i in range(instances)]
            engine = c.db()
            wait_for(lambda: all(i.vm_state == VmState.ACTIVE and i.task_state is None
                                 for i in instances_db.instances(engine, uuids=uuids))
                     and len(instances_db.instances(engine, uuids=uuids)) == instances, 120,
                     "instances active on h1")
            time.sleep(1.5)  # a settled fleet: a few reports since the boots
            c.kill("h1")
            t0 = time.monotonic()
            seen: dict[str, float] = {}
            active: dict[str, float] = {}
            deadline = t0 + 120
            rec_id: int | None = None
            while len(active) < instances:
                now = time.monotonic() - t0
                if rec_id is None:
                    recs = recoveries_db.recoveries(engine, host="h1")
                    if recs:
                        rec_id = recs[0].id
                        seen["detected"] = now
                if rec_id is not None and ("fenced" not in seen or "forced_down" not in seen):
                    for e in recoveries_db.events(engine, rec_id):
                        if e.kind in ("fenced", "forced_down"):
                            seen.setdefault(e.kind, now)
                for i in instances_db.instances(engine, uuids=uuids):
                    if (i.uuid not in active and i.host not in (None, "h1")
                            and i.vm_state == VmState.ACTIVE and i.task_state is None):
                        active[i.uuid] = now
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(active)}/{instances} active after 120 s")
                time.sleep(0.02)
            seen["all_active"] = max(active.values())
            assert rec_id is not None
            # Zero duplicates: once requested, once fenced, one host each.
            events = recoveries_db.events(engine, rec_id)
            requested = [e.instance_uuid for e in events if e.kind == "evacuation_requested"]
            dups = len(requested) - len(set(requested))
            dups += sum(1 for e in events if e.kind == "fence_started") - 1
            hosts = {i.uuid: i.host for i in instances_db.instances(engine, uuids=uuids)}
            dups += sum(1 for h in hosts.values() if h in (None, "h1"))
            if virt == "process":
                since = time.time()
                time.sleep(2.5)
                for u in uuids:
                    lines = heartbeats(tmp / "instances", u, since)
                    if len({(h, p) for _, h, p in lines}) != 1:
                        dups += 1
            api.close()
            if VERBOSE:
                for e in events:
                    print(f"  {e.created_at} {e.kind} {e.instance_uuid or ''} "
                          f"{(e.detail or '')[:100]}")
            return {"phases": seen, "active": list(active.values()), "duplicates": dups}
        except BaseException:
            print(c.dump()[-6000:], file=sys.stderr)
            print("states:", c.states(), file=sys.stderr)
            raise
        finally:
            c.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drivers", default="db,zk,etcd")
    ap.add_argument("--instances", default="10,100")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--virt", choices=("fake", "process"), default="fake")
    ap.add_argument("--verbose", action="store_true", help="print each run's timeline")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    logging.basicConfig(level=logging.WARNING)
    print(f"# failover: kill -9 of a host -> instances ACTIVE elsewhere; {args.runs} run(s) "
          f"per cell; virt={args.virt}; report_interval=1 s, service_down_time=3 s "
          f"(db), zk recv_timeout=2 s, detection_grace=1 s")
    print(f"{'driver':6} {'inst':>4} {'runs':>4} " + " ".join(
        f"{p + ' p50/p99':>22}" for p in PHASES) + "  dups")
    total_dups = 0
    for driver in args.drivers.split(","):
        for n in (int(x) for x in args.instances.split(",")):
            samples: dict[str, list[float]] = {p: [] for p in PHASES}
            dups = 0
            for _ in range(args.runs):
                r = one_run(driver, args.virt, n)
                for p in ("detected", "fenced", "forced_down", "all_active"):
                    samples[p].append(r["phases"][p])
                samples["active"] += r["active"]
                dups += r["duplicates"]
            total_dups += dups
            print(f"{driver:6} {n:>4} {args.runs:>4} " + " ".join(
                f"{pct(samples[p], 50):>10.2f}/{pct(samples[p], 99):<10.2f} s"[:22].rjust(22)
                for p in PHASES) + f"  {dups}", flush=True)
    print(f"# duplicates across every run: {total_dups}")
    return 1 if total_dups else 0


if __name__ == "__main__":
    sys.exit(main())
