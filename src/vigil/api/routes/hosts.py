"""``/v2.1/vigil/hosts``: compute hosts' HA facts, maintenance and quarantine release.

Admin only by default. The same operations as ``vigil host list|show|maintenance|release``
(:class:`vigil.ha.hosts.HostsAPI`); every change records the caller (user and project from
the token) as its actor.

- ``GET /v2.1/vigil/hosts`` and ``GET /v2.1/vigil/hosts/{host}``
- ``PUT /v2.1/vigil/hosts/{host}`` with ``{"host": {"maintenance": true, "maintenance_reason":
  "..."}}`` (or ``false``): the HA monitor opens no recovery for a host in maintenance.
- ``POST /v2.1/vigil/hosts/{host}/action`` with ``{"release": {"reason": "..."}}``: end the
  host's quarantine (409 if it is not quarantined).
- ``POST /v2.1/vigil/hosts/{host}/action`` with ``{"evacuate": {}}``: ``vigil host
  evacuate``'s request (:meth:`vigil.ha.views.RecoveriesAPI.request_host_evacuation`): the
  operator says the host is dead; the HA monitor's leader disables, fences, forces down and
  evacuates it. 409 while the host still reports or its liveness is unknown, and for a
  bare-metal host. Answers 202 with the recovery (a new one, or the open one it joins).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx, RequestContext, json_response
from vigil.api.errors import Fault
from vigil.api.routes import services as _services
from vigil.api.routes.recoveries import RECOVERY_SCHEMA
from vigil.api.routes.services import errors_doc
from vigil.ha.fence.simulated import SIMULATIONS, simulate
from vigil.ha.hosts import MAX_REASON, HostsAPI
from vigil.ha.views import RecoveriesAPI

router = APIRouter(prefix="/v2.1/vigil", tags=["vigil"])

POLICY_LIST = "vigil:hosts:list"
POLICY_SHOW = "vigil:hosts:show"
POLICY_MAINTENANCE = "vigil:hosts:maintenance"
POLICY_RELEASE = "vigil:hosts:release"
POLICY_EVACUATE = "vigil:hosts:evacuate"
POLICY_SIMULATE = "vigil:hosts:simulate"
policy.register(
    oslo_policy.DocumentedRuleDefault(
        POLICY_LIST, policy.ADMIN, "List compute hosts with their quarantine and maintenance.",
        [{"method": "GET", "path": "/v2.1/vigil/hosts"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_SHOW, policy.ADMIN, "Show one compute host's quarantine and maintenance.",
        [{"method": "GET", "path": "/v2.1/vigil/hosts/{host}"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_MAINTENANCE, policy.ADMIN, "Put a compute host in maintenance or take it out.",
        [{"method": "PUT", "path": "/v2.1/vigil/hosts/{host}"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_RELEASE, policy.ADMIN, "Release a compute host from its quarantine.",
        [{"method": "POST", "path": "/v2.1/vigil/hosts/{host}/action (release)"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_EVACUATE, policy.ADMIN, "Recover a dead compute host now: disable, fence, force "
        "down, evacuate its instances (vigil host evacuate).",
        [{"method": "POST", "path": "/v2.1/vigil/hosts/{host}/action (evacuate)"}]),
    oslo_policy.DocumentedRuleDefault(
        POLICY_SIMULATE, policy.ADMIN, "vigil up's simulated hosts: crash one, revive it, or "
        "kill its compute agent (vigil host crash|revive|kill-agent).",
        [{"method": "POST",
          "path": "/v2.1/vigil/hosts/{host}/action (crash, revive, kill-agent)"}]),
)

_REASON = {"type": "string", "minLength": 1, "maxLength": MAX_REASON,
           "pattern": validation.NO_CONTROL}
UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {"host": {
        "type": "object",
        "properties": {"maintenance": {"type": "boolean"}, "maintenance_reason": _REASON},
        "required": ["maintenance"],
        "additionalProperties": False}},
    "required": ["host"],
    "additionalProperties": False,
}
RELEASE: dict[str, Any] = {
    "type": "object",
    "properties": {"release": {
        "type": "object", "properties": {"reason": _REASON}, "required": ["reason"],
        "additionalProperties": False}},
    "required": ["release"],
    "additionalProperties": False,
}
EVACUATE: dict[str, Any] = {
    "type": "object",
    "properties": {"evacuate": {"type": "object", "properties": {},
                                "additionalProperties": False}},
    "required": ["evacuate"],
    "additionalProperties": False,
}
SIMULATE: dict[str, dict[str, Any]] = {a: {
    "type": "object",
    "properties": {a: {"type": "object", "properties": {}, "additionalProperties": False}},
    "required": [a],
    "additionalProperties": False,
} for a in SIMULATIONS}
ACTIONS = ("release", "evacuate", *SIMULATIONS)
_TIME = {"type": ["string", "null"]}
HOST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string"},
        "quarantined": {"type": "boolean"}, "quarantined_at": _TIME,
        "quarantine_reason": {"type": ["string", "null"]},
        "quarantine_recovery_id": {"type": ["integer", "null"]},
        "quarantine_acknowledged": {"type": "boolean",
                                    "description": "The host's agent confirmed it runs "
                                    "nothing since the quarantine began"},
        "released_at": _TIME, "released_by": {"type": ["string", "null"]},
        "release_reason": {"type": ["string", "null"]},
        "maintenance": {"type": "boolean"},
        "maintenance_reason": {"type": ["string", "null"]},
        "maintenance_since": _TIME, "maintenance_by": {"type": ["string", "null"]},
        "open_recovery_id": {"type": ["integer", "null"]},
        "open_recovery_phase": {"type": ["string", "null"]},
    },
    "required": ["host", "quarantined", "maintenance"],
}
_ONE = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"host": HOST_SCHEMA}, "required": ["host"]}}}}


def actor(ctx: RequestContext) -> str:
    """Who is acting, as recorded: the token's user and project."""
    c = ctx.caller
    return f"{c.user_id} (project {c.project_id})" if c.project_id else c.user_id


def _api(ctx: RequestContext) -> HostsAPI:
    return HostsAPI(ctx.registry.engine)


async def _in_thread(fn: Any) -> Any:
    return await anyio.to_thread.run_sync(fn)


@router.get("/hosts", summary="List compute hosts with their quarantine and maintenance",
            response_model=None,
            responses={200: {"content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"hosts": {"type": "array", "items": HOST_SCHEMA}},
                "required": ["hosts"]}}}}, **errors_doc(400, 401, 403, 406, 503)})
def list_hosts(ctx: Ctx) -> dict[str, Any]:
    if ctx.request.query_params:
        raise Fault(400, "This resource takes no query parameters.")
    ctx.authorize(POLICY_LIST)
    return {"hosts": _api(ctx).list()}


@router.get("/hosts/{host}", summary="Show one compute host's quarantine and maintenance",
            response_model=None,
            responses={200: _ONE, **errors_doc(400, 401, 403, 404, 406, 503)})
def show_host(host: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY_SHOW)
    return {"host": _api(ctx).get(host)}


@router.put("/hosts/{host}", summary="Put a compute host in maintenance (or take it out)",
            response_model=None,
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": UPDATE}}}},
            responses={200: _ONE, **errors_doc(400, 401, 403, 404, 406, 413, 415, 503)})
async def update_host(host: str, ctx: Ctx) -> dict[str, Any]:
    body = await _services._body(ctx)
    validation.check(UPDATE, body)
    ctx.authorize(POLICY_MAINTENANCE)
    values = body["host"]
    who = actor(ctx)
    return {"host": await _in_thread(lambda: _api(ctx).set_maintenance(
        host, values["maintenance"], reason=values.get("maintenance_reason"), actor=who))}


@router.post("/hosts/{host}/action",
             summary="Host action: release (end its quarantine) or evacuate (recover it now)",
             response_model=None,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {
                     "anyOf": [RELEASE, EVACUATE, *SIMULATE.values()]}}}}},
             responses={200: _ONE,
                        202: {"description": "evacuate: the recovery was opened (or joined); "
                              "the HA monitor's leader runs it",
                              "content": {"application/json": {"schema": {
                                  "type": "object", "properties": {"recovery": RECOVERY_SCHEMA},
                                  "required": ["recovery"]}}}},
                        **errors_doc(400, 401, 403, 404, 406, 409, 413, 415, 503)})
async def host_action(host: str, ctx: Ctx) -> Response:
    body = await _services._body(ctx)
    if isinstance(body, dict) and len(body) == 1 and next(iter(body)) not in ACTIONS:
        raise Fault(400, f"There is no such action: {next(iter(body))}")
    if isinstance(body, dict) and "evacuate" in body:
        validation.check(EVACUATE, body)
        ctx.authorize(POLICY_EVACUATE)
        api = RecoveriesAPI(ctx.registry.engine, ctx.registry.group)
        who = actor(ctx)

        answer = json_response({"recovery": await _in_thread(
            lambda: api.evacuate_host(host, actor=who))})
        answer.status_code = 202
        return answer
    if isinstance(body, dict) and len(body) == 1 and next(iter(body)) in SIMULATIONS:
        action = next(iter(body))
        validation.check(SIMULATE[action], body)
        ctx.authorize(POLICY_SIMULATE)
        return json_response({"host": await _in_thread(lambda: _simulate(ctx, host, action))})
    validation.check(RELEASE, body)
    ctx.authorize(POLICY_RELEASE)
    who = actor(ctx)
    return json_response({"host": await _in_thread(lambda: _api(ctx).release(
        host, reason=body["release"]["reason"], actor=who))})


def _simulate(ctx: RequestContext, host: str, action: str) -> dict[str, Any]:
    power_dir = getattr(ctx.request.app.state, "vigil_simulated_power_dir", None)
    if power_dir is None:
        raise Fault(400, f"This API runs no simulated hosts: {action} is for vigil up's.")
    api = _api(ctx)
    api.get(host)  # 404 for a host that is no compute host, before any mark is written
    simulate(power_dir, host, action)
    return api.get(host)
