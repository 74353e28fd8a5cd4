"""Assembly of the daemons from configuration (shared by the CLI and ``vigil up``).

The composition root's factories: domain modules take what these build (an engine, a
ServiceGroup, the registry, the servers service), and none of them imports this module to
build it themselves (``servers_from`` lived in :mod:`vigil.compute.servers` and made the
only import cycle of the package).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import logs, rpc
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

LOG = logging.getLogger(__name__)


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
    if str(conf.transport_url).startswith("fake:"):
        return ServersAPI(engine, group)
    transport = rpc.get_transport(conf)
    return ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                      computes=ComputeAgentAPI(transport), close=transport.cleanup)


# Signals a daemon takes, queued by the handler and acted on by a thread (stop_on_signals).
_SIGNALS: queue.SimpleQueue[int | None] = queue.SimpleQueue()


def _queue_signal(signum: int, _frame: object) -> None:
    """The handler of every signal a daemon takes: it only queues the signal.

    A handler runs between two bytecodes of the main thread, which may be holding a lock the
    handler's work would need: a log handler's stream (logging from here can raise "reentrant
    call" or deadlock), an Event's condition (``stop.set()`` from here can deadlock on the very
    ``stop.wait()`` it interrupts). SimpleQueue.put is documented safe in a signal handler.
    """
    _SIGNALS.put(signum)


def defer_hangup() -> None:
    """Queue a SIGHUP that arrives while a daemon starts, instead of dying of it (the default
    action): :func:`stop_on_signals` acts on it once the daemon is up. Called first thing by
    the CLI for the daemon commands."""
    signal.signal(signal.SIGHUP, _queue_signal)


def _act_on_signals(conf: cfg.ConfigOpts, stop: threading.Event) -> None:
    while (signum := _SIGNALS.get()) is not None:
        name = signal.Signals(signum).name
        try:
            if signum == signal.SIGHUP:
                logs.on_hangup(conf)
            else:
                LOG.info("received %s, stopping", name)
                stop.set()
        except Exception:  # a failed reload must not end the daemon's signal handling
            LOG.exception("handling %s failed", name)


@contextmanager
def stop_on_signals(conf: cfg.ConfigOpts) -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (Ctrl-C), for a daemon's main thread to wait on.

    SIGHUP never stops the daemon (oslo.service's convention): it reopens the log files and
    reloads ``conf``'s mutable options (:func:`vigil.logs.on_hangup`). The handlers only queue
    the signal; a thread of this context does the work, logging included.
    """
    stop = threading.Event()
    old = {s: signal.signal(s, _queue_signal)
           for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    worker = threading.Thread(target=_act_on_signals, args=(conf, stop), name="signals",
                              daemon=True)
    worker.start()
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _SIGNALS.put(None)
        worker.join(timeout=10)
