"""The brakes, with real processes: situations where fencing would be wrong, and it must not
happen. Each test ends with a positive control (a real failure that *is* recovered), so "zero
fences" cannot pass because the monitor was simply not working.

- half the hosts die at once: the mass-failure brake holds and raises an alert;
- the database goes away (PostgreSQL behind a TCP proxy that resets and refuses) and comes
  back: every heartbeat is stale at that moment, but the report path's health restarts too,
  so nothing is DOWN, only UNKNOWN;
- the liveness backend (ZooKeeper behind proxies) is partitioned from the monitor alone, then
  from everybody for longer than the session timeout (every session expires on the server).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PG_ADMIN, _create_database, _drop_database
from tests.functional.hacluster import VIGIL, HaCluster, base_sections
from tests.functional.procs import wait_for
from tests.tools.tcpproxy import TcpProxy
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import Phase

pytestmark = pytest.mark.slow

OBSERVE = 6.0  # > service_down_time (2) + detection_grace (1) + lease_ttl (2) + polls


def fake_hosts(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    sections["compute"]["compute_driver"] = "fake"  # no instances needed: lighter hosts
    return sections


def recovered(c: HaCluster, host: str) -> bool:
    recs = recoveries_db.recoveries(c.db(), host=host)
    return bool(recs) and recs[0].reached(Phase.FENCED)


def test_mass_failure_holds_the_brake_and_raises_an_alert(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    sections = fake_hosts(base_sections(c.tmp, rabbit_vhost_url, exchange))
    sections["ha"]["max_down_fraction"] = 0.25  # one host in four may fail, not two
    c.configure(sections)
    c.start_base(["h1", "h2", "h3", "h4"])
    c.kill("h1")
    c.kill("h2")
    wait_for(lambda: alerts_db.alerts(c.db(), active_only=True), 20, "the mass-failure alert")
    time.sleep(OBSERVE)
    assert c.fences() == 0 and not recoveries_db.recoveries(c.db())
    alert = alerts_db.alerts(c.db(), active_only=True)[0]
    assert alert.kind == "mass_failure" and "2 of 4" in alert.message
    out = subprocess.run([VIGIL, "--config-file", str(c.configs["main"]), "recovery", "list"],
                         capture_output=True, text=True, timeout=30)
    assert "ALERT [mass_failure]" in out.stdout, out.stdout + out.stderr
    assert not c.compute_hosts()["h1"].disabled  # nothing was touched

    c.start("h2", "compute", "--host", "h2")  # one back: 1 of 4 down is within the limit
    wait_for(lambda: recovered(c, "h1"), 30, "h1 recovered once the brake releases")
    wait_for(lambda: not alerts_db.alerts(c.db(), active_only=True), 10, "the alert cleared")
    assert c.fences() == 1 and not recoveries_db.recoveries(c.db(), host="h2")


@pytest.fixture
def pg_database() -> Iterator[str]:
    name = f"vigil_ha_{uuid.uuid4().hex[:8]}"
    url = _create_database(PG_ADMIN, name)
    yield url
    _drop_database(PG_ADMIN, name)


def test_a_database_outage_fences_nothing(ha_cluster: HaCluster, rabbit_vhost_url: str,
                                          exchange: str, pg_database: str) -> None:
    c = ha_cluster
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        url = pg_database.replace("127.0.0.1:5432", proxy.address)
        sections = fake_hosts(base_sections(c.tmp, rabbit_vhost_url, exchange))
        sections["database"]["connection"] = url
        c.configure(sections)
        c.start_base(["h1", "h2", "h3"])
        wait_for(lambda: lease_db.lease_get(c.db(), "ha-monitor") is not None, 20, "a leader")
        c.db().dispose()
        proxy.refuse = True  # the database "stops": connections reset, new ones refused
        proxy.cut()
        time.sleep(OBSERVE)
        proxy.heal()
        wait_for(lambda: c.states() == dict.fromkeys(["h1", "h2", "h3"], "up"), 30,
                 "all hosts up again")
        time.sleep(OBSERVE)
        assert c.fences() == 0 and not recoveries_db.recoveries(c.db())
        c.kill("h3")  # positive control: a real failure is still recovered
        wait_for(lambda: recovered(c, "h3"), 30, "h3 recovered")
        assert c.fences() == 1


def test_liveness_backend_partitions_fence_nothing(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    prefix = f"/vigil-test-{uuid.uuid4().hex[:8]}"
    with TcpProxy(("127.0.0.1", 2181)) as everyone, TcpProxy(("127.0.0.1", 2181)) as mon:
        sections = fake_hosts(base_sections(c.tmp, rabbit_vhost_url, exchange))
        sections["DEFAULT"]["servicegroup_driver"] = "zk"
        sections["ha"]["allow_unproven_death"] = False  # zk proves death by itself
        sections["zookeeper"] = {"address": everyone.address, "recv_timeout": 2000,
                                 "sg_prefix": prefix, "sg_retry_interval": 1}
        c.configure(sections)
        sections["zookeeper"] = {**sections["zookeeper"], "address": mon.address}
        c.configure(sections, name="monitor")
        c.start("conductor", "conductor")
        wait_for(lambda: "listening on topic" in c.log("conductor"), 30, "the conductor")
        c.start("scheduler", "scheduler")
        for h in ("h1", "h2", "h3"):
            c.start(h, "compute", "--host", h)
        c.start("monitor1", "monitor", config="monitor")
        wait_for(lambda: c.states() == dict.fromkeys(["h1", "h2", "h3"], "up"), 40,
                 "all hosts up")
        wait_for(lambda: lease_db.lease_get(c.db(), "ha-monitor") is not None, 20, "a leader")

        mon.blackhole = True  # the monitor alone is partitioned from ZooKeeper
        mon.cut()
        time.sleep(OBSERVE)
        mon.heal()
        everyone.refuse = True  # ZooKeeper "stops" for everybody, longer than a session
        mon.refuse = True
        everyone.cut()
        mon.cut()
        time.sleep(OBSERVE)
        everyone.heal()
        mon.heal()
        wait_for(lambda: c.states() == dict.fromkeys(["h1", "h2", "h3"], "up"), 45,
                 "all hosts up again")
        time.sleep(OBSERVE)
        assert c.fences() == 0 and not recoveries_db.recoveries(c.db())
        c.kill("h3")  # positive control
        wait_for(lambda: recovered(c, "h3"), 30, "h3 recovered")
        assert c.fences() == 1
