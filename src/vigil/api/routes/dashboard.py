"""The operator dashboard: its static page, what a caller may do, and its live change feed.

- ``GET /dashboard/``: the page (HTML, JavaScript, CSS shipped in this package, nothing from
  elsewhere). Served without credentials, like the version documents: it holds no data. It asks
  for a token and sends it, in ``X-Auth-Token``, with every API call it makes, so the page is
  behind exactly the authentication and policy of the API.
- ``GET /v2.1/vigil/permissions``: the caller's identity and, for every registered policy rule,
  whether the caller passes it (the same oslo.policy check the routes make). The dashboard
  shows an action only where its rule passes; the routes still check on every call.
- ``GET /v2.1/vigil/feed``: server-sent events from :mod:`vigil.api.feed` (one poller per API
  process, shared by every stream). Authenticated like any API call, by ``X-Auth-Token``: the
  dashboard reads it with ``fetch()`` and a stream reader, since ``EventSource`` cannot send
  headers (and a token in the URL would end up in logs and histories). Each stream carries only
  the sections whose REST resources the caller may read; none at all is a 403. Not in the
  OpenAPI document: an endless ``text/event-stream`` has no schema a client generator can use
  (docs/dashboard.md describes it).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.types import Receive, Scope, Send

from vigil.api.deps import Ctx
from vigil.api.errors import Fault
from vigil.api.feed import (
    NODE_COLUMNS,
    SECTION_RULES,
    SECTIONS,
    SERVICE_COLUMNS,
    Feed,
    dumps,
    sse,
)
from vigil.api.routes.services import errors_doc

router = APIRouter(tags=["vigil"])

PREFIX = "/dashboard"
STATIC = importlib.resources.files("vigil.api") / "static"
_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\.(html|js|css|svg|png|txt)$")
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
          "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "png": "image/png",
          "txt": "text/plain; charset=utf-8"}
# The page loads nothing but its own files and talks to nothing but this API.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: str
    media_type: str


_files: dict[str, _File] = {}


def _load(name: str) -> _File | None:
    if not _NAME.match(name):
        return None
    cached = _files.get(name)
    if cached is not None:
        return cached
    resource = STATIC.joinpath(*name.split("/"))
    if not resource.is_file():
        return None
    body = resource.read_bytes()
    found = _File(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                  _TYPES[name.rsplit(".", 1)[1]])
    _files[name] = found
    return found


def _static(request: Request, name: str) -> Response:
    found = _load(name)
    if found is None:
        raise Fault(404)
    headers = {"ETag": found.etag, "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    if found.media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
        headers["X-Frame-Options"] = "DENY"
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


# async: the files are a few kB, read once and kept in memory; answering them on the event loop
# spares each of the page's dozen requests a trip through the thread pool.
@router.get(PREFIX, include_in_schema=False)
async def dashboard_root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get(PREFIX + "/", include_in_schema=False)
async def dashboard_index(request: Request) -> Response:
    return _static(request, "index.html")


@router.get(PREFIX + "/{name:path}", include_in_schema=False)
async def dashboard_file(name: str, request: Request) -> Response:
    return _static(request, name)


# ---- what may I do ---------------------------------------------------------------------------
PERMISSIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"permissions": {
        "type": "object",
        "properties": {
            "user_id": {"type": "string"},
            "project_id": {"type": ["string", "null"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "rules": {"type": "object", "additionalProperties": {"type": "boolean"},
                      "description": "every registered policy rule: whether the caller "
                      "passes it"},
        },
        "required": ["user_id", "project_id", "roles", "rules"]}},
    "required": ["permissions"],
}


@router.get("/v2.1/vigil/permissions",
            summary="What the caller may do: every policy rule, checked for this token",
            response_model=None,
            responses={200: {"content": {"application/json": {"schema": PERMISSIONS_SCHEMA}}},
                       **errors_doc(400, 401, 406, 503)})
def permissions(ctx: Ctx) -> dict[str, Any]:
    if ctx.request.query_params:
        raise Fault(400, "This resource takes no query parameters.")
    caller = ctx.caller
    return {"permissions": {
        "user_id": caller.user_id, "project_id": caller.project_id,
        "roles": list(caller.roles),
        "rules": {rule: ctx.policy.allows(rule, caller) for rule in ctx.policy.rules()}}}


# ---- the feed --------------------------------------------------------------------------------
def feed_of(request: Request) -> Feed:
    feed: Feed = request.app.state.vigil_feed
    return feed


class EventStream(Response):
    """A ``text/event-stream`` answer that unsubscribes as soon as the client goes away
    (uvicorn tells only through ``receive()``: its ``send`` after a disconnect is silent)."""

    media_type = "text/event-stream"

    def __init__(self, feed: Feed, sections: frozenset[str], hello: dict[str, Any]) -> None:
        # Not Response.__init__: it would announce a Content-Length of the empty body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no"),
                            (b"x-content-type-options", b"nosniff")]
        self.feed = feed
        self.sections = sections
        self.hello = hello

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        sub = self.feed.subscribe(self.sections)
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                await send({"type": "http.response.body", "more_body": True,
                            "body": sse("hello", dumps(self.hello))})
                async for chunk in self.feed.events(sub):
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            self.feed.unsubscribe(sub)


@router.get("/v2.1/vigil/feed", include_in_schema=False)
async def feed(ctx: Ctx) -> Response:
    caller, pol = ctx.caller, ctx.policy
    sections = frozenset(name for name in SECTIONS
                         if all(pol.allows(rule, caller) for rule in SECTION_RULES[name]))
    if not sections:
        raise Fault(403, f"Policy doesn't allow {SECTION_RULES['services'][0]} to be "
                         "performed.")
    f = feed_of(ctx.request)
    hello = {"sections": [s for s in SECTIONS if s in sections],
             "columns": {"services": SERVICE_COLUMNS, "nodes": NODE_COLUMNS},
             "interval": f.interval, "heartbeat": f.heartbeat, "max_age": f.max_age,
             "caller": {"user_id": caller.user_id, "project_id": caller.project_id,
                        "roles": list(caller.roles)}}
    return EventStream(f, sections, hello)
