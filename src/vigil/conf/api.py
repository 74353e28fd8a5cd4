"""Options of the REST API ([api]): where it listens, how it authenticates, the policy file, and
where the CLI finds a remote API.

``auth_strategy`` defaults to ``token_file`` so a fresh install is never open: ``vigil up``
writes an admin token into ``state_path`` and prints it. ``noauth`` exists for development only
and is never a default.
"""

from __future__ import annotations

from oslo_config import cfg

AUTH_STRATEGIES = ("token_file", "keystone", "noauth")

API_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "listen",
        default="127.0.0.1",
        help="Address the API binds to. Loopback by default: expose it on purpose.",
    ),
    cfg.PortOpt(
        "port",
        default=8774,
        help="TCP port of the API (8774, Nova's osapi_compute port, so clients' habits hold).",
    ),
    cfg.IntOpt(
        "workers",
        default=1,
        min=1,
        help="Processes serving the API (vigil api; --workers overrides). Above 1, uvicorn's "
        "process manager runs that many workers on the one port, each building the app from "
        "the same configuration files (vigil.api.wsgi). Under gunicorn, its own --workers "
        "rules instead.",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="token_file",
        choices=AUTH_STRATEGIES,
        help="token_file: tokens listed in token_file map to a project, user and roles. "
        "keystone: keystonemiddleware's auth_token validates tokens (configure its "
        "[keystone_authtoken] section; needs the 'keystone' extra). noauth: development only, "
        "X-Auth-Token 'user:project' is trusted as given (admin when the user is 'admin').",
    ),
    cfg.StrOpt(
        "token_file",
        default="$state_path/api-tokens.json",
        help="JSON or YAML mapping of token -> {project_id, user_id, roles} for the token_file "
        "strategy. Read at start-up.",
    ),
    cfg.StrOpt(
        "policy_file",
        default=None,
        help="oslo.policy rules (YAML or JSON) overriding the defaults (os_compute_api:os-services"
        ":list/update/delete need role:admin, as in Nova). A missing file refuses to start. "
        "Unset: oslo.policy's own [oslo_policy] policy_file (policy.yaml beside the "
        "configuration files) if there is one, else the defaults.",
    ),
    cfg.FloatOpt(
        "feed_poll_interval",
        default=1.0,
        min=0.1,
        help="Seconds between two reads of the fleet by the dashboard's change feed "
        "(/v2.1/vigil/feed). One poller per API process, shared by every connected dashboard, "
        "running only while one is connected; a state change reaches the page within about "
        "this plus one poll. Each poll reads every service (about 0.2 s of one CPU at 10,000 "
        "services: see docs/dashboard.md).",
    ),
    cfg.BoolOpt(
        "nova_binary_names",
        default=True,
        help="Speak Nova's binary names (nova-compute, nova-conductor, nova-scheduler) on the "
        "Nova-compatible API (/v2.1/os-services): in listings, ?binary= filters, update bodies "
        "and error messages, so the openstack CLI, openstacksdk, novaclient and tempest find "
        "the services by the names they know. Vigil services without a Nova counterpart are "
        "then hidden there. false: that API speaks Vigil's names (vigil-compute, ...). Vigil's "
        "own views (/v2.1/vigil/*, the CLI, the dashboard) always use Vigil's names; the "
        "database always holds them, so switching is safe (vigil.names).",
    ),
    cfg.StrOpt(
        "endpoint",
        default=None,
        help="For the CLI: URL of a Vigil API (e.g. http://127.0.0.1:8774). With 'token' set, "
        "the CLI's commands go through the API instead of the database (--direct overrides it). "
        "Also --os-endpoint or OS_ENDPOINT. Unset, the CLI uses the API of a vigil up running "
        "on this state_path, else the database.",
    ),
    cfg.StrOpt(
        "token",
        default=None,
        secret=True,
        help="For the CLI: the token to send to 'endpoint'. Also --os-token or OS_TOKEN.",
    ),
]


# oslo.middleware's healthcheck names, so an operator's habits (and drain scripts) carry over.
HEALTHCHECK_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "disable_by_file_path",
        default=None,
        help="While this file exists, GET /healthcheck answers 503 'DISABLED BY FILE' (the API "
        "still serves everything else): touch it to drain an API node out of its load "
        "balancer before maintenance, remove it to put the node back. As oslo.middleware's "
        "disable_by_file backend.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("api", API_OPTS), ("healthcheck", HEALTHCHECK_OPTS)]
