"""``vigil serialproxy``: the console proxy as a service (``vigil-serialproxy``), reporting
through the conductor like the others and leaving its group on a graceful stop."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil.compute.virt.process import console_endpoint
from vigil.console.proxy import SerialProxy
from vigil.console.tokens import Consoles
from vigil.metadata.httpd import HttpServer, register
from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)

BINARY = "vigil-serialproxy"
TOPIC = "serialproxy"


def consoles_from(conf: cfg.ConfigOpts, engine: Engine) -> Consoles:
    """The console tokens as the API and the proxy both configure them."""
    return Consoles(engine, base_url=conf.serial_console.base_url,
                    ttl=conf.consoleauth.token_ttl, enabled=conf.serial_console.enabled)


def proxy_app(conf: cfg.ConfigOpts, engine: Engine) -> SerialProxy:
    """The proxy's application: consoles of this machine's process-driver hosts (their
    state_path and instances_path are this configuration's)."""
    return SerialProxy(
        consoles_from(conf, engine),
        lambda t: console_endpoint(conf.state_path, conf.compute.instances_path, t.host,
                                   t.instance_uuid),
        allowed_origins=lambda: list(conf.console.allowed_origins),
        proxy_scheme=urlsplit(conf.serial_console.base_url).scheme or "ws")


def start_serialproxy(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup,
                      conductor: ConductorClient) -> tuple[HttpServer, Service]:
    """The proxy on ``[serial_console] serialproxy_host:serialproxy_port``, and its service."""
    server = HttpServer(proxy_app(conf, engine), conf.serial_console.serialproxy_host,
                        conf.serial_console.serialproxy_port, name="vigil-serialproxy",
                        ws="websockets-sansio")
    return register(conf, server, group, conductor, binary=BINARY, topic=TOPIC)
