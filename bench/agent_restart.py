"""Agent restart benchmark: ``kill -9`` of a compute agent alone under ``vigil supervisor``,
until the agent is back; and ``kill -9`` of a whole supervised host until its instances are
ACTIVE elsewhere (to show the supervisor adds no delay to a real failover).

Part 1, one cluster of real processes over RabbitMQ (conductor, scheduler, two supervised
hosts with the ``process`` virt driver, one ``vigil monitor``), N instances on h1. Each run
kills h1's agent pid alone, then times on this script's monotonic clock:

  respawned  a new ``vigil compute`` child of h1's supervisor exists
  back       the new agent registered (its service version grew) and h1 is UP

and checks the instances: the same pid writes each heartbeat file before and after, and the
largest gap between two heartbeat lines around the kill, minus the workload's 1 s interval,
is the instance downtime (the target is 0: the instances never stop). Any recovery or fence
opened during part 1 is counted as an error.

Part 2, a fresh cluster per run: h1's whole process group (supervisor, agent, instances) is
killed, and the time to each instance ACTIVE elsewhere is measured as in failover_bench.py.

Run:  .venv/bin/python bench/agent_restart.py --runs 20 --host-runs 5
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.functional.hacluster import HaCluster, base_sections, boot
from tests.functional.procs import heartbeats, wait_for
from tests.functional.test_supervisor import agent_pid, start_supervised

from vigil.db import services as services_db
from vigil.db.compute import instances as instances_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.compute import VmState

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
WORKLOAD_INTERVAL = 1.0


def sections_for(tmp: Path) -> dict[str, Any]:
    s = base_sections(tmp, RABBIT, f"vigil-bench-{uuid.uuid4().hex[:8]}")
    s["DEFAULT"].update(report_interval=1, service_down_time=3)
    s["ha"].update(detection_grace=1, poll_interval=0.1, service_restart_timeout=30)
    s["supervisor"] = {"services": "compute", "check_interval": 0.1, "stop_timeout": 5,
                       "restart_backoff_base": 0.1, "restart_backoff_max": 1}
    return s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def max_gap(lines: list[tuple[float, str, int]]) -> float:
    times = sorted(t for t, _, _ in lines)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def agent_runs(runs: int, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-agent-restart-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "logs").mkdir()
        c = HaCluster(tmp, tmp / "logs")
        try:
            c.configure(sections_for(tmp))
            start_supervised(c, ["h1", "h2"])
            api = c.servers()
            vms = boot(api, "h1", n)
            api.close()
            instances = tmp / "instances"
            wait_for(lambda: all(len(heartbeats(instances, u, time.time() - 3)) >= 2
                                 for u in vms), 20, "instances writing")
            respawned: list[float] = []
            back: list[float] = []
            downtime: list[float] = []
            errors = 0
            for _ in range(runs):
                old = agent_pid(c, "h1")
                assert old is not None
                version = services_db.service_get_by_host_binary(c.db(), "h1",
                                                                 "vigil-compute").version
                before = time.time()
                time.sleep(2.5)  # heartbeats before the kill
                os.kill(old, signal.SIGKILL)
                t0 = time.monotonic()
                killed_wall = time.time()
                wait_for(lambda old=old: (p := agent_pid(c, "h1")) is not None and p != old,
                         30, "a new agent")
                respawned.append(time.monotonic() - t0)
                wait_for(lambda version=version: services_db.service_get_by_host_binary(
                    c.db(), "h1", "vigil-compute").version > version
                    and c.states().get("h1") == "up", 60, "h1's agent back")
                back.append(time.monotonic() - t0)
                time.sleep(2.5)  # heartbeats after it is back
                for u in vms:
                    lines = [x for x in heartbeats(instances, u, before)
                             if x[0] <= time.time()]
                    if len({p for _, _, p in lines}) != 1 or not any(
                            t > killed_wall for t, _, _ in lines):
                        errors += 1
                    downtime.append(max(0.0, max_gap(lines) - WORKLOAD_INTERVAL))
            errors += len(recoveries_db.recoveries(c.db())) + c.fences()
            return {"respawned": respawned, "back": back, "downtime": downtime,
                    "errors": errors}
        except BaseException:
            print(c.dump()[-6000:], file=sys.stderr)
            raise
        finally:
            c.close()


def host_run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-host-kill-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "logs").mkdir()
        c = HaCluster(tmp, tmp / "logs")
        try:
            c.configure(sections_for(tmp))
            start_supervised(c, ["h1", "h2", "h3"])
            api = c.servers()
            uuids = boot(api, "h1", n)
            api.close()
            time.sleep(1.5)
            engine = c.db()
            c.kill("sup-h1")
            t0 = time.monotonic()
            active: dict[str, float] = {}
            detected: float | None = None
            while len(active) < n:
                now = time.monotonic() - t0
                if detected is None and recoveries_db.recoveries(engine, host="h1"):
                    detected = now
                for i in instances_db.instances(engine, uuids=uuids):
                    if (i.uuid not in active and i.host not in (None, "h1")
                            and i.vm_state == VmState.ACTIVE and i.task_state is None):
                        active[i.uuid] = now
                if now > 120:
                    raise AssertionError(f"{len(active)}/{n} active after 120 s")
                time.sleep(0.02)
            dups = c.fences() - 1
            return {"detected": detected or 0.0, "all_active": max(active.values()),
                    "duplicates": dups}
        except BaseException:
            print(c.dump()[-6000:], file=sys.stderr)
            raise
        finally:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="agent kills (one cluster)")
    ap.add_argument("--host-runs", type=int, default=5, help="host kills (a cluster each)")
    ap.add_argument("--instances", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"# agent kill -9 under vigil supervisor: {args.runs} runs, {args.instances} "
          "process-driver instances; report_interval=1 s, service_down_time=3 s")
    r = agent_runs(args.runs, args.instances)
    for key in ("respawned", "back", "downtime"):
        print(f"{key:10} p50 {pct(r[key], 50):6.2f} s  p99 {pct(r[key], 99):6.2f} s  "
              f"max {max(r[key]):6.2f} s", flush=True)
    print(f"errors (pid changed, instance silent, recovery or fence): {r['errors']}")
    errors = r["errors"]
    if args.host_runs:
        hosts = [host_run(args.instances) for _ in range(args.host_runs)]
        for key in ("detected", "all_active"):
            values = [h[key] for h in hosts]
            print(f"host kill {key:10} p50 {pct(values, 50):6.2f} s  p99 "
                  f"{pct(values, 99):6.2f} s", flush=True)
        dups = sum(h["duplicates"] for h in hosts)
        print(f"host kill duplicates (fences beyond one per run): {dups}")
        errors += dups
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
