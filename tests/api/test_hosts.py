"""``/v2.1/vigil/hosts``: maintenance and quarantine release through the API, admin only, bad
input refused with Nova's error body and nothing changed; and the CLI's ``vigil host``."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.api.conftest import ADMIN, MEMBER, READER, Api
from vigil.db import db_now
from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.objects.ha import RecoveryRecord

URL = "/v2.1/vigil/hosts"


def quarantine(api: Api, host: str, recovery_id: int) -> None:
    hosts_db.ensure(api.engine, host)
    with api.engine.begin() as conn:
        hosts_db.quarantine(conn, host, recovery_id=recovery_id, reason="fence decided",
                            now=db_now(api.engine))


def open_recovery(api: Api, host: str) -> RecoveryRecord:
    svc = services_db.service_get_by_host_binary(api.engine, host, "vigil-compute")
    return recoveries_db.recovery_request(api.engine, host=host, service_id=svc.id,
                                          was_disabled=False, was_forced_down=False, detail="test")


def test_list_and_show(api: Api) -> None:
    r = api.client.get(URL, headers=ADMIN)
    assert r.status_code == 200
    assert [h["host"] for h in r.json()["hosts"]] == ["host1", "host2", "host3"]
    assert not any(h["quarantined"] or h["maintenance"] for h in r.json()["hosts"])
    assert api.client.get(f"{URL}/host2", headers=ADMIN).json()["host"]["host"] == "host2"
    r = api.client.get(f"{URL}/nowhere", headers=ADMIN)
    assert r.status_code == 404 and "itemNotFound" in r.json()
    assert api.client.get(f"{URL}?x=1", headers=ADMIN).status_code == 400


def test_maintenance_on_and_off_records_who(api: Api) -> None:
    r = api.client.put(f"{URL}/host1", headers=ADMIN,
                       json={"host": {"maintenance": True, "maintenance_reason": "BIOS"}})
    assert r.status_code == 200, r.text
    h = r.json()["host"]
    assert h["maintenance"] and h["maintenance_reason"] == "BIOS"
    assert h["maintenance_by"] == "admin (project p1)"
    listed = api.client.get("/v2.1/vigil/services?host=host1&binary=vigil-compute",
                            headers=ADMIN).json()["services"]
    assert listed[0]["maintenance"] is True and listed[0]["quarantined"] is False
    r = api.client.put(f"{URL}/host1", headers=ADMIN, json={"host": {"maintenance": False}})
    assert r.json()["host"]["maintenance"] is False


@pytest.mark.parametrize("body", [
    {}, {"host": {}}, {"host": {"maintenance": "yes"}},
    {"host": {"maintenance": True, "maintenance_reason": ""}},
    {"host": {"maintenance": True, "maintenance_reason": "x" * 256}},
    {"host": {"maintenance": True, "maintenance_reason": "line\nbreak"}},
    {"host": {"maintenance": True, "maintenance_reason": "nul\u0000"}},
    {"host": {"maintenance": True, "extra": 1}}, [], "text",
])
def test_bad_maintenance_bodies_are_400_and_change_nothing(api: Api, body: Any) -> None:
    r = api.client.put(f"{URL}/host1", headers=ADMIN, json=body)
    assert r.status_code == 400 and "badRequest" in r.json(), r.text
    assert not hosts_db.hosts(api.engine)


def test_release_ends_the_quarantine_and_is_noted_in_the_recovery(api: Api) -> None:
    rec = open_recovery(api, "host2")
    quarantine(api, "host2", rec.id)
    assert api.client.get(f"{URL}/host2", headers=ADMIN).json()["host"]["quarantined"]
    r = api.client.post(f"{URL}/host2/action", headers=ADMIN,
                        json={"release": {"reason": "disk replaced"}})
    assert r.status_code == 200, r.text
    h = r.json()["host"]
    assert not h["quarantined"] and h["released_by"] == "admin (project p1)"
    assert h["release_reason"] == "disk replaced" and h["open_recovery_id"] == rec.id
    notes = [e for e in recoveries_db.events(api.engine, rec.id) if e.kind == "released"]
    assert len(notes) == 1 and "disk replaced" in (notes[0].detail or "")
    r = api.client.post(f"{URL}/host2/action", headers=ADMIN,
                        json={"release": {"reason": "again"}})
    assert r.status_code == 409 and "not quarantined" in r.text


@pytest.mark.parametrize("body", [
    {"release": {}}, {"release": {"reason": ""}}, {"release": {"reason": "\x1b[31m"}},
    {"reboot": {}}, {"release": {"reason": "ok"}, "other": {}},
])
def test_bad_release_bodies_are_400_and_release_nothing(api: Api, body: Any) -> None:
    quarantine(api, "host1", 1)
    r = api.client.post(f"{URL}/host1/action", headers=ADMIN, json=body)
    assert r.status_code == 400, r.text
    assert hosts_db.host_get(api.engine, "host1").quarantined


@pytest.mark.parametrize("headers", [MEMBER, READER])
def test_only_admins_act(api: Api, headers: dict[str, str]) -> None:
    quarantine(api, "host1", 1)
    assert api.client.get(URL, headers=headers).status_code == 403
    assert api.client.put(f"{URL}/host1", headers=headers,
                          json={"host": {"maintenance": True}}).status_code == 403
    assert api.client.post(f"{URL}/host1/action", headers=headers,
                           json={"release": {"reason": "x"}}).status_code == 403
    assert hosts_db.host_get(api.engine, "host1").quarantined
    assert not hosts_db.host_get(api.engine, "host1").maintenance


def vigil(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil.cli.main", "--config-file",
                           str(api.conf_path), *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_maintenance_release_and_one_line_errors(api: Api) -> None:
    out = vigil(api, "host", "maintenance", "host3", "--on", "--reason", "kernel upgrade",
                "--format", "json")
    assert out.returncode == 0, out.stderr
    h = json.loads(out.stdout)
    assert h["maintenance"] and h["maintenance_by"].endswith("(vigil CLI)")
    listed = vigil(api, "service", "list", "--host", "host3")
    assert "maintenance" in listed.stdout
    rec = open_recovery(api, "host3")
    quarantine(api, "host3", rec.id)
    assert "quarantined, maintenance" in vigil(api, "service", "list", "--host", "host3").stdout
    assert "fence decided" in vigil(api, "host", "list").stdout
    bad = vigil(api, "host", "release", "host3")  # no reason
    assert bad.returncode == 2 and "--reason" in bad.stderr
    bad = vigil(api, "host", "release", "host3", "--reason", " ")
    assert bad.returncode == 2 and bad.stderr.strip() == "vigil: error: a reason is required"
    missing = vigil(api, "host", "maintenance", "nowhere", "--off")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    done = vigil(api, "host", "release", "host3", "--reason", "checked by hand")
    assert done.returncode == 0, done.stderr
    assert not hosts_db.host_get(api.engine, "host3").quarantined
    again = vigil(api, "host", "release", "host3", "--reason", "twice")
    assert again.returncode == 1 and "not quarantined" in again.stderr


def test_simulated_host_actions_only_where_vigil_up_serves_them(api: Api, tmp_path: Any) -> None:
    """crash, revive and kill-agent: 400 from an API with no simulated hosts (nothing
    written); with vigil up's power directory, the marks its hosts watch; 404 for a host
    that is not a compute host; admin only."""
    power = tmp_path / "power"
    r = api.client.post(f"{URL}/host1/action", headers=ADMIN, json={"crash": {}})
    assert r.status_code == 400 and "no simulated hosts" in r.text
    assert not power.exists()
    api.client.app.state.vigil_simulated_power_dir = str(power)  # as vigil up's start_api
    try:
        assert api.client.post(f"{URL}/host1/action", headers=MEMBER,
                               json={"crash": {}}).status_code == 403
        assert not power.exists()
        r = api.client.post(f"{URL}/nowhere/action", headers=ADMIN, json={"crash": {}})
        assert r.status_code == 404
        assert not power.exists()
        r = api.client.post(f"{URL}/host1/action", headers=ADMIN, json={"crash": {"x": 1}})
        assert r.status_code == 400 and not power.exists()
        r = api.client.post(f"{URL}/host1/action", headers=ADMIN, json={"crash": {}})
        assert r.status_code == 200 and r.json()["host"]["host"] == "host1"
        assert (power / "host1.crash").exists()
        r = api.client.post(f"{URL}/host2/action", headers=ADMIN, json={"kill-agent": {}})
        assert r.status_code == 200 and (power / "host2.kill-agent").exists()
        r = api.client.post(f"{URL}/host1/action", headers=ADMIN, json={"revive": {}})
        assert r.status_code == 200 and not (power / "host1.crash").exists()
    finally:
        del api.client.app.state.vigil_simulated_power_dir
