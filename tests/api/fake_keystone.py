"""A minimal Keystone v3 on 127.0.0.1 for keystonemiddleware to talk to in tests.

It implements only what the real ``auth_token`` middleware uses: version discovery, password
authentication of the service user, and token validation (``GET /v3/auth/tokens``: 200 with
the token's identity and roles, 404 for an unknown token). The middleware under test is the
real one; only the identity server is a stand-in, because Keystone itself cannot run here.
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


def _token_body(base: str, user: str, project: str, roles: list[str]) -> dict[str, Any]:
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
                                   for i in ("public", "internal", "admin")]}],
    }}


class FakeKeystone:
    """Tokens: ``{token: (user, project, roles)}``; the service user authenticates with any
    password and gets ``service-token``."""

    def __init__(self, tokens: dict[str, tuple[str, str, list[str]]]) -> None:
        self.tokens = dict(tokens)
        self.validations = 0
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
                    self._send(200, _token_body(fake.base, user, project, roles),
                               {"X-Subject-Token": subject})
                    return
                self._send(404, {"error": {"code": 404, "message": self.path}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                if self.path.rstrip("/") == "/identity/v3/auth/tokens":
                    self._send(201, _token_body(fake.base, "vigil", "service", ["service"]),
                               {"X-Subject-Token": "service-token"})
                    return
                self._send(404, {"error": {"code": 404, "message": self.path}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/identity"

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
