"""Planned work is not a failure: maintenance and graceful stops, with real processes.

The ``vigil up`` demo showed it (``[ha] allow_unproven_death = true``): disabling a host "for an
agent upgrade" and stopping its agent with SIGTERM got it fenced and its instance evacuated
3 s later. Here, over RabbitMQ with the process virt driver and one monitor:

1. h1 in maintenance (``vigil host maintenance h1 --on``); its agent stopped with SIGTERM,
   then, started again, killed with kill -9 (agent and instances): no recovery is opened;
2. maintenance off while h1 is still dead: the monitor recovers it (the positive control: it
   was watching all along);
3. h2's agent stopped with SIGTERM, no maintenance: a clean leave is not a failure, h2 shows
   ``down (left)`` and is never fenced; its instance keeps running (a stopped agent leaves its
   instances), so an operator's ``vigil server evacuate`` of it is refused.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.functional.hacluster import VIGIL, HaCluster, base_sections, boot
from tests.functional.procs import heartbeats, wait_for
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import Phase

pytestmark = pytest.mark.slow


def vigil(c: HaCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "--config-file", str(c.configs["main"]), *args],
                          capture_output=True, text=True, timeout=60)


def sigterm(c: HaCluster, name: str) -> None:
    proc = c.procs[name]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, c.log(name)


def no_recovery_while_down(c: HaCluster, host: str, seconds: float) -> None:
    """``host`` stays down for ``seconds`` (several detection times) and nothing opens."""
    wait_for(lambda: c.states().get(host) == "down", 20, f"{host} down")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert c.states().get(host) == "down"
        assert not recoveries_db.recoveries(c.db(), host=host), "a recovery was opened"
        time.sleep(0.2)


def test_maintenance_and_graceful_stops_open_no_recovery(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    c.configure(base_sections(c.tmp, rabbit_vhost_url, exchange))
    instances = c.tmp / "instances"
    c.start_base(["h1", "h2", "h3"])
    api = c.servers()
    try:
        (on_h1,) = boot(api, "h1", 1)
        (on_h2,) = boot(api, "h2", 1)
        # Detection here is service_down_time 2 s + detection_grace 1 s + a poll: watch 3x.
        window = 9.0

        out = vigil(c, "host", "maintenance", "h1", "--on", "--reason", "agent upgrade")
        assert out.returncode == 0, out.stderr
        sigterm(c, "h1")
        no_recovery_while_down(c, "h1", window)
        c.start("h1", "compute", "--host", "h1")
        wait_for(lambda: c.states().get("h1") == "up", 30, "h1 back")
        c.kill("h1")  # kill -9 of agent and instances, still in maintenance
        no_recovery_while_down(c, "h1", window)
        assert c.fences() == 0

        out = vigil(c, "host", "maintenance", "h1", "--off")
        assert out.returncode == 0, out.stderr
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(c.db(), host="h1")), None), 30,
                       "the recovery of h1 once out of maintenance")
        wait_for(lambda: recoveries_db.recovery_get(c.db(), rec.id).phase == Phase.EVACUATED, 40,
                 "h1 recovered")
        assert c.fences() == 1

        started = time.time()
        sigterm(c, "h2")
        no_recovery_while_down(c, "h2", window)
        listing = vigil(c, "service", "list", "--host", "h2")
        assert "down (left)" in listing.stdout, listing.stdout
        assert c.fences() == 1
        # Its instance still runs on h2 (the agent stopped, not the host)...
        assert {h for _, h, _ in heartbeats(instances, on_h2, started + 1)} == {"h2"}
        # ...so moving it elsewhere would run it twice: refused.
        out = vigil(c, "server", "evacuate", on_h2)
        assert out.returncode == 1 and "stopped cleanly" in out.stderr, out.stderr
        assert on_h1
    finally:
        api.close()
