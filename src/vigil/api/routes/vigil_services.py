"""``/v2.1/vigil/services``: Vigil's own view of services, with the whole truth.

Nova's os-services can only say ``up`` or ``down``; this resource says ``up``, ``down`` or
``unknown`` (the liveness source could not be read or trusted), and adds what Vigil knows that
Nova's schema has no room for: the UUID and the integer id together, the topic, when the
service last reported (``last_seen``, database clock) and whether it left cleanly.
Not subject to microversions: its shape only ever grows by new keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil import formats
from vigil.api import policy, validation
from vigil.api.deps import Ctx, json_response
from vigil.api.errors import Fault
from vigil.api.routes.services import errors_doc
from vigil.errors import InvalidInput, ServiceNotFound
from vigil.registry import ServiceView, parse_ident

router = APIRouter(prefix="/v2.1/vigil", tags=["vigil"])

POLICY = "vigil:services:list"
policy.register(oslo_policy.DocumentedRuleDefault(
    POLICY, policy.ADMIN, "List services with Vigil's full liveness truth.",
    [{"method": "GET", "path": "/v2.1/vigil/services"}]))

QUERY: validation.Schema = {
    "type": "object",
    "properties": {"host": validation.COMMON_QUERY_PARAM,
                   "binary": validation.COMMON_QUERY_PARAM},
    "additionalProperties": False,
}

SERVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "uuid": {"type": "string", "format": "uuid"},
        "binary": {"type": "string"},
        "host": {"type": "string"},
        "topic": {"type": "string"},
        "zone": {"type": "string"},
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "state": {"type": "string", "enum": ["up", "down", "unknown"]},
        "state_reason": {"type": ["string", "null"], "enum": ["forced_down", "left", None],
                         "description": "Why it is down when known: forced down by an "
                         "operator, or left its group cleanly (a graceful stop, not a "
                         "failure)"},
        "quarantined": {"type": "boolean",
                        "description": "Its host is quarantined: a fence was decided and the "
                        "host may start no instance until released"},
        "maintenance": {"type": "boolean",
                        "description": "Its host is in maintenance: the HA monitor does not "
                        "recover it"},
        "updated_at": {"type": ["string", "null"]},
        "last_seen": {"type": ["string", "null"],
                      "description": "Last heartbeat, database clock; null before the first"},
        "left_at": {"type": ["string", "null"],
                    "description": "When the service stopped cleanly, if it has not reported "
                    "since"},
        "disabled_reason": {"type": ["string", "null"]},
        "forced_down": {"type": "boolean"},
        "created_at": {"type": "string"},
        "report_count": {"type": "integer", "description": "Heartbeats written since creation"},
        "version": {"type": "integer", "description": "Starts of this service (one per start)"},
        "host_liveness": {"type": ["string", "null"], "enum": ["up", "down", "unknown", None],
                          "description": "Compute services: their host's own liveness (its "
                          "vigil supervisor, group host), beside the agent's state; null "
                          "without a supervisor"},
    },
    "required": ["id", "uuid", "binary", "host", "topic", "zone", "status", "state",
                 "state_reason", "updated_at", "last_seen", "left_at", "disabled_reason",
                 "forced_down", "quarantined", "maintenance", "created_at", "report_count",
                 "version"],
}
_ONE = {"type": "object", "properties": {"service": SERVICE_SCHEMA}, "required": ["service"]}


def truth(view: ServiceView) -> dict[str, Any]:
    out = view.to_dict()
    r = view.record
    out["topic"] = r.topic
    out["last_seen"] = formats.timestamp(r.last_seen_up)
    out["left_at"] = formats.timestamp(r.left_at)
    out["created_at"] = formats.timestamp(r.created_at)
    out["report_count"] = r.report_count
    out["version"] = r.version
    return out


@router.get(
    "/services",
    summary="List services with unknown states and heartbeat times",
    response_model=None,
    openapi_extra={"parameters": [
        {"name": "host", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "binary", "in": "query", "required": False, "schema": {"type": "string"}},
    ]},
    responses={200: {"content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"services": {"type": "array", "items": SERVICE_SCHEMA}},
        "required": ["services"]}}}}, **errors_doc(400, 401, 403, 406, 503)},
)
def list_services(ctx: Ctx) -> Response:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(QUERY, query)
    ctx.authorize(POLICY)
    host = query.get("host", [""])[-1] or None
    binary = query.get("binary", [""])[-1] or None
    return json_response({"services": [truth(v) for v in
                                       ctx.registry.list(host=host, binary=binary)]})


@router.get(
    "/services/{service_id}",
    summary="Show one service by integer id or UUID",
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": _ONE}}},
               **errors_doc(400, 401, 403, 404, 406, 503)},
)
def show_service(service_id: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY)
    try:
        ident = parse_ident(service_id)
    except InvalidInput as exc:
        raise Fault(400, str(exc)) from exc
    if isinstance(ident, int) and ident > 2**31 - 1:
        raise Fault(404, f"Service {service_id} not found.")
    try:
        return {"service": truth(ctx.registry.get(ident))}
    except ServiceNotFound as exc:
        raise Fault(404, f"Service {service_id} not found.") from exc
