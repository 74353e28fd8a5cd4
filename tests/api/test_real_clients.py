"""The real OpenStack clients against a real ``vigil api`` process.

What they need: keystoneauth's ``admin_token`` plugin uses the endpoint as given, without
following the version document's links, so the endpoint must be the compute root
``http://HOST:PORT/v2.1`` (what a Nova catalog entry holds), not the server root.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest
import sqlalchemy as sa

from tests.api.conftest import make_conf, write_tokens
from vigil import launch, names
from vigil.db import services as services_db
from vigil.objects.services import ServiceRecord

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    root: str
    compute: str
    token: str
    computes: list[ServiceRecord]
    conductor: ServiceRecord
    conf_path: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("real")
    port = free_port()
    tokens = write_tokens(tmp / "tokens.json")
    conf, path = make_conf(tmp, {"api": {"port": port, "token_file": str(tokens)}})
    engine = launch.engine_from(conf, sync=True)
    computes = [services_db.service_get_or_create(engine, f"compute{i}", names.COMPUTE_BINARY,
                                                  names.COMPUTE_TOPIC)[0]
                for i in (1, 2, 3, 4)]
    conductor = services_db.service_get_or_create(engine, "compute1", names.CONDUCTOR_BINARY,
                                                  names.CONDUCTOR_TOPIC)[0]
    # A Vigil service Nova has no counterpart for: hidden from os-services.
    services_db.service_get_or_create(engine, "compute1", "vigil-watcher", "watcher")
    engine.dispose()
    log = (tmp / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file", str(path),
                             "api"], stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    # Generous: on a loaded 2-CPU machine importing the stack alone can take many seconds.
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert proc.poll() is None, (tmp / "api.log").read_text()
        try:
            if httpx.get(f"{root}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"vigil api did not start in {START_TIMEOUT} s"
        time.sleep(0.1)
    yield Server(root, f"{root}/v2.1", "admin-token", computes, conductor, path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    log.close()


def sdk(server: Server) -> openstack.connection.Connection:
    return openstack.connect(auth_type="admin_token",
                             auth={"endpoint": server.compute, "token": server.token},
                             load_yaml_config=False, load_envvars=False)


def test_openstacksdk(server: Server) -> None:
    conn = sdk(server)
    services = {(s.host, s.binary): s for s in conn.compute.services()}
    assert set(services) >= {("compute1", "nova-compute"), ("compute2", "nova-compute"),
                             ("compute1", "nova-conductor")}
    c1 = services[("compute1", "nova-compute")]
    assert c1.id == server.computes[0].uuid  # the SDK negotiated >= 2.53
    assert c1.availability_zone == "nova" and c1.state in ("up", "down")

    s = conn.compute.disable_service(c1, disabled_reason="maintenance")
    assert s.status == "disabled" and s.disabled_reason == "maintenance"
    s = conn.compute.enable_service(c1)
    assert s.status == "enabled" and s.disabled_reason is None
    s = conn.compute.update_service_forced_down(c1, forced=True)
    assert s.is_forced_down is True and s.state == "down"
    s = conn.compute.update_service_forced_down(c1, forced=False)
    assert s.is_forced_down is False

    small = conn.compute.find_flavor("m1.small", ignore_missing=False)
    assert small.vcpus >= 1 and small.ram > 0 and small.is_public
    made = conn.compute.create_flavor(name="sdk.flavor", ram=1024, vcpus=2, disk=10)
    assert (made.name, made.vcpus, made.ram) == ("sdk.flavor", 2, 1024)
    conn.compute.delete_flavor(made, ignore_missing=False)
    assert conn.compute.find_flavor("sdk.flavor") is None

    c3 = services[("compute3", "nova-compute")]
    conn.compute.delete_service(c3)
    left = {(s.host, s.binary) for s in conn.compute.services()}
    assert ("compute3", "nova-compute") not in left
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.delete_service(c3, ignore_missing=False)
    with pytest.raises(openstack.exceptions.BadRequestException,
                       match="Only nova-compute services can be updated"):
        conn.compute.disable_service(services[("compute1", "nova-conductor")])


def test_openstacksdk_rejects_a_bad_token(server: Server) -> None:
    conn = openstack.connect(auth_type="admin_token",
                             auth={"endpoint": server.compute, "token": "wrong"},
                             load_yaml_config=False, load_envvars=False)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.compute.services())
    assert err.value.status_code == 401


def osc(server: Server, *args: str, version: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    cmd = [str(VENV_BIN / "openstack"), "--os-endpoint", server.compute,
           "--os-token", server.token]
    if version:
        cmd += ["--os-compute-api-version", version]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def test_openstack_cli(server: Server) -> None:
    rows = json.loads(osc(server, "compute", "service", "list", "--long", "-f", "json"))
    by_host = {(r["Host"], r["Binary"]): r for r in rows}
    assert by_host[("compute2", "nova-compute")]["ID"] == server.computes[1].uuid
    assert by_host[("compute2", "nova-compute")]["Zone"] == "nova"

    osc(server, "compute", "service", "set", "--disable", "--disable-reason", "rack move",
        "compute2", "nova-compute")
    rows = json.loads(osc(server, "compute", "service", "list", "--long", "-f", "json",
                          "--host", "compute2"))
    assert [(r["Status"], r["Disabled Reason"]) for r in rows] == [("disabled", "rack move")]

    # An old microversion goes through the action URLs (PUT /os-services/enable) and ids.
    osc(server, "compute", "service", "set", "--enable", "compute2", "nova-compute",
        version="2.10")
    rows = json.loads(osc(server, "compute", "service", "list", "-f", "json", "--host",
                          "compute2", version="2.10"))
    assert [(r["ID"], r["Status"]) for r in rows] == [(server.computes[1].id, "enabled")]

    # Flavors and capacity, as an operator looks them up before a boot.
    flavors = json.loads(osc(server, "flavor", "list", "-f", "json"))
    assert {"m1.tiny", "m1.small"} <= {f["Name"] for f in flavors}
    # (`flavor create` needs Keystone v3 in OSC, whatever the flavor: see the SDK test.)
    stats = json.loads(osc(server, "hypervisor", "stats", "show", "-f", "json",
                           version="2.79"))
    assert {"count", "vcpus", "memory_mb", "running_vms"} <= set(stats)


def vigil(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from vigil.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_vigil_cli_same_output_via_api_or_database(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OS_ENDPOINT", raising=False)
    monkeypatch.delenv("OS_TOKEN", raising=False)
    conf = ["--config-file", str(server.conf_path)]
    remote = ["--os-endpoint", server.root, "--os-token", server.token]
    for fmt in ("table", "json"):
        direct = vigil(capsys, *conf, "service", "list", "--format", fmt)
        via_api = vigil(capsys, *conf, "service", "list", "--format", fmt, *remote)
        assert direct[0] == via_api[0] == 0
        assert direct[1] == via_api[1]
        assert "vigil-conductor" in direct[1]

    code, out, _ = vigil(capsys, *conf, "service", "set", "compute1", "vigil-compute",
                         "--disable", "--reason", "via api", "--format", "json", *remote)
    assert code == 0
    (row,) = json.loads(out)
    assert row["status"] == "disabled" and row["disabled_reason"] == "via api"
    direct = vigil(capsys, *conf, "service", "list", "--host", "compute1", "--binary",
                   "vigil-compute", "--format", "json")
    assert json.loads(direct[1]) == [row]

    # the environment works as well as the flags; the endpoint may include /v2.1
    monkeypatch.setenv("OS_ENDPOINT", server.compute)
    monkeypatch.setenv("OS_TOKEN", server.token)
    code, out, _ = vigil(capsys, *conf, "service", "set", "compute1", "vigil-compute",
                         "--enable", "--format", "json")
    assert code == 0 and json.loads(out)[0]["status"] == "enabled"

    # errors map to the same exit codes and one-line messages
    code, _, err = vigil(capsys, *conf, "service", "set", "nohost", "vigil-compute",
                         "--enable")
    assert code == 1 and "vigil: error:" in err
    code, _, err = vigil(capsys, *conf, "service", "delete", "not-an-id")
    assert code == 2
    monkeypatch.setenv("OS_TOKEN", "wrong")
    code, _, err = vigil(capsys, *conf, "service", "list")
    assert code == 1 and "401" in err
    monkeypatch.delenv("OS_TOKEN")
    code, _, err = vigil(capsys, *conf, "service", "list")
    assert code == 2 and "needs a token" in err

    code, out, _ = vigil(capsys, *conf, "service", "delete", str(server.computes[1].id),
                         *remote)
    assert code == 0
    assert out.strip() == f"deleted service {server.computes[1].id} (vigil-compute on compute2)"
    code, _, err = vigil(capsys, *conf, "service", "delete", server.computes[1].uuid, *remote)
    assert code == 1 and "not found" in err


def test_delete_guard_is_wired_in_vigil_api(server: Server) -> None:
    """``vigil api`` refuses to delete a compute service that still hosts an instance (409,
    Nova's body), through the real SDK; the service stays."""
    from vigil.conf import load
    from vigil.db.compute import flavors as flavors_db
    from vigil.db.compute import instances as instances_db
    from vigil.db.engine import make_engine

    conf = load(["--config-file", str(server.conf_path)], default_files=[])
    engine = make_engine(conf.database.connection)
    flavor = flavors_db.flavor_create(engine, name="guard-test", vcpus=1, memory_mb=64, root_gb=1)
    inst = instances_db.instance_create(engine, name="pinned", flavor=flavor)
    with engine.begin() as c:  # placed by hand: the scheduler is not what is under test
        c.execute(sa.text("UPDATE instances SET host = 'compute1' WHERE uuid = :u"),
                  {"u": inst.uuid})
    assert instances_db.instance_count_on_host(engine, "compute1") == 1
    engine.dispose()
    conn = sdk(server)
    (c1,) = [s for s in conn.compute.services() if (s.host, s.binary) ==
             ("compute1", "nova-compute")]
    with pytest.raises(openstack.exceptions.ConflictException, match="still hosts"):
        conn.compute.delete_service(c1, ignore_missing=False)
    r = httpx.delete(f"{server.compute}/os-services/{c1.id}",
                     headers={"X-Auth-Token": server.token,
                              "OpenStack-API-Version": "compute 2.53"})
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["code"] == 409
    assert c1.id in {s.id for s in conn.compute.services()}


# ---- Nova's binary names (issue 12): unchanged client calls that name nova-compute ----------
def test_openstacksdk_finds_services_by_nova_names(server: Server) -> None:
    conn = sdk(server)
    computes = list(conn.compute.services(binary="nova-compute"))
    assert {s.binary for s in computes} == {"nova-compute"}
    assert "compute4" in {s.host for s in computes}
    everything = {s.binary for s in conn.compute.services()}
    assert everything <= {"nova-compute", "nova-conductor"}  # vigil-watcher stays hidden
    assert list(conn.compute.services(binary="vigil-compute")) == []
    (c4,) = conn.compute.services(host="compute4", binary="nova-compute")
    s = conn.compute.disable_service(c4, disabled_reason="sdk by name")
    assert (s.binary, s.status) == ("nova-compute", "disabled")
    conn.compute.enable_service(c4)


def test_openstack_cli_by_nova_names(server: Server) -> None:
    rows = json.loads(osc(server, "compute", "service", "list", "--service", "nova-compute",
                          "-f", "json"))
    assert rows and {r["Binary"] for r in rows} == {"nova-compute"}
    for version in (None, "2.10", "2.11"):  # by UUID (2.53+) and through the action URLs
        osc(server, "compute", "service", "set", "compute4", "nova-compute", "--disable",
            "--disable-reason", f"osc {version}", *(["--os-compute-api-version", version]
                                                   if version else []))
        rows = json.loads(osc(server, "compute", "service", "list", "--long", "-f", "json",
                              "--host", "compute4", "--service", "nova-compute"))
        assert [(r["Status"], r["Disabled Reason"]) for r in rows] == [
            ("disabled", f"osc {version}")]
        osc(server, "compute", "service", "set", "compute4", "nova-compute", "--enable",
            *(["--os-compute-api-version", version] if version else []))
    osc(server, "compute", "service", "set", "compute4", "nova-compute", "--down",
        version="2.11")
    rows = json.loads(osc(server, "compute", "service", "list", "--long", "-f", "json",
                          "--host", "compute4", version="2.11"))
    assert [(r["State"], r["Forced Down"]) for r in rows] == [("down", True)]
    osc(server, "compute", "service", "set", "compute4", "nova-compute", "--up",
        version="2.11")


def test_novaclient_by_nova_names(server: Server) -> None:
    from keystoneauth1 import session, token_endpoint
    from novaclient import client as nova_client

    def nova(version: str) -> Any:
        auth = token_endpoint.Token(server.compute, server.token)
        return nova_client.Client(version, session=session.Session(auth=auth))

    old = nova("2.1")
    found = old.services.list(binary="nova-compute")
    assert found and {s.binary for s in found} == {"nova-compute"}
    assert old.services.list(host="compute4", binary="nova-compute")[0].host == "compute4"
    s = old.services.disable_log_reason("compute4", "nova-compute", "novaclient")
    assert (s.binary, s.status, s.disabled_reason) == ("nova-compute", "disabled", "novaclient")
    assert old.services.enable("compute4", "nova-compute").status == "enabled"
    assert nova("2.11").services.force_down("compute4", "nova-compute", False).forced_down \
        is False

    new = nova("2.53")
    (c4,) = new.services.list(host="compute4", binary="nova-compute")
    assert c4.id == server.computes[3].uuid
    s = new.services.disable(c4.id)
    assert (s.binary, s.status) == ("nova-compute", "disabled")
    assert new.services.enable(c4.id).status == "enabled"


class _StaticAuth:
    """Just enough of tempest's AuthProvider for a RestClient: a fixed token and endpoint
    (tempest's own providers need a Keystone catalog with a compute entry)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint, self.token = endpoint, token

    def auth_request(self, method: str, url: str, headers: dict[str, str] | None = None,
                     body: Any = None, filters: Any = None) -> tuple[str, dict[str, str], Any]:
        return (f"{self.endpoint}/{url}", {**(headers or {}), "X-Auth-Token": self.token},
                body)

    def base_url(self, filters: Any, auth_data: Any = None) -> str:
        return self.endpoint

    def get_token(self) -> str:
        return self.token


def test_tempest_services_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """tempest's ServicesClient validates every answer against Nova's own response schemas
    (jsonschema), at each microversion it is used with."""
    from tempest.lib.services.compute import base_compute_client
    from tempest.lib.services.compute.services_client import ServicesClient

    client = ServicesClient(_StaticAuth(server.compute, server.token), "compute", "RegionOne")
    for version in ("2.1", "2.11", "2.53", "2.79"):
        monkeypatch.setattr(base_compute_client, "COMPUTE_MICROVERSION", version)
        body = client.list_services(binary="nova-compute")
        assert body["services"] and {s["binary"] for s in body["services"]} == {"nova-compute"}
    monkeypatch.setattr(base_compute_client, "COMPUTE_MICROVERSION", "2.1")
    body = client.disable_service(host="compute4", binary="nova-compute")
    assert body["service"] == {"host": "compute4", "binary": "nova-compute",
                               "status": "disabled"}
    client.enable_service(host="compute4", binary="nova-compute")
    monkeypatch.setattr(base_compute_client, "COMPUTE_MICROVERSION", "2.53")
    body = client.update_service(server.computes[3].uuid, status="disabled",
                                 disabled_reason="tempest")
    assert (body["service"]["binary"], body["service"]["status"]) == ("nova-compute",
                                                                      "disabled")
    client.update_service(server.computes[3].uuid, status="enabled")


def test_legacy_action_urls_speak_nova_names(server: Server) -> None:
    headers = {"X-Auth-Token": server.token}
    r = httpx.put(f"{server.compute}/os-services/disable", headers=headers,
                  json={"host": "compute4", "binary": "nova-compute"})
    assert r.status_code == 200
    assert r.json() == {"service": {"host": "compute4", "binary": "nova-compute",
                                    "status": "disabled"}}
    r = httpx.put(f"{server.compute}/os-services/enable", headers=headers,
                  json={"host": "compute4", "binary": "nova-compute"})
    assert r.json()["service"]["status"] == "enabled"
    # Vigil's own name is not Nova's: the compatible API does not know it.
    r = httpx.put(f"{server.compute}/os-services/disable", headers=headers,
                  json={"host": "compute4", "binary": "vigil-compute"})
    assert r.status_code == 404
    assert "binary vigil-compute could not be found" in r.json()["itemNotFound"]["message"]
    r = httpx.put(f"{server.compute}/os-services/disable", headers=headers,
                  json={"host": "compute1", "binary": "nova-conductor"})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == (
        "Updating a nova-conductor service is not supported. Only nova-compute services can "
        "be updated.")
