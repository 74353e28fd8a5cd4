"""``/v2.1/os-hypervisors``: list, detail, statistics, show.

Nova's shapes: before 2.53 ids are the nodes' integers, from 2.53 their UUIDs. ``state`` is
Nova's ``up``/``down``: a hypervisor whose compute service's liveness is *unknown* is reported
``down`` (never ``up`` without evidence) and counted in the
``X-Vigil-Unknown-State-Count`` header, as ``/os-services`` does. Every hypervisor also
carries ``vigil:state``, Vigil's own ``up``/``down``/``unknown`` (an extra key, which Nova
clients ignore): ``vigil hypervisor`` shows that one, through the API as from the database.
``state`` comes from one batch liveness read for all nodes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from oslo_policy import policy as oslo_policy

from vigil.api import policy, validation
from vigil.api.deps import Ctx, RequestContext, json_response
from vigil.api.errors import Fault
from vigil.api.routes.services import UNKNOWN_HEADER, errors_doc
from vigil.compute.hypervisors import HypervisorsAPI, HypervisorView
from vigil.errors import NotFound
from vigil.objects.liveness import State

router = APIRouter(prefix="/v2.1/os-hypervisors", tags=["os-hypervisors"])

POLICY = "os_compute_api:os-hypervisors:%s"
UUID_FOR_ID = "2.53"
VIGIL_STATE = "vigil:state"
_INT_MAX = 2**31 - 1  # the id column's range (Nova's db.MAX_INT)

policy.register(
    oslo_policy.DocumentedRuleDefault(POLICY % "list", policy.ADMIN, "List all hypervisors.",
                                      [{"method": "GET", "path": "/os-hypervisors"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "list-detail", policy.ADMIN,
                                      "List all hypervisors with details",
                                      [{"method": "GET", "path": "/os-hypervisors/detail"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "statistics", policy.ADMIN,
                                      "Show summary statistics for all hypervisors over all "
                                      "enabled compute services.",
                                      [{"method": "GET",
                                        "path": "/os-hypervisors/statistics"}]),
    oslo_policy.DocumentedRuleDefault(POLICY % "show", policy.ADMIN,
                                      "Show details for a hypervisor.",
                                      [{"method": "GET",
                                        "path": "/os-hypervisors/{hypervisor_id}"}]),
)

QUERY: validation.Schema = {
    "type": "object",
    "properties": {"hypervisor_hostname_pattern": validation.COMMON_QUERY_PARAM},
    "additionalProperties": True,
}
_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": ["string", "integer"]},
                   "hypervisor_hostname": {"type": "string"},
                   "state": {"type": "string", "enum": ["up", "down"]},
                   "status": {"type": "string", "enum": ["enabled", "disabled"]},
                   VIGIL_STATE: {"type": "string", "enum": ["up", "down", "unknown"],
                                 "description": "Vigil's liveness: unknown where state says "
                                                "down because the liveness could not be read"}},
    "required": ["id", "hypervisor_hostname", "state", "status"],
}
_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {**_SUMMARY["properties"],
                   **{k: {"type": "integer"} for k in (
                       "vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "free_ram_mb",
                       "local_gb", "local_gb_used", "free_disk_gb", "running_vms")},
                   "hypervisor_type": {"type": "string"},
                   "host_ip": {"type": ["string", "null"]},
                   "service": {"type": "object"}},
    "required": [*_SUMMARY["required"], "vcpus", "memory_mb", "local_gb", "service"],
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _api(ctx: RequestContext) -> HypervisorsAPI:
    return HypervisorsAPI(ctx.registry.engine, ctx.registry.group)


def _view(ctx: RequestContext, v: HypervisorView, *, full: bool) -> dict[str, Any]:
    d = v.to_dict()
    d["id"] = v.node.uuid if ctx.at_least(UUID_FOR_ID) else v.node.id
    d["state"] = "up" if v.state is State.UP else "down"
    d[VIGIL_STATE] = v.state.value
    if not full:
        return {k: d[k] for k in ("id", "hypervisor_hostname", "state", "status", VIGIL_STATE)}
    return d


def _listing(ctx: Ctx, rule: str, *, full: bool) -> Response:
    query = validation.query_dict(ctx.request.query_params.multi_items())
    validation.check(QUERY, query)
    ctx.authorize(rule)
    pattern = query.get("hypervisor_hostname_pattern", [""])[-1] or None
    views = _api(ctx).list(hostname=pattern)
    unknown = sum(1 for v in views if v.state is State.UNKNOWN)
    return json_response({"hypervisors": [_view(ctx, v, full=full) for v in views]},
                         headers={UNKNOWN_HEADER: str(unknown)})


@router.get("", summary="List hypervisors", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "hypervisors": {"type": "array", "items": _SUMMARY}}}),
                **errors_doc(400, 401, 403, 406, 503)})
def index(ctx: Ctx) -> Response:
    return _listing(ctx, POLICY % "list", full=False)


@router.get("/detail", summary="List hypervisors with details", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "hypervisors": {"type": "array", "items": _DETAIL}}}),
                **errors_doc(400, 401, 403, 406, 503)})
def index_detail(ctx: Ctx) -> Response:
    return _listing(ctx, POLICY % "list-detail", full=True)


_STATISTICS: dict[str, Any] = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in (
        "count", "vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "free_ram_mb",
        "local_gb", "local_gb_used", "free_disk_gb", "disk_available_least", "running_vms",
        "current_workload")},
    "required": ["count", "vcpus", "memory_mb", "local_gb", "running_vms"],
}


@router.get("/statistics", summary="Show hypervisor statistics", response_model=None,
            responses={200: _json({"type": "object", "properties": {
                "hypervisor_statistics": _STATISTICS}}),
                **errors_doc(400, 401, 403, 406, 503)})
def statistics(ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY % "statistics")
    return {"hypervisor_statistics": _api(ctx).statistics()}


@router.get("/{hypervisor_id}", summary="Show a hypervisor", response_model=None,
            responses={200: _json({"type": "object", "properties": {"hypervisor": _DETAIL}}),
                       **errors_doc(400, 401, 403, 404, 406, 503)})
def show(hypervisor_id: str, ctx: Ctx) -> dict[str, Any]:
    ctx.authorize(POLICY % "show")
    if ctx.at_least(UUID_FOR_ID):
        if not validation.is_uuid_like(hypervisor_id):
            raise Fault(400, f"Invalid uuid {hypervisor_id}")
    else:
        number = validation.ascii_int(hypervisor_id)
        if number is None or number < 0:
            raise Fault(400, f"Hypervisor id {hypervisor_id} must be an integer")
        if number > _INT_MAX:  # no row can have it: spare the database an overflow
            raise Fault(404, f"Hypervisor with ID {hypervisor_id} could not be found.")
    try:
        view = _api(ctx).get(hypervisor_id)
    except NotFound as exc:
        raise Fault(404, f"Hypervisor with ID {hypervisor_id} could not be found.") from exc
    return {"hypervisor": _view(ctx, view, full=True)}
