"""os-services speaks Nova's binary names by default, Vigil's with
``[api] nova_binary_names = false``; Vigil's own views always speak Vigil's (vigil.names)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ADMIN, Api, at
from vigil.db import services as services_db


def _hidden(api: Api) -> Any:
    """A Vigil service Nova has no counterpart for."""
    return services_db.service_get_or_create(api.engine, "host1", "vigil-watcher", "watcher")[0]


def listed(api: Api, version: str = "2.1", **params: str) -> set[tuple[str, str]]:
    r = api.client.get("/v2.1/os-services", headers=at(version), params=params)
    assert r.status_code == 200, r.text
    return {(s["host"], s["binary"]) for s in r.json()["services"]}


@pytest.mark.parametrize("version", ["2.1", "2.11", "2.53", "latest"])
def test_nova_names_by_default(api: Api, version: str) -> None:
    _hidden(api)
    assert listed(api, version) == {("host1", "nova-compute"), ("host2", "nova-compute"),
                                    ("host3", "nova-compute"), ("host1", "nova-conductor")}
    assert listed(api, version, binary="nova-compute") == {
        ("host1", "nova-compute"), ("host2", "nova-compute"), ("host3", "nova-compute")}
    assert listed(api, version, binary="vigil-compute") == set()
    assert listed(api, version, binary="vigil-watcher") == set()


def test_the_unknown_state_header_counts_only_the_shown(api: Api) -> None:
    api.make_unknown(_hidden(api))
    r = api.client.get("/v2.1/os-services", headers=ADMIN)
    assert r.headers["X-Vigil-Unknown-State-Count"] == "0"


def test_a_hidden_service_is_absent_for_updates_and_deletes(api: Api) -> None:
    hidden = _hidden(api)
    before = api.snapshot()
    r = api.client.put(f"/v2.1/os-services/{hidden.uuid}", headers=at("2.53"),
                       json={"status": "disabled"})
    assert r.status_code == 404 and "itemNotFound" in r.json()
    r = api.client.delete(f"/v2.1/os-services/{hidden.id}", headers=ADMIN)
    assert r.status_code == 404 and "itemNotFound" in r.json()
    assert api.snapshot() == before


def test_an_update_by_uuid_answers_the_nova_name(api: Api) -> None:
    rec = api.computes[0]
    r = api.client.put(f"/v2.1/os-services/{rec.uuid}", headers=at("2.53"),
                       json={"status": "disabled", "disabled_reason": "names"})
    assert r.status_code == 200
    assert r.json()["service"]["binary"] == "nova-compute"
    r = api.client.put(f"/v2.1/os-services/{api.conductor.uuid}", headers=at("2.53"),
                       json={"status": "disabled"})
    assert r.json()["badRequest"]["message"] == (
        "Updating a nova-conductor service is not supported. Only nova-compute services can "
        "be updated.")


def test_vigil_views_keep_vigil_names(api: Api) -> None:
    _hidden(api)
    r = api.client.get("/v2.1/vigil/services", headers=ADMIN, params={"binary": "vigil-compute"})
    assert {s["binary"] for s in r.json()["services"]} == {"vigil-compute"}
    r = api.client.get("/v2.1/vigil/services", headers=ADMIN)
    assert "vigil-watcher" in {s["binary"] for s in r.json()["services"]}


def test_the_option_speaks_vigil_names(api_factory: Any) -> None:
    api: Api = api_factory({"nova_binary_names": "false"})
    _hidden(api)
    assert listed(api) == {("host1", "vigil-compute"), ("host2", "vigil-compute"),
                           ("host3", "vigil-compute"), ("host1", "vigil-conductor"),
                           ("host1", "vigil-watcher")}
    assert listed(api, binary="nova-compute") == set()
    r = api.client.put("/v2.1/os-services/disable", headers=ADMIN,
                       json={"host": "host1", "binary": "vigil-compute"})
    assert r.json() == {"service": {"host": "host1", "binary": "vigil-compute",
                                    "status": "disabled"}}
    r = api.client.put("/v2.1/os-services/disable", headers=ADMIN,
                       json={"host": "host1", "binary": "vigil-conductor"})
    assert r.json()["badRequest"]["message"] == (
        "Updating a vigil-conductor service is not supported. Only vigil-compute services can "
        "be updated.")
