"""The HA monitor end to end with real processes over RabbitMQ (the harness is in
``hacluster.py``, shared with the other ``test_ha_*`` modules).

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

import subprocess
import time

import httpx
import pytest

from tests.api.test_deploy import promtool_check, samples
from tests.api.test_real_clients import free_port
from tests.functional.hacluster import (
    VIGIL,
    HaCluster,
    assert_each_on_one_host,
    base_sections,
    boot,
)
from tests.functional.procs import heartbeats, wait_for
from vigil.compute.servers import settled
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import Phase, RecoveryStatus

pytestmark = pytest.mark.slow


def test_monitor_fences_forces_down_evacuates_and_re_enables(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    # The daemons' own metrics (docs/operations.md), read at the end.
    conductor_port, monitor_port = free_port(), free_port()
    sections.setdefault("conductor", {})["metrics_port"] = conductor_port
    sections.setdefault("ha", {})["metrics_port"] = monitor_port
    c.configure(sections)
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2", "h3"])
    api = c.servers()
    try:
        moving = boot(api, "h1", 2)
        pinned = boot(api, "h1", 1, evacuable=False, prefix="pinned")[0]
        started = time.time()
        wait_for(lambda: all(heartbeats(instances, u, started) for u in [*moving, pinned]), 10,
                 "every instance writing")
        assert c.fences() == 0 and not recoveries_db.recoveries(c.db())

        c.kill("h1")
        killed_at = time.time()
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(c.db(), host="h1")), None), 30,
                       "a recovery of h1")
        rec = wait_for(lambda: (r := recoveries_db.recovery_get(c.db(), rec.id)).phase
                       == Phase.EVACUATED and r, 40, "h1 evacuated")
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
        rec = wait_for(lambda: (r := recoveries_db.recovery_get(c.db(), rec.id)).status
                       == RecoveryStatus.DONE and r, 30, "h1 re-enabled")
        svc = c.compute_hosts()["h1"]
        assert not svc.forced_down and not svc.disabled
        wait_for(lambda: heartbeats(instances, pinned, time.time() - 1), 20,
                 "the pinned instance resumed on h1")
        window = time.time()
        time.sleep(2.5)
        where = assert_each_on_one_host(instances, [*moving, pinned], window,
                                        {"h1", "h2", "h3"})
        assert where[pinned] == "h1" and all(where[u] != "h1" for u in moving)
        kinds = [e.kind for e in recoveries_db.events(c.db(), rec.id)]
        assert kinds.count("fence_started") == 1 and kinds.count("fenced") == 1
        assert kinds.count("evacuation_requested") == 2 and kinds[-1] == "re_enabled"
        assert c.fences() == 1
        out = subprocess.run([VIGIL, "--config-file", str(c.configs["main"]), "recovery",
                              "show", str(rec.id)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "re_enabled" in out.stdout, out.stdout + out.stderr

        # The monitor timed each step from the recovery's opening; the conductor its flushes.
        monitor = httpx.get(f"http://127.0.0.1:{monitor_port}/metrics", timeout=10).text
        steps = samples(monitor, "vigil_recovery_step_seconds_count")
        for event in ("opened", "disabled", "fence_started", "fenced", "forced_down",
                      "evacuated", "re_enabled", "completed"):
            assert steps.get(f'{{event="{event}"}}') == 1.0, (event, steps)
        sums = samples(monitor, "vigil_recovery_step_seconds_sum")
        assert 0 < sums['{event="fenced"}'] <= sums['{event="completed"}'] < 120, sums
        promtool_check(monitor)
        conductor = httpx.get(f"http://127.0.0.1:{conductor_port}/metrics", timeout=10).text
        assert samples(conductor, "vigil_conductor_flush_reports_sum")[""] > 0
        assert samples(conductor, "vigil_conductor_flush_seconds_count")[""] > 0
        promtool_check(conductor)
    finally:
        api.close()
