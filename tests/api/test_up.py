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
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

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
    try:
        out = Lines(proc)
        url = out.wait_for(r"Vigil API: (\S+)", START_TIMEOUT).group(1)
        token = out.wait_for(r"Admin token \(in (\S+)\): (\S+)", 30).group(2)
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / "state" / "api-tokens.json").exists()
        assert httpx.get(f"{url}/v2.1/os-services").status_code == 401
        deadline = time.monotonic() + 60
        while True:  # the simulated computes report through the conductor, then show up
            r = httpx.get(f"{url}/v2.1/os-services", headers={"X-Auth-Token": token},
                          params={"binary": "vigil-compute"})
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
    assert code == 0
