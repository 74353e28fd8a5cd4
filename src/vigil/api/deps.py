"""What a handler receives: ``def handler(ctx: Ctx)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response

from vigil.api import microversions
from vigil.api.auth import Context
from vigil.api.policy import Policy
from vigil.registry import Registry


@dataclass(frozen=True)
class RequestContext:
    request: Request
    caller: Context
    version: microversions.APIVersion
    registry: Registry
    policy: Policy

    def authorize(self, rule: str) -> None:
        self.policy.authorize(rule, self.caller)

    def at_least(self, version: str) -> bool:
        return self.version.at_least(version)


def request_context(request: Request) -> RequestContext:
    state = request.app.state.vigil
    return RequestContext(
        request=request,
        caller=request.state.context,
        version=request.state.api_version,
        registry=state.registry,
        policy=state.policy,
    )


Ctx = Annotated[RequestContext, Depends(request_context)]


def json_response(body: Any, *, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer serialized once, with orjson.

    For bodies that are already plain JSON types (lists of thousands of services): FastAPI's
    generic encoder would walk every value a second time first. orjson writes the compact
    form ``json.dumps(body, separators=(",", ":"))`` wrote, in UTF-8 instead of ``\\u``
    escapes, about seven times faster: the encoding was a fifth of a 10,000-service list's CPU
    (docs/benchmarks.md, issue 12). Integer dict keys are written as strings, as json did:
    orjson refuses them unless told to, and telling it costs every dict a slower path (0.7 of
    1.9 ms at 10,000 services), so it is told only when a body has them.
    """
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError:
        content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, media_type="application/json", headers=headers)


def links(ctx: RequestContext, collection: str, ident: str) -> list[dict[str, str]]:
    """Nova's ``self`` and ``bookmark`` links of one resource of ``collection``."""
    base = str(ctx.request.base_url).rstrip("/")
    return [{"rel": "self", "href": f"{base}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{collection}/{ident}"}]
