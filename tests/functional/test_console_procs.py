"""The serial console with real processes: ``vigil up`` (process driver, its serial proxy)
and the instance's own process. An operator gets a console URL with ``openstack console url
show --serial`` (python-openstackclient, unchanged) and with the API, types into the console
over a real WebSocket, and reads the instance's answer."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.functional.procs import wait_for
from tests.functional.upproc import Up, vigil_up

pytestmark = pytest.mark.slow

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


def read_until(ws: ClientConnection, needle: bytes, timeout: float = 15.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} on the console; saw {seen!r}"
        with contextlib.suppress(TimeoutError):
            message = ws.recv(timeout=left)
            seen += message if isinstance(message, bytes) else message.encode()
    return seen


def osc(up: Up, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    done = subprocess.run([OPENSTACK, "--os-endpoint", f"{up.url}/v2.1", "--os-token",
                           up.token, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def boot_active(up: Up, name: str) -> str:
    r = up.api("POST", "/v2.1/servers", json={"server": {"name": name, "flavorRef": "1"}})
    assert r.status_code == 202, r.text
    uuid: str = r.json()["server"]["id"]
    wait_for(lambda: up.api("GET", f"/v2.1/servers/{uuid}").json()["server"]["status"]
             == "ACTIVE", 60, f"{name} ACTIVE")
    return uuid


def test_console_through_openstack_cli_and_the_proxy(tmp_path: Path) -> None:
    with vigil_up(tmp_path) as up:
        uuid = boot_active(up, "vm-console")
        shown = json.loads(osc(up, "console", "url", "show", "--serial", uuid, "-f", "json"))
        url = shown["url"]
        assert shown["type"] == "serial" and url.startswith(up.proxy_url.replace("http",
                                                                                 "ws"))
        with connect(url, open_timeout=15) as ws:
            ws.send(b"hello from the operator\n")
            read_until(ws, b"echo: hello from the operator")
        with pytest.raises(InvalidStatus) as info, connect(url, open_timeout=15):
            pass
        assert info.value.response.status_code == 403  # one time only

        # The API's own answer, and another instance's console stays closed to it.
        other = boot_active(up, "vm-other")
        r = up.api("POST", f"/v2.1/servers/{uuid}/remote-consoles",
                   headers={"OpenStack-API-Version": "compute 2.6"},
                   json={"remote_console": {"protocol": "serial", "type": "serial"}})
        assert r.status_code == 200, r.text
        with pytest.raises(InvalidStatus), connect(r.json()["remote_console"]["url"]
                                                   + f"&instance={other}", open_timeout=15):
            pass

        # Both daemons are services: shown by Vigil, hidden from os-services as in Nova.
        def vigil_binaries() -> set[str]:
            r = up.api("GET", "/v2.1/vigil/services")
            return {s["binary"] for s in r.json()["services"] if s["state"] == "up"}

        wait_for(lambda: {"vigil-metadata", "vigil-serialproxy"} <= vigil_binaries(), 30,
                 "the metadata and console services up")
        nova = {s["binary"] for s in up.api("GET", "/v2.1/os-services").json()["services"]}
        assert "nova-compute" in nova  # os-services speaks Nova's binary names
        assert not [b for b in nova if "metadata" in b or "serialproxy" in b], nova
