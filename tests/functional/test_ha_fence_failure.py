"""A host whose fence fails: its instances stay where they are, the failure is visible, and
the recovery carries on by itself once the fence succeeds.

The ``command`` agent's script (a fence agent of the ClusterLabs convention: action on stdin,
status exit 2 = off) fails (exit 1, "BMC unreachable") until a flag file exists.
While it fails: fence attempts are retried with backoff, ``vigil recovery show`` shows the
error, no instance is handed to the scheduler, the host is not forced down. Once the flag
exists, the next attempt fences, and the instance is evacuated and runs on exactly one host.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.functional.hacluster import (
    VIGIL,
    HaCluster,
    assert_each_on_one_host,
    base_sections,
    boot,
)
from tests.functional.procs import heartbeats, wait_for
from vigil.compute.servers import settled
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import Phase

pytestmark = pytest.mark.slow


def test_failed_fence_keeps_instances_put_until_it_succeeds(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    flag = c.tmp / "bmc-reachable"
    log = c.tmp / "fence.log"
    fence = c.tmp / "fence.sh"
    fence.write_text(
        "#!/bin/sh\nwhile IFS='=' read -r k v; do [ \"$k\" = action ] && action=$v; done\n"
        f'[ "$action" = off ] && echo "$action" >> {log}\n'
        f'[ -e {flag} ] || {{ echo "BMC unreachable"; exit 1; }}\n'
        '[ "$action" = status ] && exit 2\nexit 0\n')
    fence.chmod(0o755)
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    # Failed attempts count against max_fences_per_minute too: room for this test's retries.
    sections["ha"].update(fence_agent="command", fence_command=str(fence),
                          max_fences_per_minute=60)
    c.configure(sections)
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2"])
    api = c.servers()
    try:
        (vm,) = boot(api, "h1", 1)
        c.kill("h1")
        wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, 40,
                 "three failed fence attempts")
        rec = recoveries_db.recoveries(c.db(), host="h1")[0]
        assert rec.phase == Phase.DISABLED and "BMC unreachable" in (rec.last_error or "")
        assert not c.compute_hosts()["h1"].forced_down
        assert evacuations_db.evacuations(c.db(), rec.id) == []
        view = api.get(vm)
        assert view.record.host == "h1" and view.record.task_state is None
        out = subprocess.run([VIGIL, "--config-file", str(c.configs["main"]), "recovery",
                              "show", str(rec.id)], capture_output=True, text=True, timeout=30)
        assert "fence_failed" in out.stdout and "BMC unreachable" in out.stdout, out.stdout

        flag.touch()  # the BMC answers again
        wait_for(lambda: recoveries_db.recovery_get(c.db(), rec.id).phase == Phase.EVACUATED, 30,
                 "the recovery to go on once fencing works")
        fixed_at = time.time()
        view = api.wait(vm, settled, timeout=20)
        assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        kinds = [e.kind for e in recoveries_db.events(c.db(), rec.id)]
        failures = kinds.count("fence_failed")
        assert failures >= 3 and kinds.count("fence_started") == failures + 1
        assert kinds.count("fenced") == 1
        assert kinds.index("fenced") < kinds.index("evacuation_requested")
        wait_for(lambda: len(heartbeats(instances, vm, fixed_at)) >= 2, 15, "vm writing")
        window = time.time()
        time.sleep(2.5)
        assert_each_on_one_host(instances, [vm], window, {"h2"})
    finally:
        api.close()
