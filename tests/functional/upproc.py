"""``vigil up`` as a real process, with the ``process`` virt driver: instances are real
processes with a metadata identity and a console (the metadata and console tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import make_conf
from tests.api.test_real_clients import START_TIMEOUT, free_port
from tests.api.test_up import Lines

DEMO: dict[str, dict[str, Any]] = {
    "DEFAULT": {"report_interval": "0.5", "service_down_time": "2.5"},
    "conductor": {"coalesce_interval": "0.1", "probe_interval": "0.2"},
    "compute": {"instance_sync_interval": "1", "update_resources_interval": "1"},
    "scheduler": {"pending_poll_interval": "0.5"},
}


@dataclass
class Up:
    proc: subprocess.Popen[str]
    conf_path: Path
    url: str
    token: str
    metadata_url: str
    proxy_url: str
    instances: Path
    state: Path
    lines: Lines
    stderr: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def dump(self) -> str:
        return "\n".join(self.lines.lines[-80:]) + "\n" + self.stderr.read_text()[-6000:]


@contextlib.contextmanager
def vigil_up(tmp_path: Path, computes: int = 1,
             sections: dict[str, dict[str, Any]] | None = None) -> Iterator[Up]:
    """``vigil up --computes N`` on free ports with process-driver hosts; killed at the end
    (its process group: the instances too)."""
    conf = {k: dict(v) for k, v in DEMO.items()}
    for k, v in (sections or {}).items():
        conf.setdefault(k, {}).update(v)
    instances = tmp_path / "instances"
    conf["compute"].update({"compute_driver": "process", "instances_path": str(instances)})
    conf["DEFAULT"]["metadata_listen_port"] = str(free_port())
    proxy_port = free_port()
    conf.setdefault("serial_console", {}).update(
        {"serialproxy_port": str(proxy_port), "base_url": f"ws://127.0.0.1:{proxy_port}/"})
    conf.setdefault("api", {})["port"] = str(free_port())
    _, path = make_conf(tmp_path, conf)
    stderr = tmp_path / "up.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                                 str(path), "up", "--computes", str(computes)],
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
    lines = Lines(proc)
    up = None
    try:
        url = lines.wait_for(r"Vigil API: (\S+)", START_TIMEOUT).group(1)
        token = lines.wait_for(r"Admin token \(in \S+\): (\S+)", 30).group(1)
        meta = lines.wait_for(r"Metadata API: (\S+)", 30).group(1)
        proxy = lines.wait_for(r"Serial console proxy: (\S+)", 30).group(1)
        up = Up(proc, path, url, token, meta, proxy, instances, tmp_path / "state", lines, stderr)
        yield up
    except BaseException:
        print(up.dump() if up is not None else "\n".join(lines.lines) + stderr.read_text())
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its instances, if any outlived it
        lines.close()
