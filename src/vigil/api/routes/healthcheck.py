"""``/healthcheck`` in oslo.middleware's shape, for load balancers and operators' scripts that
know OpenStack's: ``GET`` answers ``200 OK`` (text/plain, or ``{"reasons": ["OK"], "detailed":
false}`` for ``Accept: application/json``), ``HEAD`` answers ``204``; ``503`` with the reason
when a check fails.

Two checks, as oslo.middleware's backends: the drain file (``[healthcheck]
disable_by_file_path``: while it exists the answer is ``503 DISABLED BY FILE``, so an operator
takes an API node out of its balancer before maintenance without stopping it), and the database
(the same bounded probe as ``/healthz``, which stays for Vigil's existing users).
"""

from __future__ import annotations

import json
import os

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response

from vigil.api.routes.healthz import TIMEOUT, probe
from vigil.errors import Unavailable

router = APIRouter(tags=["vigil"])

DISABLED = "DISABLED BY FILE"
DATABASE_DOWN = "DATABASE UNAVAILABLE"


async def _reasons(request: Request) -> list[str]:
    """The failed checks' reasons; empty when healthy."""
    path = getattr(request.app.state, "vigil_disable_file", None)
    if path and os.path.exists(path):
        return [DISABLED]  # drained on purpose: the database is not even asked
    engine = request.app.state.vigil.registry.engine
    with anyio.move_on_after(TIMEOUT):
        try:
            await anyio.to_thread.run_sync(probe, engine, abandon_on_cancel=True)
        except Unavailable:
            return [DATABASE_DOWN]
        return []
    return [DATABASE_DOWN]


@router.get(
    "/healthcheck",
    summary="Health check in oslo.middleware's shape (with a drain file)",
    response_model=None,
    responses={200: {"content": {"text/plain": {}, "application/json": {}}},
               503: {"description": "Drained by file, or the database did not answer"}},
)
async def healthcheck(request: Request) -> Response:
    failed = await _reasons(request)
    status = 503 if failed else 200
    reasons = failed or ["OK"]
    if "application/json" in request.headers.get("accept", ""):
        body = json.dumps({"reasons": reasons, "detailed": False}, indent=4, sort_keys=True)
        return Response(body, status_code=status, media_type="application/json")
    return Response("\n".join(reasons), status_code=status, media_type="text/plain")


@router.head(
    "/healthcheck",
    summary="Health check without a body: 204 healthy, 503 not (as oslo.middleware's)",
    response_model=None,
    status_code=204,
    responses={503: {"description": "Drained by file, or the database did not answer"}},
)
async def healthcheck_head(request: Request) -> Response:
    failed = await _reasons(request)
    return Response(status_code=503 if failed else 204, media_type="text/plain")
