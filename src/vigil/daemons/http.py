"""``vigil api``, ``vigil metadata`` and ``vigil serialproxy``: the HTTP daemons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import launch, rpc
from vigil.api.server import ApiServer
from vigil.conf.metadata import METADATA, OSAPI_COMPUTE
from vigil.console.daemon import start_serialproxy
from vigil.launch.api import create_app_from_conf
from vigil.metadata.daemon import metadata_app, start_metadata
from vigil.metadata.httpd import HttpServer
from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup
from vigil.signals import stop_on_signals

LOG = logging.getLogger(__name__)


def run_api(conf: cfg.ConfigOpts) -> int:
    """``vigil api``: the APIs of ``enabled_apis`` (the REST API on [api] listen:port, the
    metadata API on metadata_listen:metadata_listen_port) until SIGTERM/SIGINT."""
    apis = set(conf.enabled_apis)
    server = (ApiServer(create_app_from_conf(conf), conf.api.listen, conf.api.port)
              if OSAPI_COMPUTE in apis else None)
    meta = (HttpServer(metadata_app(conf, launch.engine_from(conf, require_schema=True)),
                       conf.metadata_listen, conf.metadata_listen_port, name="vigil-metadata")
            if METADATA in apis else None)
    with stop_on_signals(conf) as stop:
        if server is not None:
            server.start()
            LOG.info("Vigil API listening on %s (auth_strategy %s)", server.url,
                     conf.api.auth_strategy)
            print(f"Vigil API on {server.url}", flush=True)
            print(f"Dashboard: {server.url}/dashboard/", flush=True)
        if meta is not None:
            meta.start()
            print(f"Vigil metadata API on {meta.url}", flush=True)
        stop.wait()
        if meta is not None:
            meta.stop()
        if server is not None:
            server.stop()
    return 0


def run_http_daemon(
        conf: Any, label: str,
        start: Callable[[Engine, ServiceGroup, ConductorClient], tuple[HttpServer, Service]],
) -> int:
    """``vigil metadata`` / ``vigil serialproxy``: an HTTP server and its service record (made
    by ``start``), until SIGTERM/SIGINT; then the record leaves before the server stops."""
    engine = launch.engine_from(conf, require_schema=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    conductor = rpc.report_client(conf, transport)
    with stop_on_signals(conf) as stop:
        server, svc = start(engine, group, conductor)
        print(f"Vigil {label} on {server.url}", flush=True)
        stop.wait()
        svc.stop()
        server.stop()
    group.driver.close()
    return 0


def run_metadata(conf: cfg.ConfigOpts) -> int:
    """``vigil metadata``: until SIGTERM/SIGINT."""
    return run_http_daemon(conf, "metadata API", lambda e, g, c: start_metadata(conf, e, g, c))


def run_serialproxy(conf: cfg.ConfigOpts) -> int:
    """``vigil serialproxy``: until SIGTERM/SIGINT."""
    return run_http_daemon(conf, "serial console proxy",
                           lambda e, g, c: start_serialproxy(conf, e, g, c))


