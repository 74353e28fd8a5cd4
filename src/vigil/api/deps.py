"""What a handler receives: ``def handler(ctx: Ctx)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

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
