"""Where a CLI command sends its calls: a Vigil API, or the database directly.

In this order (the first that applies wins):

1. ``--direct``: the database of the configuration, even if an API is known.
2. ``--os-endpoint`` (with ``--os-token``): a static admin token.
3. ``--os-cloud``/OS_CLOUD or OS_AUTH_URL: a Keystone login (:mod:`vigil.cli.cloud`).
4. OS_ENDPOINT/OS_TOKEN, then ``[api] endpoint``/``token``.
5. The API of the ``vigil up`` running on this configuration's ``state_path``
   (:func:`vigil.upstate.running`: its lock is held, so it is alive).
6. The database.

So on a machine where ``vigil up`` runs, ``vigil service list`` goes through its API, the path
every other client takes, and reaching into its SQLite file is something one asks for. ``--debug``
prints the choice and why on stderr; ``vigil status`` shows it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from oslo_config import cfg

from vigil import upstate
from vigil.cli import cloud
from vigil.errors import InvalidInput


@dataclass(frozen=True)
class Target:
    """An API (``endpoint`` and ``token``) or the database (``endpoint`` None), and why."""

    endpoint: str | None
    token: str | None
    why: str

    @property
    def api(self) -> tuple[str, str] | None:
        """(endpoint, token) for the API clients, or None for the database."""
        if self.endpoint is None:
            return None
        return self.endpoint, self.token or ""

    def describe(self, conf: cfg.ConfigOpts) -> str:
        if self.endpoint is not None:
            return f"the API at {self.endpoint} ({self.why})"
        return f"the database {database_url(conf)} directly ({self.why})"


def database_url(conf: cfg.ConfigOpts) -> str:
    """The configured database's URL with its password hidden (for messages)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(conf.database.connection).render_as_string(hide_password=True)
    except Exception:  # a bad URL is reported when the engine is made; here, show it as is
        return str(conf.database.connection)


def add_api_options(p: argparse.ArgumentParser) -> None:
    """The options :func:`resolve` reads."""
    p.add_argument("--os-endpoint", metavar="URL",
                   help="use the Vigil API at URL instead of the database (env OS_ENDPOINT)")
    p.add_argument("--os-token", metavar="TOKEN", help="API token (env OS_TOKEN)")
    p.add_argument("--os-cloud", metavar="NAME",
                   help="log in to Keystone as cloud NAME of clouds.yaml and use the compute "
                   "endpoint of its catalog (env OS_CLOUD; or the OS_AUTH_URL, OS_USERNAME... "
                   "variables)")
    p.add_argument("--direct", action="store_true",
                   help="use the database directly, even where an API is configured or "
                   "vigil up runs")
    p.add_argument("--debug", action="store_true",
                   help="say on stderr which API or database the command uses, and why")


def resolve(args: argparse.Namespace, conf: cfg.ConfigOpts) -> Target:
    """The target of this command (the module docstring's order); with ``--debug``, says it."""
    target = _resolve(args, conf)
    if getattr(args, "debug", False):
        print(f"vigil: using {target.describe(conf)}", file=sys.stderr)
    return target


def _resolve(args: argparse.Namespace, conf: cfg.ConfigOpts) -> Target:
    if getattr(args, "direct", False):
        return Target(None, None, "--direct")
    flag_endpoint = getattr(args, "os_endpoint", None)
    cloud_name = getattr(args, "os_cloud", None)
    if not flag_endpoint and cloud.wanted(cloud_name):
        url, token = cloud.login(cloud_name)
        name = cloud_name or os.environ.get("OS_CLOUD")
        return Target(url, token, f"Keystone login, cloud {name}" if name
                      else "Keystone login, OS_AUTH_URL")
    given: list[tuple[str | None, str]] = [(flag_endpoint, "--os-endpoint"),
                                           (os.environ.get("OS_ENDPOINT"), "OS_ENDPOINT"),
                                           (conf.api.endpoint, "[api] endpoint")]
    for endpoint, why in given:
        if endpoint:
            given_token = (getattr(args, "os_token", None) or os.environ.get("OS_TOKEN")
                           or conf.api.token)
            if not given_token:
                raise InvalidInput("an API endpoint needs a token: give --os-token "
                                   "(or OS_TOKEN)")
            return Target(endpoint, given_token, why)
    run = upstate.running(conf.state_path)
    if run is not None:
        return Target(run.endpoint, run.token,
                      f"vigil up, pid {run.pid}, recorded in {conf.state_path}")
    return Target(None, None, f"no API configured and no vigil up running on {conf.state_path}")
