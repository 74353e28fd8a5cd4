"""PUT /v2.1/os-services: the action URLs before 2.53 and PUT by UUID from 2.53."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, at

COMPUTE = {"host": "host1", "binary": "nova-compute"}


def put(api: Api, path: str, body: Any, version: str = "2.1") -> Any:
    return api.client.put(f"/v2.1/os-services/{path}", json=body, headers=at(version))


def record(api: Api, host: str = "host1", binary: str = "vigil-compute") -> Any:
    return api.registry.find(host, binary)


# ---- before 2.53 -----------------------------------------------------------------------------
def test_disable_enable(api: Api) -> None:
    r = put(api, "disable", COMPUTE)
    assert r.status_code == 200
    assert r.json() == {"service": {"host": "host1", "binary": "nova-compute",
                                    "status": "disabled"}}
    assert record(api).disabled and record(api).disabled_reason is None
    r = put(api, "enable", COMPUTE)
    assert r.json() == {"service": {"host": "host1", "binary": "nova-compute",
                                    "status": "enabled"}}
    assert not record(api).disabled


def test_disable_ignores_a_reason_but_disable_log_reason_keeps_it(api: Api) -> None:
    r = put(api, "disable", {**COMPUTE, "disabled_reason": "ignored"})
    assert r.json()["service"] == {**COMPUTE, "status": "disabled"}
    assert record(api).disabled_reason is None
    r = put(api, "disable-log-reason", {**COMPUTE, "disabled_reason": "disk failing"})
    assert r.status_code == 200
    assert r.json() == {"service": {**COMPUTE, "status": "disabled",
                                    "disabled_reason": "disk failing"}}
    assert record(api).disabled_reason == "disk failing"
    put(api, "enable", COMPUTE)
    assert record(api).disabled_reason is None


def test_disable_log_reason_needs_the_reason(api: Api) -> None:
    before = api.snapshot()
    r = put(api, "disable-log-reason", COMPUTE)
    assert r.status_code == 400
    assert r.json() == {"badRequest": {"message": "Missing disabled reason field", "code": 400}}
    assert api.snapshot() == before


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), ("yes", True), ("On", True), ("1", True), (False, False), ("off", False),
    ("NO", False),
])
def test_force_down_from_211(api: Api, value: Any, expected: bool) -> None:
    r = put(api, "force-down", {**COMPUTE, "forced_down": value}, "2.11")
    assert r.status_code == 200
    assert r.json() == {"service": {**COMPUTE, "forced_down": expected}}
    assert record(api).forced_down is expected


def test_force_down_unknown_before_211(api: Api) -> None:
    r = put(api, "force-down", COMPUTE, "2.10")
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "Unknown action"
    # ... and forced_down is not even a valid body property before 2.11
    r = put(api, "force-down", {**COMPUTE, "forced_down": True}, "2.10")
    assert r.status_code == 400


def test_force_down_needs_the_field(api: Api) -> None:
    r = put(api, "force-down", COMPUTE, "2.11")
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Missing forced_down field"


@pytest.mark.parametrize(("body", "fragment"), [
    ({"host": "host1"}, "'binary' is a required property"),
    ({"binary": "nova-compute"}, "'host' is a required property"),
    ({**COMPUTE, "extra": 1}, "Additional properties are not allowed ('extra' was unexpected)"),
    ({"host": "bad host!", "binary": "nova-compute"}, "does not match"),
    ({"host": "", "binary": "nova-compute"}, "Invalid input for field/attribute host"),
    ({"host": "host1", "binary": ""}, "Invalid input for field/attribute binary"),
    ({"host": 5, "binary": "nova-compute"}, "is not of type 'string'"),
    ({**COMPUTE, "disabled_reason": ""}, "disabled_reason"),
    ({**COMPUTE, "disabled_reason": "x" * 256}, "is too long"),
    ([], "is not of type 'object'"),
    ("text", "is not of type 'object'"),
])
def test_schema_violations(api: Api, body: Any, fragment: str) -> None:
    before = api.snapshot()
    r = put(api, "disable", body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["badRequest"]["message"]
    assert api.snapshot() == before


def test_bad_forced_down_value(api: Api) -> None:
    r = put(api, "force-down", {**COMPUTE, "forced_down": "maybe"}, "2.11")
    assert r.status_code == 400
    assert "is not one of" in r.json()["badRequest"]["message"]


def test_unknown_action_and_service(api: Api) -> None:
    assert put(api, "reboot", COMPUTE).json()["itemNotFound"]["message"] == "Unknown action"
    r = put(api, "disable", {"host": "nohost", "binary": "nova-compute"})
    assert r.status_code == 404
    assert "nohost" in r.json()["itemNotFound"]["message"]


def test_only_compute_services_can_be_updated(api: Api) -> None:
    before = api.snapshot()
    r = put(api, "disable", {"host": "host1", "binary": "nova-conductor"})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == (
        "Updating a nova-conductor service is not supported. Only nova-compute services can "
        "be updated.")
    assert api.snapshot() == before


# ---- from 2.53 -------------------------------------------------------------------------------
def test_253_update_returns_full_record(api: Api) -> None:
    rec = record(api)
    r = put(api, rec.uuid, {"status": "disabled", "disabled_reason": "maint"}, "2.53")
    assert r.status_code == 200
    s = r.json()["service"]
    assert set(s) == {"id", "binary", "host", "zone", "status", "state", "updated_at",
                      "disabled_reason", "forced_down"}
    assert s["id"] == rec.uuid and s["status"] == "disabled" and s["disabled_reason"] == "maint"
    assert s["forced_down"] is False
    r = put(api, rec.uuid, {"forced_down": True}, "2.53")
    assert r.json()["service"]["forced_down"] is True
    assert r.json()["service"]["state"] == "down"
    # status stays as it was when only forced_down is given
    assert r.json()["service"]["status"] == "disabled"
    r = put(api, rec.uuid, {"status": "enabled", "forced_down": "false"}, "2.79")
    s = r.json()["service"]
    assert s["status"] == "enabled" and s["disabled_reason"] is None
    assert s["forced_down"] is False


def test_253_disable_without_reason_clears_it(api: Api) -> None:
    rec = record(api)
    put(api, rec.uuid, {"status": "disabled", "disabled_reason": "first"}, "2.53")
    r = put(api, rec.uuid, {"status": "disabled"}, "2.53")
    assert r.json()["service"]["disabled_reason"] is None


def test_253_accepts_uuid_spellings(api: Api) -> None:
    rec = record(api)
    for spelling in (rec.uuid.upper(), rec.uuid.replace("-", "")):
        r = put(api, spelling, {"status": "disabled"}, "2.53")
        assert r.status_code == 200, r.text
        assert r.json()["service"]["id"] == rec.uuid


@pytest.mark.parametrize(("body", "message"), [
    ({"status": "enabled", "disabled_reason": "x"},
     "Specifying 'disabled_reason' with status 'enabled' is invalid."),
    ({}, "No updates were requested. Fields 'status' or 'forced_down' should be specified."),
    ({"disabled_reason": "only a reason"},
     "No updates were requested. Fields 'status' or 'forced_down' should be specified."),
])
def test_253_rules(api: Api, body: dict[str, Any], message: str) -> None:
    before = api.snapshot()
    r = put(api, record(api).uuid, body, "2.53")
    assert r.status_code == 400
    assert r.json() == {"badRequest": {"message": message, "code": 400}}
    assert api.snapshot() == before


@pytest.mark.parametrize("body", [
    {"status": "paused"}, {"forced_down": "maybe"}, {"status": "disabled", "host": "host1"},
    {"status": "disabled", "disabled_reason": ""}, {"status": 1},
])
def test_253_schema(api: Api, body: dict[str, Any]) -> None:
    before = api.snapshot()
    r = put(api, record(api).uuid, body, "2.53")
    assert r.status_code == 400
    assert api.snapshot() == before


def test_253_action_urls_are_gone(api: Api) -> None:
    r = put(api, "disable", COMPUTE, "2.53")
    assert r.status_code == 400  # the old body fails the 2.53 schema first, as in Nova
    r = put(api, "disable", {"status": "disabled"}, "2.53")
    assert r.json() == {"badRequest": {"message": "Invalid uuid disable", "code": 400}}


def test_253_unknown_uuid_and_non_compute(api: Api) -> None:
    r = put(api, "00000000-0000-4000-8000-000000000000", {"status": "disabled"}, "2.53")
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["code"] == 404
    r = put(api, api.conductor.uuid, {"status": "disabled"}, "2.53")
    assert r.status_code == 400
    assert "Only nova-compute services can be updated" in r.json()["badRequest"]["message"]


def test_uuid_path_before_253_is_an_unknown_action(api: Api) -> None:
    r = put(api, record(api).uuid, COMPUTE, "2.52")
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "Unknown action"
