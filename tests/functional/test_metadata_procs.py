"""The metadata API with real processes: ``vigil up`` with the ``process`` driver boots an
instance, and the instance itself (the built-in workload, a separate process) reads its
metadata through the signed path, logs it on its console and keeps its user data byte for
byte. The test trusts what the instance wrote, not the API's word."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.functional.procs import wait_for
from tests.functional.upproc import vigil_up
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
