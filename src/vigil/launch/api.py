"""The API app built from the configuration (``vigil api``, its ASGI workers, ``vigil up``)."""

from __future__ import annotations

from fastapi import FastAPI
from oslo_config import cfg

from vigil.api import auth
from vigil.api.app import create_app
from vigil.api.policy import Policy
from vigil.console.daemon import consoles_from
from vigil.db import migration
from vigil.launch import registry_from
from vigil.names import for_api
from vigil.registry import Registry


def create_app_from_conf(conf: cfg.ConfigOpts, registry: Registry | None = None) -> FastAPI:
    """The API app as ``vigil api``, its ASGI workers and ``vigil up`` run it."""
    if registry is None:
        registry = registry_from(conf)
        # Every worker checks (gunicorn's too): a schema behind the code stops it at boot.
        migration.require_current(registry.engine)
    app = create_app(registry, Policy(conf, conf.api.policy_file), auth.from_conf(conf),
                     feed_poll_interval=conf.api.feed_poll_interval,
                     binary_names=for_api(conf.api.nova_binary_names))
    app.state.vigil_disable_file = conf.healthcheck.disable_by_file_path
    app.state.vigil_consoles = consoles_from(conf, registry.engine)
    return app
