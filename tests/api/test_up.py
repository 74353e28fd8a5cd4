"""``vigil up`` serves the API: it prints the URL and an admin token that work at once."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import make_conf
from tests.api.test_real_clients import START_TIMEOUT, free_port

pytestmark = pytest.mark.slow


class Lines:
    """Lines of a process's stdout, collected by a thread (a select() on the pipe would miss
    lines already buffered by the reader)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self._stream = stream
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """After the process exited: the reader has met the end of the pipe; close it."""
        self._thread.join(timeout=10)
        self._stream.close()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no line matched {pattern!r} in {timeout}s: {self.lines}")


def test_up_prints_a_working_url_and_admin_token(tmp_path: Path) -> None:
    port = free_port()
    _, path = make_conf(tmp_path, {"DEFAULT": {"report_interval": "0.5",
                                               "service_down_time": "10"},
                                   "api": {"port": port}})
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                             str(path), "up", "--computes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = Lines(proc)
    try:
        url = out.wait_for(r"Vigil API: (\S+)", START_TIMEOUT).group(1)
        token = out.wait_for(r"Admin token \(in (\S+)\): (\S+)", 30).group(2)
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / "state" / "api-tokens.json").exists()
        assert httpx.get(f"{url}/v2.1/os-services").status_code == 401
        deadline = time.monotonic() + 60
        while True:  # the simulated computes report through the conductor, then show up
            r = httpx.get(f"{url}/v2.1/os-services", headers={"X-Auth-Token": token},
                          params={"binary": "nova-compute"})
            assert r.status_code == 200
            states = {s["host"]: s["state"] for s in r.json()["services"]}
            if states == {"compute-1": "up", "compute-2": "up"}:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        out.close()
    assert code == 0


def test_up_shows_a_failover_an_operator_can_watch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo the README promises: crash a simulated host of ``vigil up``; the monitor
    disables, fences, forces it down and evacuates its instances; revive it and it is
    re-enabled. Driven through the CLI, as an operator in another terminal would."""
    from vigil import launch
    from vigil.cli.main import main
    from vigil.db import services as services_db
    from vigil.db.compute import instances as instances_db
    from vigil.db.ha import recoveries as recoveries_db
    from vigil.objects.compute import VmState
    from vigil.objects.ha import Phase

    conf, path = make_conf(tmp_path, {
        "DEFAULT": {"report_interval": "0.5", "service_down_time": "2.5"},
        "api": {"port": free_port()},
        "conductor": {"coalesce_interval": "0.1", "probe_interval": "0.2"},
        "compute": {"instance_sync_interval": "1", "update_resources_interval": "1"},
        "scheduler": {"pending_poll_interval": "0.5"},
        "ha": {"detection_grace": "0.5", "poll_interval": "0.2"}})
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                             str(path), "up", "--computes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def vigil(*args: str) -> tuple[int, str, str]:
        code = main(["--config-file", str(path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    def poll(fn: object, timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = fn()  # type: ignore[operator]
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    lines = Lines(proc)
    try:
        lines.wait_for(r"Vigil API: ", START_TIMEOUT)
        engine = launch.engine_from(conf)
        group = launch.group_from(conf, engine)

        def states() -> dict[str, str]:
            snap = services_db.snapshot(engine, topic="compute")
            by_id = group.states(snap)
            return {s.host: by_id[s.id].value for s in snap.services}

        poll(lambda: states() == {"compute-1": "up", "compute-2": "up"}, 60, "hosts up")
        for name in ("vm1", "vm2"):
            code, _, err = vigil("server", "create", "--flavor", "m1.tiny", "--name", name,
                                 "--host", "compute-1", "--wait")
            assert code == 0, err
        uuids = [i.uuid for i in instances_db.instances(engine, host="compute-1")]
        assert len(uuids) == 2

        code, _, err = vigil("host", "crash", "nowhere")
        assert code == 2 and err.strip() == "vigil: error: no compute service on host 'nowhere'"
        code, out, _ = vigil("host", "crash", "compute-1")
        assert code == 0 and "crashed" in out

        def evacuated() -> bool:
            insts = instances_db.instances(engine, uuids=uuids)
            return all(i.host == "compute-2" and i.vm_state == VmState.ACTIVE for i in insts)

        poll(evacuated, 60, "the instances ACTIVE on compute-2")
        rec = next(r for r in recoveries_db.recoveries(engine) if r.host == "compute-1")
        # The monitor records each instance's arrival on its next pass.
        poll(lambda: recoveries_db.recovery_get(engine, rec.id).phase == Phase.EVACUATED, 30,
             "the recovery to record the evacuations")
        kinds = [e.kind for e in recoveries_db.events(engine, rec.id)]
        for kind in ("detected", "disabled", "fenced", "forced_down"):
            assert kinds.count(kind) == 1, kinds
        code, out, _ = vigil("recovery", "show", str(rec.id))
        assert code == 0 and "fenced" in out and "instance_evacuated" in out

        code, out, _ = vigil("host", "revive", "compute-1")
        assert code == 0 and "powered on" in out
        poll(lambda: recoveries_db.recovery_get(engine, rec.id).phase == Phase.COMPLETED, 60,
             "the recovery to complete")
        svc = services_db.service_get_by_host_binary(engine, "compute-1", "vigil-compute")
        assert not svc.disabled and not svc.forced_down
        poll(lambda: states()["compute-1"] == "up", 30, "compute-1 up again")
        assert evacuated()  # nothing moved back, nothing ran twice
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        lines.close()
    assert code == 0
