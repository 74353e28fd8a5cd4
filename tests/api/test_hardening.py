"""Hostile input answers 4xx in Nova's body and changes nothing; HTTP behaves as clients
expect (issue 12). One test per cause once seen as a 500 or a protocol fault; the fuzz tests
(test_fuzz.py) throw the same classes of input at every route."""

from __future__ import annotations

import http.client
import socket
from typing import Any

import pytest
from fastapi import APIRouter

from tests.api.conftest import ADMIN, READER, Api, at
from vigil.api import app as app_module
from vigil.api import bodyguard
from vigil.api.policy import Policy
from vigil.api.server import ApiServer

# The routes with a JSON body, each with a version and a path where the body is read.
BODY_ROUTES = [
    ("PUT", "/v2.1/os-services/disable", "2.1"),
    ("PUT", "/v2.1/os-services/{uuid}", "2.53"),
    ("POST", "/v2.1/flavors", "2.1"),
    ("POST", "/v2.1/servers", "2.1"),
    ("POST", "/v2.1/vigil/nodes", "2.1"),
    ("PUT", "/v2.1/vigil/hosts/host1", "2.1"),
]


def send(api: Api, method: str, path: str, version: str, raw: bytes,
         headers: dict[str, str] = ADMIN) -> Any:
    path = path.replace("{uuid}", api.computes[0].uuid)
    return api.client.request(method, path, content=raw,
                              headers={**at(version, headers),
                                       "Content-Type": "application/json"})


def bad_request(r: Any) -> str:
    assert r.status_code == 400, (r.status_code, r.text)
    fault = r.json()["badRequest"]
    assert fault["code"] == 400
    return str(fault["message"])


# ---- bodies ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "version"), BODY_ROUTES)
@pytest.mark.parametrize("token", [ADMIN, READER], ids=["admin", "reader"])
def test_deep_nesting_is_400_for_any_token(api: Api, method: str, path: str, version: str,
                                           token: dict[str, str]) -> None:
    before = api.snapshot()
    for raw in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
                b"[" * 100_000):
        assert "nested deeper" in bad_request(send(api, method, path, version, raw, token))
    assert api.snapshot() == before


def test_deep_nesting_still_needs_authentication(api: Api) -> None:
    r = api.client.put("/v2.1/os-services/disable", content=b"[" * 1000 + b"]" * 1000,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and "unauthorized" in r.json()


@pytest.mark.parametrize(("raw", "depth"), [
    (b"{}", 1), (b"[[], [[]]]", 3), (b'{"a": "[[[[{{{{"}', 1), (b'["\\"[["]', 1),
    (b"1", 0), (b"[" * 50, 33),  # counting stops once the limit is passed
])
def test_nesting_depth(raw: bytes, depth: int) -> None:
    assert bodyguard.nesting_depth(raw) == depth


@pytest.mark.parametrize("raw", [
    b'{"host": "host1", "binary": "nova-compute", "disabled_reason": "\\ud800"}',
    b'{"host": "host1", "binary": "nova-compute", "disabled_reason": "a\\udfffb"}',
    b'{"host": "host1", "binary": "nova-compute", "\\ud800": "x"}',
])
def test_lone_surrogates_are_400(api: Api, raw: bytes) -> None:
    before = api.snapshot()
    r = send(api, "PUT", "/v2.1/os-services/disable-log-reason", "2.1", raw)
    assert "lone surrogate" in bad_request(r)
    assert api.snapshot() == before


def test_a_paired_surrogate_is_a_character(api: Api) -> None:
    raw = b'{"host": "host1", "binary": "nova-compute", "disabled_reason": "\\ud83d\\udca5"}'
    r = send(api, "PUT", "/v2.1/os-services/disable-log-reason", "2.1", raw)
    assert r.status_code == 200 and r.json()["service"]["disabled_reason"] == "\U0001f4a5"


@pytest.mark.parametrize("raw", [
    b'{"flavor": {"name": "big", "ram": ' + b"9" * 4301 + b', "vcpus": 1, "disk": 1}}',
    b'{"flavor": {"name": "big", "ram": "' + b"9" * 4301 + b'", "vcpus": 1, "disk": 1}}',
    b'{"flavor": {"name": "big", "ram": "' + b"9" * 25 + b'", "vcpus": 1, "disk": 1}}',
    b'{"flavor": {"name": "big", "ram": NaN, "vcpus": 1, "disk": 1}}',
    b'{"flavor": {"name": "big", "ram": Infinity, "vcpus": 1, "disk": 1}}',
])
def test_huge_or_non_finite_numbers_are_400(api: Api, raw: bytes) -> None:
    bad_request(send(api, "POST", "/v2.1/flavors", "2.1", raw))
    assert "big" not in {f["name"] for f in api.client.get("/v2.1/flavors",
                                                             headers=ADMIN).json()["flavors"]}


# ---- control characters in names and reasons -------------------------------------------------
@pytest.mark.parametrize("text", ["a\x00b", "line\r\nInjected: yes", "\x1b[31mred\x1b[0m",
                                  "tab\there", "del\x7f", "c1\x9b"])
def test_control_characters_are_refused_in_reasons(api: Api, text: str) -> None:
    before = api.snapshot()
    r = api.client.put(f"/v2.1/os-services/{api.computes[0].uuid}", headers=at("2.53"),
                       json={"status": "disabled", "disabled_reason": text})
    assert "does not match" in bad_request(r)
    r = api.client.put("/v2.1/os-services/disable-log-reason", headers=ADMIN,
                       json={"host": "host1", "binary": "nova-compute", "disabled_reason": text})
    bad_request(r)
    assert api.snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v2.1/flavors", {"flavor": {"name": "x\ny", "ram": 1, "vcpus": 1, "disk": 1}}),
    ("POST", "/v2.1/vigil/nodes", {"node": {"name": "n\x00", "properties": {
        "cpus": 1, "memory_mb": 1, "local_gb": 1}}}),
    ("PUT", "/v2.1/vigil/hosts/host1", {"maintenance": True, "maintenance_reason": "\x1b]0;"}),
    ("PUT", "/v2.1/os-services/disable", {"host": "host1\n", "binary": "nova-compute"}),
    ("PUT", "/v2.1/os-services/disable", {"host": "host1", "binary": "nova-compute\r\n"}),
])
def test_control_characters_are_refused_in_names(api: Api, method: str, path: str,
                                                 body: dict[str, Any]) -> None:
    before = api.snapshot()
    bad_request(api.client.request(method, path, headers=ADMIN, json=body))
    assert api.snapshot() == before


def test_unicode_text_without_controls_is_fine(api: Api) -> None:
    r = api.client.put(f"/v2.1/os-services/{api.computes[0].uuid}", headers=at("2.53"),
                       json={"status": "disabled", "disabled_reason": "Wartung für Gerät ✓"})
    assert r.status_code == 200


# ---- ids -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "ident", "code"), [
    ("2.1", "1" * 26, 404), ("2.1", "9" * 5000, 400), ("2.1", "2147483648", 404),
    ("2.1", "\u0661", 400), ("2.1", "²", 400), ("2.1", "1_0", 400), ("2.1", "-1", 400),
    ("2.53", "1" * 26, 400), ("2.53", "\u0661", 400),
])
def test_hypervisor_ids(api: Api, version: str, ident: str, code: int) -> None:
    r = api.client.get(f"/v2.1/os-hypervisors/{ident}", headers=at(version))
    assert r.status_code == code, r.text
    assert r.json()["badRequest" if code == 400 else "itemNotFound"]["code"] == code


@pytest.mark.parametrize("ident", ["\u0661", "²", "\u0663", "1_0", "9" * 5000, "+1"])
def test_non_ascii_or_odd_digits_are_not_service_ids(api: Api, ident: str) -> None:
    before = api.snapshot()
    r = api.client.delete(f"/v2.1/os-services/{ident}", headers=ADMIN)
    assert r.status_code == 400, r.text
    r = api.client.get(f"/v2.1/vigil/services/{ident}", headers=ADMIN)
    assert r.status_code == 400, r.text
    assert api.snapshot() == before


def test_a_huge_service_id_is_not_found(api: Api) -> None:
    r = api.client.delete(f"/v2.1/os-services/{'1' * 26}", headers=ADMIN)
    assert r.status_code == 404 and r.json()["itemNotFound"]["code"] == 404


# ---- HTTP ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v2.1/os-services/%2F", "/v2.1/os-services/x%2F",
                                  "/v2.1/vigil/services/1/", "/v2.1/os-services/"])
def test_no_redirect_built_from_the_host_header(api: Api, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = api.client.request(method, path, headers={**ADMIN, "Host": "evil.example"},
                               follow_redirects=False)
        assert not 300 <= r.status_code < 400, (method, path, r.status_code)
        assert "location" not in r.headers


@pytest.mark.parametrize("path", ["/", "/v2.1", "/healthz", "/v2.1/os-services",
                                  "/v2.1/os-hypervisors", "/v2.1/vigil/services",
                                  "/v2.1/flavors"])
def test_head_answers_like_get_without_a_body(api: Api, path: str) -> None:
    get = api.client.get(path, headers=ADMIN)
    head = api.client.head(path, headers=ADMIN)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/v2.1/os-services/x", "DELETE, PUT"),
    ("GET", "/v2.1/os-services/x", "DELETE, PUT"),
    ("POST", "/v2.1/os-services", "GET, HEAD"),
    ("DELETE", "/v2.1/flavors", "GET, HEAD, POST"),
])
def test_405_lists_every_allowed_method(api: Api, method: str, path: str, allow: str) -> None:
    r = api.client.request(method, path, headers=ADMIN)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["badMethod"]["code"] == 405


# A route that fails as a bug would: the only way left to make the API answer 500.
router = APIRouter()


@router.get("/v2.1/boom")
def boom() -> None:
    raise RuntimeError("a bug")


def test_a_500_keeps_the_keep_alive_connection_usable(api: Api) -> None:
    """A pooled client's next request after a 500 reuses the connection and succeeds."""
    registry = api.registry
    app = app_module.create_app(
        registry, Policy(api.conf, None), app_module.auth.from_conf(api.conf),
        route_modules=(*app_module.ROUTE_MODULES, __name__))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ApiServer(app, "127.0.0.1", port)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2.1/boom", headers=ADMIN)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 500 and b"computeFault" in body
        assert (r.getheader("Connection") or "").lower() != "close"
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/v2.1/os-services", headers=ADMIN)
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        assert conn.sock is sock  # the same connection: it was not closed under the client
        conn.close()
    finally:
        server.stop()
