"""``/v2.1/vigil/ring``: the bare-metal hash ring, as ``vigil ring show`` prints it.

Members (hosts running the baremetal driver, live or not, and any other host that owns
nodes), how many nodes each owns now and how many the ring maps to it, how many nodes have
no live owner, and with ``?node=<uuid or name>`` where that node maps and who owns it.
Admin only by default.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx
from vigil.api.routes.services import errors_doc
from vigil.baremetal.ring import RingAPI

router = APIRouter(prefix="/v2.1/vigil", tags=["vigil"])

POLICY = "vigil:ring:show"
policy.register(oslo_policy.DocumentedRuleDefault(
    POLICY, policy.ADMIN, "Show the bare-metal hash ring and node ownership.",
    [{"method": "GET", "path": "/v2.1/vigil/ring"}]))

QUERY: validation.Schema = {
    "type": "object",
    "properties": {"node": {"type": "array", "items": {"type": "string", "minLength": 1,
                                                       "maxLength": 255}}},
    "additionalProperties": False,
}
MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"host": {"type": "string"},
                   "state": {"type": "string", "enum": ["up", "down", "unknown"]},
                   "member": {"type": "boolean",
                              "description": "runs the baremetal driver (false: only owns "
                              "nodes)"},
                   "nodes_owned": {"type": "integer"}, "nodes_mapped": {"type": "integer"}},
    "required": ["host", "state", "member", "nodes_owned", "nodes_mapped"],
}
RING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "members": {"type": "array", "items": MEMBER_SCHEMA},
        "nodes": {"type": "integer"},
        "unmanaged": {"type": "integer", "description": "nodes without a live owner"},
        "node": {"type": "object", "properties": {
            "uuid": {"type": "string"}, "name": {"type": ["string", "null"]},
            "maps_to": {"type": ["string", "null"]},
            "preference": {"type": "array", "items": {"type": "string"}},
            "owner": {"type": ["string", "null"]},
            "owner_state": {"type": ["string", "null"]},
            "instance_uuid": {"type": ["string", "null"]}}},
    },
    "required": ["members", "nodes", "unmanaged"],
}


@router.get(
    "/ring", summary="Show the bare-metal hash ring", response_model=None,
    openapi_extra={"parameters": [
        {"name": "node", "in": "query", "required": False, "schema": {"type": "string"}}]},
    responses={200: {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"ring": RING_SCHEMA}, "required": ["ring"]}}}},
        **errors_doc(400, 401, 403, 404, 406, 503)})
def show_ring(ctx: Ctx) -> dict[str, Any]:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(QUERY, query)
    ctx.authorize(POLICY)
    node = query.get("node", [None])[-1]
    return {"ring": RingAPI(ctx.registry.engine, ctx.registry.group).show(node).to_dict()}
