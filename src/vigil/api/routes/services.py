"""``/v2.1/os-services``: Nova's os-services, microversion by microversion.

====== ==================================================================================
2.1    GET lists id (integer), binary, host, zone, status, state, updated_at,
       disabled_reason. PUT /os-services/{enable,disable,disable-log-reason} with a
       host/binary body. DELETE /os-services/{integer id}.
2.11   ``forced_down`` in the list; PUT /os-services/force-down.
2.53   ``id`` is the service UUID. PUT /os-services/{uuid} with status / disabled_reason /
       forced_down, answering the full record; the action URLs are gone (an action name is
       now an invalid UUID). DELETE takes the UUID.
2.75   Unknown query parameters on GET are rejected (before: ignored).
====== ==================================================================================

Binaries are spelt as Nova spells them (``nova-compute``, ...) in answers, ``?binary=``
filters, update bodies and error messages, unless ``[api] nova_binary_names = false``: the
translation, and which services it hides, is :mod:`vigil.names`. Only the answers are
translated; the Registry and the database keep Vigil's names.

Every operation calls :class:`vigil.registry.Registry`, as the CLI does, so the API adds
nothing but HTTP: Nova's request schemas, policy, and response shapes.

``state`` is only ever ``up`` or ``down`` (Nova's schema enum). A service whose liveness is
*unknown* to Vigil is reported ``down`` here, never ``up``: a strict client must not schedule
onto it. The response header :data:`UNKNOWN_HEADER` counts such services, and
``/v2.1/vigil/services`` shows the truth (docs/api.md explains why).
"""

from __future__ import annotations

import copy
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil import formats, gcpause, ids
from vigil.api import policy, validation
from vigil.api.deps import Ctx, RequestContext, json_response
from vigil.api.errors import Fault, fault_doc
from vigil.api.validation import BOOLEAN, COMMON_QUERY_PARAM, FQDN, NO_CONTROL, Schema
from vigil.console.daemon import BINARY as SERIALPROXY_BINARY
from vigil.errors import ServiceNotFound
from vigil.metadata.daemon import BINARY as METADATA_BINARY
from vigil.names import COMPUTE_TOPIC, BinaryNames
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.registry import ServiceView

router = APIRouter(prefix="/v2.1/os-services", tags=["os-services"])

UNKNOWN_HEADER = "X-Vigil-Unknown-State-Count"
POLICY = "os_compute_api:os-services:%s"
UUID_FOR_ID = "2.53"
FORCED_DOWN = "2.11"
STRICT_QUERY = "2.75"

policy.register(
    oslo_policy.DocumentedRuleDefault(
        POLICY % "list", policy.ADMIN, "List all running Compute services in a region.",
        [{"method": "GET", "path": "/os-services"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY % "update", policy.ADMIN, "Update a Compute service.",
        [{"method": "PUT", "path": "/os-services/{service_id}"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY % "delete", policy.ADMIN, "Delete a Compute service.",
        [{"method": "DELETE", "path": "/os-services/{service_id}"}]),
)

# ---- Nova's request schemas ------------------------------------------------------------------
# No control characters in a reason or a binary (validation.NO_CONTROL).
_REASON: Schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL}
UPDATE: Schema = {
    "type": "object",
    "properties": {"host": FQDN, "binary": {"type": "string", "minLength": 1, "maxLength": 255,
                                            "pattern": NO_CONTROL},
                   "disabled_reason": _REASON},
    "required": ["host", "binary"],
    "additionalProperties": False,
}
UPDATE_V211: Schema = copy.deepcopy(UPDATE)
UPDATE_V211["properties"]["forced_down"] = BOOLEAN
UPDATE_V253: Schema = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["enabled", "disabled"]},
                   "disabled_reason": _REASON, "forced_down": BOOLEAN},
    "additionalProperties": False,
}
INDEX_QUERY: Schema = {
    "type": "object",
    "properties": {"host": COMMON_QUERY_PARAM, "binary": COMMON_QUERY_PARAM},
    "additionalProperties": True,
}
INDEX_QUERY_V275: Schema = {**INDEX_QUERY, "additionalProperties": False}

# ---- Nova's response schemas (published in the OpenAPI document) -----------------------------
_SERVICE: Schema = {
    "type": "object",
    "properties": {
        "binary": {"type": "string"},
        "disabled_reason": {"type": ["string", "null"]},
        "host": {"type": "string"},
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": ["up", "down"]},
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "updated_at": {"type": ["string", "null"]},
        "zone": {"type": "string"},
    },
    "required": ["binary", "disabled_reason", "host", "id", "state", "status", "updated_at",
                 "zone"],
    "additionalProperties": False,
}
_SERVICE_V211: Schema = copy.deepcopy(_SERVICE)
_SERVICE_V211["properties"]["forced_down"] = {"type": "boolean"}
_SERVICE_V211["required"].append("forced_down")
_SERVICE_V253: Schema = copy.deepcopy(_SERVICE_V211)
_SERVICE_V253["properties"]["id"] = {"type": "string", "format": "uuid"}

_ACTION_STATUS: Schema = {
    "type": "object",
    "properties": {"binary": {"type": "string"}, "disabled_reason": {"type": "string"},
                   "host": {"type": "string"},
                   "status": {"type": "string", "enum": ["enabled", "disabled"]}},
    "required": ["binary", "host", "status"], "additionalProperties": False,
}
_ACTION_FORCED: Schema = {
    "type": "object",
    "properties": {"binary": {"type": "string"}, "forced_down": {"type": "boolean"},
                   "host": {"type": "string"}},
    "required": ["binary", "forced_down", "host"], "additionalProperties": False,
}


def _list_of(item: Schema) -> Schema:
    return {"type": "object", "properties": {"services": {"type": "array", "items": item}},
            "required": ["services"], "additionalProperties": False}


def _one(item: Schema) -> Schema:
    return {"type": "object", "properties": {"service": item}, "required": ["service"],
            "additionalProperties": False}


def _json(*alternatives: Schema) -> dict[str, Any]:
    # anyOf, not oneOf: a body valid at 2.1 is also valid under the 2.11 schema.
    schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": list(alternatives)}
    # A copy: the published dicts must not alias the enforced ones.
    return {"content": {"application/json": {"schema": copy.deepcopy(schema)}}}


_VERSION_HEADER_PARAM = {
    "name": "OpenStack-API-Version", "in": "header", "required": False,
    "description": "compute X.Y (2.1 to the maximum in the version document) or 'compute "
    "latest'. Also accepted: X-OpenStack-Nova-API-Version: X.Y.",
    "schema": {"type": "string"},
}


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these Nova fault codes."""
    return {c: fault_doc(c) for c in codes}


# ---- views -----------------------------------------------------------------------------------
def state_of(view: ServiceView) -> str:
    """Nova's two states. UNKNOWN is reported 'down': never claim 'up' without evidence."""
    return "up" if view.state is State.UP else "down"


def binary_names(ctx: RequestContext) -> BinaryNames:
    """The vocabulary this API was started with ([api] nova_binary_names)."""
    names: BinaryNames = ctx.request.app.state.vigil.binary_names
    return names


def detail(view: ServiceView, binary: str, *, uuid_for_id: bool,
           forced_down: bool) -> dict[str, Any]:
    """One service as Nova shows it at a microversion (both flags decided once per request),
    under the ``binary`` name its client knows it by."""
    return details([(view, binary)], uuid_for_id=uuid_for_id, forced_down=forced_down)[0]


_UNSPELT = "\0unspelt"  # a sentinel no timestamp spelling can equal


def details(shown: list[tuple[ServiceView, str]], *, uuid_for_id: bool,
            forced_down: bool) -> list[dict[str, Any]]:
    """:func:`detail` of each (view, binary name) pair, in one loop (:func:`_details`)."""
    return _details(shown, uuid_for_id=uuid_for_id, forced_down=forced_down)[0]


def _details(shown: list[tuple[ServiceView, str]], *, uuid_for_id: bool,
             forced_down: bool) -> tuple[list[dict[str, Any]], int]:
    """:func:`detail` of each (view, binary name) pair, and how many of them are UNKNOWN (the
    :data:`UNKNOWN_HEADER`), in one loop: it runs once per service of a list (10,000 and
    more), where a keyword call, a property or a second pass per service each cost a tenth to
    a fifth of the loop. ``status`` and ``state`` are :attr:`ServiceView.status` and
    :func:`state_of` written out.

    Each distinct ``updated_at`` is spelt once: the conductor stamps a whole batch of heartbeats
    (up to ``[conductor] batch_size`` services) with one reading of the database's clock, so a
    fleet's 10,000 services share a few dozen values, and spelling one cost 40% of the loop.
    """
    stamp = formats.timestamp
    spelt: dict[Any, str | None] = {}
    out: list[dict[str, Any]] = []
    append = out.append
    up, unknown_state = State.UP, State.UNKNOWN
    unknown = 0
    for view, binary in shown:
        r = view.record
        at = r.updated_at
        text = spelt.get(at, _UNSPELT)
        if text is _UNSPELT:
            text = spelt[at] = stamp(at)
        state = view.state
        if state is unknown_state:
            unknown += 1
        item: dict[str, Any] = {
            "binary": binary,
            "host": r.host,
            "id": r.uuid if uuid_for_id else r.id,
            "zone": view.zone,
            "status": "disabled" if r.disabled else "enabled",
            "state": "up" if state is up else "down",
            "updated_at": text,
            "disabled_reason": r.disabled_reason,
        }
        if forced_down:
            item["forced_down"] = r.forced_down
        append(item)
    return out, unknown


# ---- GET -------------------------------------------------------------------------------------
@router.get(
    "",
    summary="List Compute services",
    response_model=None,
    openapi_extra={"parameters": [
        {"name": "host", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only services on this host (exact match)."},
        {"name": "binary", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only services of this binary (exact match)."},
        _VERSION_HEADER_PARAM,
    ]},
    responses={200: {"description": "Services (shape depends on the microversion)",
                     "headers": {UNKNOWN_HEADER: {
                         "description": "How many of the listed services Vigil reports 'down' "
                         "because their liveness is unknown (see /v2.1/vigil/services)",
                         "schema": {"type": "string"}}},
                     **_json(_list_of(_SERVICE), _list_of(_SERVICE_V211),
                             _list_of(_SERVICE_V253))},
               **errors_doc(400, 401, 403, 406, 503)},
)
def index(ctx: Ctx) -> Response:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(INDEX_QUERY_V275 if ctx.at_least(STRICT_QUERY) else INDEX_QUERY, query)
    ctx.authorize(POLICY % "list")
    # Nova reads the last value of a repeated parameter and treats an empty one as no filter.
    host = query.get("host", [""])[-1] or None
    asked = query.get("binary", [""])[-1] or None
    names = binary_names(ctx)
    binary = names.inward(asked) if asked is not None else None
    with_forced, with_uuid = ctx.at_least(FORCED_DOWN), ctx.at_least(UUID_FOR_ID)
    # Hundreds of thousands of short-lived objects for a large fleet: the collector waits
    # until the body is encoded (vigil.gcpause).
    with gcpause.paused():
        if asked is not None and binary is None:
            views = []  # a name this API does not speak names no service, as in Nova
        else:
            views = ctx.registry.list(host=host, binary=binary)
        # Nova has no supervisor service: its rows (group ``host``) stay in Vigil's own view.
        hidden, outward = HIDDEN_BINARIES, names.outward
        shown = [(v, name) for v in views if v.record.topic != "host"
                 and v.record.binary not in hidden
                 and (name := outward(v.record.binary)) is not None]
        items, unknown = _details(shown, uuid_for_id=with_uuid, forced_down=with_forced)
        return json_response({"services": items}, headers={UNKNOWN_HEADER: str(unknown)})


# Services Vigil runs that Nova's os-services never lists (nova-api-metadata and the console
# proxies register no service there): hidden here, shown by /v2.1/vigil/services and
# ``vigil service list``.
HIDDEN_BINARIES = frozenset({METADATA_BINARY, SERIALPROXY_BINARY})


# ---- PUT -------------------------------------------------------------------------------------
async def _body(ctx: RequestContext) -> Any:
    return await validation.read_json_body(ctx.request)


def _not_compute(names: BinaryNames, binary: str) -> Fault:
    return Fault(400, f"Updating a {binary} service is not supported. Only {names.compute} "
                      "services can be updated.")


def _find(ctx: RequestContext, host: str, binary: str) -> ServiceRecord:
    """The compute service named by a pre-2.53 body (404 if none, 400 if not a compute);
    ``binary`` as the client spells it."""
    names = binary_names(ctx)
    stored = names.inward(binary)
    try:
        if stored is None:
            raise ServiceNotFound(binary)
        record = ctx.registry.find(host, stored)
    except ServiceNotFound as exc:
        raise Fault(404, f"Compute host {host} with binary {binary} could not be found.") \
            from exc
    if record.topic != COMPUTE_TOPIC:
        raise _not_compute(names, binary)
    return record


def _action(ctx: RequestContext, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """Before 2.53: PUT /os-services/{action} with a host/binary body."""
    actions = {"enable", "disable", "disable-log-reason"}
    if ctx.at_least(FORCED_DOWN):
        actions.add("force-down")
    if action not in actions:
        raise Fault(404, "Unknown action")
    host, binary = body["host"], body["binary"]
    if action == "force-down":
        if "forced_down" not in body:
            raise Fault(400, "Missing forced_down field")
        forced = validation.to_bool(body["forced_down"])
        ctx.registry.update(_find(ctx, host, binary), forced_down=forced)
        return {"service": {"host": host, "binary": binary, "forced_down": forced}}
    reason: str | None = None
    if action == "disable-log-reason":
        if "disabled_reason" not in body:
            raise Fault(400, "Missing disabled reason field")
        reason = body["disabled_reason"]
    enabled = action == "enable"
    ctx.registry.update(_find(ctx, host, binary), enabled=enabled, disabled_reason=reason)
    out: dict[str, Any] = {"host": host, "binary": binary,
                           "status": "enabled" if enabled else "disabled"}
    if reason:
        out["disabled_reason"] = reason
    return {"service": out}


def _update_v253(ctx: RequestContext, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """From 2.53: PUT /os-services/{uuid} answering the full record."""
    if not validation.is_uuid_like(service_id):
        raise Fault(400, f"Invalid uuid {service_id}")
    ctx.authorize(POLICY % "update")
    names = binary_names(ctx)
    try:
        record = ctx.registry.get(ids.parse_uuid(service_id) or service_id).record
        shown = names.outward(record.binary)
        if shown is None:
            raise ServiceNotFound(service_id)  # hidden from this API: as if absent
    except ServiceNotFound as exc:
        raise Fault(404, f"Service {service_id} could not be found.") from exc
    if record.topic != COMPUTE_TOPIC:
        raise _not_compute(names, shown)
    enabled: bool | None = None
    reason: str | None = None
    if "status" in body:
        if body["status"] == "enabled":
            if body.get("disabled_reason"):
                raise Fault(400, "Specifying 'disabled_reason' with status 'enabled' is "
                                 "invalid.")
            enabled = True
        else:
            enabled = False
            reason = body.get("disabled_reason")
    forced = validation.to_bool(body["forced_down"]) if "forced_down" in body else None
    if enabled is None and forced is None:
        raise Fault(400, "No updates were requested. Fields 'status' or 'forced_down' should be "
                         "specified.")
    view = ctx.registry.update(record, enabled=enabled, disabled_reason=reason,
                               forced_down=forced)
    return {"service": detail(view, shown, uuid_for_id=True, forced_down=True)}


@router.put(
    "/{service_id}",
    summary="Update a Compute service",
    response_model=None,
    description="Before 2.53 service_id is an action (enable, disable, disable-log-reason, "
    "force-down from 2.11) and the body names host and binary; from 2.53 it is the service "
    "UUID and the body holds status, disabled_reason and/or forced_down.",
    openapi_extra={
        "parameters": [_VERSION_HEADER_PARAM],
        "requestBody": {"required": True, **_json(UPDATE, UPDATE_V211, UPDATE_V253)},
    },
    responses={200: {"description": "The update (action echo before 2.53, the full record "
                                    "from 2.53)",
                     **_json(_one(_ACTION_STATUS), _one(_ACTION_FORCED),
                             _one({**_SERVICE_V253}))},
               **errors_doc(400, 401, 403, 404, 406, 413, 415, 503)},
)
async def update(service_id: str, ctx: Ctx) -> Any:
    body = await _body(ctx)
    if ctx.at_least(UUID_FOR_ID):
        validation.check(UPDATE_V253, body)
        return await _in_thread(_update_v253, ctx, service_id, body)
    validation.check(UPDATE_V211 if ctx.at_least(FORCED_DOWN) else UPDATE, body)
    ctx.authorize(POLICY % "update")
    return await _in_thread(_action, ctx, service_id, body)


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Database work off the event loop (the handler is async only to read the raw body)."""
    return await anyio.to_thread.run_sync(fn, *args)


# ---- DELETE ----------------------------------------------------------------------------------
_INT_MAX = 2**31 - 1


@router.delete(
    "/{service_id}",
    summary="Delete a Compute service",
    response_model=None,
    status_code=204,
    openapi_extra={"parameters": [_VERSION_HEADER_PARAM]},
    responses={204: {"description": "Deleted"}, **errors_doc(400, 401, 403, 404, 406, 409, 503)},
)
def delete(service_id: str, ctx: Ctx) -> Response:
    ctx.authorize(POLICY % "delete")
    ident: int | str
    if ctx.at_least(UUID_FOR_ID):
        if not validation.is_uuid_like(service_id):
            raise Fault(400, f"Invalid uuid {service_id}")
        ident = ids.parse_uuid(service_id) or service_id
    else:
        number = validation.ascii_int(service_id.strip())
        if number is None:
            raise Fault(400, "Invalid input received: id must be an integer")
        ident = number
    try:
        if isinstance(ident, int) and not -_INT_MAX <= ident <= _INT_MAX:
            raise ServiceNotFound(service_id)  # no row can have it; spare the database
        if binary_names(ctx).outward(ctx.registry.get(ident).record.binary) is None:
            raise ServiceNotFound(service_id)  # hidden from this API: as if absent
        ctx.registry.delete(ident)
    except ServiceNotFound as exc:
        raise Fault(404, f"Service {service_id} not found.") from exc
    return Response(status_code=204)
