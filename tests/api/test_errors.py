"""Bad input of every kind is a 4xx with Nova's body and changes nothing; /healthz."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, Api, at
from vigil import launch
from vigil.api import auth
from vigil.api.app import create_app
from vigil.api.policy import Policy
from vigil.db.engine import make_engine
from vigil.registry import Registry


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"", b"   ", b'{"host": }'])
@pytest.mark.parametrize("version", ["2.1", "2.53"])
def test_malformed_bodies(api: Api, raw: bytes, version: str) -> None:
    before = api.snapshot()
    path = "disable" if version == "2.1" else api.computes[0].uuid
    r = api.client.put(f"/v2.1/os-services/{path}", content=raw,
                       headers={**at(version), "Content-Type": "application/json"})
    assert r.status_code == 400
    (key,) = r.json()
    assert key == "badRequest" and r.json()[key]["code"] == 400
    assert api.snapshot() == before


@pytest.mark.parametrize(("method", "path", "code", "fault"), [
    ("GET", "/v2.1/os-services/1", 405, "badMethod"),
    ("POST", "/v2.1/os-services", 405, "badMethod"),
    ("PATCH", "/v2.1/os-services/1", 405, "badMethod"),
    ("GET", "/v2.1/servers-not-here", 404, "itemNotFound"),
    ("GET", "/v3", 404, "itemNotFound"),
    ("POST", "/v2.1", 405, "badMethod"),
])
def test_unknown_routes_and_methods(api: Api, method: str, path: str, code: int,
                                    fault: str) -> None:
    r = api.client.request(method, path, headers=ADMIN)
    assert r.status_code == code
    assert r.json()[fault]["code"] == code


def test_healthz_ok(api: Api) -> None:
    r = api.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("url", ["postgresql", "sqlite"])
def test_healthz_503_without_database_and_api_503_too(tmp_path: Path, api: Api, url: str
                                                      ) -> None:
    # A PostgreSQL server that is not there (connection refused), or a SQLite database
    # without Vigil's schema: neither can serve.
    if url == "postgresql":
        url = f"postgresql+psycopg2://vigil@127.0.0.1:{_closed_port()}/vigil"
    else:
        url = f"sqlite:///{tmp_path}/empty.sqlite"
    engine = make_engine(url)
    registry = Registry(engine, launch.group_from(api.conf, engine))
    app = create_app(registry, Policy(api.conf), auth.TokenFileAuth.from_file(
        api.conf.api.token_file))
    with TestClient(app) as client:
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json() == {"status": "unavailable"}
        r = client.get("/v2.1/os-services", headers=ADMIN)
        assert r.status_code == 503
        assert r.json()["serviceUnavailable"]["code"] == 503


def test_registry_validation_surfaces_as_400(api: Api) -> None:
    # Nova's schema allows a whitespace-only reason; Vigil's registry refuses it (1-255
    # characters after trimming), still as a 400 that changes nothing.
    before = api.snapshot()
    r = api.client.put("/v2.1/os-services/disable-log-reason", headers=ADMIN,
                       json={"host": "host1", "binary": "nova-compute",
                             "disabled_reason": "   "})
    assert r.status_code == 400
    assert api.snapshot() == before


def test_no_500_on_odd_inputs(api: Api) -> None:
    odd: list[tuple[str, str, Any]] = [
        ("PUT", "/v2.1/os-services/%00", {"status": "disabled"}),
        ("DELETE", "/v2.1/os-services/%F0%9F%92%A5", None),
        ("GET", "/v2.1/os-services?host=%00&binary=%FF", None),
        ("PUT", "/v2.1/os-services/disable", {"host": "h" * 300, "binary": "b"}),
        ("PUT", "/v2.1/os-services/disable", {"host": None, "binary": None}),
        ("PUT", "/v2.1/os-services/disable", {"host": ["a"], "binary": {"b": 1}}),
    ]
    for version in ("2.1", "2.11", "2.53", "2.75"):
        for method, path, body in odd:
            r = api.client.request(method, path, headers=at(version), json=body)
            if method == "GET":  # odd filter values simply match nothing
                assert r.status_code == 200 and r.json() == {"services": []}
            else:
                assert 400 <= r.status_code < 500, (version, method, path, r.text)


def test_non_json_content_type_is_415(api: Api) -> None:
    before = api.snapshot()
    r = api.client.put("/v2.1/os-services/disable", headers={**ADMIN, "Content-Type":
                                                             "text/plain"},
                       content=b'{"host": "host1", "binary": "nova-compute"}')
    assert r.status_code == 415
    assert r.json() == {"badMediaType": {"message": "Invalid content type text/plain.",
                                         "code": 415}}
    r = api.client.put("/v2.1/os-services/disable",
                       headers={**ADMIN, "Content-Type": "application/json; charset=UTF-8"},
                       content=b'{"host": "host1", "binary": "nova-compute"}')
    assert r.status_code == 200
    assert api.snapshot() != before


def test_oversized_body_is_413(api: Api) -> None:
    before = api.snapshot()
    big = b'{"host": "host1", "binary": "nova-compute", "disabled_reason": "' + \
        b"x" * 200_000 + b'"}'
    r = api.client.put("/v2.1/os-services/disable-log-reason", content=big,
                       headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["overLimit"]["code"] == 413
    assert api.snapshot() == before
