"""The API application factory.

Adding a resource
-----------------
A resource is one module under ``vigil.api.routes`` that defines ``router`` (a FastAPI
``APIRouter`` with its paths, e.g. ``/v2.1/os-hypervisors``) and registers its policy defaults
with :func:`vigil.api.policy.register` at import time. Enabling it is one line: append the
module's name to :data:`ROUTE_MODULES` (or pass ``route_modules=`` to :func:`create_app`).

Inside a handler, ``deps.Ctx`` gives the :class:`~vigil.api.deps.RequestContext`: the caller
(already authenticated), the negotiated microversion, the Registry and the policy. Handlers are
plain ``def`` functions, so FastAPI runs their blocking database calls in its thread pool.
Raise :class:`vigil.api.errors.Fault` or any :mod:`vigil.errors` exception: both become Nova's
error body. Validate bodies with :mod:`vigil.api.validation` against Nova's schemas and publish
the same schemas in ``openapi_extra`` so the OpenAPI document describes what is enforced.

Request pipeline
----------------
:class:`~vigil.api.request_log.RequestLogMiddleware` runs first, for every request: it gives it
its ``x-openstack-request-id`` and writes the access log line. :class:`ComputeMiddleware` runs
next, for every path except the public ones (version documents, ``/healthz``,
``/healthcheck``, ``/metrics``, the OpenAPI document): it authenticates (401 in Nova's body
when that fails), negotiates the microversion (400 malformed, 406 unsupported), and echoes the
served version with ``Vary`` on every answer, errors included, as Nova does.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api import auth, errors, microversions, protocol
from vigil.api.feed import PokeOnWrite, feed_for
from vigil.api.metrics import ApiMetrics, MetricsMiddleware
from vigil.api.policy import Policy, defaults
from vigil.api.request_log import RequestLogMiddleware, install_log_context
from vigil.errors import Unavailable
from vigil.names import NOVA_NAMES, BinaryNames
from vigil.registry import Registry

LOG = logging.getLogger(__name__)

# The resources served, in OpenAPI order. One line per resource.
ROUTE_MODULES: tuple[str, ...] = (
    "vigil.api.routes.versions",
    "vigil.api.routes.healthz",
    "vigil.api.routes.healthcheck",
    "vigil.api.routes.metrics",
    "vigil.api.routes.services",
    "vigil.api.routes.vigil_services",
    "vigil.api.routes.servers",
    "vigil.api.routes.consoles",
    "vigil.api.routes.flavors",
    "vigil.api.routes.hypervisors",
    "vigil.api.routes.recoveries",
    "vigil.api.routes.hosts",
    "vigil.api.routes.nodes",
    "vigil.api.routes.ring",
    "vigil.api.routes.dashboard",
)

# Answered without credentials (as Nova's version documents are) and without a microversion.
PUBLIC_PATHS = frozenset({"/", "/v2.1", "/v2.1/", "/healthz", "/healthcheck", "/metrics",
                          "/openapi.json", "/dashboard"})
# The dashboard's static files: public too (they hold no data; every data call they make is an
# API call with the operator's token).
PUBLIC_PREFIXES = ("/dashboard/",)

MIDDLEWARE_CODES = (400, 401, 406, 503)

TITLE = "Vigil compute API"
API_VERSION = "2.1"


@dataclass
class AppState:
    """What every handler may use; stored on ``app.state.vigil``."""

    registry: Registry
    policy: Policy
    authenticator: auth.Authenticator
    # How the Nova-compatible routes spell binaries ([api] nova_binary_names; vigil.names).
    binary_names: BinaryNames = NOVA_NAMES


class ComputeMiddleware:
    """Authentication and microversion negotiation in front of every non-public route."""

    def __init__(self, app: ASGIApp, authenticator: auth.Authenticator,
                 collections: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.authenticator = authenticator
        # First path segments under /v2.1/ that are resources ("os-services", "servers", ...):
        # any other first segment followed by more path is a legacy project id.
        self.collections = collections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] in PUBLIC_PATHS
                or scope["path"].startswith(PUBLIC_PREFIXES)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            ctx = await self._authenticate(scope, headers)
        except auth.Unauthenticated:
            await errors.fault_response(401, errors.DEFAULT_MESSAGES[401])(scope, receive, send)
            return
        except Unavailable as exc:
            await errors.fault_response(503, str(exc))(scope, receive, send)
            return
        try:
            version = microversions.requested(headers)
        except microversions.InvalidVersion as exc:
            await errors.fault_response(400, str(exc))(scope, receive, send)
            return
        except microversions.UnsupportedVersion as exc:
            await errors.fault_response(406, str(exc))(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["context"] = ctx
        state["api_version"] = version

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                microversions.add_headers(MutableHeaders(scope=message), version)
            await send(message)

        try:
            self._strip_project_id(scope, ctx)
        except errors.Fault as fault:
            await errors.fault_response(fault.code, fault.message)(scope, receive,
                                                                   send_with_version)
            return
        await self.app(scope, receive, send_with_version)

    def _strip_project_id(self, scope: Scope, ctx: auth.Context) -> None:
        """Serve Nova's legacy ``/v2.1/{project_id}/...`` URLs (catalogs often still hold them)
        as the same path without it; the project must be the caller's own, as in Nova."""
        parts = scope["path"].split("/", 3)  # "", "v2.1", first, rest
        if len(parts) < 4 or parts[1] != "v2.1" or parts[2] in self.collections:
            return
        if parts[2] != ctx.project_id:
            raise errors.Fault(400, f"Malformed request URL: URL's project_id '{parts[2]}' "
                                    f"doesn't match Context's project_id '{ctx.project_id}'")
        path = f"/v2.1/{parts[3]}"
        scope["path"] = path
        scope["raw_path"] = path.encode()

    async def _authenticate(self, scope: Scope, headers: Headers) -> auth.Context:
        plain = {k.lower(): v for k, v in headers.items()}
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"], "PATH_INFO": scope["path"],
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": "vigil", "SERVER_PORT": "0", "wsgi.url_scheme": scope["scheme"],
        }
        if self.authenticator.blocking:
            return await anyio.to_thread.run_sync(
                self.authenticator.authenticate, plain, environ)
        return self.authenticator.authenticate(plain, environ)


def list_policies(route_modules: Sequence[str] = ROUTE_MODULES) -> list[Any]:
    """Every policy rule the API enforces, with its default: the ``oslo.policy.policies`` entry
    point (``oslopolicy-sample-generator --namespace vigil``). Route modules register their rules
    when imported, so they are imported first."""
    for name in route_modules:
        importlib.import_module(name)
    return defaults()


def create_app(
    registry: Registry,
    policy: Policy,
    authenticator: auth.Authenticator,
    *,
    route_modules: Sequence[str] = ROUTE_MODULES,
    feed_poll_interval: float = 1.0,
    binary_names: BinaryNames = NOVA_NAMES,
) -> FastAPI:
    """An API over ``registry``, serving the resources in ``route_modules``.

    ``feed_poll_interval``: seconds between two polls of the dashboard's change feed
    (:mod:`vigil.api.feed`; it polls only while a dashboard is connected).
    ``binary_names``: the binaries' names on the Nova-compatible routes (:mod:`vigil.names`).
    """
    app = FastAPI(
        title=TITLE,
        version=API_VERSION,
        description="An os-services compatible subset of the OpenStack Compute API (with "
        f"microversions 2.1 to {microversions.MAX}) and Vigil's own resources. See docs/api.md.",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # Location would come from the client's Host (api/protocol.py)
    )
    app.state.vigil = AppState(registry=registry, policy=policy, authenticator=authenticator,
                               binary_names=binary_names)
    app.state.vigil_feed = feed_for(registry, feed_poll_interval)
    errors.install(app)
    paths: list[str] = []
    served: list[BaseRoute] = []  # the routes themselves, for a complete 405 Allow
    for name in route_modules:
        router = importlib.import_module(name).router
        paths += [getattr(r, "path", "") for r in router.routes]
        served += router.routes
        app.include_router(router)
    policy.sync_defaults()  # the route modules registered their rules on import
    collections = frozenset(p.split("/")[2] for p in paths
                            if p.startswith("/v2.1/") and len(p.split("/")) > 2)
    app.add_middleware(ComputeMiddleware, authenticator=authenticator, collections=collections)
    app.add_middleware(PokeOnWrite, feed=app.state.vigil_feed)
    # Inside the metrics and the request log: they see its 500s and HEAD answers as answers.
    app.add_middleware(protocol.HttpConformance, routes=served)
    app.state.vigil_metrics = ApiMetrics(registry)
    app.add_middleware(MetricsMiddleware, metrics=app.state.vigil_metrics)
    # Outermost (added last): every answer gets its request id, errors and public paths too.
    install_log_context()
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the API really does: token auth on every
    non-public path, and no 422 answers (FastAPI's own validation errors are answered 400 in
    Nova's body)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    doc.setdefault("components", {})["securitySchemes"] = {
        "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                  "description": "A token of the configured [api] auth_strategy"}}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"token": []}]
                # What ComputeMiddleware may answer before any route runs: malformed version,
                # no or bad credentials, unsupported version, identity service unavailable.
                for code in MIDDLEWARE_CODES:
                    responses.setdefault(str(code), errors.fault_doc(code))
    schemas = doc["components"].get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if not schemas:
        doc["components"].pop("schemas", None)
    app.openapi_schema = doc
    return doc
