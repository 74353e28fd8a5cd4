"""``vigil metadata``, and the pieces ``vigil api`` (``enabled_apis``) and ``vigil up`` reuse.

The daemon is a service like the others: it registers as ``vigil-metadata`` and reports through
the conductor, so ``vigil service list`` shows whether it runs; it leaves its group on a
graceful stop.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil.db.compute import instances as instances_db
from vigil.errors import ConfigError
from vigil.metadata.app import MetadataApp
from vigil.metadata.cache import DocumentCache
from vigil.metadata.httpd import HttpServer, register
from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)

BINARY = "vigil-metadata"
TOPIC = "metadata"


def shared_secret(conf: cfg.ConfigOpts) -> Callable[[], str]:
    """The signing secret, read at each use (a SIGHUP may change it); refuses to start on an
    empty one: anybody can sign under the empty key, so every instance's data would be open."""
    if not conf.neutron.metadata_proxy_shared_secret:
        raise ConfigError("[neutron] metadata_proxy_shared_secret is empty: the metadata API "
                          "would serve any instance's data to anyone; set the same secret on "
                          "the compute hosts and the metadata API")
    return lambda: str(conf.neutron.metadata_proxy_shared_secret)


def ensure_secret(conf: cfg.ConfigOpts) -> str:
    """``vigil up``'s secret: the configured one, else a random one kept in ``state_path``
    (so a restarted ``vigil up`` signs as before), set on ``conf`` for its compute hosts."""
    if conf.neutron.metadata_proxy_shared_secret:
        return str(conf.neutron.metadata_proxy_shared_secret)
    path = os.path.join(conf.state_path, "metadata-secret")
    try:
        with open(path) as f:
            secret = f.read().strip()
    except FileNotFoundError:
        secret = ""
    if not secret:
        os.makedirs(conf.state_path, exist_ok=True)
        secret = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
    conf.set_override("metadata_proxy_shared_secret", secret, group="neutron")
    return secret


def metadata_app(conf: cfg.ConfigOpts, engine: Engine) -> MetadataApp:
    """The metadata API over ``engine``, configured from ``conf``."""
    cache = DocumentCache(lambda u: instances_db.instance_data(engine, u),
                          lambda since: instances_db.instances_changed(engine, since),
                          ttl=conf.api.metadata_cache_expiration,
                          dhcp_domain=conf.api.dhcp_domain)
    return MetadataApp(cache, shared_secret(conf))


def start_metadata(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup,
                   conductor: ConductorClient) -> tuple[HttpServer, Service]:
    """The metadata API listening on ``[DEFAULT] metadata_listen:metadata_listen_port``, and
    its service record."""
    server = HttpServer(metadata_app(conf, engine), conf.metadata_listen,
                        conf.metadata_listen_port, name="vigil-metadata")
    return register(conf, server, group, conductor, binary=BINARY, topic=TOPIC)
