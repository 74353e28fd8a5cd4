"""Assembly of the daemons from configuration (shared by the CLI and ``vigil up``)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil.db import migration
from vigil.db.engine import SessionLimits, make_engine
from vigil.registry import Registry
from vigil.servicegroup import drivers
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("oslo_messaging", "kazoo", "amqp", "oslo.messaging", "urllib3", "httpx",
                  "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def engine_from(conf: cfg.ConfigOpts, *, sync: bool = False,
                limits: SessionLimits | None = None) -> Engine:
    """The configured database's engine; ``limits`` bound its sessions on the server (the HA
    monitor's engine, see vigil.ha.election.lease_session_limits)."""
    engine = make_engine(conf.database.connection, limits=limits)
    if sync:
        migration.sync(engine)
    return engine


def group_from(conf: cfg.ConfigOpts, engine: Engine | None = None) -> ServiceGroup:
    return ServiceGroup(
        drivers.load(conf),
        service_down_time=conf.service_down_time,
        report_interval=conf.report_interval,
        coalesce_interval=conf.conductor.coalesce_interval,
        engine=engine,
    )


def registry_from(conf: cfg.ConfigOpts) -> Registry:
    """The registry operations over the configured database and liveness driver."""
    engine = engine_from(conf)
    return registry_over(conf, engine, group_from(conf, engine))


def registry_over(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup) -> Registry:
    """A Registry with the compute feature's hooks: its delete guard and its zones."""
    from vigil.compute.servers import compute_delete_guard, compute_zones

    registry = Registry(engine, group, default_zone=conf.default_availability_zone)
    registry.add_delete_guard(compute_delete_guard(engine))  # "still hosts instances": 409
    registry.set_zone_source(compute_zones(engine))
    return registry


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (Ctrl-C), for a daemon's main thread to wait on."""
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        LOG.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, _handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
