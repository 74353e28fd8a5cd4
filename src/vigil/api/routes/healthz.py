"""``/healthz`` for load balancers: 200 when the database answers with Vigil's schema, 503
otherwise, within a bounded time.

Unauthenticated (a load balancer has no token) and minimal (it reveals nothing but "can serve").
The database probe runs in a worker thread that is abandoned after :data:`TIMEOUT`, so a hung
database costs the probe two seconds, not the balancer's whole timeout.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.engine import Engine

from vigil.db._query import translate_errors_once
from vigil.db.models import Service
from vigil.errors import Unavailable

router = APIRouter(tags=["vigil"])

TIMEOUT = 2.0

_SCHEMA = {"type": "object", "properties": {"status": {"type": "string",
                                                       "enum": ["ok", "unavailable"]}},
           "required": ["status"]}


@translate_errors_once
def probe(engine: Engine) -> None:
    """One indexed single-row read: the database answers and has the services table."""
    with engine.connect() as conn:
        conn.execute(select(Service.id).limit(1)).all()


@router.get(
    "/healthz",
    summary="Health check for load balancers",
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": _SCHEMA}}},
               503: {"description": "The database did not answer",
                     "content": {"application/json": {"schema": _SCHEMA}}}},
)
async def healthz(request: Request) -> Any:
    engine = request.app.state.vigil.registry.engine
    with anyio.move_on_after(TIMEOUT):
        try:
            await anyio.to_thread.run_sync(probe, engine, abandon_on_cancel=True)
        except Unavailable:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return {"status": "ok"}
    return JSONResponse({"status": "unavailable"}, status_code=503)
