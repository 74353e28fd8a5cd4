"""``/v2.1/flavors``: list, detail, show, create, delete, in Nova's shapes.

Clients look flavors up before they boot (``openstack server create --flavor m1.small``
lists or shows flavors first), so these are as Nova has them: any authenticated caller may
read them; creating and deleting are ``os-flavor-manage`` rules, admin by default. Vigil has
no projects, so every flavor is public, and the fields it has no use for (swap, ephemeral
disk, rxtx_factor) are accepted at their neutral values only, never silently dropped.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx, RequestContext, json_response, links
from vigil.api.routes.services import errors_doc
from vigil.compute.flavors import MAX_NAME, FlavorsAPI, FlavorView

router = APIRouter(prefix="/v2.1/flavors", tags=["flavors"])

POLICY = "os_compute_api:os-flavor-manage:%s"
policy.register(
    oslo_policy.DocumentedRuleDefault(POLICY % "create", policy.ADMIN, "Create a flavor.",
                                      [{"method": "POST", "path": "/flavors"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "delete", policy.ADMIN, "Delete a flavor.",
                                      [{"method": "DELETE", "path": "/flavors/{flavor_id}"}]),
)

# At most 20 digits: int() of a longer string of digits (4,300+) raises; ranges: FlavorsAPI.
_COUNT: dict[str, Any] = {"type": ["integer", "string"], "pattern": "^-?[0-9]{1,20}$"}
_NEUTRAL_ZERO: dict[str, Any] = {"type": ["integer", "string"], "enum": [0, "0", ""]}
CREATE: validation.Schema = {
    "type": "object",
    "properties": {"flavor": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                     "pattern": validation.NO_CONTROL},
            "id": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_NAME,
                   "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
            "ram": _COUNT, "vcpus": _COUNT, "disk": _COUNT,
            "description": {"type": ["string", "null"], "maxLength": 65535},
            "swap": _NEUTRAL_ZERO,
            "OS-FLV-EXT-DATA:ephemeral": _NEUTRAL_ZERO,
            "rxtx_factor": {"type": ["number", "string"], "enum": [1, 1.0, "1", "1.0"]},
            "os-flavor-access:is_public": {"type": ["boolean", "string"],
                                           "enum": [True, "True", "true", "1"]},
        },
        "required": ["name", "ram", "vcpus", "disk"],
        "additionalProperties": False}},
    "required": ["flavor"], "additionalProperties": False,
}
QUERY: validation.Schema = {"type": "object", "additionalProperties": True}

_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "description": {"type": ["string", "null"]}, "links": {"type": "array"}},
    "required": ["id", "name", "links"],
}
_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {**_SUMMARY["properties"],
                   "vcpus": {"type": "integer"}, "ram": {"type": "integer"},
                   "disk": {"type": "integer"}, "swap": {"type": ["integer", "string"]},
                   "OS-FLV-EXT-DATA:ephemeral": {"type": "integer"},
                   "os-flavor-access:is_public": {"type": "boolean"}},
    "required": [*_SUMMARY["required"], "vcpus", "ram", "disk"],
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _api(ctx: RequestContext) -> FlavorsAPI:
    return FlavorsAPI(ctx.registry.engine)


def _links(ctx: RequestContext, flavorid: str) -> list[dict[str, str]]:
    return links(ctx, "flavors", flavorid)


def _detail(ctx: RequestContext, view: FlavorView) -> dict[str, Any]:
    return {**view.to_dict(), "links": _links(ctx, view.record.flavorid)}


def _listing(ctx: Ctx) -> list[FlavorView]:
    validation.check(QUERY, validation.query_dict(ctx.request.query_params.multi_items()))
    return _api(ctx).list()


@router.get("", summary="List flavors (id, name, links)", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "flavors": {"type": "array", "items": _SUMMARY}}}),
                **errors_doc(400, 401, 406, 503)})
def index(ctx: Ctx) -> dict[str, Any]:
    return {"flavors": [{"id": v.record.flavorid, "name": v.record.name,
                         "description": v.record.description,
                         "links": _links(ctx, v.record.flavorid)} for v in _listing(ctx)]}


@router.get("/detail", summary="List flavors with details", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "flavors": {"type": "array", "items": _DETAIL}}}),
                **errors_doc(400, 401, 406, 503)})
def index_detail(ctx: Ctx) -> dict[str, Any]:
    return {"flavors": [_detail(ctx, v) for v in _listing(ctx)]}


@router.get("/{flavor_id}", summary="Show a flavor by id (or name)", response_model=None,
            responses={200: _json({"type": "object", "properties": {"flavor": _DETAIL}}),
                       **errors_doc(400, 401, 404, 406, 503)})
def show(flavor_id: str, ctx: Ctx) -> dict[str, Any]:
    return {"flavor": _detail(ctx, _api(ctx).get(flavor_id))}


@router.post("", summary="Create a flavor", response_model=None,
             openapi_extra={"requestBody": {"required": True, **_json(CREATE)}},
             responses={200: _json({"type": "object", "properties": {"flavor": _DETAIL}}),
                        **errors_doc(400, 401, 403, 406, 409, 413, 415, 503)})
async def create(ctx: Ctx) -> Response:
    body = await validation.read_json_body(ctx.request)
    validation.check(CREATE, body)
    ctx.authorize(POLICY % "create")
    f = body["flavor"]
    counts = {key: int(f[key]) for key in ("ram", "vcpus", "disk")}  # ranges: FlavorsAPI
    view: FlavorView = await anyio.to_thread.run_sync(lambda: _api(ctx).create(
        name=f["name"], vcpus=counts["vcpus"], ram=counts["ram"], disk=counts["disk"],
        flavorid=f.get("id"), description=f.get("description")))
    return json_response({"flavor": _detail(ctx, view)})


@router.delete("/{flavor_id}", summary="Delete a flavor (instances keep their sizes)",
               response_model=None, status_code=202, response_class=Response,
               responses={202: {"description": "deleted (no body)"},
                          **errors_doc(400, 401, 403, 404, 406, 503)})
def delete(flavor_id: str, ctx: Ctx) -> Response:
    ctx.authorize(POLICY % "delete")
    _api(ctx).delete(flavor_id)
    return Response(status_code=202)
