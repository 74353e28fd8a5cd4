"""The metadata API over a real database: identity, documents, user data and the cache.

Servers are created through the compute API (the fields and Nova's 400/403 answers), then read
back through :class:`vigil.metadata.app.MetadataApp` as an instance would.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, Api
from tests.functional.procs import wait_for
from vigil.db.compute import instances as instances_db
from vigil.metadata import identity
from vigil.metadata.daemon import metadata_app

SECRET = "s3cret"


def boot(api: Api, **server: Any) -> Any:
    body = {"server": {"name": "vm", "flavorRef": "1", **server}}
    return api.client.post("/v2.1/servers", json=body, headers=ADMIN)


@pytest.fixture
def meta(api: Api) -> TestClient:
    api.conf.set_override("metadata_proxy_shared_secret", SECRET, group="neutron")
    return TestClient(metadata_app(api.conf, api.engine))


def signed(uuid: str, secret: str = SECRET) -> dict[str, str]:
    return {"X-Instance-ID": uuid, "X-Instance-ID-Signature": identity.sign(secret, uuid)}


BINARY = bytes(range(256)) * 3 + b"\x00\xff#!/bin/sh\n"


def test_create_accepts_user_data_and_metadata_served_back(api: Api, meta: TestClient) -> None:
    r = boot(api, name="Web Server_1", user_data=base64.b64encode(BINARY).decode(),
             metadata={"role": "web", "tier:x": "1"}, availability_zone="az1")
    assert r.status_code == 202, r.text
    uuid = r.json()["server"]["id"]
    doc = meta.get("/openstack/latest/meta_data.json", headers=signed(uuid))
    assert doc.status_code == 200 and doc.headers["content-type"] == "application/json"
    body = doc.json()
    assert {k: body[k] for k in ("uuid", "name", "hostname", "availability_zone", "project_id",
                                 "launch_index", "meta", "public_keys")} == {
        "uuid": uuid, "name": "Web Server_1", "hostname": "web-server-1.novalocal",
        "availability_zone": "az1", "project_id": "p1", "launch_index": 0,
        "meta": {"role": "web", "tier:x": "1"}, "public_keys": {}}
    assert len(base64.b64decode(body["random_seed"])) == 512
    user_data = meta.get("/openstack/latest/user_data", headers=signed(uuid))
    assert user_data.status_code == 200 and user_data.content == BINARY
    assert meta.get("/latest/user-data", headers=signed(uuid)).content == BINARY
    assert meta.get("/openstack/latest/vendor_data2.json", headers=signed(uuid)).json() == {}
    listing = meta.get("/openstack/latest", headers=signed(uuid)).text.splitlines()
    assert listing == ["meta_data.json", "user_data", "vendor_data.json", "network_data.json",
                       "vendor_data2.json"]
    # An older version has the fields of its time only.
    old = meta.get("/openstack/2012-08-10/meta_data.json", headers=signed(uuid)).json()
    assert "project_id" not in old and "random_seed" not in old and old["uuid"] == uuid


def test_ec2_tree(api: Api, meta: TestClient) -> None:
    uuid = boot(api, name="db").json()["server"]["id"]
    inst = instances_db.instance_get(api.engine, uuid)
    h = signed(uuid)
    keys = meta.get("/latest/meta-data/", headers=h).text.splitlines()
    assert keys == ["ami-launch-index", "hostname", "instance-action", "instance-id",
                    "instance-type", "local-hostname", "placement/"]
    assert meta.get("/latest/meta-data/instance-id", headers=h).text == f"i-{inst.id:08x}"
    assert meta.get("/latest/meta-data/instance-type", headers=h).text == "m1.tiny"
    assert meta.get("/2009-04-04/meta-data/hostname", headers=h).text == "db.novalocal"
    assert meta.get("/latest/meta-data/placement/availability-zone", headers=h).status_code \
        == 200
    assert meta.get("/latest", headers=h).text.splitlines() == ["meta-data/"]  # no user data
    assert meta.get("/latest/user-data", headers=h).status_code == 404
    assert meta.get("/latest/meta-data/nope", headers=h).status_code == 404
    assert meta.get("/1999-01-01/meta-data/", headers=h).status_code == 404


def test_versions_need_no_identity_but_everything_else_does(api: Api,
                                                            meta: TestClient) -> None:
    uuid = boot(api, user_data=base64.b64encode(b"secret stuff").decode()).json()["server"]["id"]
    other = boot(api, name="other").json()["server"]["id"]
    assert meta.get("/").text.splitlines()[-1] == "latest"
    assert meta.get("/openstack").text.splitlines()[0] == "2012-08-10"
    path = "/openstack/latest/user_data"
    refused = [
        {},                                                       # no identity at all
        {"X-Instance-ID": uuid},                                  # no signature
        {"X-Instance-ID-Signature": identity.sign(SECRET, uuid)},  # no id
        {"X-Instance-ID": uuid, "X-Instance-ID-Signature": "0" * 64},  # wrong signature
        {"X-Instance-ID": uuid, "X-Instance-ID-Signature": identity.sign("guess", uuid)},
        # another instance's signature does not open this one
        {"X-Instance-ID": uuid, "X-Instance-ID-Signature": identity.sign(SECRET, other)},
    ]
    for headers in refused:
        r = meta.get(path, headers=headers)
        assert r.status_code == 403, (headers, r.status_code)
        assert b"secret stuff" not in r.content
    # Two X-Instance-ID headers: which one would be meant? Refused too.
    r = meta.get(path, headers=[("X-Instance-ID", other), ("X-Instance-ID", uuid),
                                ("X-Instance-ID-Signature", identity.sign(SECRET, uuid))])
    assert r.status_code == 403
    assert meta.get(path, headers=signed(uuid)).content == b"secret stuff"
    # Rightly signed, but no such instance: 404, and no user data for one without any.
    ghost = "6d1f2b1c-0000-4000-8000-000000000000"
    assert meta.get(path, headers=signed(ghost)).status_code == 404
    assert meta.get(path, headers=signed(other)).status_code == 404
    assert meta.post("/openstack/latest/meta_data.json", headers=signed(uuid)).status_code \
        == 405
    head = meta.head("/openstack/latest/meta_data.json", headers=signed(uuid))
    assert head.status_code == 200 and head.content == b""


def test_empty_secret_refuses_to_start(api: Api) -> None:
    from vigil.errors import ConfigError

    with pytest.raises(ConfigError, match="metadata_proxy_shared_secret"):
        metadata_app(api.conf, api.engine)


def test_cache_serves_a_change_at_once_and_forgets_the_deleted(api: Api,
                                                              meta: TestClient) -> None:
    uuid = boot(api, name="before").json()["server"]["id"]
    app = meta.app
    path = "/openstack/latest/meta_data.json"
    first = meta.get(path, headers=signed(uuid)).json()
    assert meta.get(path, headers=signed(uuid)).json() == first  # same seed: from the cache
    builds = app.cache.builds  # type: ignore[attr-defined]
    for _ in range(20):
        meta.get(path, headers=signed(uuid))
    assert app.cache.builds == builds  # type: ignore[attr-defined]
    # A change made by another process (here: straight in the database) is served within
    # the cache's poll interval, and so is a deletion.
    assert instances_db.instance_update(api.engine, uuid, {"name": "after"}) is not None
    wait_for(lambda: meta.get(path, headers=signed(uuid)).json()["name"] == "after", 5,
             "the new name", interval=0.05)
    assert meta.get(path, headers=signed(uuid)).json()["name"] == "after"
    assert api.client.delete(f"/v2.1/servers/{uuid}", headers=ADMIN).status_code == 204
    wait_for(lambda: meta.get(path, headers=signed(uuid)).status_code == 404, 5,
             "the deletion", interval=0.05)


BAD_CREATES = [
    ({"user_data": "not base64!"}, 400, "is not a 'base64'"),
    ({"user_data": "A" * 65536}, 400, "is too long"),
    ({"user_data": 12}, 400, "is not of type 'string'"),
    ({"metadata": {"a/b": "x"}}, 400, "does not match any of the regexes"),
    ({"metadata": {"k": 1}}, 400, "is not of type 'string'"),
    ({"metadata": {"k": "v" * 256}}, 400, "is too long"),
    ({"metadata": ["k"]}, 400, "is not of type 'object'"),
    ({"metadata": {f"k{i}": "v" for i in range(129)}}, 403,
     "Maximum number of metadata items exceeds 128"),
]


@pytest.mark.parametrize(("server", "code", "message"), BAD_CREATES)
def test_create_refuses_bad_user_data_and_metadata(api: Api, server: dict[str, Any], code: int,
                                                   message: str) -> None:
    r = boot(api, **server)
    assert r.status_code == code, r.text
    fault = next(iter(r.json().values()))
    assert fault["code"] == code and message in fault["message"], fault
    servers = api.client.get("/v2.1/servers", headers=ADMIN).json()["servers"]
    assert servers == []


def test_largest_user_data_round_trips(api: Api, meta: TestClient) -> None:
    raw = bytes((i * 7) % 256 for i in range(49149))  # 65532 characters of base64
    text = base64.b64encode(raw).decode()
    assert len(text) <= 65535
    uuid = boot(api, user_data=text, metadata={f"k{i}": "v" for i in range(128)}).json()[
        "server"]["id"]
    assert meta.get("/openstack/latest/user_data", headers=signed(uuid)).content == raw
    doc = json.loads(meta.get("/openstack/latest/meta_data.json", headers=signed(uuid)).content)
    assert len(doc["meta"]) == 128


def test_cli_create_takes_user_data_and_properties(api: Api, tmp_path: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.cli.main import main

    data = tmp_path / "boot.bin"
    data.write_bytes(BINARY)
    code = main(["--config-file", str(api.conf_path), "server", "create", "--flavor",
                 "m1.tiny", "--name", "cli-vm", "--user-data", str(data), "--property",
                 "role=web", "--property", "empty=", "--format", "json"])
    assert code == 0
    uuid = json.loads(capsys.readouterr().out)["id"]
    record = instances_db.instance_data(api.engine, uuid)
    assert base64.b64decode(record.user_data or "") == BINARY
    assert record.meta == {"role": "web", "empty": ""}
    assert main(["--config-file", str(api.conf_path), "server", "create", "--flavor",
                 "m1.tiny", "--name", "x", "--property", "novalue"]) == 2
    assert main(["--config-file", str(api.conf_path), "server", "create", "--flavor",
                 "m1.tiny", "--name", "x", "--user-data", str(tmp_path / "missing")]) == 2
