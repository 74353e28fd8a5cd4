"""Version documents and microversion negotiation."""

from __future__ import annotations

import pytest

from tests.api.conftest import ADMIN, Api
from vigil.api import microversions


def test_root_lists_v21_with_range(api: Api) -> None:
    r = api.client.get("/")
    assert r.status_code == 200
    (v,) = r.json()["versions"]
    assert v == {
        "id": "v2.1", "status": "CURRENT", "version": str(microversions.MAX),
        "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
        "links": [{"href": "http://testserver/v2.1/", "rel": "self"}],
    }


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
def test_v21_document(api: Api, path: str) -> None:
    r = api.client.get(path)
    assert r.status_code == 200
    doc = r.json()["version"]
    assert doc["id"] == "v2.1" and doc["status"] == "CURRENT"
    assert doc["min_version"] == "2.1" and doc["version"] == str(microversions.MAX)
    assert {"href": "http://testserver/v2.1/", "rel": "self"} in doc["links"]
    assert doc["media-types"][0]["type"] == "application/vnd.openstack.compute+json;version=2.1"


def test_no_header_is_21_and_echoed_with_vary(api: Api) -> None:
    r = api.client.get("/v2.1/os-services", headers=ADMIN)
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    assert "X-OpenStack-Nova-API-Version" in r.headers["Vary"]


@pytest.mark.parametrize(("headers", "served"), [
    ({"OpenStack-API-Version": "compute 2.53"}, "2.53"),
    ({"OpenStack-API-Version": "compute latest"}, str(microversions.MAX)),
    ({"X-OpenStack-Nova-API-Version": "2.11"}, "2.11"),
    ({"X-OpenStack-Nova-API-Version": "latest"}, str(microversions.MAX)),
    # The new header wins over the legacy one, and other services' entries are ignored.
    ({"OpenStack-API-Version": "volume 3.5, compute 2.60",
      "X-OpenStack-Nova-API-Version": "2.2"}, "2.60"),
    ({"OpenStack-API-Version": "volume 3.5"}, "2.1"),
])
def test_negotiation(api: Api, headers: dict[str, str], served: str) -> None:
    r = api.client.get("/v2.1/os-services", headers={**ADMIN, **headers})
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == f"compute {served}"
    assert r.headers["X-OpenStack-Nova-API-Version"] == served


@pytest.mark.parametrize("version", ["2.0", "2.80", "3.0", "1.1", "2.1000"])
def test_unsupported_version_is_406(api: Api, version: str) -> None:
    r = api.client.get("/v2.1/os-services",
                       headers={**ADMIN, "OpenStack-API-Version": f"compute {version}"})
    assert r.status_code == 406
    fault = r.json()["computeFault"]
    assert fault["code"] == 406
    assert f"Version {version} is not supported by the API" in fault["message"]


@pytest.mark.parametrize("version", ["2", "2.a", "two", "2.01", "", "2.1.1"])
def test_malformed_version_is_400(api: Api, version: str) -> None:
    r = api.client.get("/v2.1/os-services",
                       headers={**ADMIN, "X-OpenStack-Nova-API-Version": version})
    assert r.status_code == 400
    assert "is of invalid format" in r.json()["badRequest"]["message"]


def test_errors_carry_the_version_too(api: Api) -> None:
    r = api.client.get("/v2.1/nowhere", headers={**ADMIN, "OpenStack-API-Version":
                                                  "compute 2.42"})
    assert r.status_code == 404
    assert r.json() == {"itemNotFound": {"message": "The resource could not be found.",
                                         "code": 404}}
    assert r.headers["OpenStack-API-Version"] == "compute 2.42"


def test_version_parsing_orders_numerically() -> None:
    assert microversions.APIVersion.parse("2.10") > microversions.APIVersion.parse("2.9")
    assert microversions.APIVersion.parse("2.53").at_least("2.11")
    assert not microversions.APIVersion.parse("2.52").at_least("2.53")


def test_legacy_project_id_urls(api: Api) -> None:
    """Nova still serves /v2.1/{project_id}/...; the project must be the caller's."""
    r = api.client.get("/v2.1/p1/os-services", headers=ADMIN)  # admin-token's project is p1
    assert r.status_code == 200
    assert r.json() == api.client.get("/v2.1/os-services", headers=ADMIN).json()
    r = api.client.put("/v2.1/p1/os-services/disable", headers=ADMIN,
                       json={"host": "host1", "binary": "nova-compute"})
    assert r.status_code == 200
    r = api.client.get("/v2.1/other/os-services", headers=ADMIN)
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == (
        "Malformed request URL: URL's project_id 'other' doesn't match Context's project_id "
        "'p1'")
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"
    assert api.client.get("/v2.1/p1", headers=ADMIN).status_code == 404


def test_resources_are_not_taken_for_project_ids(api: Api) -> None:
    # A resource's own sub-path must never be read as /v2.1/{project_id}/...
    r = api.client.delete(f"/v2.1/os-services/{api.computes[0].id}", headers=ADMIN)
    assert r.status_code == 204
    r = api.client.get(f"/v2.1/vigil/services/{api.computes[1].uuid}", headers=ADMIN)
    assert r.status_code == 200
