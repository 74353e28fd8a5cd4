"""The composition root: every domain service built from the configuration, in one place.

Domain packages (``compute``, ``scheduler``, ``ha``, ``api``, ...) receive their collaborators
(an engine, a ServiceGroup, RPC clients, a notifier, a fence agent) and never import this
package; the processes (:mod:`vigil.daemons`, ``vigil up``, the CLI, the ASGI entry point
:mod:`vigil.api.wsgi`) call it. This module builds what every process shares (the engine, the
ServiceGroup, the registry, the servers service); :mod:`.api` the API app and
:mod:`.monitor` the HA monitor, apart so that a CLI command that opens the database does not
import FastAPI or the fence agents. import-linter holds the direction (pyproject.toml: ``launch``
is a layer above the API and the domain, and the top level is acyclic): while the HA monitor
and the API app built themselves, ``ha`` and ``api`` reached up to this module and the top
level had cycles (ha -> launch -> logs -> conf -> ha).
"""

from __future__ import annotations

import logging

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import rpc
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI, compute_delete_guard, compute_zones
from vigil.db import migration
from vigil.db.engine import SessionLimits, make_engine
from vigil.db.retry import RetryPolicy
from vigil.notifications import Notifier
from vigil.registry import Registry
from vigil.scheduler.rpcapi import SchedulerAPI
from vigil.servicegroup import drivers
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.options import timing_from

# A process's signals are a module of their own (vigil.signals); the daemons that start here
# take them from here too.
from vigil.signals import defer_hangup as defer_hangup
from vigil.signals import stop_on_signals as stop_on_signals

LOG = logging.getLogger(__name__)


def is_in_process(conf: cfg.ConfigOpts) -> bool:
    """``fake://`` messaging reaches no other process: nothing is sent; the receivers' scans
    find the work in the database."""
    return str(conf.transport_url).startswith("fake:")


def engine_from(conf: cfg.ConfigOpts, *, sync: bool = False, require_schema: bool = False,
                limits: SessionLimits | None = None) -> Engine:
    """The configured database's engine; ``limits`` bound its sessions on the server (the HA
    monitor's engine, see vigil.ha.election.lease_session_limits).

    ``sync``: migrate it (only ``vigil up``'s embedded database; elsewhere ``vigil db sync``).
    ``require_schema``: a daemon's start-up: refuse a schema behind the code's (ConfigError).
    """
    db = conf.database
    policy = RetryPolicy(attempts=db.max_attempts, initial=db.retry_interval,
                         maximum=db.max_retry_interval, deadline=db.retry_deadline)
    engine = make_engine(db.connection, limits=limits, retry_policy=policy)
    if sync:
        migration.sync(engine)
    elif require_schema:
        migration.require_current(engine)
    return engine


def group_from(conf: cfg.ConfigOpts, engine: Engine | None = None) -> ServiceGroup:
    return ServiceGroup(drivers.load(conf), timing_from(conf), engine=engine)


def registry_from(conf: cfg.ConfigOpts) -> Registry:
    """The registry operations over the configured database and liveness driver."""
    engine = engine_from(conf)
    return registry_over(conf, engine, group_from(conf, engine))


def registry_over(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup) -> Registry:
    """A Registry with the compute feature's hooks: its delete guard and its zones."""
    registry = Registry(engine, group, default_zone=conf.default_availability_zone)
    registry.set_notifier(Notifier(conf, publisher_id=f"vigil:{conf.host}"))  # + the audit log
    registry.add_delete_guard(compute_delete_guard(engine))  # "still hosts instances": 409
    registry.set_zone_source(compute_zones(engine))
    return registry


def servers_from(conf: cfg.ConfigOpts, engine: Engine | None = None,
                 group: ServiceGroup | None = None) -> ServersAPI:
    """ServersAPI over the configured database and messaging.

    On ``fake://`` (in-process only) nothing is sent: the scheduler's scan picks requests up,
    and the agents' reconciliation destroys deleted instances.
    """
    engine = engine or engine_from(conf)
    group = group or group_from(conf, engine)
    if is_in_process(conf):
        return ServersAPI(engine, group)
    transport = rpc.get_transport(conf)
    return ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                      computes=ComputeAgentAPI(transport), close=transport.cleanup)
