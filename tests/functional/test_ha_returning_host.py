"""Exactly once when a fenced host comes back: its agent restarted at every point of the
recovery, real processes, heartbeat files as the judge.

The scenario of the exactly-once issue, with the restart moved along the recovery: h1 runs
evacuable instances and one pinned (``evacuable=false``) instance; its process group is killed
(kill -9: the host crashes); the monitor fences it with a fence agent of the ClusterLabs
convention whose action is ``reboot`` (the standard agents' default, what makes a quick
comeback ordinary); and h1's ``vigil compute`` is started again under the same name when the
recovery's timeline first shows one of:

- ``fence_started``: the fence is recorded and still running (the agent blocks until the host
  is back, then "reboots" it: kills the new process group too, and the test boots it again);
- ``fenced``; ``forced_down``; the first ``instance_evacuated`` (evacuations are throttled to
  one at a time, so the others are still to come); ``evacuated`` (all over).

Instances are real processes appending "<time> <host> <pid>" every 0.2 s to a heartbeat file
on the shared instances_path. For every instance the judge checks that no two copies (host,
pid) ever wrote in overlapping intervals, that it ends up written by exactly one copy (none
lost), that h1 ran nothing from the crash until the monitor released its quarantine, and that
the release came after every evacuation.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import pytest

from tests.conftest import reset_schema
from tests.functional.hacluster import HaCluster, base_sections, boot
from tests.functional.procs import heartbeats, wait_for
from vigil.compute.servers import settled
from vigil.db import ha_api, hosts_api
from vigil.db.engine import make_engine

pytestmark = pytest.mark.slow

# The test's fence agent: the ClusterLabs stdin convention; ``reboot``/``off`` kill the host's
# process group (the process fence agent's logic) once the go file exists; ``status`` reads it.
FENCE = """#!{python}
import os, sys, time
from vigil.ha.fence.process import ProcessFence
opts = dict(l.split("=", 1) for l in sys.stdin.read().splitlines() if "=" in l)
host, action, state = opts["nodename"], opts["action"], {state!r}
agent = ProcessFence(state)
if action == "status":
    sys.exit(2 if agent.status(host, timeout=5).value == "off" else 0)
open({started!r}, "a").write(action + "\\n")
deadline = time.monotonic() + 60
while not os.path.exists({go!r}) and time.monotonic() < deadline:
    time.sleep(0.05)
import threading
agent.fence(host, timeout=10, cancel=threading.Event())
sys.exit(0)
"""

RESTART_POINTS = ("fence_started", "fenced", "forced_down", "instance_evacuated", "evacuated")
INTERVAL = 0.2


def copies(lines: list[tuple[float, str, int]]) -> dict[tuple[str, int], tuple[float, float]]:
    """Each copy (host, pid) of an instance with the first and last time it wrote."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for t, host, pid in lines:
        first, last = out.get((host, pid), (t, t))
        out[(host, pid)] = (min(first, t), max(last, t))
    return out


def double_writers(lines: list[tuple[float, str, int]]) -> list[str]:
    """Pairs of copies whose writing intervals overlap: the instance ran twice."""
    spans = sorted(copies(lines).items(), key=lambda kv: kv[1][0])
    found = []
    for i, (a, (a0, a1)) in enumerate(spans):
        for b, (b0, b1) in spans[i + 1:]:
            if b0 <= a1:  # b started before a's last write
                found.append(f"{a} [{a0:.2f}, {a1:.2f}] overlaps {b} [{b0:.2f}, {b1:.2f}]")
    return found


@pytest.mark.parametrize("point", RESTART_POINTS)
def test_a_fenced_host_that_comes_back_never_runs_an_instance_twice(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str, pg_url: str,
        point: str) -> None:
    c = ha_cluster
    engine = make_engine(pg_url)
    reset_schema(engine)
    engine.dispose()
    started, go = c.tmp / "fence.started", c.tmp / "fence.go"
    fence = c.tmp / "fence.py"
    fence.write_text(FENCE.format(python=sys.executable, state=str(c.tmp / "state"),
                                  started=str(started), go=str(go)))
    fence.chmod(0o755)
    if point != "fence_started":
        go.touch()  # the fence goes through at once
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    sections["database"]["connection"] = pg_url
    sections["compute"]["process_command"] = (
        f"{sys.executable} -m vigil.compute.workload {{dir}} --host {{host}} "
        f"--interval {INTERVAL}")
    sections["ha"].update(fence_agent="command", fence_command=str(fence),
                          fence_action="reboot", fence_host_argument="none",
                          fence_timeout=30,
                          evacuations_per_second=2, max_inflight_evacuations=1)
    c.configure(sections)
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2", "h3"], monitors=2)
    api = c.servers()
    try:
        moving = boot(api, "h1", 4)
        (pinned,) = boot(api, "h1", 1, evacuable=False, prefix="pinned")
        wait_for(lambda: all(heartbeats(instances, u, time.time() - 1)
                             for u in [*moving, pinned]), 10, "every instance writing")

        c.kill("h1")
        killed_at = time.time()
        rec = wait_for(lambda: next(iter(ha_api.recoveries(c.db(), host="h1")), None), 30,
                       "a recovery of h1")

        def seen(kind: str) -> bool:
            return any(e.kind == kind for e in ha_api.events(c.db(), rec.id))

        wait_for(lambda: seen(point), 60, f"the recovery to reach {point}")
        c.start("h1", "compute", "--host", "h1")  # the host is back
        if point == "fence_started":
            # Back while its fence still runs: its agent must hold everything...
            wait_for(lambda: hosts_api.host_get(c.db(), "h1").quarantine_acked, 30,
                     "h1 to acknowledge its quarantine")
            go.touch()  # ...then the reboot goes through (kills it again) and it boots again
            wait_for(lambda: seen("fenced"), 30, "the fence")
            c.procs["h1"].wait(timeout=10)
            c.start("h1", "compute", "--host", "h1")
        rec = wait_for(lambda: (r := ha_api.recovery_get(c.db(), rec.id)).status
                       == ha_api.DONE and r, 90, "h1 recovered and re-enabled")
        for u in moving:
            view = api.wait(u, settled, timeout=20)
            assert view.status == "ACTIVE" and view.record.host in ("h2", "h3"), view.to_dict()
        wait_for(lambda: heartbeats(instances, pinned, time.time() - 1), 20,
                 "the pinned instance resumed on h1 after the release")
        time.sleep(1.0)  # one more second of heartbeats from every copy

        events = ha_api.events(c.db(), rec.id)
        kinds = [e.kind for e in events]
        assert kinds.count("fence_started") == 1 and kinds.count("fenced") == 1, kinds
        assert kinds.count("evacuation_requested") == len(moving), kinds
        assert kinds.index("released") > kinds.index("evacuated"), kinds
        released_at = next(e.created_at for e in events if e.kind == "released")
        # The database's clock is this machine's clock (PostgreSQL on 127.0.0.1), in UTC.
        released = released_at.replace(tzinfo=dt.UTC).timestamp()
        for u in [*moving, pinned]:
            lines = heartbeats(instances, u, killed_at - 5)
            assert not double_writers(lines), (u, double_writers(lines))
            late = [ln for ln in lines if ln[0] > killed_at + 0.5]
            assert late, f"{u} lost: nothing written since the crash"
            # h1 ran nothing between the crash and the release of its quarantine.
            early_h1 = [ln for ln in late if ln[1] == "h1" and ln[0] < released - 0.1]
            assert not early_h1, (u, early_h1[:3], released)
            last_copy = copies(late)
            assert len({h for h, _ in last_copy}) == 1, (u, last_copy)
        assert {h for _, h, _ in heartbeats(instances, pinned, released)} == {"h1"}
        assert c.fences() == 1
    finally:
        api.close()
