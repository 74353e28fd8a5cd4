"""DELETE /v2.1/os-services/{id}: integer ids before 2.53, UUIDs from 2.53, guards."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, at
from vigil.errors import Conflict, ServiceNotFound
from vigil.objects.services import ServiceRecord


def test_delete_by_id_before_253(api: Api) -> None:
    rec = api.computes[0]
    r = api.client.delete(f"/v2.1/os-services/{rec.id}", headers=at("2.52"))
    assert r.status_code == 204 and r.content == b""
    with pytest.raises(ServiceNotFound):
        api.registry.get(rec.id)
    r = api.client.delete(f"/v2.1/os-services/{rec.id}", headers=at("2.52"))
    assert r.status_code == 404
    assert r.json() == {"itemNotFound": {"message": f"Service {rec.id} not found.",
                                         "code": 404}}


def test_delete_by_uuid_from_253(api: Api) -> None:
    rec = api.computes[1]
    r = api.client.delete(f"/v2.1/os-services/{rec.uuid}", headers=at("2.53"))
    assert r.status_code == 204
    with pytest.raises(ServiceNotFound):
        api.registry.get(rec.uuid)


@pytest.mark.parametrize(("version", "ident_of", "message"), [
    ("2.1", lambda r: r.uuid, "Invalid input received: id must be an integer"),
    ("2.52", lambda r: "abc", "Invalid input received: id must be an integer"),
    ("2.53", lambda r: str(r.id), None),
    ("2.79", lambda r: "not-a-uuid", "Invalid uuid not-a-uuid"),
])
def test_malformed_ids_are_400(api: Api, version: str, ident_of: object, message: str | None
                               ) -> None:
    before = api.snapshot()
    ident = ident_of(api.computes[0])  # type: ignore[operator]
    r = api.client.delete(f"/v2.1/os-services/{ident}", headers=at(version))
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == (message or f"Invalid uuid {ident}")
    assert api.snapshot() == before


@pytest.mark.parametrize("ident", ["999", "-1", "99999999999999999999999"])
def test_unknown_ids_are_404(api: Api, ident: str) -> None:
    r = api.client.delete(f"/v2.1/os-services/{ident}", headers=at("2.1"))
    assert r.status_code == 404


def test_guard_conflict_is_409_and_deletes_nothing(api: Api) -> None:
    def guard(record: ServiceRecord) -> None:
        if record.host == "host1":
            raise Conflict("Unable to delete compute service that is hosting instances. "
                           "Migrate or delete the instances first.")

    api.registry.add_delete_guard(guard)
    before = api.snapshot()
    r = api.client.delete(f"/v2.1/os-services/{api.computes[0].uuid}", headers=at("2.53"))
    assert r.status_code == 409
    assert r.json() == {"conflictingRequest": {
        "message": "Unable to delete compute service that is hosting instances. Migrate or "
        "delete the instances first.", "code": 409}}
    assert api.snapshot() == before
    assert api.client.delete(f"/v2.1/os-services/{api.computes[1].uuid}",
                             headers=at("2.53")).status_code == 204
