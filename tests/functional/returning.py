"""The returning-host scenario of the exactly-once issue, shared by its functional test
(tests/functional/test_ha_returning_host.py) and its benchmark (bench/returning_host.py).

h1 runs evacuable instances and one pinned (``evacuable=false``) instance; its process group is
killed (kill -9: the host crashes); the monitor fences it with a fence agent of the ClusterLabs
convention whose action is ``reboot`` (the standard agents' default, what makes a quick
comeback ordinary); and h1's ``vigil compute`` is started again under the same name when the
recovery's timeline first shows one of :data:`RESTART_POINTS`:

- ``fence_started``: the fence is recorded and still running (the agent blocks until the host
  is back and has acknowledged its quarantine, then "reboots" it: kills the new process group
  too, and the scenario boots it again);
- ``fenced``; ``forced_down``; the first ``instance_evacuated`` (evacuations are throttled to
  one at a time, so the others are still to come); ``evacuated`` (all over).

Instances are real processes appending "<time> <host> <pid>" every 0.2 s to a heartbeat file
on the shared instances_path. The judge (:class:`Outcome`): for every instance, no two copies
(host, pid) ever wrote in overlapping intervals; it ends up written by exactly one copy (none
lost); h1 ran nothing from the crash until the monitor released its quarantine; the release
came after every evacuation; one fence, one evacuation request per instance.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field

from tests.functional.hacluster import HaCluster, base_sections, boot
from tests.functional.procs import heartbeats, wait_for
from vigil.compute.servers import settled
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import RecoveryStatus

# The fence agent: the ClusterLabs stdin convention; ``reboot``/``off`` kill the host's process
# group (the process fence agent's logic) once the go file exists; ``status`` reads it.
FENCE = """#!{python}
import os, sys, threading, time
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


@dataclass
class Outcome:
    """What one run of the scenario found. ``ok`` when every list is empty and the counts are
    right."""

    point: str
    instances: int
    double_writers: dict[str, list[str]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    ran_on_h1_before_release: dict[str, int] = field(default_factory=dict)
    several_copies_at_the_end: list[str] = field(default_factory=list)
    fences: int = 0
    evacuation_requests: int = 0
    released_after_evacuated: bool = False
    crash_to_done: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.double_writers and not self.lost
                and not self.ran_on_h1_before_release
                and not self.several_copies_at_the_end and self.fences == 1
                and self.evacuation_requests == self.instances - 1
                and self.released_after_evacuated)


def configure(c: HaCluster, *, db_url: str, rabbit_url: str, exchange: str,
              point: str) -> None:
    started, go = c.tmp / "fence.started", c.tmp / "fence.go"
    fence = c.tmp / "fence.py"
    fence.write_text(FENCE.format(python=sys.executable, state=str(c.tmp / "state"),
                                  started=str(started), go=str(go)))
    fence.chmod(0o755)
    if point != "fence_started":
        go.touch()  # the fence goes through at once
    sections = base_sections(c.tmp, rabbit_url, exchange)
    sections["database"]["connection"] = db_url
    sections["compute"]["process_command"] = (
        f"{sys.executable} -m vigil.compute.workload {{dir}} --host {{host}} "
        f"--interval {INTERVAL}")
    sections["ha"].update(fence_agent="command", fence_command=str(fence),
                          fence_action="reboot", fence_host_argument="none",
                          fence_timeout=30, evacuations_per_second=2,
                          max_inflight_evacuations=1)
    c.configure(sections)


def run(c: HaCluster, *, point: str, moving: int = 4, hosts: int = 3) -> Outcome:
    """One run on a configured cluster (:func:`configure`): start, crash h1, restart it at
    ``point``, wait for the end, judge."""
    instances = c.tmp / "instances"
    c.start_base([f"h{i}" for i in range(1, hosts + 1)], monitors=2)
    api = c.servers()
    try:
        moved = boot(api, "h1", moving)
        (pinned,) = boot(api, "h1", 1, evacuable=False, prefix="pinned")
        everything = [*moved, pinned]
        wait_for(lambda: all(heartbeats(instances, u, time.time() - 1) for u in everything),
                 10, "every instance writing")

        c.kill("h1")
        killed_at = time.time()
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(c.db(), host="h1")), None), 30,
                       "a recovery of h1")

        def seen(kind: str) -> bool:
            return any(e.kind == kind for e in recoveries_db.events(c.db(), rec.id))

        wait_for(lambda: seen(point), 60, f"the recovery to reach {point}")
        c.start("h1", "compute", "--host", "h1")  # the host is back
        if point == "fence_started":
            # Back while its fence still runs: its agent must hold everything...
            wait_for(lambda: hosts_db.host_get(c.db(), "h1").quarantine_acked, 30,
                     "h1 to acknowledge its quarantine")
            (c.tmp / "fence.go").touch()  # ...then the reboot kills it, and it boots again
            wait_for(lambda: seen("fenced"), 30, "the fence")
            c.procs["h1"].wait(timeout=10)
            c.start("h1", "compute", "--host", "h1")
        rec = wait_for(lambda: (r := recoveries_db.recovery_get(c.db(), rec.id)).status
                       == RecoveryStatus.DONE and r, 120, "h1 recovered and re-enabled")
        done = time.time()
        for u in moved:
            api.wait(u, settled, timeout=30)
        wait_for(lambda: heartbeats(instances, pinned, time.time() - 1), 20,
                 "the pinned instance resumed on h1 after the release")
        time.sleep(1.0)  # one more second of heartbeats from every copy

        events = recoveries_db.events(c.db(), rec.id)
        kinds = [e.kind for e in events]
        out = Outcome(point, len(everything), fences=kinds.count("fence_started"),
                      evacuation_requests=kinds.count("evacuation_requested"),
                      crash_to_done=done - killed_at)
        out.released_after_evacuated = ("released" in kinds and "evacuated" in kinds
                                        and kinds.index("released") > kinds.index("evacuated"))
        released_at = next((e.created_at for e in events if e.kind == "released"), None)
        # The database's clock is this machine's clock (a local server), in UTC.
        released = (released_at.replace(tzinfo=dt.UTC).timestamp() if released_at
                    else float("inf"))
        for u in everything:
            lines = heartbeats(instances, u, killed_at - 5)
            if found := double_writers(lines):
                out.double_writers[u] = found
            late = [ln for ln in lines if ln[0] > killed_at + 0.5]
            if not late:
                out.lost.append(u)
            early = [ln for ln in late if ln[1] == "h1" and ln[0] < released - 0.1]
            if early:
                out.ran_on_h1_before_release[u] = len(early)
            if len({h for h, _ in copies([ln for ln in late if ln[0] > done])}) > 1:
                out.several_copies_at_the_end.append(u)
        return out
    finally:
        api.close()
