"""SIGHUP and SIGTERM on real daemons, each logging to its own ``log_file``.

logrotate's way: move the log file aside, then SIGHUP. Every daemon (conductor, scheduler, a
fake-driver compute agent, the API, the HA monitor; then ``vigil up`` alone) must keep running
and working (reports still advancing, the monitor's lease still renewed, the API answering),
write to a new file at the configured path, and write nothing more to the moved one. The same
SIGHUP reloads ``debug``; a configuration file that became invalid is refused with an error in
the log and the daemon runs on. SIGTERM still stops each one cleanly (services leave: down at
once).

Half the daemons use ``log_rotation_type = size``: oslo.log then installs a plain
RotatingFileHandler, which does not notice the move by itself, so only the explicit reopen on
SIGHUP keeps the moved file from growing. The others get oslo.log's WatchedFileHandler.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_real_clients import free_port
from tests.conftest import write_config
from tests.functional.hacluster import HaCluster, base_sections
from tests.functional.procs import wait_for
from vigil import conf as vconf
from vigil import launch
from vigil.db import services as services_db
from vigil.db.ha import lease as lease_db
from vigil.objects.services import ServiceRecord

pytestmark = pytest.mark.slow

# name -> command line; the reporting services' rows are (host, binary).
DAEMONS: dict[str, tuple[str, ...]] = {
    "conductor": ("conductor",),
    "scheduler": ("scheduler",),
    "c1": ("compute", "--host", "c1"),
    "api": ("api",),
    "monitor": ("monitor",),
}
ROWS = {"conductor": ("ctl", "vigil-conductor"), "scheduler": ("ctl", "vigil-scheduler"),
        "c1": ("c1", "vigil-compute")}
NOT_WATCHED = {"conductor", "c1", "monitor"}  # log_rotation_type = size


def rows(c: HaCluster) -> dict[tuple[str, str], ServiceRecord]:
    try:
        return {(s.host, s.binary): s for s in services_db.snapshot(c.db()).services}
    except Exception:  # the conductor has not created the schema yet
        return {}


def report_counts(c: HaCluster) -> dict[str, int]:
    now = rows(c)
    return {name: now[row].report_count for name, row in ROWS.items() if row in now}


def lease_expiry(c: HaCluster) -> Any:
    lease = lease_db.lease_get(c.db(), "ha-monitor")
    return lease.expires_at if lease is not None and lease.held else None


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:  # not listening yet
        return False


def still_working(c: HaCluster, counts: dict[str, int], expiry: Any, api_url: str,
                  what: str) -> None:
    """Every daemon runs, every service reports twice more, the lease is renewed, the API
    answers."""
    wait_for(lambda: all(report_counts(c).get(n, 0) >= counts[n] + 2 for n in ROWS), 20,
             f"every service to keep reporting {what}")
    wait_for(lambda: (lease_expiry(c) or expiry) > expiry, 20,
             f"the monitor to keep renewing its lease {what}")
    assert healthy(api_url), f"the API does not answer {what}"
    for name in DAEMONS:
        assert c.procs[name].poll() is None, f"{name} exited {what}"


def hangup_all(c: HaCluster) -> None:
    for name in DAEMONS:
        c.procs[name].send_signal(signal.SIGHUP)


def test_every_daemon_survives_sighup_reopens_its_log_and_reloads(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str) -> None:
    c = ha_cluster
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    logdir = c.tmp / "var-log"
    logdir.mkdir()
    sections = base_sections(c.tmp, rabbit_vhost_url, exchange)
    sections["DEFAULT"]["host"] = "ctl"
    sections["compute"]["compute_driver"] = "fake"
    sections["api"] = {"port": port, "auth_strategy": "noauth"}
    c.configure(sections)
    log: dict[str, Path] = {}
    for name in DAEMONS:
        log[name] = logdir / f"{name}.log"
        own = {k: dict(v) for k, v in sections.items()}
        own["DEFAULT"]["log_file"] = str(log[name])
        if name in NOT_WATCHED:
            own["DEFAULT"]["log_rotation_type"] = "size"
        c.configure(own, name=name)

    c.start("conductor", *DAEMONS["conductor"], config="conductor")
    wait_for(lambda: log["conductor"].exists()
             and "listening on topic" in log["conductor"].read_text(), 30, "the conductor")
    for name in ("scheduler", "c1", "api", "monitor"):
        c.start(name, *DAEMONS[name], config=name)
    wait_for(lambda: len(report_counts(c)) == len(ROWS), 60, "every service registered")
    wait_for(lambda: lease_expiry(c), 30, "a monitor leading")
    wait_for(lambda: healthy(api_url), 30, "the API")
    assert c.states() == {"c1": "up"}
    for name in DAEMONS:  # everything so far went to the configured file (and stderr)
        assert " INFO " in log[name].read_text(), name
        assert " DEBUG " not in log[name].read_text(), name

    # logrotate: move every file aside, then HUP; debug = true in the files meanwhile.
    moved = {name: path.rename(path.with_suffix(".log.1")) for name, path in log.items()}
    for name in DAEMONS:
        c.configs[name].write_text(c.configs[name].read_text().replace(
            "[DEFAULT]\n", "[DEFAULT]\ndebug = true\n", 1))
    counts, expiry = report_counts(c), lease_expiry(c)
    hangup_all(c)
    for name, path in log.items():
        wait_for(lambda p=path: p.exists() and "configuration reloaded" in p.read_text(), 20,
                 f"{name} to reopen its log and reload")
    # Nothing can reach a moved file once its daemon logged the reload to the new one.
    sizes = {name: path.stat().st_size for name, path in moved.items()}
    for name, path in log.items():
        text = path.read_text()
        assert "received SIGHUP: 1 log file(s) reopened" in text, name
        assert "(log level DEBUG)" in text and " DEBUG " in text, name
        assert "Option DEFAULT.debug changed" in text, name
        assert "SIGHUP" not in moved[name].read_text(), name
    still_working(c, counts, expiry, api_url, "after the first SIGHUP")

    # A file that became invalid: refused, logged, the daemon runs on with the old values.
    for name in DAEMONS:
        c.configs[name].write_text(c.configs[name].read_text() + "this line is not INI\n")
    counts, expiry = report_counts(c), lease_expiry(c)
    hangup_all(c)
    for name, path in log.items():
        wait_for(lambda p=path: "configuration not reloaded, the previous values stay"
                 in p.read_text(), 20, f"{name} to refuse the broken file")
        assert " ERROR vigil.logs " in path.read_text(), name
    still_working(c, counts, expiry, api_url, "after a SIGHUP with a broken file")
    assert c.states() == {"c1": "up"}

    # SIGTERM: the graceful path, services leave (down at once), exit 0.
    for name in ("monitor", "api", "c1", "scheduler", "conductor"):
        proc = c.procs[name]
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, name
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not stop on SIGTERM")
        assert "received SIGTERM, stopping" in log[name].read_text(), name
        if name == "c1":
            assert c.states() == {"c1": "down"}
    final = rows(c)
    for name, row in ROWS.items():
        assert final[row].left_at is not None, name
        assert f"left group {row[1].removeprefix('vigil-')}" in log[name].read_text(), name
    assert {name: path.stat().st_size for name, path in moved.items()} == sizes


def test_vigil_up_survives_sighup_and_reopens_its_log(ha_cluster: HaCluster) -> None:
    c = ha_cluster
    log = c.tmp / "up.log"
    path = write_config(c.tmp / "up.conf", {
        "DEFAULT": {"state_path": str(c.tmp / "state"), "log_file": str(log),
                    "log_rotation_type": "size", "report_interval": 0.5,
                    "service_down_time": 2},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.2},
        "api": {"port": free_port()},
    })
    c.configs["up"] = path
    c.conf = None
    c.start("up", "up", "--computes", "1", config="up")
    wait_for(lambda: log.exists() and "Vigil is up" in log.read_text(), 60, "vigil up")
    engine = launch.engine_from(vconf.load(["--config-file", str(path)], default_files=[]))
    try:
        def count() -> int:
            svc = services_db.snapshot(engine, binary="vigil-compute").services
            return svc[0].report_count if svc else 0

        wait_for(count, 30, "compute-1 reporting")
        moved = log.rename(log.with_suffix(".log.1"))
        before = count()
        c.procs["up"].send_signal(signal.SIGHUP)
        wait_for(lambda: log.exists() and "configuration reloaded" in log.read_text(), 20,
                 "the reopen and the reload")
        size = moved.stat().st_size
        wait_for(lambda: count() >= before + 3, 20, "compute-1 to keep reporting")
        assert c.procs["up"].poll() is None
        c.procs["up"].send_signal(signal.SIGTERM)
        assert c.procs["up"].wait(timeout=30) == 0
        assert "Vigil stopped" in log.read_text()
        assert moved.stat().st_size == size and "SIGHUP" not in moved.read_text()
        [svc] = services_db.snapshot(engine, binary="vigil-compute").services
        assert svc.left_at is not None
    finally:
        engine.dispose()
