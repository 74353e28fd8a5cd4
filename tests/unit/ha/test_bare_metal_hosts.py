"""The HA monitor leaves bare-metal compute services to the hash ring.

A dead bare-metal service's nodes (and the instances on them) are handed to a live service
by the ring (vigil.baremetal); fencing its host would stop nothing, and an evacuation would
race the hand-over. Real database, real liveness rows, the monitor's own tick on a fake clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.unit.compute.helpers import make_conf, set_state
from vigil import launch
from vigil.clock import FakeClock
from vigil.db import services as services_db
from vigil.db.baremetal import members as members_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import Conflict
from vigil.ha.fence.simulated import SimulatedFence
from vigil.ha.views import RecoveriesAPI
from vigil.launch.monitor import monitor_from


def test_only_the_vm_host_is_recovered(sqlite_engine: Engine, tmp_path: Path) -> None:
    conf = make_conf(
        DEFAULT={"state_path": str(tmp_path), "report_interval": 10, "service_down_time": 60},
        ha={"detection_grace": 1, "allow_unproven_death": True, "max_down_fraction": 1.0,
            "fence_agent": "simulated"})
    group = launch.group_from(conf, sqlite_engine)
    svcs = {h: services_db.service_get_or_create(sqlite_engine, h, "vigil-compute", "compute")[0]
            for h in ("vm1", "vm2", "bm1", "bm2")}
    for host, svc in svcs.items():
        set_state(sqlite_engine, svc, "up")
        svcs[host] = services_db.service_get(sqlite_engine, svc.id)
    for host in ("bm1", "bm2"):  # the bare-metal agents registered as ring members
        members_db.member_register(sqlite_engine, host, svcs[host].version)
    set_state(sqlite_engine, svcs["vm1"], "stale")
    set_state(sqlite_engine, svcs["bm1"], "stale")

    clock = FakeClock()
    monitor = monitor_from(conf, sqlite_engine, group, clock=clock,
                           agent=SimulatedFence(str(tmp_path / "fence")))
    monitor.tick()
    clock.advance(2)
    monitor.tick()

    assert {r.host for r in recoveries_db.recoveries(sqlite_engine)} == {"vm1"}
    assert set(monitor.down_since) == {"vm1"}  # bm1 is not even watched
    views = RecoveriesAPI(sqlite_engine, group)
    with pytest.raises(Conflict, match="bare-metal"):
        views.request_host_evacuation("bm1")

    # Restarted with another driver (a new service version, no ring registration): watched.
    services_db.service_get_or_create(sqlite_engine, "bm2", "vigil-compute", "compute")
    set_state(sqlite_engine, svcs["bm2"], "stale")
    monitor.tick()
    clock.advance(2)
    monitor.tick()
    assert {r.host for r in recoveries_db.recoveries(sqlite_engine)} == {"vm1", "bm2"}
