"""Who is calling: the three ``[api] auth_strategy`` choices, each giving a :class:`Context`.

token_file (default)
    A JSON or YAML file maps each token to ``{project_id, user_id, roles}``. ``vigil up`` writes
    one with a random admin token. Tokens are compared in constant time.
keystone
    keystonemiddleware's ``auth_token`` (the real WSGI middleware, configured from the
    ``[keystone_authtoken]`` section of the same configuration files) validates the token; its
    identity headers (``X-Roles``, ``X-User-Id``, ``X-Project-Id``) become the context. It is
    imported lazily so the ``keystone`` extra is needed only by those who use it.
noauth
    Development only, like Nova's noauth2: ``X-Auth-Token: user:project`` is trusted as given;
    the user ``admin`` gets the admin role. Never a default.

A request without credentials, or with credentials that do not check out, is answered 401 in
Nova's body before any route runs.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from oslo_config import cfg

from vigil.errors import BackendUnavailable, ConfigError

TOKEN_HEADER = "x-auth-token"


@dataclass(frozen=True)
class Context:
    """The caller's identity as policy sees it."""

    user_id: str
    project_id: str | None
    roles: tuple[str, ...] = ()
    auth_token: str | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def policy_creds(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "project_id": self.project_id,
                "roles": list(self.roles), "is_admin": self.is_admin}


class Unauthenticated(Exception):
    """No credentials, or credentials that do not check out: HTTP 401."""


class Authenticator(Protocol):
    """Turns a request's headers into a Context, or raises Unauthenticated.

    ``blocking`` says whether ``authenticate`` may do I/O (then it runs in a worker thread).
    """

    blocking: bool

    def authenticate(self, headers: Mapping[str, str], environ: Mapping[str, Any]) -> Context:
        ...


class TokenFileAuth:
    """Tokens from a file, as a small deployment or ``vigil up`` needs them."""

    blocking = False

    def __init__(self, tokens: Mapping[str, Context]) -> None:
        self._tokens = dict(tokens)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenFileAuth:
        return cls(load_token_file(path))

    def authenticate(self, headers: Mapping[str, str], environ: Mapping[str, Any]) -> Context:
        token = headers.get(TOKEN_HEADER)
        if not token:
            raise Unauthenticated("no token")
        found: Context | None = None
        # Compare against every token so timing does not reveal how many prefixes matched.
        for known, ctx in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = ctx
        if found is None:
            raise Unauthenticated("unknown token")
        return found


def load_token_file(path: str | os.PathLike[str]) -> dict[str, Context]:
    """Parse ``{token: {project_id, user_id, roles}}``; every problem is one ConfigError line."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read [api] token_file {p}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError as exc:
        raise ConfigError(f"[api] token_file {p} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"[api] token_file {p} must map tokens to identities")
    out: dict[str, Context] = {}
    for token, ident in data.items():
        if not isinstance(token, str) or not token:
            raise ConfigError(f"[api] token_file {p}: tokens must be non-empty strings")
        if not isinstance(ident, dict) or not isinstance(ident.get("user_id"), str):
            raise ConfigError(f"[api] token_file {p}: each token needs at least a user_id")
        roles = ident.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"[api] token_file {p}: roles must be a list of strings")
        project = ident.get("project_id")
        out[token] = Context(user_id=ident["user_id"],
                             project_id=str(project) if project is not None else None,
                             roles=tuple(roles), auth_token=token)
    return out


def write_admin_token_file(path: str | os.PathLike[str], *, user_id: str = "admin",
                           project_id: str = "admin") -> str:
    """Create (or reuse) a token file holding one admin token; returns that token.

    Reused across restarts so a token printed once keeps working; created 0600 because it is a
    credential.
    """
    p = Path(path)
    if p.exists():
        for token, ctx in load_token_file(p).items():
            if ctx.is_admin:
                return token
    token = secrets.token_urlsafe(32)
    data = {token: {"user_id": user_id, "project_id": project_id, "roles": ["admin", "member",
                                                                            "reader"]}}
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    return token


class NoAuth:
    """Nova's noauth2 for development: the token names the user and project."""

    blocking = False

    def authenticate(self, headers: Mapping[str, str], environ: Mapping[str, Any]) -> Context:
        token = headers.get(TOKEN_HEADER)
        if not token:
            raise Unauthenticated("no token")
        user, _, project = token.partition(":")
        roles = ("admin", "member", "reader") if user == "admin" else ("member", "reader")
        return Context(user_id=user, project_id=project or user, roles=roles, auth_token=token)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class KeystoneAuth:
    """keystonemiddleware.auth_token, run as the WSGI middleware it is, around a tiny WSGI app
    that only records the identity headers the middleware sets.

    ``delay_auth_decision`` is forced off: the middleware itself answers 401 for a missing or
    invalid token and 503 when Keystone cannot be reached; both reach the client as Nova faults.
    """

    blocking = True

    def __init__(self, conf: cfg.ConfigOpts, project: str = "vigil") -> None:
        try:
            from keystonemiddleware import auth_token
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                "[api] auth_strategy = keystone needs keystonemiddleware: "
                "pip install 'vigil[keystone]'") from exc
        options: dict[str, Any] = {"delay_auth_decision": False, "oslo_config_project": project,
                                   "oslo_config_config": conf}
        self._middleware: WsgiApp = auth_token.AuthProtocol(self._inner, options)

    @staticmethod
    def _inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["vigil.authenticated"] = True
        start_response("200 OK", [])
        return [b""]

    def authenticate(self, headers: Mapping[str, str], environ: Mapping[str, Any]) -> Context:
        env: dict[str, Any] = dict(environ)
        for name, value in headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            env[key] = value
        status: list[str] = []

        def start_response(st: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(st)

        result = self._middleware(env, start_response)
        for _chunk in result:
            pass
        code = int(status[0].split()[0]) if status else 500
        if code == 503:
            raise BackendUnavailable("the identity service is unavailable")
        if not env.get("vigil.authenticated") or env.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            raise Unauthenticated("token rejected by keystonemiddleware")
        roles = tuple(r.strip() for r in env.get("HTTP_X_ROLES", "").split(",") if r.strip())
        return Context(user_id=env.get("HTTP_X_USER_ID", ""),
                       project_id=env.get("HTTP_X_PROJECT_ID"), roles=roles,
                       auth_token=headers.get(TOKEN_HEADER))


def from_conf(conf: cfg.ConfigOpts) -> Authenticator:
    strategy = conf.api.auth_strategy
    if strategy == "token_file":
        return TokenFileAuth.from_file(conf.api.token_file)
    if strategy == "noauth":
        return NoAuth()
    if strategy == "keystone":
        return KeystoneAuth(conf)
    raise ConfigError(f"unknown [api] auth_strategy {strategy!r}")
