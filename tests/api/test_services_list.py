"""GET /v2.1/os-services: exact keys and formats at each microversion, filters, query schema,
and the unknown state."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.api.conftest import ADMIN, Api, at
from vigil.db import services as services_db

BASE_KEYS = {"id", "binary", "host", "zone", "status", "state", "updated_at", "disabled_reason"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


@pytest.mark.parametrize(("version", "keys", "id_type"), [
    ("2.1", BASE_KEYS, int),
    ("2.10", BASE_KEYS, int),
    ("2.11", BASE_KEYS | {"forced_down"}, int),
    ("2.52", BASE_KEYS | {"forced_down"}, int),
    ("2.53", BASE_KEYS | {"forced_down"}, str),
    ("2.69", BASE_KEYS | {"forced_down"}, str),
    ("2.79", BASE_KEYS | {"forced_down"}, str),
])
def test_keys_per_version(api: Api, version: str, keys: set[str], id_type: type) -> None:
    r = api.client.get("/v2.1/os-services", headers=at(version))
    assert r.status_code == 200
    services = r.json()["services"]
    assert len(services) == 4
    for s in services:
        assert set(s) == keys
        assert type(s["id"]) is id_type
        assert s["state"] in ("up", "down")
        assert s["status"] in ("enabled", "disabled")
        assert TIME_RE.match(s["updated_at"])
    by_host = {(s["host"], s["binary"]): s for s in services}
    compute = by_host[("host1", "nova-compute")]
    assert compute["zone"] == "nova"
    assert by_host[("host1", "nova-conductor")]["zone"] == "internal"
    if id_type is str:
        assert compute["id"] == api.computes[0].uuid
        uuid.UUID(compute["id"])
    else:
        assert compute["id"] == api.computes[0].id


def test_values_follow_the_registry(api: Api) -> None:
    rec = api.computes[1]
    api.registry.update(rec, enabled=False, disabled_reason="maintenance", forced_down=True)
    r = api.client.get("/v2.1/os-services", params={"host": "host2"}, headers=at("2.11"))
    (s,) = r.json()["services"]
    assert s["status"] == "disabled" and s["disabled_reason"] == "maintenance"
    assert s["forced_down"] is True and s["state"] == "down"


@pytest.mark.parametrize(("params", "expected"), [
    ({"host": "host1"}, {("host1", "nova-compute"), ("host1", "nova-conductor")}),
    ({"binary": "nova-conductor"}, {("host1", "nova-conductor")}),
    ({"host": "host1", "binary": "nova-compute"}, {("host1", "nova-compute")}),
    ({"host": "host"}, set()),  # exact match, not prefix
    ({"host": ""}, None),  # empty means no filter, as in Nova
    ({"host": ["host9", "host2"]}, {("host2", "nova-compute")}),  # the last value counts
])
def test_filters(api: Api, params: dict[str, object], expected: set[tuple[str, str]] | None
                 ) -> None:
    r = api.client.get("/v2.1/os-services", params=params, headers=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 200
    got = {(s["host"], s["binary"]) for s in r.json()["services"]}
    assert got == (expected if expected is not None else {(s["host"], s["binary"]) for s in
                   api.client.get("/v2.1/os-services", headers=ADMIN).json()["services"]})


def test_unknown_query_params_ignored_before_275_rejected_from(api: Api) -> None:
    r = api.client.get("/v2.1/os-services", params={"foo": "bar"}, headers=at("2.74"))
    assert r.status_code == 200 and len(r.json()["services"]) == 4
    r = api.client.get("/v2.1/os-services", params={"foo": "bar"}, headers=at("2.75"))
    assert r.status_code == 400
    msg = r.json()["badRequest"]["message"]
    assert "Additional properties are not allowed ('foo' was unexpected)" in msg
    r = api.client.get("/v2.1/os-services", params={"host": "host1"}, headers=at("2.75"))
    assert r.status_code == 200 and len(r.json()["services"]) == 2


def test_unknown_state_is_down_never_up_and_counted(api: Api) -> None:
    target = api.computes[2]
    api.make_unknown(target)
    assert api.registry.get(target.id).state.value == "unknown"
    r = api.client.get("/v2.1/os-services", headers=at("2.53"))
    by_id = {s["id"]: s for s in r.json()["services"]}
    assert by_id[target.uuid]["state"] == "down"
    assert r.headers["X-Vigil-Unknown-State-Count"] == "1"
    truth = api.client.get("/v2.1/vigil/services", params={"host": "host3"}, headers=ADMIN)
    (s,) = truth.json()["services"]
    assert s["state"] == "unknown" and s["uuid"] == target.uuid and s["id"] == target.id


def test_clean_leave_is_down(api: Api) -> None:
    services_db.record_leave(api.engine, api.computes[0].id)
    r = api.client.get("/v2.1/os-services", params={"host": "host1", "binary": "nova-compute"},
                       headers=ADMIN)
    assert r.json()["services"][0]["state"] == "down"
    assert r.headers["X-Vigil-Unknown-State-Count"] == "0"


def test_vigil_resource_keys_and_show(api: Api) -> None:
    r = api.client.get("/v2.1/vigil/services", headers=ADMIN)
    assert r.status_code == 200
    s = r.json()["services"][0]
    assert {"uuid", "id", "state", "last_seen", "left_at", "topic", "created_at"} <= set(s)
    one = api.client.get(f"/v2.1/vigil/services/{s['uuid']}", headers=ADMIN)
    assert one.status_code == 200 and one.json()["service"]["id"] == s["id"]
    assert api.client.get(f"/v2.1/vigil/services/{s['id']}", headers=ADMIN).json()[
        "service"]["uuid"] == s["uuid"]
    assert api.client.get("/v2.1/vigil/services/999", headers=ADMIN).status_code == 404
    assert api.client.get("/v2.1/vigil/services/abc", headers=ADMIN).status_code == 400
    assert api.client.get("/v2.1/vigil/services", params={"x": "1"},
                          headers=ADMIN).status_code == 400


def test_compute_zone_is_what_its_agent_reports(api: Api) -> None:
    """Each agent reads its own [compute] availability_zone; the API process shows it from the
    host's compute nodes (a host without one shows default_availability_zone)."""
    from vigil.db.compute import nodes as nodes_db
    from vigil.objects.compute import Inventory

    nodes_db.compute_node_update(api.engine, "host2", Inventory(
        hypervisor_hostname="host2", hypervisor_type="fake", hypervisor_version=1, vcpus=1,
        memory_mb=512, local_gb=1, cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0, availability_zone="az-east"))
    services = api.client.get("/v2.1/os-services", headers=ADMIN).json()["services"]
    zones = {(s["host"], s["binary"]): s["zone"] for s in services}
    assert zones[("host2", "nova-compute")] == "az-east"
    assert zones[("host1", "nova-compute")] == "nova"
    assert zones[("host1", "nova-conductor")] == "internal"
