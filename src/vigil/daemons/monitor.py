"""``vigil monitor``, and the monitor's thread in ``vigil up``."""

from __future__ import annotations

import logging
import threading

import oslo_messaging as messaging
from oslo_config import cfg

from vigil import daemon_metrics, launch, rpc
from vigil.ha.election import lease_session_limits
from vigil.ha.monitor import Monitor
from vigil.ha.restarts import RestartSender
from vigil.launch.monitor import monitor_from, scheduler_waker, supervisor_client
from vigil.signals import stop_on_signals

LOG = logging.getLogger(__name__)


def run_monitor(conf: cfg.ConfigOpts, *, dry_run: bool | None = None) -> int:
    """``vigil monitor``: until SIGTERM/SIGINT."""
    # The monitor's own engine, with server-side session limits: a transaction of this
    # monitor cut off from the database must not keep the lease row locked (election.py).
    engine = launch.engine_from(conf, limits=lease_session_limits(conf.ha.lease_ttl))
    group = launch.group_from(conf, engine)
    wake, close = scheduler_waker(conf)
    restart_agent: RestartSender | None = None
    transport: messaging.Transport | None = None
    if not launch.is_in_process(conf):  # fake:// reaches no other process
        transport = rpc.get_transport(conf)
        restart_agent = supervisor_client(conf, transport)
    monitor = monitor_from(conf, engine, group, dry_run=dry_run, wake_scheduler=wake,
                                  restart_agent=restart_agent)
    daemon_metrics.serve(conf.ha.metrics_port, conf.metrics_host)
    LOG.info("monitor %s started (driver %s, fence agent %s%s)", monitor.election.holder,
             group.driver.name, monitor.agent.name, ", DRY RUN" if monitor.dry_run else "")
    with stop_on_signals(conf) as stop:
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


