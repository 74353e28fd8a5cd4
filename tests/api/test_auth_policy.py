"""Authentication strategies and Nova's default policy for os-services."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ADMIN, MEMBER, READER, Api, at
from vigil.api import auth
from vigil.errors import ConfigError

UNAUTHORIZED = {"unauthorized": {"message": "The request you have made requires "
                                            "authentication.", "code": 401}}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v2.1/os-services"), ("PUT", "/v2.1/os-services/disable"),
    ("DELETE", "/v2.1/os-services/1"), ("GET", "/v2.1/vigil/services"),
    ("GET", "/v2.1/unknown-route"),
])
@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}])
def test_anonymous_or_bad_token_is_401(api: Api, method: str, path: str,
                                       headers: dict[str, str]) -> None:
    before = api.snapshot()
    r = api.client.request(method, path, headers=headers,
                           json={"host": "host1", "binary": "nova-compute"})
    assert r.status_code == 401
    assert r.json() == UNAUTHORIZED
    assert api.snapshot() == before


@pytest.mark.parametrize("path", ["/", "/v2.1", "/v2.1/", "/healthz", "/openapi.json"])
def test_public_paths_need_no_token(api: Api, path: str) -> None:
    assert api.client.get(path).status_code == 200


@pytest.mark.parametrize("who", [MEMBER, READER])
def test_non_admin_is_403_everywhere(api: Api, who: dict[str, str]) -> None:
    before = api.snapshot()
    rec = api.computes[0]
    calls = [
        ("GET", "/v2.1/os-services", "2.1", None, "list"),
        ("PUT", "/v2.1/os-services/disable", "2.1", {"host": "host1", "binary":
                                                     "nova-compute"}, "update"),
        ("PUT", f"/v2.1/os-services/{rec.uuid}", "2.53", {"status": "disabled"}, "update"),
        ("DELETE", f"/v2.1/os-services/{rec.id}", "2.1", None, "delete"),
    ]
    for method, path, version, body, rule in calls:
        r = api.client.request(method, path, headers=at(version, who), json=body)
        assert r.status_code == 403, (method, path)
        assert r.json() == {"forbidden": {
            "message": f"Policy doesn't allow os_compute_api:os-services:{rule} to be "
            "performed.", "code": 403}}
    assert api.client.get("/v2.1/vigil/services", headers=who).status_code == 403
    assert api.snapshot() == before


def test_policy_file_overrides(api_factory: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"os_compute_api:os-services:list": "role:reader"\n'
                      '"os_compute_api:os-services:delete": "!"\n')
    api = api_factory({"policy_file": str(policy)})
    assert api.client.get("/v2.1/os-services", headers=READER).status_code == 200
    # update keeps its default
    r = api.client.put("/v2.1/os-services/disable", headers=READER,
                       json={"host": "host1", "binary": "vigil-compute"})
    assert r.status_code == 403
    # "!" denies even the admin
    assert api.client.delete(f"/v2.1/os-services/{api.computes[0].id}",
                             headers=ADMIN).status_code == 403


def test_missing_policy_file_refuses_to_start(api_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        api_factory({"policy_file": str(tmp_path / "nope.yaml")})


def test_noauth(api_factory: Any) -> None:
    api = api_factory({"auth_strategy": "noauth"})
    assert api.client.get("/v2.1/os-services").status_code == 401
    assert api.client.get("/v2.1/os-services",
                          headers={"X-Auth-Token": "admin:admin"}).status_code == 200
    assert api.client.get("/v2.1/os-services",
                          headers={"X-Auth-Token": "alice:p1"}).status_code == 403


def test_token_file_yaml_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("tok1:\n  user_id: u\n  project_id: p\n  roles: [admin]\n")
    ctx = auth.TokenFileAuth.from_file(f).authenticate({"x-auth-token": "tok1"}, {})
    assert ctx.user_id == "u" and ctx.is_admin
    with pytest.raises(auth.Unauthenticated):
        auth.TokenFileAuth.from_file(f).authenticate({"x-auth-token": "tok2"}, {})
    for bad in ("[1, 2]", "tok: {roles: [admin]}", "tok: {user_id: u, roles: admin}", ": x: ["):
        f.write_text(bad)
        with pytest.raises(ConfigError):
            auth.load_token_file(f)
    with pytest.raises(ConfigError, match="cannot read"):
        auth.load_token_file(tmp_path / "missing.json")


def test_admin_token_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tokens.json"
    token = auth.write_admin_token_file(path)
    assert len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())[token]["roles"][0] == "admin"
    assert auth.write_admin_token_file(path) == token


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_keystone_middleware_is_wired(api_factory: Any) -> None:
    """keystonemiddleware's auth_token really runs: without a token it answers 401 itself
    (no Keystone needed for that); with a token it must ask Keystone, which is not there, so
    the request fails closed with 503, never reaching a route."""
    port = _closed_port()
    api = api_factory(
        {"auth_strategy": "keystone"},
        keystone_authtoken={
            "www_authenticate_uri": f"http://127.0.0.1:{port}/identity",
            "auth_url": f"http://127.0.0.1:{port}/identity",
            "auth_type": "password", "username": "vigil", "password": "secret",
            "project_name": "service", "user_domain_name": "Default",
            "project_domain_name": "Default", "http_connect_timeout": "1",
            "http_request_max_retries": "0",
        },
    )
    before = api.snapshot()
    r = api.client.get("/v2.1/os-services")
    assert r.status_code == 401 and r.json() == UNAUTHORIZED
    r = api.client.delete(f"/v2.1/os-services/{api.computes[0].id}",
                          headers={"X-Auth-Token": "forged"})
    assert r.status_code == 503
    assert "serviceUnavailable" in r.json()
    assert api.snapshot() == before


def test_keystone_validates_tokens_and_roles(api_factory: Any) -> None:
    """The real auth_token middleware against a stand-in Keystone: a valid admin token lists
    services, a valid member token is 403 by policy, an unknown token is 401."""
    from tests.api.fake_keystone import FakeKeystone

    fake = FakeKeystone({"ks-admin": ("ann", "ops", ["admin", "reader"]),
                         "ks-member": ("joe", "ops", ["member", "reader"])})
    with fake.running():
        api = api_factory(
            {"auth_strategy": "keystone"},
            keystone_authtoken={
                "www_authenticate_uri": fake.base, "auth_url": fake.base,
                "auth_type": "password", "username": "vigil", "password": "secret",
                "project_name": "service", "user_domain_name": "Default",
                "project_domain_name": "Default", "interface": "internal",
                "http_request_max_retries": "0",
            },
        )
        r = api.client.get("/v2.1/os-services", headers={"X-Auth-Token": "ks-admin"})
        assert r.status_code == 200, r.text
        assert len(r.json()["services"]) == 4
        r = api.client.get("/v2.1/os-services", headers={"X-Auth-Token": "ks-member"})
        assert r.status_code == 403
        # identity headers sent by the client are the middleware's to set, not the caller's
        spoofed = {"X-Auth-Token": "ks-member", "X-Roles": "admin",
                   "X-Identity-Status": "Confirmed", "X-User-Id": "ann-id"}
        assert api.client.get("/v2.1/os-services", headers=spoofed).status_code == 403
        spoofed["X-Auth-Token"] = "forged"
        assert api.client.get("/v2.1/os-services", headers=spoofed).status_code == 401
        r = api.client.get("/v2.1/os-services", headers={"X-Auth-Token": "forged"})
        assert r.status_code == 401 and r.json() == UNAUTHORIZED
        assert fake.validations >= 3
