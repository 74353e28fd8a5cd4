"""``vigil up``'s simulated hosts run under their supervisors: ``vigil host kill-agent HOST``
kills the agent alone, its supervisor restarts it, the monitor fences nothing; ``vigil service
list`` shows the host's liveness beside the agent's, and the Nova-compatible os-services list
does not show the supervisors."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from tests.api.test_real_clients import free_port
from tests.conftest import write_config
from tests.functional.hacluster import VIGIL, HaCluster
from tests.functional.procs import wait_for
from vigil import conf as vconf
from vigil import launch
from vigil.db import services as services_db
from vigil.db.ha import recoveries as recoveries_db

pytestmark = pytest.mark.slow


def test_kill_agent_in_vigil_up_restarts_it_in_place(ha_cluster: HaCluster) -> None:
    c = ha_cluster
    log = c.tmp / "up.log"
    path = write_config(c.tmp / "up.conf", {
        "DEFAULT": {"state_path": str(c.tmp / "state"), "log_file": str(log),
                    "report_interval": 0.5, "service_down_time": 2},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.2},
        "api": {"port": free_port()},
        "ha": {"detection_grace": 1, "poll_interval": 0.2, "service_restart_timeout": 20},
        "supervisor": {"restart_backoff_base": 0.2},
    })
    c.configs["up"] = path
    c.conf = None
    c.start("up", "up", "--computes", "2", config="up")
    wait_for(lambda: log.exists() and "Vigil is up" in log.read_text(), 60, "vigil up")
    conf = vconf.load(["--config-file", str(path)], default_files=[])
    engine = launch.engine_from(conf)

    def cli(*args: str) -> str:
        out = subprocess.run([VIGIL, "--config-file", str(path), *args], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    group = launch.group_from(conf, engine)
    registry = launch.registry_over(conf, engine, group)

    def compute1() -> dict[str, object]:  # what vigil service list shows (its JSON)
        # Empty until compute-1's agent has registered (vigil up starts its hosts after the API).
        return next((v.to_dict() for v in registry.list(host="compute-1")
                     if v.record.binary == "vigil-compute"), {})

    try:
        wait_for(lambda: compute1().get("state") == "up"
                 and compute1().get("host_liveness") == "up", 30, "compute-1 and its host up")
        before = services_db.service_get_by_host_binary(engine, "compute-1",
                                                        "vigil-compute").version
        assert "killed" in cli("host", "kill-agent", "compute-1")
        wait_for(lambda: services_db.service_get_by_host_binary(
            engine, "compute-1", "vigil-compute").version > before, 30,
            "a new agent on compute-1")
        wait_for(lambda: compute1()["state"] == "up", 20, "compute-1's agent up again")
        assert "its compute agent was killed" in log.read_text()
        assert compute1()["host_liveness"] == "up"
        assert recoveries_db.recoveries(engine, host="compute-1") == []
        table = cli("hypervisor", "list")
        assert "Host Liveness" in table
        rows = json.loads(cli("service", "list", "--format", "json"))
        assert {r["binary"] for r in rows} >= {"vigil-supervisor", "vigil-compute"}
        assert {r["host_liveness"] for r in rows if r["binary"] == "vigil-compute"} == {"up"}
        # Nova has no supervisor service: os-services lists the agents, not them.
        out = c.log("up")
        url = re.search(r"Vigil API: (\S+)", out)
        token = re.search(r"Admin token \(in [^)]*\): (\S+)", out)
        assert url and token, out
        nova = httpx.get(f"{url[1]}/v2.1/os-services", timeout=10,
                         headers={"X-Auth-Token": token[1]}).json()["services"]
        assert {s["binary"] for s in nova} == {"nova-compute", "nova-conductor",
                                               "nova-scheduler"}, nova
    finally:
        group.driver.close()
        engine.dispose()
