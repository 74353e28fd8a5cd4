"""``/v2.1/servers``: create, list, show, delete, and the ``evacuate`` action.

Every operation calls :class:`vigil.compute.servers.ServersAPI`, as the CLI does. Instances
carry no project, so every rule defaults to admin (an operator may relax them in the policy
file). What Nova has and Vigil does not: images, networks, volumes, metadata; ``imageRef`` and
``networks`` are accepted and ignored so Nova clients can boot. ``host`` in the create body is
Nova's 2.74 requested destination; ``vigil:evacuable`` is Vigil's (default true). The lists
take Nova's ``host``, ``name`` (exact), ``uuid`` and admin ``deleted`` filters; ``deleted=true``
needs ``uuid`` (deleted servers are looked up one at a time), which is how ``vigil server delete
--os-endpoint`` shows the deleted server as the database mode does.

The evacuate action is accepted only when the instance's host is DOWN (forced down, left, or a
stale heartbeat while reports were getting through); UP and UNKNOWN are 409: unknown liveness is
not evidence of death, and evacuating a live host runs the instance twice.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy
from oslo_utils import strutils

from vigil.api import policy, validation
from vigil.api.deps import Ctx, RequestContext, json_response, links
from vigil.api.errors import Fault
from vigil.api.routes import services as _services
from vigil.api.routes.services import errors_doc
from vigil.compute.servers import ServersAPI, ServerView

router = APIRouter(prefix="/v2.1/servers", tags=["servers"])

POLICY = "os_compute_api:servers:%s"
EVACUATE_POLICY = "os_compute_api:os-evacuate"
HOST_IN_CREATE = "2.74"

policy.register(
    oslo_policy.DocumentedRuleDefault(POLICY % "create", policy.ADMIN, "Create a server.",
                                      [{"method": "POST", "path": "/servers"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "index", policy.ADMIN, "List servers.",
                                      [{"method": "GET", "path": "/servers"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "detail", policy.ADMIN,
                                      "List servers with details.",
                                      [{"method": "GET", "path": "/servers/detail"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "show", policy.ADMIN, "Show a server.",
                                      [{"method": "GET", "path": "/servers/{server_id}"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "delete", policy.ADMIN, "Delete a server.",
                                      [{"method": "DELETE", "path": "/servers/{server_id}"}]),
    oslo_policy.DocumentedRuleDefault(
        EVACUATE_POLICY, policy.ADMIN, "Evacuate a server from a failed host to a new host.",
        [{"method": "POST", "path": "/servers/{server_id}/action (evacuate)"}]),
)

_NAME: validation.Schema = {"type": "string", "minLength": 1, "maxLength": 255,
                            "pattern": validation.NO_CONTROL}
_SERVER_PROPS: dict[str, validation.Schema] = {
    "name": _NAME,
    # Nova's flavor_ref is string-or-integer; Vigil's flavor ids are strings.
    "flavorRef": {"type": ["string", "integer"]},
    "imageRef": {"type": "string", "description": "accepted and ignored (no images)"},
    "networks": {"type": ["string", "array"], "description": "accepted and ignored"},
    "availability_zone": _NAME,
    "vigil:evacuable": validation.BOOLEAN,
}
CREATE: validation.Schema = {
    "type": "object",
    "properties": {"server": {"type": "object", "properties": _SERVER_PROPS,
                              "required": ["name", "flavorRef"],
                              "additionalProperties": False}},
    "required": ["server"], "additionalProperties": False,
}
CREATE_V274: validation.Schema = {
    "type": "object",
    "properties": {"server": {"type": "object",
                              "properties": {**_SERVER_PROPS, "host": validation.FQDN},
                              "required": ["name", "flavorRef"],
                              "additionalProperties": False}},
    "required": ["server"], "additionalProperties": False,
}
EVACUATE: validation.Schema = {
    "type": "object",
    "properties": {"evacuate": {
        "type": "object",
        "properties": {"host": validation.FQDN,
                       "adminPass": {"type": "string", "description": "ignored"},
                       "onSharedStorage": {**validation.BOOLEAN, "description": "ignored: "
                                           "the disk is reused when instances_path is shared"},
                       "force": validation.BOOLEAN},
        "additionalProperties": False}},
    "required": ["evacuate"], "additionalProperties": False,
}
QUERY: validation.Schema = {
    "type": "object",
    "properties": {"host": validation.COMMON_QUERY_PARAM,
                   "name": validation.COMMON_QUERY_PARAM,
                   "uuid": validation.COMMON_QUERY_PARAM,
                   "deleted": validation.COMMON_QUERY_PARAM},
    "additionalProperties": True,  # as Nova: unknown filters of a non-admin are ignored
}
_FILTERS: list[dict[str, Any]] = [
    {"name": "host", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "only servers on this compute host (exact)"},
    {"name": "name", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "only servers with this name (exact, where Nova takes a regex)"},
    {"name": "uuid", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "only the server with this id"},
    {"name": "deleted", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Nova's admin filter: deleted servers instead of live ones (true as "
                    "oslo's bool_from_string). Vigil needs uuid with it: deleted servers "
                    "are looked up one at a time; without uuid it is a 400"},
]

_SERVER_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "status": {"type": "string",
                   "enum": ["BUILD", "ACTIVE", "ERROR", "DELETED", "REBUILD"]},
        "flavor": {"type": "object"},
        "OS-EXT-SRV-ATTR:host": {"type": ["string", "null"]},
        "OS-EXT-SRV-ATTR:hypervisor_hostname": {"type": ["string", "null"]},
        "OS-EXT-STS:vm_state": {"type": "string"},
        "OS-EXT-STS:task_state": {"type": ["string", "null"]},
        "OS-EXT-STS:power_state": {"type": "integer"},
        "OS-EXT-AZ:availability_zone": {"type": "string"},
        "created": {"type": "string"}, "updated": {"type": ["string", "null"]},
        "evacuable": {"type": "boolean"},
        "fault": {"type": "object", "description": "ERROR and DELETED servers only"},
    },
    "required": ["id", "name", "status", "flavor"],
}
_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "links": {"type": "array"}},
    "required": ["id", "name", "links"],
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Fault documentation for ``codes``. 400 and 406 are always possible (the microversion
    header is checked before any route); 413/415 only where the API's body reader can answer
    them, i.e. where errors_doc knows them."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({400, 406, *codes}):
        try:
            out.update(errors_doc(code))
        except KeyError:
            continue
    return out


def servers_api(ctx: RequestContext) -> ServersAPI:
    """The app's ServersAPI: the one ``vigil up`` sets (with messaging, so the scheduler and
    the agents are told at once), else one over the registry's database alone (the scheduler's
    scan and the agents' reconciliation pick the work up)."""
    state = ctx.request.app.state
    api: ServersAPI | None = getattr(state, "vigil_servers", None)
    if api is None:
        api = ServersAPI(ctx.registry.engine, ctx.registry.group)
        state.vigil_servers = api
    return api


def _links(ctx: RequestContext, uuid: str) -> list[dict[str, str]]:
    return links(ctx, "servers", uuid)


def detail(ctx: RequestContext, view: ServerView) -> dict[str, Any]:
    return {**view.to_dict(), "links": _links(ctx, view.record.uuid)}


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


async def _read_body(ctx: RequestContext) -> Any:
    """The JSON body, read exactly as /os-services reads its bodies (same limits, errors)."""
    return await _services._body(ctx)


@router.post(
    "",
    summary="Create a server (the scheduler picks the host)",
    response_model=None,
    status_code=202,
    openapi_extra={"requestBody": {"required": True, **_json(
        {"anyOf": [CREATE, CREATE_V274]})}},
    responses={202: _json({"type": "object", "properties": {"server": _SUMMARY}}),
               **_errors(400, 401, 403, 406, 409, 413, 415, 503)},
)
async def create(ctx: Ctx) -> Response:
    body = await _read_body(ctx)
    validation.check(CREATE_V274 if ctx.at_least(HOST_IN_CREATE) else CREATE, body)
    ctx.authorize(POLICY % "create")
    server = body["server"]
    evacuable = validation.to_bool(server.get("vigil:evacuable", True))
    view: ServerView = await _in_thread(lambda: servers_api(ctx).create(
        name=server["name"], flavor=str(server["flavorRef"]), host=server.get("host"),
        availability_zone=server.get("availability_zone"), evacuable=evacuable))
    answer = json_response({"server": {"id": view.record.uuid, "name": view.record.name,
                                       "links": _links(ctx, view.record.uuid)}})
    answer.status_code = 202
    return answer


def _list(ctx: Ctx, rule: str) -> list[ServerView]:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(QUERY, query)
    ctx.authorize(rule)
    host = query.get("host", [""])[-1] or None
    name = query.get("name", [""])[-1] or None
    uuid = query.get("uuid", [""])[-1] or None
    deleted = strutils.bool_from_string(query.get("deleted", [""])[-1], default=False)
    return servers_api(ctx).list(host=host, name=name, uuid=uuid, deleted=deleted)


@router.get("", summary="List servers (id, name, links)", response_model=None,
            openapi_extra={"parameters": _FILTERS},
            responses={200: _json({"type": "object", "properties": {
                "servers": {"type": "array", "items": _SUMMARY}}}),
                **_errors(400, 401, 403, 406, 503)})
def index(ctx: Ctx) -> Response:
    return json_response({"servers": [
        {"id": v.record.uuid, "name": v.record.name, "links": _links(ctx, v.record.uuid)}
        for v in _list(ctx, POLICY % "index")]})


@router.get("/detail", summary="List servers with details", response_model=None,
            openapi_extra={"parameters": _FILTERS},
            responses={200: _json({"type": "object", "properties": {
                "servers": {"type": "array", "items": _SERVER_DETAIL}}}),
                **_errors(400, 401, 403, 406, 503)})
def index_detail(ctx: Ctx) -> Response:
    return json_response({"servers": [detail(ctx, v) for v in _list(ctx, POLICY % "detail")]})


def _uuid(server_id: str) -> str:
    if not validation.is_uuid_like(server_id):
        raise Fault(404, f"Instance {server_id} could not be found.")
    return server_id


@router.get("/{server_id}", summary="Show a server", response_model=None,
            responses={200: _json({"type": "object", "properties": {"server": _SERVER_DETAIL}}),
                       **_errors(401, 403, 404, 406, 503)})
def show(server_id: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY % "show")
    return {"server": detail(ctx, servers_api(ctx).get(_uuid(server_id)))}


@router.delete("/{server_id}", summary="Delete a server", response_model=None,
               status_code=204, responses={204: {"description": "Deleted"},
                                           **_errors(401, 403, 404, 406, 409, 503)})
def delete(server_id: str, ctx: Ctx) -> Response:
    ctx.authorize(POLICY % "delete")
    servers_api(ctx).delete(_uuid(server_id))
    return Response(status_code=204)


@router.post(
    "/{server_id}/action",
    summary="Server action: evacuate (admin)",
    response_model=None,
    openapi_extra={"requestBody": {"required": True, **_json(EVACUATE)}},
    responses={200: {"description": "Evacuation accepted (the server shows REBUILD)"},
               **_errors(400, 401, 403, 404, 406, 409, 413, 415, 503)},
)
async def action(server_id: str, ctx: Ctx) -> Response:
    body = await _read_body(ctx)
    if not isinstance(body, dict) or len(body) != 1:
        raise Fault(400, "Malformed request body")
    name = next(iter(body))
    if name != "evacuate":
        raise Fault(400, f"There is no such action: {name}")
    validation.check(EVACUATE, body)
    ctx.authorize(EVACUATE_POLICY)
    host = body["evacuate"].get("host")
    await _in_thread(lambda: servers_api(ctx).evacuate(_uuid(server_id), host=host))
    return Response(status_code=200)
