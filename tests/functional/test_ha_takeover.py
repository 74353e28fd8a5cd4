"""Kill the leading monitor in the middle of a fence: the other finishes the recovery, with no
second fence and no second evacuation.

The fence is a ``command`` agent that appends a line to a log and then sleeps: the test kills
the leader (SIGKILL to its process group) while the command runs. The standby takes the lease
after it expires, finds ``fence_started`` without an outcome, asks the status command (the
host's process group is gone: exit 2, off, by the fence-agent convention) and records the
fence as done without running the fence command again; then it forces the host down and
evacuates each instance once.
"""

from __future__ import annotations

import sys
import time

import pytest

from tests.functional.hacluster import HaCluster, assert_each_on_one_host, base_sections, boot
from tests.functional.procs import heartbeats, wait_for
from vigil.compute.servers import settled
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import Phase

pytestmark = pytest.mark.slow


def test_a_new_leader_finishes_an_interrupted_fence_without_fencing_again(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    log = c.tmp / "fence.log"
    fence = c.tmp / "fence.sh"
    fence.write_text(f'#!/bin/sh\necho "$1 $$" >> {log}\nsleep 4\nexit 0\n')
    fence.chmod(0o755)
    status = c.tmp / "status.sh"
    # Exit 2 = off, 0 = on (1 = cannot tell): the ClusterLabs status codes.
    status.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c \"import sys; from vigil.ha.fence.process import "
        f"ProcessFence; sys.exit(2 if ProcessFence('{c.tmp / 'state'}').status(sys.argv[1], "
        "timeout=1).value == 'off' else 0)\" \"$1\"\n")
    status.chmod(0o755)
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    # Both scripts take the host in argv ({host}); the agent's stdin is left unread.
    sections["ha"].update(fence_agent="command", fence_command=f"{fence} {{host}}",
                          fence_status_command=f"{status} {{host}}")
    c.configure(sections)
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2"], monitors=2)
    api = c.servers()
    try:
        uuids = boot(api, "h1", 2)
        leader = wait_for(c.leader_name, 20, "a leader")
        c.kill("h1")
        killed_at = time.time()
        wait_for(lambda: log.exists() and log.read_text(), 30, "the fence command to start")
        assert c.leader_name() == leader
        c.kill(leader)  # mid-fence: the command sleeps for 4 s
        survivor = "monitor2" if leader == "monitor1" else "monitor1"
        rec = recoveries_db.recoveries(c.db(), host="h1")[0]
        rec = wait_for(lambda: (r := recoveries_db.recovery_get(c.db(), rec.id)).phase
                       == Phase.EVACUATED and r, 40, "the survivor to finish the recovery")
        assert c.leader_name() == survivor
        for u in uuids:
            view = api.wait(u, settled, timeout=20)
            assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        time.sleep(5)  # the orphaned command finishes; nobody may start another
        assert len(log.read_text().splitlines()) == 1, log.read_text()
        events = recoveries_db.events(c.db(), rec.id)
        kinds = [e.kind for e in events]
        assert kinds.count("fence_started") == 1, kinds
        fenced = [e for e in events if e.kind == "fenced"]
        assert len(fenced) == 1 and "not fenced again" in (fenced[0].detail or ""), fenced
        assert fenced[0].epoch > next(e.epoch for e in events if e.kind == "fence_started")
        for u in uuids:
            assert sum(1 for e in events if e.kind == "evacuation_requested"
                       and e.instance_uuid == u) == 1
        wait_for(lambda: all(len(heartbeats(instances, u, killed_at + 0.5)) >= 2
                             for u in uuids), 15, "evacuated instances writing")
        window = time.time()
        time.sleep(2.5)
        assert_each_on_one_host(instances, uuids, window, {"h2"})
        assert "not fencing again" in c.log(survivor)
    finally:
        api.close()

