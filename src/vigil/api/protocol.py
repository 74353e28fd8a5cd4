"""HTTP as the RFCs and keep-alive clients expect it, whatever the routes do.

One ASGI middleware, :class:`HttpConformance`, for what no route should have to think about:

* **HEAD** on a GET route answers as GET would (status and headers, ``Content-Length``
  included) without a body (RFC 9110 §9.3.2). FastAPI routes declare GET only, so HEAD was 405.
  A route that serves HEAD itself (``/healthcheck``: 204, as oslo.middleware) keeps its own.
* **405 carries a complete ``Allow``**: every method some route serves at that path (with HEAD
  beside GET). Starlette's router names only the methods of the first route that matched the
  path, e.g. only ``PUT`` on ``/os-services/{id}``, which also serves ``DELETE``.
* **An unexpected error is a 500 on a connection that stays usable.** Starlette answers 500 and
  then re-raises to the server, and uvicorn closes the keep-alive connection without a
  ``Connection: close``: a pooled client's *next*, valid request then fails with a reset.
  Here the exception is logged and answered in Nova's body, and goes no further. Only when
  the answer had already started (so no 500 can be sent) is it re-raised, and the server
  rightly drops the broken response's connection.

Trailing-slash redirects are off in the app itself (``redirect_slashes=False``): Starlette built
their ``Location`` from the client's ``Host`` header (an open redirect), and ``.../%2F`` is not
a path any client means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api import errors

LOG = logging.getLogger(__name__)


class HttpConformance:
    """HEAD as GET, complete ``Allow`` on 405, unexpected errors contained (module doc)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # The routers' own routes (FastAPI wraps included routers in objects whose matching
        # depends on per-request state): every path and method the app serves.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD" and not self.serves(scope)
        if head:
            scope = {**scope, "method": "GET"}
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 405:
                    headers = MutableHeaders(scope=message)
                    headers["Allow"] = self.allowed(scope, headers.get("Allow", ""))
            elif message["type"] == "http.response.body" and head:
                if message.get("more_body", False):
                    return  # HEAD: no body; only the final (empty) message goes out
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            if started:
                raise
            # The outer edge of a request: anything a route did not map is a bug, answered
            # as Nova does (a generic 500, no detail) and logged with its traceback.
            LOG.exception("unexpected error handling %s %s", scope["method"], scope["path"],
                          exc_info=exc)
            await errors.fault_response(500, errors.DEFAULT_MESSAGES[500])(
                scope, receive, guarded_send)

    def serves(self, scope: Scope) -> bool:
        """Whether some route serves this request's method at its path itself."""
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    def allowed(self, scope: Scope, given: str) -> str:
        """Every method served at this request's path, as an ``Allow`` value (with the
        methods ``given`` by whoever answered 405: routes outside the routers, such as the
        OpenAPI document's, are known only to it)."""
        methods = {m.strip() for m in given.split(",") if m.strip()}
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))
