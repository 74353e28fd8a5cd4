"""``vigil supervisor`` end to end with real processes over RabbitMQ: a crashed compute agent
is restarted, not mistaken for a dead host.

Each host is a ``vigil supervisor`` in its own process group, running its compute agent (and
through it the ``process``-driver instances) in that group. Instances append "<unix time>
<host> <pid>" to their heartbeat file: that file proves what kept running, and where.

- kill -9 of the agent's pid alone: the instances keep running (same pids, files growing), the
  supervisor brings the agent back, the monitor opens no recovery and fences nothing;
- kill -9 of the whole host (supervisor, agent, instances): fenced and evacuated exactly once;
- an agent that will not stop (SIGSTOP: SIGTERM stays pending): the supervisor reports the
  failure to stop, the monitor escalates, the host is fenced and evacuated once;
- the supervisor killed alone: an alert, no fence; a new supervisor adopts the running agent
  and the alert clears.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.functional.hacluster import (
    HaCluster,
    assert_each_on_one_host,
    base_sections,
    boot,
)
from tests.functional.procs import heartbeats, pid_alive, wait_for
from vigil.compute.servers import settled
from vigil.db import services as services_db
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.ha.hostproc import read_record
from vigil.objects.ha import Phase

pytestmark = pytest.mark.slow

# The bound the issue asks for: a crashed agent is back (reporting, UP) within this.
AGENT_BACK_WITHIN = 20.0


def sections(c: HaCluster, rabbit_vhost_url: str, exchange: str,
             **supervisor: Any) -> dict[str, dict[str, Any]]:
    s = base_sections(c.tmp, rabbit_vhost_url, exchange)
    s["supervisor"] = {"services": "compute", "check_interval": 0.2, "report_timeout": 3,
                       "start_timeout": 30, "stop_timeout": 2, "restart_backoff_base": 0.2,
                       "restart_backoff_max": 2, **supervisor}
    s["ha"]["service_restart_timeout"] = 15
    return s


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def agent_pid(c: HaCluster, host: str) -> int | None:
    """The live ``vigil compute`` child of ``host``'s supervisor."""
    for pid in children(c.procs[f"sup-{host}"].pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"compute" in cmd and pid_alive(pid):
            return pid
    return None


def host_states(c: HaCluster) -> dict[str, str]:
    assert c.conf is not None and c.group is not None
    snap = services_db.snapshot(c.db(), topic="host")
    states = c.group.states(snap)
    return {s.host: states[s.id].value for s in snap.services}


def start_supervised(c: HaCluster, hosts: list[str]) -> None:
    """Conductor, scheduler, one supervisor per host, one monitor; wait all up."""
    c.start("conductor", "conductor")
    wait_for(lambda: "listening on topic" in c.log("conductor"), 30, "the conductor")
    c.start("scheduler", "scheduler")
    for h in hosts:
        c.start(f"sup-{h}", "supervisor", "--host", h)
    c.start("monitor1", "monitor")
    wait_for(lambda: c.states() == dict.fromkeys(hosts, "up"), 90, "all compute agents up")
    wait_for(lambda: host_states(c) == dict.fromkeys(hosts, "up"), 30, "all hosts up")


def pids_of(instances: Path, uuids: list[str], since: float) -> dict[str, set[int]]:
    return {u: {p for _, _, p in heartbeats(instances, u, since)} for u in uuids}


def active_alerts(c: HaCluster) -> dict[str, str]:
    return {a.kind: a.message for a in alerts_db.alerts(c.db(), active_only=True)}


def test_agent_killed_alone_comes_back_and_nothing_is_fenced(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(sections(c, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    start_supervised(c, ["h1", "h2"])
    api = c.servers()
    try:
        vms = boot(api, "h1", 2)
        started = time.time()
        wait_for(lambda: all(len(heartbeats(instances, u, started)) >= 2 for u in vms), 15,
                 "every instance writing")
        before = pids_of(instances, vms, started)
        assert all(len(p) == 1 for p in before.values()), before

        old = agent_pid(c, "h1")
        assert old is not None
        version = c.compute_hosts()["h1"].version  # one more at each start of the agent
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        new = wait_for(lambda: (p := agent_pid(c, "h1")) is not None and p != old and p,
                       AGENT_BACK_WITHIN, "a new agent on h1")
        # The new agent registered and reports (the old one's last report looks UP for a
        # while after the kill: UP alone proves nothing).
        wait_for(lambda: c.compute_hosts()["h1"].version > version
                 and c.states().get("h1") == "up", AGENT_BACK_WITHIN,
                 "h1's new agent reporting")
        back_after = time.monotonic() - killed_at
        assert back_after < AGENT_BACK_WITHIN, back_after
        # Give the monitor time to do something wrong: several detection windows.
        window = time.time()
        time.sleep(4)
        assert_each_on_one_host(instances, vms, window, {"h1"})
        after = pids_of(instances, vms, window)
        assert after == before, (before, after)  # the very same processes
        assert recoveries_db.recoveries(c.db(), host="h1") == []
        assert c.fences() == 0
        for u in vms:
            view = api.get(u)
            assert view.status == "ACTIVE" and view.record.host == "h1", view.to_dict()
        assert pid_alive(new) and c.states()["h1"] == "up"
        assert host_states(c) == {"h1": "up", "h2": "up"}
        assert "exited" in c.log("sup-h1")
    finally:
        api.close()


def test_whole_host_killed_is_fenced_and_evacuated_once(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(sections(c, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    start_supervised(c, ["h1", "h2"])
    api = c.servers()
    try:
        vms = boot(api, "h1", 2)
        c.kill("sup-h1")  # the process group: supervisor, agent and instances
        killed_at = time.time()
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(c.db(), host="h1")), None),
                       30, "a recovery of h1")
        wait_for(lambda: recoveries_db.recovery_get(c.db(), rec.id).phase == Phase.EVACUATED,
                 40, "h1 evacuated")
        for u in vms:
            view = api.wait(u, settled, timeout=20)
            assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        wait_for(lambda: all(len(heartbeats(instances, u, killed_at + 0.5)) >= 2 for u in vms),
                 15, "evacuated instances writing")
        window = time.time()
        time.sleep(2.5)
        assert_each_on_one_host(instances, vms, window, {"h2"})
        kinds = [e.kind for e in recoveries_db.events(c.db(), rec.id)]
        assert kinds.count("fence_started") == 1 and kinds.count("fenced") == 1
        assert c.fences() == 1
    finally:
        api.close()


def test_agent_that_will_not_stop_gets_its_host_fenced(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(sections(c, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    start_supervised(c, ["h1", "h2"])
    api = c.servers()
    try:
        (vm,) = boot(api, "h1", 1)
        stuck = agent_pid(c, "h1")
        assert stuck is not None
        # A stopped process is "alive" but neither reports nor acts on SIGTERM (it stays
        # pending): an agent hung in the kernel, as far as its supervisor can tell.
        os.kill(stuck, signal.SIGSTOP)
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(c.db(), host="h1")), None),
                       40, "a recovery of h1")
        wait_for(lambda: recoveries_db.recovery_get(c.db(), rec.id).phase == Phase.EVACUATED,
                 40, "h1 evacuated")
        assert "FAILED TO STOP" in c.log("sup-h1")
        events = recoveries_db.events(c.db(), rec.id)
        kinds = [e.kind for e in events]
        assert kinds.count("fence_started") == 1 and kinds.count("fenced") == 1
        detail = " ".join(e.detail or "" for e in events)
        assert "failed to stop" in detail or "failed_to_stop" in detail, detail
        assert not pid_alive(stuck)  # fenced with its host
        view = api.wait(vm, settled, timeout=20)
        assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        window = time.time()
        wait_for(lambda: len(heartbeats(instances, vm, window)) >= 2, 15, "vm writing on h2")
        assert c.fences() == 1
    finally:
        api.close()


def test_supervisor_killed_alone_raises_an_alert_and_no_fence(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(sections(c, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    start_supervised(c, ["h1", "h2"])
    api = c.servers()
    old_group: int | None = None
    try:
        (vm,) = boot(api, "h1", 1)
        agent = agent_pid(c, "h1")
        assert agent is not None
        old_group = os.getpgid(agent)  # the harness forgets it once sup-h1 is restarted
        os.kill(c.procs["sup-h1"].pid, signal.SIGKILL)  # the supervisor alone
        c.procs["sup-h1"].wait(10)
        wait_for(lambda: "supervisor_down:h1" in active_alerts(c), 30, "the alert")
        time.sleep(3)  # several detection windows: nothing may be fenced
        assert recoveries_db.recoveries(c.db(), host="h1") == []
        assert c.fences() == 0 and pid_alive(agent)
        assert c.states()["h1"] == "up"
        window = time.time()
        wait_for(lambda: len(heartbeats(instances, vm, window)) >= 2, 10, "vm still writing")

        c.start("sup-h1", "supervisor", "--host", "h1")  # a new supervisor adopts the agent
        wait_for(lambda: "supervisor_down:h1" not in active_alerts(c), 30, "the alert cleared")
        assert host_states(c)["h1"] == "up" and c.states()["h1"] == "up"
        assert pid_alive(agent)  # adopted, not replaced: no second agent for h1
        # A fence must still reach the adopted agent and its instances (the old group).
        rec = read_record(str(c.tmp / "state"), "h1")
        assert rec is not None and os.getpgid(agent) in {g.pgid for g in rec.groups()}, rec
        time.sleep(1)
        assert c.fences() == 0 and recoveries_db.recoveries(c.db(), host="h1") == []
    finally:
        api.close()
        if old_group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old_group, signal.SIGKILL)  # the adopted agent and its instance
