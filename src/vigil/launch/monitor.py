"""The HA monitor built from the configuration.

:class:`vigil.ha.monitor.Monitor` receives its collaborators (engine, liveness group, fence
agent, policy, options, notifier, the supervisors' RPC, the scheduler's wake-up); they are made
here from ``[ha]``, for ``vigil monitor``, ``vigil up`` and ``vigil host evacuate``, so the
monitor's loop never reads the configuration.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import daemon_metrics, rpc
from vigil.clock import Clock
from vigil.conf import ha as ha_conf
from vigil.ha import fence, policy
from vigil.ha.election import make_holder
from vigil.ha.fence.base import FenceAgent
from vigil.ha.monitor import Monitor
from vigil.ha.restarts import RestartSender
from vigil.ha.workflow import Options
from vigil.launch import is_in_process
from vigil.notifications import Notifier
from vigil.objects.ha import RecoveryRecord
from vigil.scheduler.rpcapi import SchedulerAPI
from vigil.servicegroup.api import ServiceGroup
from vigil.supervisor.core import Outcome
from vigil.supervisor.rpcapi import SupervisorAPI


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
    api = SupervisorAPI(transport)
    timeout = conf.ha.service_restart_timeout

    def send(host: str) -> tuple[Outcome | None, str]:
        return api.restart_service(host, "compute", wait=max(0.1, timeout - 1.0),
                                   timeout=timeout)

    return send


def scheduler_waker(conf: cfg.ConfigOpts) -> tuple[Callable[[], None], Callable[[], None]]:
    """(wake, close): a cast to the schedulers, or nothing on fake:// (their scan finds the
    work in the database)."""
    if is_in_process(conf):
        return (lambda: None), (lambda: None)
    transport = rpc.get_transport(conf)
    api = SchedulerAPI(transport)

    def wake() -> None:
        api.schedule_pending()

    return wake, transport.cleanup
