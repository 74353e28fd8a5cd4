"""The metadata API with real processes: ``vigil up`` with the ``process`` driver boots an
instance, and the instance itself (the built-in workload, a separate process) reads its
metadata through the signed path, logs it on its console and keeps its user data byte for
byte. The test trusts what the instance wrote, not the API's word."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_real_clients import free_port
from tests.functional.procs import Proc, wait_for
from tests.functional.upproc import vigil_up
from vigil import launch
from vigil.metadata import identity

pytestmark = pytest.mark.slow

USER_DATA = b"#!/bin/sh\necho hello\n" + bytes(range(256)) + b"\x00\r\n\xff"


def test_an_instance_reads_its_own_metadata(tmp_path: Path) -> None:
    secret = "functional-secret"
    with vigil_up(tmp_path, sections={"neutron": {"metadata_proxy_shared_secret": secret}}) \
            as up:
        r = up.api("POST", "/v2.1/servers", json={"server": {
            "name": "vm-meta", "flavorRef": "1", "metadata": {"role": "db"},
            "user_data": base64.b64encode(USER_DATA).decode()}})
        assert r.status_code == 202, r.text
        uuid = r.json()["server"]["id"]
        directory = up.instances / uuid
        # The instance wrote what it read: its user data, byte for byte ...
        wait_for(lambda: (directory / "user_data").exists(), 60, "the instance's user_data")
        assert (directory / "user_data").read_bytes() == USER_DATA
        # ... and logged who it is on its console.
        log = wait_for(lambda: "metadata: name=" in (text := (directory / "console.log")
                                                     .read_text()) and text, 10, "the log")
        assert f"metadata: name=vm-meta uuid={uuid} hostname=vm-meta.novalocal" in log
        assert 'meta={"role": "db"}' in log
        assert f"metadata: user_data {len(USER_DATA)} bytes" in log

        # From outside: the same path refuses a missing or wrong signature.
        url = f"{up.metadata_url}/openstack/latest/user_data"
        assert httpx.get(url, headers={"X-Instance-ID": uuid}).status_code == 403
        assert httpx.get(url).status_code == 403
        bad = {"X-Instance-ID": uuid, "X-Instance-ID-Signature": identity.sign("nope", uuid)}
        assert httpx.get(url, headers=bad).status_code == 403
        good = {"X-Instance-ID": uuid, "X-Instance-ID-Signature": identity.sign(secret, uuid)}
        assert httpx.get(url, headers=good).content == USER_DATA
        doc = json.loads(httpx.get(f"{up.metadata_url}/openstack/latest/meta_data.json",
                                   headers=good).content)
        assert doc["name"] == "vm-meta" and doc["uuid"] == uuid

        # The metadata API is a service like the others.
        def metadata_up() -> bool:
            r = up.api("GET", "/v2.1/vigil/services")
            return r.status_code == 200 and any(
                s.get("binary") == "vigil-metadata" and s.get("state") == "up"
                for s in r.json().get("services", []))

        wait_for(metadata_up, 30, "vigil-metadata up in the service list")


def test_the_daemons_register_serve_and_stop_gracefully(tmp_path: Path, make_conf: Any,
                                                        rabbit_vhost_url: str,
                                                        exchange: str) -> None:
    """``vigil metadata`` and ``vigil serialproxy`` as their own processes beside a conductor:
    they serve, register and report; SIGTERM stops them with status 0 and they leave their
    group (down at once, not after service_down_time)."""
    meta_port, proxy_port = free_port(), free_port()
    conf, path = make_conf({
        "DEFAULT": {"transport_url": rabbit_vhost_url, "control_exchange": exchange,
                    "report_interval": 0.5, "service_down_time": 2,
                    "metadata_listen_port": meta_port},
        "database": {"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.2},
        "neutron": {"metadata_proxy_shared_secret": "x"},
        "serial_console": {"serialproxy_port": proxy_port},
    })
    logs = tmp_path / "logs"
    logs.mkdir()
    sync = Proc("sync", ["--config-file", str(path), "db", "sync"], logs)
    assert sync.popen.wait(60) == 0, sync.log()
    sync.close()
    procs = {name: Proc(name, ["--config-file", str(path), name], logs)
             for name in ("conductor", "metadata", "serialproxy")}
    try:
        engine = launch.engine_from(conf)
        group = launch.group_from(conf, engine)
        registry = launch.registry_over(conf, engine, group)

        def states() -> dict[str, str]:
            try:
                return {v.record.binary: v.state.value for v in registry.list()}
            except Exception:  # the conductor may not have made the tables yet
                return {}

        wait_for(lambda: states().get("vigil-metadata") == "up"
                 and states().get("vigil-serialproxy") == "up", 90, "both daemons up")
        assert httpx.get(f"http://127.0.0.1:{meta_port}/openstack").status_code == 200
        page = httpx.get(f"http://127.0.0.1:{proxy_port}/console.html")
        assert page.status_code == 200 and "xterm.js" in page.text
        for name in ("metadata", "serialproxy"):
            assert procs[name].terminate() == 0, procs[name].log()
            assert "received SIGTERM, stopping" in procs[name].log()
        left = {v.record.binary: v for v in registry.list()}
        for binary in ("vigil-metadata", "vigil-serialproxy"):
            assert left[binary].record.left_at is not None, binary
            assert left[binary].state.value == "down", binary
    except BaseException:
        for p in procs.values():
            print(f"==== {p.name}\n{p.log()[-3000:]}")
        raise
    finally:
        for p in procs.values():
            p.close()


def test_vigil_api_serves_the_metadata_api_too_when_enabled(tmp_path: Path,
                                                            make_conf: Any) -> None:
    """``enabled_apis = osapi_compute,metadata``: one ``vigil api`` process, both APIs (as
    nova-api); the old ``[api]`` spelling of the option is read too."""
    api_port, meta_port = free_port(), free_port()
    _, path = make_conf({
        "DEFAULT": {"metadata_listen_port": meta_port},
        "database": {"connection": f"sqlite:///{tmp_path}/vigil.sqlite"},
        "api": {"port": api_port, "auth_strategy": "noauth",
                "enabled_apis": "osapi_compute,metadata"},
        "neutron": {"metadata_proxy_shared_secret": "x"},
    })
    logs = tmp_path / "logs"
    logs.mkdir()
    sync = Proc("sync", ["--config-file", str(path), "db", "sync"], logs)
    assert sync.popen.wait(60) == 0, sync.log()
    proc = Proc("api", ["--config-file", str(path), "api"], logs)
    try:
        wait_for(lambda: "Vigil metadata API on" in proc.log(), 60, "both APIs")

        def get(url: str) -> int:
            try:
                return httpx.get(url).status_code
            except httpx.HTTPError:
                return 0

        wait_for(lambda: get(f"http://127.0.0.1:{api_port}/healthz") == 200, 30, "the API")
        assert get(f"http://127.0.0.1:{meta_port}/openstack") == 200
        assert get(f"http://127.0.0.1:{meta_port}/openstack/latest/meta_data.json") == 403
        assert proc.terminate() == 0
    except BaseException:
        print(proc.log())
        raise
    finally:
        proc.close()
        sync.close()
