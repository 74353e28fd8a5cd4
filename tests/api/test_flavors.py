"""/v2.1/flavors over a real app and database: Nova's shapes, rules and errors."""

from __future__ import annotations

import pytest

from tests.api.conftest import ADMIN, MEMBER, Api
from vigil.db.compute import flavors as flavors_db


def test_list_detail_show(api: Api) -> None:
    listed = api.client.get("/v2.1/flavors", headers=MEMBER)
    assert listed.status_code == 200  # any authenticated caller reads flavors
    names = [f["name"] for f in listed.json()["flavors"]]
    assert "m1.tiny" in names and set(listed.json()["flavors"][0]) == {
        "id", "name", "description", "links"}
    detail = api.client.get("/v2.1/flavors/detail", headers=MEMBER).json()["flavors"]
    tiny = next(f for f in detail if f["name"] == "m1.tiny")
    assert (tiny["vcpus"], tiny["ram"], tiny["disk"]) == (1, 512, 1)
    shown = api.client.get(f"/v2.1/flavors/{tiny['id']}", headers=MEMBER).json()["flavor"]
    assert shown == tiny and shown["links"][0]["href"].endswith(f"/v2.1/flavors/{tiny['id']}")
    r = api.client.get("/v2.1/flavors/nope", headers=MEMBER)
    assert r.status_code == 404 and "itemNotFound" in r.json()


def test_create_and_delete(api: Api) -> None:
    body = {"flavor": {"name": "big", "ram": "4096", "vcpus": 4, "disk": 40, "id": "big-1",
                       "swap": 0, "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0,
                       "os-flavor-access:is_public": True, "description": "four cores"}}
    assert api.client.post("/v2.1/flavors", json=body, headers=MEMBER).status_code == 403
    r = api.client.post("/v2.1/flavors", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    made = r.json()["flavor"]
    assert (made["id"], made["ram"], made["vcpus"], made["description"]) == (
        "big-1", 4096, 4, "four cores")
    again = api.client.post("/v2.1/flavors", json=body, headers=ADMIN)
    assert again.status_code == 409, again.text
    assert api.client.delete("/v2.1/flavors/big-1", headers=MEMBER).status_code == 403
    assert api.client.delete("/v2.1/flavors/big-1", headers=ADMIN).status_code == 202
    assert api.client.get("/v2.1/flavors/big-1", headers=ADMIN).status_code == 404
    assert api.client.delete("/v2.1/flavors/big-1", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(("change", "message"), [
    ({"ram": 0}, "ram must be between 1"),
    ({"vcpus": -1}, "vcpus must be between 1"),
    ({"disk": "x"}, "does not match"),
    ({"ram": 2**31}, "ram must be between 1"),
    ({"swap": 512}, "is not one of"),
    ({"os-flavor-access:is_public": False}, "is not one of"),
    ({"name": ""}, "should be non-empty"),
    ({"id": " spaced "}, "does not match"),
    ({"colour": "red"}, "Additional properties are not allowed"),
])
def test_bad_input_is_400_and_creates_nothing(api: Api, change: dict[str, object],
                                               message: str) -> None:
    before = len(flavors_db.flavors(api.engine))
    body = {"flavor": {"name": "f", "ram": 512, "vcpus": 1, "disk": 1, **change}}
    r = api.client.post("/v2.1/flavors", json=body, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert message in r.json()["badRequest"]["message"]
    assert len(flavors_db.flavors(api.engine)) == before
