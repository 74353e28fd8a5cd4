"""``vigil supervisor``: what it runs is :mod:`vigil.supervisor.daemon`'s; this is the process."""

from __future__ import annotations

import logging
import threading

import oslo_messaging as messaging
from oslo_config import cfg

from vigil import launch, rpc
from vigil.conf import supervisor as sup_conf
from vigil.ha.hostproc import write_record
from vigil.signals import stop_on_signals
from vigil.supervisor import daemon as supervisor_daemon
from vigil.supervisor.core import Supervisor
from vigil.supervisor.rpcapi import SupervisorEndpoint, supervisor_target

LOG = logging.getLogger(__name__)


def run_supervisor(conf: cfg.ConfigOpts, host: str) -> int:
    """``vigil supervisor``: see :mod:`vigil.supervisor.daemon`."""
    requires = sup_conf.validate(conf)  # ConfigError: one line, non-zero exit (cli.main)
    services = list(conf.supervisor.services)
    transport = rpc.get_transport(conf)
    conductor = rpc.report_client(conf, transport)
    group = launch.group_from(conf)
    # This process group is the host: its services and their instances are in it (the
    # process fence agent kills the group).
    write_record(conf.state_path, host)
    svc = supervisor_daemon.make_service(conf, host, conductor, group)
    supervisor = Supervisor(supervisor_daemon.child_units(conf, host, services), requires,
                            timing=supervisor_daemon.timing_from(conf),
                            reporting=lambda: svc.reporting)
    server = messaging.get_rpc_server(transport, supervisor_target(host),
                                      [SupervisorEndpoint(supervisor)], executor="threading")
    failed: list[str] = []
    with stop_on_signals(conf) as stop:
        svc.start()
        server.start()
        LOG.info("supervisor of %s started: %s", host, " -> ".join(supervisor.order))
        loop = threading.Thread(target=_supervise, args=(supervisor, stop,
                                                    conf.supervisor.check_interval),
                                name="supervisor", daemon=True)
        loop.start()
        stop.wait()
        loop.join(timeout=10)
        failed = supervisor.stop_all()
    try:
        server.stop()
        server.wait()
    except Exception:  # shutting down; a broken transport must not block the exit
        LOG.exception("error stopping the supervisor's RPC server")
    if failed:
        # Still a member: a supervisor that leaves would tell the monitor the host is fine.
        LOG.error("supervisor of %s exiting with services that failed to stop: %s", host,
                  ", ".join(failed))
        svc.stop(leave=False)
        group.driver.close()
        return 1
    svc.stop(leave=True)
    group.driver.close()
    return 0


def _supervise(supervisor: Supervisor, stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            supervisor.tick()
        except Exception:  # the supervisor must outlive a bug in one pass
            LOG.exception("supervisor: unexpected error in a pass")
        supervisor.clock.wait(stop, interval)
