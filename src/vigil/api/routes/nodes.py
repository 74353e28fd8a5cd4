"""``/v2.1/vigil/nodes``: the bare-metal inventory (create, list, show, delete).

Admin only by default, like os-services. Every operation calls
:class:`vigil.baremetal.nodes.NodesAPI`, as ``vigil node`` does: bad input is a 400 and
changes nothing, deleting a node that holds an instance is a 409. ``owner`` in a node is the
compute host whose service manages it now (null: nobody yet, or released and about to be
taken). Not subject to microversions: its shape only ever grows by new keys.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx, json_response
from vigil.api.routes.services import errors_doc
from vigil.baremetal.nodes import NodesAPI, NodeView
from vigil.objects.baremetal import NodePower

router = APIRouter(prefix="/v2.1/vigil", tags=["vigil"])

POLICY = "vigil:nodes:%s"
policy.register(
    oslo_policy.DocumentedRuleDefault(POLICY % "create", policy.ADMIN,
                                      "Register a bare-metal node.",
                                      [{"method": "POST", "path": "/v2.1/vigil/nodes"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "list", policy.ADMIN,
                                      "List bare-metal nodes with their managing host.",
                                      [{"method": "GET", "path": "/v2.1/vigil/nodes"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "show", policy.ADMIN,
                                      "Show a bare-metal node.",
                                      [{"method": "GET", "path": "/v2.1/vigil/nodes/{node}"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "delete", policy.ADMIN,
                                      "Delete a bare-metal node that holds no instance.",
                                      [{"method": "DELETE",
                                        "path": "/v2.1/vigil/nodes/{node}"}]),
)

_COUNT: validation.Schema = {"type": "integer"}
CREATE: validation.Schema = {
    "type": "object",
    "properties": {"node": {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
                     "pattern": validation.NO_CONTROL},
            "uuid": {"type": "string", "format": "uuid"},
            "resource_class": {"type": "string", "minLength": 1, "maxLength": 80,
                               "pattern": "^[A-Za-z0-9_.-]+$"},
            "properties": {"type": "object",
                           "properties": {"cpus": _COUNT, "memory_mb": _COUNT,
                                          "local_gb": _COUNT},
                           "required": ["cpus", "memory_mb", "local_gb"],
                           "additionalProperties": False},
            "power_state": {"type": "string", "enum": [p.value for p in NodePower]},
            "maintenance": {"type": "boolean"},
        },
        "required": ["properties"],
        "additionalProperties": False}},
    "required": ["node"], "additionalProperties": False,
}
NODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string", "format": "uuid"},
        "name": {"type": ["string", "null"]},
        "resource_class": {"type": "string"},
        "properties": {"type": "object", "properties": {
            "cpus": {"type": "integer"}, "memory_mb": {"type": "integer"},
            "local_gb": {"type": "integer"}}},
        "power_state": {"type": "string", "enum": [p.value for p in NodePower]},
        "maintenance": {"type": "boolean"},
        "instance_uuid": {"type": ["string", "null"]},
        "owner": {"type": ["string", "null"],
                  "description": "Host of the compute service managing the node now"},
        "created_at": {"type": ["string", "null"]},
        "updated_at": {"type": ["string", "null"]},
    },
    "required": ["uuid", "name", "resource_class", "properties", "power_state", "maintenance",
                 "instance_uuid", "owner", "created_at", "updated_at"],
}
_ONE = {"type": "object", "properties": {"node": NODE_SCHEMA}, "required": ["node"]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _api(ctx: Ctx) -> NodesAPI:
    return NodesAPI(ctx.registry.engine)


@router.post("/nodes", summary="Register a bare-metal node", response_model=None,
             status_code=201,
             openapi_extra={"requestBody": {"required": True, **_json(CREATE)}},
             responses={201: _json(_ONE), **errors_doc(400, 401, 403, 406, 409, 413, 415, 503)})
async def create_node(ctx: Ctx) -> Response:
    body = await validation.read_json_body(ctx.request)
    validation.check(CREATE, body)
    ctx.authorize(POLICY % "create")
    spec = body["node"]
    props = spec["properties"]
    view: NodeView = await anyio.to_thread.run_sync(lambda: _api(ctx).create(
        name=spec.get("name"), uuid=spec.get("uuid"),
        resource_class=spec.get("resource_class", "baremetal"), cpus=props["cpus"],
        memory_mb=props["memory_mb"], local_gb=props["local_gb"],
        power_state=spec.get("power_state", "power off"),
        maintenance=spec.get("maintenance", False)))
    answer = json_response({"node": view.to_dict()})
    answer.status_code = 201
    return answer


@router.get("/nodes", summary="List bare-metal nodes", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "nodes": {"type": "array", "items": NODE_SCHEMA}}, "required": ["nodes"]}),
                **errors_doc(400, 401, 403, 406, 503)})
def list_nodes(ctx: Ctx) -> Response:
    ctx.authorize(POLICY % "list")
    return json_response({"nodes": [v.to_dict() for v in _api(ctx).list()]})


@router.get("/nodes/{node}", summary="Show a bare-metal node by UUID or name",
            response_model=None,
            responses={200: _json(_ONE), **errors_doc(400, 401, 403, 404, 406, 503)})
def show_node(node: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY % "show")
    return {"node": _api(ctx).get(node).to_dict()}


@router.delete("/nodes/{node}", summary="Delete a bare-metal node that holds no instance",
               response_model=None, status_code=204,
               responses={204: {"description": "Deleted"},
                          **errors_doc(400, 401, 403, 404, 406, 409, 503)})
def delete_node(node: str, ctx: Ctx) -> Response:
    ctx.authorize(POLICY % "delete")
    _api(ctx).delete(node)
    return Response(status_code=204)
