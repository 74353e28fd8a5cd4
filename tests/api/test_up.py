"""``vigil up`` serves the API: it prints the URL and an admin token that work at once."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import make_conf
from tests.api.test_real_clients import free_port

pytestmark = pytest.mark.slow


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    """Lines of ``proc``'s stdout until one matches, within ``timeout`` seconds."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m
    raise AssertionError(f"no line matched {pattern!r} in {timeout}s: {seen}")


def test_up_prints_a_working_url_and_admin_token(tmp_path: Path) -> None:
    port = free_port()
    _, path = make_conf(tmp_path, {"DEFAULT": {"report_interval": "0.2",
                                               "service_down_time": "2"},
                                   "api": {"port": port}})
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                             str(path), "up", "--computes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = read_until(proc, r"Vigil API: (\S+)", 60).group(1)
        token = read_until(proc, r"Admin token \(in (\S+)\): (\S+)", 10).group(2)
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / "state" / "api-tokens.json").exists()
        assert httpx.get(f"{url}/v2.1/os-services").status_code == 401
        deadline = time.monotonic() + 20
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
