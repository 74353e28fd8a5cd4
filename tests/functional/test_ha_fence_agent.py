"""The ``command`` agent driving a fence agent of the ClusterLabs convention, unmodified, in
real ``vigil`` processes: only a power-off that reads back as off lets a recovery evacuate.

The fence agent is tests/tools/fence_test_agent.py (options on stdin, status exit 0 on / 2 off
/ 1 cannot tell), configured as an operator would configure ``fence_ipmilan``:
``fence_command`` is its path alone, ``fence_host_map`` gives h1 two plugs (two power supplies),
and ``fence_hosts_file`` carries the device's options, password included. The agent does not
really power anything: it flips its plugs' state files, so the test kills h1 itself first (the
host is down, as a fenced host would be) and then makes the device misbehave in turn:

(a) a plug that stays on after a successful off (status 0): fence_failed, retried, never
    evacuated;
(c) a device that cannot be contacted after the off (status 1): fence_failed ("power state
    could not be read"), retried, never evacuated;
(b) a device that works (both plugs read 2, off): fenced, and the instance evacuated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.functional.hacluster import HaCluster, base_sections, boot
from tests.functional.procs import wait_for
from vigil.compute.servers import settled
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import EventRecord, Phase, RecoveryRecord

pytestmark = pytest.mark.slow

AGENT = str(Path(__file__).resolve().parents[1] / "tools" / "fence_test_agent.py")
SECRET = "Pa55-w0rd-of-the-bmc"
PLUGS = ("h1-psu1", "h1-psu2")


def test_only_a_power_off_read_back_as_off_leads_to_evacuation(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    device = c.tmp / "device"
    device.mkdir()
    hosts_file = c.tmp / "fence-hosts.json"
    hosts_file.write_text(json.dumps({"*": {"state_dir": str(device), "username": "admin",
                                            "password": SECRET}}))
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    # Failed attempts count against max_fences_per_minute too: room for this test's retries.
    sections["ha"].update(fence_agent="command", fence_command=AGENT,
                          fence_host_map=f"h1:{','.join(PLUGS)}",
                          fence_hosts_file=str(hosts_file), max_fences_per_minute=60)
    (device / "h1-psu2.mode").write_text("stays-on\n")  # (a) from the first attempt on
    c.configure(sections)
    c.start_base(["h1", "h2"])
    api = c.servers()
    try:
        (vm,) = boot(api, "h1", 1)
        c.kill("h1")

        def failures(words: str) -> list[EventRecord]:
            recs = recoveries_db.recoveries(c.db(), host="h1")
            if not recs:
                return []
            return [e for e in recoveries_db.events(c.db(), recs[0].id)
                    if e.kind == "fence_failed" and words in (e.detail or "")]

        def held(words: str) -> RecoveryRecord:
            """The recovery is still waiting to be fenced, with this error; nothing moved."""
            rec = recoveries_db.recoveries(c.db(), host="h1")[0]
            assert rec.phase == Phase.DISABLED and words in (rec.last_error or ""), rec
            assert not c.compute_hosts()["h1"].forced_down
            assert evacuations_db.evacuations(c.db(), rec.id) == []
            view = api.get(vm)
            assert view.record.host == "h1" and view.record.task_state is None
            return rec

        # (a) status 0 after the off: the host still reads as powered on.
        wait_for(lambda: len(failures("still reads as powered on")) >= 2, 40,
                 "two fence attempts failed on a plug that stays on")
        held("still reads as powered on")
        assert (device / "h1-psu1.power").read_text().strip() == "off"

        # (c) status 1 after the off: the power state cannot be read.
        (device / "h1-psu2.mode").write_text("status-unknown\n")
        wait_for(lambda: len(failures("power state could not be read after the fence")) >= 2,
                 30, "two fence attempts failed on a device that cannot be read")
        wait_for(lambda: "could not be read" in (
            recoveries_db.recoveries(c.db(), host="h1")[0].last_error or ""), 10, "last_error")
        rec = held("power state could not be read after the fence")

        # (b) status 2 on both plugs: fenced, then evacuated.
        (device / "h1-psu2.mode").unlink()
        wait_for(lambda: recoveries_db.recovery_get(c.db(), rec.id).phase == Phase.EVACUATED, 30,
                 "the recovery to go on once the power reads off")
        view = api.wait(vm, settled, timeout=20)
        assert view.status == "ACTIVE" and view.record.host == "h2", view.to_dict()
        events = recoveries_db.events(c.db(), rec.id)
        kinds = [e.kind for e in events]
        assert kinds.count("fenced") == 1 and kinds.index("fenced") > max(
            i for i, k in enumerate(kinds) if k == "fence_failed")
        assert kinds.index("fenced") < kinds.index("evacuation_requested")
        fenced = next(e for e in events if e.kind == "fenced")
        assert "power off verified" in (fenced.detail or "")
        assert all(p in (fenced.detail or "") for p in PLUGS)
        assert [(device / f"{p}.power").read_text().strip() for p in PLUGS] == ["off", "off"]

        # What the device saw: the convention's stdin, h1's plugs only, never a password
        # outside stdin.
        calls = [json.loads(line) for line in (device / "calls.log").read_text().splitlines()]
        assert {(call["nodename"], call["plug"]) for call in calls} == {("h1", p) for p in PLUGS}
        assert {call["action"] for call in calls} == {"off", "status"}
        assert all("password" in call["options"] and call["argv"] == [] for call in calls)
        texts = [*(log.read_text(errors="replace") for log in c.logs.glob("*.log")),
                 (device / "calls.log").read_text(),
                 *((e.detail or "") for e in events), rec.last_error or ""]
        assert not any(SECRET in t for t in texts)
    finally:
        api.close()
