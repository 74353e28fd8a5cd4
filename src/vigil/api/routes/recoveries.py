"""``/v2.1/vigil/recoveries``: host recoveries run by the HA monitor, and its alerts.

Admin only by default (like os-services). Read-only: recoveries are run by the monitor (or
requested with ``vigil host evacuate``), never edited through the API. The list answers the
open alerts too (e.g. the mass-failure brake), since an operator looking at recoveries must
see why none is running.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx
from vigil.api.errors import Fault
from vigil.api.routes.services import errors_doc
from vigil.errors import InvalidInput, NotFound
from vigil.ha.views import RecoveriesAPI, parse_recovery_ident
from vigil.objects.ha import Phase, RecoveryStatus, Trigger

router = APIRouter(prefix="/v2.1/vigil", tags=["vigil"])

POLICY_LIST = "vigil:recoveries:list"
POLICY_SHOW = "vigil:recoveries:show"
policy.register(
    oslo_policy.DocumentedRuleDefault(
        POLICY_LIST, policy.ADMIN, "List host recoveries and HA alerts.",
        [{"method": "GET", "path": "/v2.1/vigil/recoveries"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_SHOW, policy.ADMIN, "Show a host recovery with its timeline.",
        [{"method": "GET", "path": "/v2.1/vigil/recoveries/{recovery_id}"}]),
)

QUERY: validation.Schema = {
    "type": "object",
    "properties": {"host": validation.COMMON_QUERY_PARAM,
                   "open": {"type": "array", "items": {"enum": ["true", "false"]}},
                   "limit": {"type": "array",
                             "items": {"type": "string", "pattern": "^[1-9][0-9]{0,3}$"}}},
    "additionalProperties": False,
}

_TIME = {"type": ["string", "null"]}
RECOVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "uuid": {"type": "string", "format": "uuid"},
        "host": {"type": "string"}, "service_id": {"type": "integer"},
        "trigger": {"type": "string", "enum": [t.value for t in Trigger]},
        "phase": {"type": "string", "enum": [p.value for p in Phase]},
        "status": {"type": "string", "enum": [s.value for s in RecoveryStatus]},
        "open": {"type": "boolean"},
        "was_disabled": {"type": "boolean"}, "was_forced_down": {"type": "boolean"},
        "fence_agent": {"type": ["string", "null"]}, "fence_attempts": {"type": "integer"},
        "next_attempt_at": _TIME, "last_error": {"type": ["string", "null"]},
        "held_reason": {"type": ["string", "null"]},
        "epoch": {"type": "integer", "description": "Leader epoch of the last write"},
        "created_at": {"type": "string"}, "updated_at": _TIME, "finished_at": _TIME,
        "evacuations_total": {"type": "integer"},
        "evacuations_by_status": {"type": "object",
                                  "additionalProperties": {"type": "integer"}},
    },
    "required": ["id", "uuid", "host", "phase", "status", "open", "fence_attempts",
                 "evacuations_total", "evacuations_by_status"],
}
ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "kind": {"type": "string"},
                   "active": {"type": "boolean"}, "message": {"type": "string"},
                   "raised_at": {"type": "string"}, "last_seen_at": {"type": "string"},
                   "cleared_at": _TIME},
    "required": ["id", "kind", "active", "message", "raised_at"],
}


def _api(ctx: Ctx) -> RecoveriesAPI:
    return RecoveriesAPI(ctx.registry.engine)


@router.get(
    "/recoveries",
    summary="List host recoveries (newest first) and open HA alerts",
    response_model=None,
    openapi_extra={"parameters": [
        {"name": "host", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "open", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["true", "false"]}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 9999},
         "description": "At most this many recoveries, newest first (default 100)"},
    ]},
    responses={200: {"content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"recoveries": {"type": "array", "items": RECOVERY_SCHEMA},
                       "alerts": {"type": "array", "items": ALERT_SCHEMA},
                       "leader": {"type": ["object", "null"]}},
        "required": ["recoveries", "alerts", "leader"]}}}},
        **errors_doc(400, 401, 403, 406, 503)},
)
def list_recoveries(ctx: Ctx) -> dict[str, Any]:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(QUERY, query)
    ctx.authorize(POLICY_LIST)
    api = _api(ctx)
    host = query.get("host", [""])[-1] or None
    open_only = query.get("open", ["false"])[-1] == "true"
    limit = int(query.get("limit", ["100"])[-1])
    return {"recoveries": api.list_recoveries(open_only=open_only, host=host, limit=limit),
            "alerts": api.alerts(), "leader": api.leader()}


@router.get(
    "/recoveries/{recovery_id}",
    summary="Show one recovery (integer id or UUID) with its timeline and evacuations",
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"recovery": RECOVERY_SCHEMA},
        "required": ["recovery"]}}}}, **errors_doc(400, 401, 403, 404, 406, 503)},
)
def show_recovery(recovery_id: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY_SHOW)
    try:
        ident = parse_recovery_ident(recovery_id)
        return {"recovery": _api(ctx).get(ident)}
    except InvalidInput as exc:
        raise Fault(400, str(exc)) from exc
    except NotFound as exc:
        raise Fault(404, f"Recovery {recovery_id} not found.") from exc
