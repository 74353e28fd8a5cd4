"""The dashboard's API: the static page (public, nothing but its own files), what a caller may
do (``/v2.1/vigil/permissions``), and the host evacuation it requests
(``POST /v2.1/vigil/hosts/{host}/action {"evacuate": {}}``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ADMIN, MEMBER, READER, Api
from vigil.db import services as db
from vigil.db.ha import recoveries as recoveries_db

STATIC = Path(__file__).resolve().parents[2] / "src" / "vigil" / "api" / "static"
READ_RULES = ("vigil:services:list", "vigil:hosts:list", "vigil:hosts:show",
              "vigil:recoveries:list", "vigil:recoveries:show", "vigil:nodes:list",
              "vigil:ring:show", "os_compute_api:os-hypervisors:list-detail",
              "os_compute_api:servers:detail")
ACTION_RULES = ("os_compute_api:os-services:update", "vigil:hosts:maintenance",
                "vigil:hosts:release", "vigil:hosts:evacuate")


def reader_policy(tmp_path: Path) -> Path:
    """What docs/dashboard.md suggests for read-only operators: every read rule the
    dashboard uses, none of the actions."""
    path = tmp_path / "policy.yaml"
    path.write_text("".join(f'"{rule}": "role:admin or role:reader"\n' for rule in READ_RULES))
    return path


# ---- the page --------------------------------------------------------------------------------
def test_the_page_is_public_static_and_locked_down(api: Api) -> None:
    r = api.client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard/"
    r = api.client.get("/dashboard/")  # no token: the page holds no data
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "<script type=\"module\" src=\"js/app.js\">" in r.text
    again = api.client.get("/dashboard/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    js = api.client.get("/dashboard/js/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["x-content-type-options"] == "nosniff"
    assert js.headers["cache-control"] == "no-cache"
    for bad in ("/dashboard/nope.js", "/dashboard/js/%2e%2e/feed.py", "/dashboard/.hidden.js",
                "/dashboard/app.py", "/dashboard/js//app.js", "/dashboard/js/app.js/"):
        assert api.client.get(bad).status_code == 404, bad
    # A client that resolves the dots itself asks for a path outside the page: not public.
    assert api.client.get("/dashboard/js/../../openapi.py").status_code == 401
    # Data is another matter: the API behind the page still wants a token.
    assert api.client.get("/v2.1/vigil/feed").status_code == 401
    assert api.client.get("/v2.1/vigil/permissions").status_code == 401


def test_every_file_the_page_loads_is_shipped_and_nothing_comes_from_elsewhere(
        api: Api) -> None:
    html = (STATIC / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="([^"#]+)"', html))
    for js in (STATIC / "js").glob("*.js"):
        text = js.read_text()
        wanted |= {f"js/{m}" for m in re.findall(r'from "\./([^"]+)"', text)}
        text = text.replace('"http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert "http://" not in text and "https://" not in text, f"{js.name} refers elsewhere"
    assert "http" not in html.replace("http-equiv", "")
    for name in wanted:
        assert api.client.get(f"/dashboard/{name}").status_code == 200, name


def test_package_data_ships_the_static_files() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"api/static/*.html"' in text and '"api/static/js/*.js"' in text


# ---- what may I do ---------------------------------------------------------------------------
def test_permissions_say_what_the_policy_says(api_factory: Any, tmp_path: Path) -> None:
    api: Api = api_factory()
    admin = api.client.get("/v2.1/vigil/permissions", headers=ADMIN).json()["permissions"]
    assert admin["user_id"] == "admin" and admin["project_id"] == "p1"
    assert "admin" in admin["roles"]
    assert all(admin["rules"][r] for r in READ_RULES + ACTION_RULES)
    reader = api.client.get("/v2.1/vigil/permissions", headers=READER).json()["permissions"]
    assert reader["roles"] == ["reader"]
    assert set(reader["rules"]) == set(admin["rules"])  # every registered rule, checked
    assert not any(reader["rules"].values())             # Nova's defaults: admin only
    assert api.client.get("/v2.1/vigil/permissions?x=1", headers=ADMIN).status_code == 400

    relaxed: Api = api_factory({"policy_file": str(reader_policy(tmp_path))})
    reader = relaxed.client.get("/v2.1/vigil/permissions", headers=READER).json()["permissions"]
    assert all(reader["rules"][r] for r in READ_RULES)
    assert not any(reader["rules"][r] for r in ACTION_RULES)
    # ... and the API agrees with what it said, both ways.
    assert relaxed.client.get("/v2.1/vigil/services", headers=READER).status_code == 200
    assert relaxed.client.put(f"/v2.1/os-services/{relaxed.computes[0].uuid}",
                              headers={**READER, "OpenStack-API-Version": "compute 2.53"},
                              json={"status": "disabled"}).status_code == 403


# ---- evacuate through the API ----------------------------------------------------------------
def evacuate(api: Api, host: str, headers: dict[str, str] = ADMIN, body: Any = None) -> Any:
    return api.client.post(f"/v2.1/vigil/hosts/{host}/action", headers=headers,
                           json={"evacuate": {}} if body is None else body)


def test_evacuate_opens_a_manual_recovery_with_its_actor(api: Api) -> None:
    db.record_reports(api.engine, [api.computes[0].id], 10)   # host1 reports: up
    api.make_unknown(api.computes[1])                         # host2: unknown
    db.record_leave(api.engine, api.computes[2].id)           # host3 left: down
    r = evacuate(api, "host1")
    assert r.status_code == 409 and "still reports" in r.json()["conflictingRequest"]["message"]
    r = evacuate(api, "host2")
    assert r.status_code == 409 and "unknown" in r.text
    assert evacuate(api, "nowhere").status_code == 404
    assert not recoveries_db.recoveries(api.engine)
    r = evacuate(api, "host3")
    assert r.status_code == 202, r.text
    rec = r.json()["recovery"]
    assert rec["host"] == "host3" and rec["trigger"] == "manual" and rec["open"]
    assert rec["phase"] == "detected"
    events = recoveries_db.events(api.engine, rec["id"])
    assert [e.detail for e in events] == ["requested by admin (project p1) for host3"]
    assert evacuate(api, "host3").json()["recovery"]["id"] == rec["id"]  # joins the open one
    listed = api.client.get("/v2.1/vigil/recoveries?open=true", headers=ADMIN).json()
    assert [x["id"] for x in listed["recoveries"]] == [rec["id"]]


@pytest.mark.parametrize("headers", [MEMBER, READER])
def test_only_admins_evacuate(api: Api, headers: dict[str, str]) -> None:
    db.record_leave(api.engine, api.computes[2].id)
    r = evacuate(api, "host3", headers)
    assert r.status_code == 403 and "vigil:hosts:evacuate" in r.text
    assert not recoveries_db.recoveries(api.engine)


@pytest.mark.parametrize("body", [
    {"evacuate": {"force": True}}, {"evacuate": None}, {"evacuate": []},
    {"evacuate": {}, "release": {"reason": "x"}}, {"reboot": {}},
])
def test_bad_evacuate_bodies_are_400(api: Api, body: Any) -> None:
    db.record_leave(api.engine, api.computes[2].id)
    r = evacuate(api, "host3", body=body)
    assert r.status_code == 400 and "badRequest" in r.json(), r.text
    assert not recoveries_db.recoveries(api.engine)
