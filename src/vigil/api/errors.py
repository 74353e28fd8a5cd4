"""Nova's error bodies, and the mapping from Vigil's error tree to HTTP.

Every error answer has Nova's shape, ``{"<faultName>": {"message": ..., "code": N}}`` with
Nova's fault names (``badRequest``, ``itemNotFound``, ``conflictingRequest``, ...), because
clients (novaclient, openstacksdk, OSC) read ``message`` from the single top-level key to show
the operator why. Anything unexpected becomes a 500 ``computeFault`` with a generic message
and a log line: no traceback or internal detail leaks to the client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from vigil import errors as verr

LOG = logging.getLogger(__name__)

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

# Nova's default explanations (webob's) where a handler gives none.
DEFAULT_MESSAGES = {
    400: "The server could not comply with the request since it is either malformed or "
    "otherwise incorrect.",
    401: "The request you have made requires authentication.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method specified is not allowed for this resource.",
    406: "The resource could not be generated that was acceptable to your user agent.",
    409: "There was a conflict when trying to complete your request.",
    413: "Request is too large.",
    415: "The request media type is not supported by this server.",
    500: "Unexpected API Error. Please report this at the Vigil issue tracker and attach the "
    "Vigil API log if possible.",
    503: "The server is currently unavailable. Please try again at a later time.",
}


class Fault(Exception):
    """An error answer with a status and an operator-readable message."""

    def __init__(self, code: int, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or DEFAULT_MESSAGES.get(code, ""))
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "")
        self.headers = headers or {}


def bad_request(message: str) -> Fault:
    return Fault(400, message)


def body(code: int, message: str) -> dict[str, Any]:
    return {FAULT_NAMES.get(code, "computeFault"): {"message": message, "code": code}}


def fault_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body(code, message)),
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


def fault_doc(code: int) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a Nova fault with this code."""
    name = FAULT_NAMES.get(code, "computeFault")
    schema = {"type": "object",
              "properties": {name: {"type": "object", "properties": {
                  "message": {"type": "string"}, "code": {"type": "integer"}},
                  "required": ["message", "code"]}},
              "required": [name]}
    return {"description": name, "content": {"application/json": {"schema": schema}}}


def status_of(exc: verr.VigilError) -> int:
    """Vigil's error tree to HTTP: InvalidInput 400, NotFound 404, Conflict 409, Unavailable 503."""
    if isinstance(exc, verr.InvalidInput):
        return 400
    if isinstance(exc, verr.NotFound):
        return 404
    if isinstance(exc, verr.Conflict):
        return 409
    if isinstance(exc, verr.Unavailable):
        return 503
    return 500


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a Nova fault body."""

    async def on_fault(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Fault)
        return fault_response(exc.code, exc.message, exc.headers)

    async def on_vigil(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, verr.VigilError)
        code = status_of(exc)
        if code == 500:
            LOG.exception("unexpected Vigil error", exc_info=exc)
            return fault_response(500, DEFAULT_MESSAGES[500])
        return fault_response(code, str(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else None
        if message in (None, "Not Found", "Method Not Allowed"):
            message = DEFAULT_MESSAGES.get(exc.status_code, "")
        return fault_response(exc.status_code, message or "", dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> Response:
        # Only path/query parameters declared on a route reach FastAPI's validation (bodies are
        # validated by vigil.api.validation); a wrong type there is the client's fault.
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return fault_response(400, f"Invalid input for field/attribute {where}. "
                                   f"{first.get('msg', '')}")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        LOG.exception("unexpected error handling %s %s", request.method, request.url.path,
                      exc_info=exc)
        return fault_response(500, DEFAULT_MESSAGES[500])

    app.add_exception_handler(Fault, on_fault)
    app.add_exception_handler(verr.VigilError, on_vigil)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
