"""A minimal Keystone v3 on 127.0.0.1 for keystonemiddleware to talk to in tests.

It implements only what the real ``auth_token`` middleware uses: version discovery, password
authentication of the service user, and token validation (``GET /v3/auth/tokens``: 200 with
the token's identity and roles, 404 for an unknown token). For clients (keystoneauth in the
``vigil`` CLI) it also logs ``users`` in by password or by token, issuing tokens it then
validates, with ``catalog`` entries (e.g. a compute endpoint) in every token. The middleware
under test is the real one; only the identity server is a stand-in, because Keystone itself
cannot run here.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOMAIN = {"id": "default", "name": "Default"}


def _token_body(base: str, user: str, project: str, roles: list[str],
                catalog: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.000000Z"
    return {"token": {
        "methods": ["password"],
        "issued_at": now.strftime(fmt),
        "expires_at": (now + dt.timedelta(hours=1)).strftime(fmt),
        "user": {"id": f"{user}-id", "name": user, "domain": DOMAIN},
        "project": {"id": f"{project}-id", "name": project, "domain": DOMAIN},
        "roles": [{"id": f"{r}-id", "name": r} for r in roles],
        "catalog": [{"type": "identity", "name": "keystone", "id": "identity-id",
                     "endpoints": [{"id": f"ep-{i}", "interface": i, "region": "RegionOne",
                                    "region_id": "RegionOne", "url": f"{base}/v3"}
                                   for i in ("public", "internal", "admin")]},
                    *(catalog or [])],
    }}


def service_entry(service_type: str, url: str) -> dict[str, Any]:
    """A catalog entry with ``url`` on every interface, in RegionOne."""
    return {"type": service_type, "name": service_type, "id": f"{service_type}-id",
            "endpoints": [{"id": f"{service_type}-{i}", "interface": i, "region": "RegionOne",
                           "region_id": "RegionOne", "url": url}
                          for i in ("public", "internal", "admin")]}


class FakeKeystone:
    """Tokens: ``{token: (user, project, roles)}``; the service user authenticates with any
    password and gets ``service-token``."""

    def __init__(self, tokens: dict[str, tuple[str, str, list[str]]],
                 users: dict[str, tuple[str, str, list[str]]] | None = None,
                 catalog: list[dict[str, Any]] | None = None) -> None:
        """``users``: name -> (password, project, roles) that may log in."""
        self.tokens = dict(tokens)
        self.users = dict(users or {})
        self.catalog = list(catalog or [])
        self.validations = 0
        self.logins = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, code: int, body: Any = None,
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.rstrip("/")
                if path in ("/identity", "/identity/v3"):
                    v3 = {"id": "v3.14", "status": "stable", "updated": "2020-01-01T00:00:00Z",
                          "links": [{"rel": "self", "href": f"{fake.base}/v3/"}],
                          "media-types": [{"base": "application/json",
                                           "type": "application/vnd.openstack.identity-v3+json"}]}
                    if path.endswith("/v3"):
                        self._send(200, {"version": v3})
                    else:
                        self._send(300, {"versions": {"values": [v3]}})
                    return
                if path == "/identity/v3/auth/tokens":
                    fake.validations += 1
                    if self.headers.get("X-Auth-Token") != "service-token":
                        self._send(401, {"error": {"code": 401, "message": "no"}})
                        return
                    subject = self.headers.get("X-Subject-Token", "")
                    if subject not in fake.tokens:
                        self._send(404, {"error": {"code": 404, "message": "not found"}})
                        return
                    user, project, roles = fake.tokens[subject]
                    self._send(200, _token_body(fake.base, user, project, roles, fake.catalog),
                               {"X-Subject-Token": subject})
                    return
                self._send(404, {"error": {"code": 404, "message": self.path}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path.rstrip("/") == "/identity/v3/auth/tokens":
                    identity = json.loads(raw or b"{}").get("auth", {}).get("identity", {})
                    issued = fake.login(identity)
                    if issued is not None:
                        token, (user, project, roles) = issued
                        self._send(201, _token_body(fake.base, user, project, roles,
                                                    fake.catalog), {"X-Subject-Token": token})
                        return
                    if identity.get("password", {}).get("user", {}).get("name") in fake.users \
                            or "token" in identity.get("methods", []):
                        self._send(401, {"error": {"code": 401, "message": "bad login"}})
                        return
                    self._send(201, _token_body(fake.base, "vigil", "service", ["service"]),
                               {"X-Subject-Token": "service-token"})
                    return
                self._send(404, {"error": {"code": 404, "message": self.path}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/identity"

    def login(self, identity: dict[str, Any]) -> tuple[str, tuple[str, str, list[str]]] | None:
        """A new token for a known user's password, or the same token re-scoped; None when
        the request is not a client's login (the service user's, answered as before)."""
        methods = identity.get("methods", [])
        if "password" in methods:
            user = identity["password"]["user"].get("name", "")
            if user not in self.users or self.users[user][0] != identity["password"][
                    "user"].get("password"):
                return None
            _, project, roles = self.users[user]
            self.logins += 1
            token = f"tok-{user}-{self.logins}"
            self.tokens[token] = (user, project, list(roles))
            return token, self.tokens[token]
        if "token" in methods:
            token = identity["token"].get("id", "")
            if token in self.tokens:
                return token, self.tokens[token]
        return None

    @contextmanager
    def running(self) -> Iterator[FakeKeystone]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)
