"""Request ids and the access log, as an OpenStack API has them.

Every answer carries ``x-openstack-request-id: req-<uuid>`` (errors, 401s and the public paths
included: it is the outermost middleware), and every log line written while a request is served
names that request and its caller: oslo.log's context format (``[req-... user project]``)
reads an oslo.context RequestContext from the record, which :func:`install_log_context` attaches.
The context lives in a :class:`contextvars.ContextVar`, which anyio copies into the worker threads
where the handlers run, so a handler's own lines carry it too. It is filled in lazily: the caller
is known only after :class:`~vigil.api.app.ComputeMiddleware` has authenticated, further in.

One access line per request, after the answer (logger ``vigil.api.access``), in the shape of
Nova's: ``<client> "GET /v2.1/os-services HTTP/1.1" status: 200 len: 512 microversion: 2.1
time: 0.0123``.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from oslo_context import context as oslo_context
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil import notifications

ACCESS = logging.getLogger("vigil.api.access")
# Answered with our id; when a client (or another service) sends one of its own with the same
# header, it is logged as oslo.log's global_request_id (if it has the right shape), as
# oslo.middleware's request_id does.
HEADER = "x-openstack-request-id"

_CURRENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "vigil_api_request", default=None)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def _valid_global_id(value: str) -> bool:
    """oslo.context's rule for a global request id: ``req-`` and a UUID."""
    if not value.startswith("req-"):
        return False
    try:
        uuid.UUID(value[4:])
    except ValueError:
        return False
    return True


def current_context() -> oslo_context.RequestContext | None:
    """The oslo.context of the request being served in this context, if any (the caller's
    user and project once authentication has run)."""
    state = _CURRENT.get()
    if state is None:
        return None
    caller = state.get("context")  # vigil.api.auth.Context, set by ComputeMiddleware
    # Detached: a plain RequestContext would become the serving thread's "current" context the
    # first time, and tag that thread's log lines long after this request ended.
    return notifications.DetachedContext(
        request_id=state["request_id"],
        global_request_id=state.get("global_request_id"),
        user_id=getattr(caller, "user_id", None),
        project_id=getattr(caller, "project_id", None),
        overwrite=False,
    )


def _actor(state: dict[str, Any]) -> notifications.Actor:
    """The API's caller as the audit and the notifications name it."""
    caller = state.get("context")
    return notifications.Actor(
        user_id=getattr(caller, "user_id", None), project_id=getattr(caller, "project_id", None),
        request_id=state["request_id"], global_request_id=state.get("global_request_id"))


def install_log_context() -> None:
    """Make every log record made while a request is served carry its context (idempotent).

    A record factory rather than a handler filter: it works whatever handlers oslo.log, a
    logging config file or a test installed, and whenever they were installed.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "vigil_request_context", False):
        return

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if not hasattr(record, "context"):
            context = current_context()
            if context is not None:
                record.context = context
        return record

    make.vigil_request_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)


class RequestLogMiddleware:
    """The request id (header, log context) and the access log line of every HTTP request."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        for name, value in scope.get("headers", ()):
            if name == HEADER.encode() and _valid_global_id(value.decode("latin-1")):
                state["global_request_id"] = value.decode("latin-1")
        token = _CURRENT.set(state)
        actor_token = notifications.set_actor_source(lambda: _actor(state))
        # Before the app runs: ComputeMiddleware rewrites a legacy /v2.1/{project_id}/ path.
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        started = self.clock()
        answer: dict[str, Any] = {"status": 500, "length": 0, "version": "-"}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[HEADER] = request_id
                answer["status"] = message["status"]
                answer["version"] = headers.get("openstack-api-version", "-").removeprefix(
                    "compute ")
            elif message["type"] == "http.response.body":
                answer["length"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, path, answer, self.clock() - started)
            notifications.reset_actor_source(actor_token)
            _CURRENT.reset(token)

    @staticmethod
    def _log(scope: Scope, path: str, answer: dict[str, Any], elapsed: float) -> None:
        client = scope.get("client") or ("-", 0)
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"{path}?{query}" if query else path
        ACCESS.info('%s "%s %s HTTP/%s" status: %s len: %s microversion: %s time: %.4f',
                    client[0], scope["method"], target, scope.get("http_version", "1.1"),
                    answer["status"], answer["length"], answer["version"], elapsed)
