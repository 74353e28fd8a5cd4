"""``POST /v2.1/servers/{server_id}/remote-consoles``: Nova's remote-consoles API (2.6+).

Only the serial console exists in Vigil (the ``process`` driver's instances have a standard
input and output, no screen): ``{"remote_console": {"protocol": "serial", "type": "serial"}}``
answers ``{"remote_console": {"protocol": "serial", "type": "serial", "url": "ws://...?token=..."}}``
with a one-time token (:mod:`vigil.console.tokens`). Nova's body schema is enforced as is, and
the other protocols it names are Nova's 400 "Unavailable console type". Below 2.6 the path
does not exist (404), as in Nova. The rule defaults to admin, like every server rule here.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx, json_response
from vigil.api.errors import Fault
from vigil.api.routes import services as _services
from vigil.api.routes.services import errors_doc
from vigil.console.tokens import SERIAL, Consoles
from vigil.errors import NotFound

router = APIRouter(prefix="/v2.1/servers", tags=["servers"])

POLICY = "os_compute_api:os-remote-consoles"
MIN_VERSION = "2.6"
MKS_VERSION = "2.8"

policy.register(
    oslo_policy.DocumentedRuleDefault(
        POLICY, policy.ADMIN, "Generate a URL to a server's console (serial only in Vigil).",
        [{"method": "POST", "path": "/servers/{server_id}/remote-consoles"}]),
)


def _schema(protocols: list[str], types: list[str]) -> validation.Schema:
    return {
        "type": "object",
        "properties": {"remote_console": {
            "type": "object",
            "properties": {"protocol": {"type": "string", "enum": protocols},
                           "type": {"type": "string", "enum": types}},
            "required": ["protocol", "type"],
            "additionalProperties": False}},
        "required": ["remote_console"],
        "additionalProperties": False,
    }


# Nova's create_v26 and create_v28 (2.8 adds the MKS console).
CREATE_V26 = _schema(["vnc", "spice", "rdp", "serial"],
                     ["novnc", "xvpvnc", "rdp-html5", "spice-html5", "serial"])
CREATE_V28 = _schema(["vnc", "spice", "rdp", "serial", "mks"],
                     ["novnc", "xvpvnc", "rdp-html5", "spice-html5", "serial", "webmks"])

_ANSWER: dict[str, Any] = {"type": "object", "properties": {"remote_console": {
    "type": "object",
    "properties": {"protocol": {"type": "string"}, "type": {"type": "string"},
                   "url": {"type": "string", "format": "uri"}},
    "required": ["protocol", "type", "url"]}}, "required": ["remote_console"]}


def consoles(ctx: Ctx) -> Consoles:
    """The app's console tokens: the ones ``vigil api``/``vigil up`` set (with the configured
    base URL and TTL), else Nova's defaults over the registry's database."""
    state = ctx.request.app.state
    found: Consoles | None = getattr(state, "vigil_consoles", None)
    if found is None:
        found = Consoles(ctx.registry.engine, base_url="ws://127.0.0.1:6083/", ttl=600)
        state.vigil_consoles = found
    return found


def _codes(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        try:
            out.update(errors_doc(code))
        except KeyError:
            continue
    return out


@router.post(
    "/{server_id}/remote-consoles",
    summary="Get a serial console URL (microversion 2.6+)",
    response_model=None,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"anyOf": [CREATE_V26, CREATE_V28]}}}}},
    responses={200: {"content": {"application/json": {"schema": _ANSWER}}},
               **_codes(400, 401, 403, 404, 406, 409, 413, 415, 503)},
)
async def create(server_id: str, ctx: Ctx) -> Response:
    if not ctx.at_least(MIN_VERSION):
        raise Fault(404)  # Nova: the method does not exist below 2.6
    body = await _services._body(ctx)
    validation.check(CREATE_V28 if ctx.at_least(MKS_VERSION) else CREATE_V26, body)
    ctx.authorize(POLICY)
    if not validation.is_uuid_like(server_id):
        raise Fault(404, f"Instance {server_id} could not be found.")
    protocol = body["remote_console"]["protocol"]
    kind = body["remote_console"]["type"]
    if protocol != SERIAL:
        raise Fault(400, f"Unavailable console type {kind}.")
    if kind != SERIAL:
        raise Fault(400, f"Invalid console type {kind}")
    api = consoles(ctx)
    try:
        url: str = await anyio.to_thread.run_sync(api.serial_url, server_id)
    except NotFound:
        raise Fault(404, f"Instance {server_id} could not be found.") from None
    return json_response({"remote_console": {"protocol": protocol, "type": kind, "url": url}})
