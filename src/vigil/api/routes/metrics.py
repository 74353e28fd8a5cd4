"""``/metrics``: Prometheus exposition (:mod:`vigil.api.metrics`). Public like ``/healthz`` (a
scraper has no token): it gives counts by binary, state, phase and status, never a host's or an
instance's name. Not in the OpenAPI document: it is not part of the compute API."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["vigil"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # The fleet's figures are database reads: off the event loop.
    body = await anyio.to_thread.run_sync(request.app.state.vigil_metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
