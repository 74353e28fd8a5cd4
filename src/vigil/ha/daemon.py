"""The HA monitor as a process: built from the configuration and run.

:class:`vigil.ha.monitor.Monitor` receives its collaborators (engine, liveness group, fence
agent, policy, options, notifier, the supervisors' RPC); this module is where they are made
from ``conf`` (the composition for ``vigil monitor``, ``vigil up`` and ``vigil host
evacuate``), so the monitor's loop itself never reads the configuration.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import daemon_metrics
from vigil.clock import Clock
from vigil.ha import fence, policy
from vigil.ha.election import lease_session_limits, make_holder
from vigil.ha.fence.base import FenceAgent
from vigil.ha.monitor import Monitor
from vigil.ha.restarts import RestartSender
from vigil.ha.workflow import Options
from vigil.objects.ha import RecoveryRecord
from vigil.servicegroup.api import ServiceGroup
from vigil.supervisor.core import Outcome

LOG = logging.getLogger(__name__)


def options_from(conf: cfg.ConfigOpts) -> tuple[policy.Policy, Options]:
    ha = conf.ha
    return (policy.Policy(detection_grace=ha.detection_grace,
                          max_down_fraction=ha.max_down_fraction,
                          max_fences_per_minute=ha.max_fences_per_minute,
                          allow_unproven_death=ha.allow_unproven_death),
            Options(fence_timeout=ha.fence_timeout, fence_retry_base=ha.fence_retry_base,
                    fence_retry_max=ha.fence_retry_max, evacuation_retry=ha.evacuation_retry,
                    max_inflight_evacuations=ha.max_inflight_evacuations))


def monitor_from(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup, *,
                 dry_run: bool | None = None, agent: FenceAgent | None = None,
                 wake_scheduler: Callable[[], None] | None = None,
                 clock: Clock | None = None,
                 only_hosts: frozenset[str] | None = None,
                 restart_agent: RestartSender | None = None) -> Monitor:
    """A Monitor over the configured [ha] options (validated here)."""
    from vigil.conf import ha as ha_conf
    from vigil.notifications import Notifier

    ha_conf.validate(conf)
    pol, options = options_from(conf)
    notifier = Notifier(conf, publisher_id=f"vigil-monitor:{conf.host}")

    def notify(event_type: str, rec: RecoveryRecord, detail: str | None) -> None:
        opened = rec.created_at if rec.created_at.tzinfo else rec.created_at.replace(
            tzinfo=dt.UTC)
        daemon_metrics.RECOVERY_STEP_SECONDS.labels(event=event_type.rsplit(".", 1)[-1]).observe(
            max(0.0, (dt.datetime.now(dt.UTC) - opened).total_seconds()))
        notifier.recovery_changed(event_type, rec, detail)

    return Monitor(
        engine, group, agent or fence.load(conf), holder=make_holder(conf.host, os.getpid()),
        pol=pol, options=options, poll_interval=conf.ha.poll_interval,
        lease_ttl=conf.ha.lease_ttl, evacuations_per_second=conf.ha.evacuations_per_second,
        dry_run=conf.ha.dry_run if dry_run is None else dry_run, clock=clock,
        wake_scheduler=wake_scheduler or (lambda: None), only_hosts=only_hosts,
        restart_agent=restart_agent,
        service_restart_timeout=conf.ha.service_restart_timeout,
        notify=notify)


def supervisor_client(conf: cfg.ConfigOpts,
                      transport: messaging.Transport) -> RestartSender:
    """How the monitor asks a host's supervisor to restart its compute agent: an RPC call that
    waits for the outcome (up to the supervisor's stop timeout and a start), answered within
    ``service_restart_timeout`` or given up (the timeout then escalates by itself)."""
    from vigil.supervisor.rpcapi import SupervisorAPI

    api = SupervisorAPI(transport)
    timeout = conf.ha.service_restart_timeout

    def send(host: str) -> tuple[Outcome | None, str]:
        return api.restart_service(host, "compute", wait=max(0.1, timeout - 1.0),
                                   timeout=timeout)

    return send


def scheduler_waker(conf: cfg.ConfigOpts) -> tuple[Callable[[], None], Callable[[], None]]:
    """(wake, close): a cast to the schedulers, or nothing on fake:// (their scan finds the
    work in the database)."""
    if str(conf.transport_url).startswith("fake:"):
        return (lambda: None), (lambda: None)
    from vigil import rpc
    from vigil.scheduler.rpcapi import SchedulerAPI

    transport = rpc.get_transport(conf)
    api = SchedulerAPI(transport)

    def wake() -> None:
        api.schedule_pending()

    return wake, transport.cleanup


def run_monitor(conf: cfg.ConfigOpts, *, dry_run: bool | None = None) -> int:
    """``vigil monitor``: until SIGTERM/SIGINT."""
    from vigil import launch

    # The monitor's own engine, with server-side session limits: a transaction of this
    # monitor cut off from the database must not keep the lease row locked (election.py).
    engine = launch.engine_from(conf, limits=lease_session_limits(conf.ha.lease_ttl))
    group = launch.group_from(conf, engine)
    wake, close = scheduler_waker(conf)
    restart_agent: RestartSender | None = None
    transport: messaging.Transport | None = None
    if not str(conf.transport_url).startswith("fake:"):  # fake:// reaches no other process
        from vigil import rpc

        transport = rpc.get_transport(conf)
        restart_agent = supervisor_client(conf, transport)
    monitor = monitor_from(conf, engine, group, dry_run=dry_run, wake_scheduler=wake,
                           restart_agent=restart_agent)
    daemon_metrics.serve(conf.ha.metrics_port, conf.metrics_host)
    LOG.info("monitor %s started (driver %s, fence agent %s%s)", monitor.election.holder,
             group.driver.name, monitor.agent.name, ", DRY RUN" if monitor.dry_run else "")
    with launch.stop_on_signals(conf) as stop:
        monitor.run(stop)
    close()
    if transport is not None:
        transport.cleanup()
    group.driver.close()
    return 0


def start_in_thread(monitor: Monitor, stop: threading.Event) -> threading.Thread:
    """Run a monitor in a daemon thread (``vigil up``)."""
    thread = threading.Thread(target=monitor.run, args=(stop,), name="ha-monitor", daemon=True)
    thread.start()
    return thread
