"""``vigil supervisor``: the process. Joins the ``host`` group, serves ``restart_service``,
runs the configured services and checks them every ``check_interval`` until SIGTERM, then stops
them (dependents first) and exits non-zero if any failed to stop."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import oslo_messaging as messaging
from oslo_config import cfg

from vigil import launch, rpc
from vigil.conf import supervisor as sup_conf
from vigil.service import GroupMembership, Service
from vigil.supervisor.core import Supervisor, Timing
from vigil.supervisor.rpcapi import SupervisorEndpoint, supervisor_target
from vigil.supervisor.units import ChildProcess, Unit

LOG = logging.getLogger(__name__)

BINARY = "vigil-supervisor"
TOPIC = "host"


def timing_from(conf: cfg.ConfigOpts) -> Timing:
    s = conf.supervisor
    return Timing(report_timeout=s.report_timeout or conf.service_down_time,
                  start_timeout=s.start_timeout, stop_timeout=s.stop_timeout,
                  backoff_base=s.restart_backoff_base, backoff_max=s.restart_backoff_max)


def config_args(conf: cfg.ConfigOpts) -> list[str]:
    """The children read the supervisor's own configuration files."""
    args: list[str] = []
    for path in conf.config_file or ():
        args += ["--config-file", os.path.abspath(path)]
    for path in conf.config_dir or ():
        args += ["--config-dir", os.path.abspath(path)]
    return args


def child_units(conf: cfg.ConfigOpts, host: str, services: Sequence[str]) -> list[Unit]:
    base = os.path.join(os.path.abspath(conf.state_path), "supervisor", host)
    units: list[Unit] = []
    for name in services:
        argv = list(sup_conf.KNOWN_SERVICES[name])
        if name == "compute":
            argv += ["--host", host]
        units.append(ChildProcess(name, argv, os.path.join(base, f"{name}.report"),
                                  config_args(conf)))
    return units


def make_service(conf: cfg.ConfigOpts, host: str, conductor: rpc.ConductorAPI,
                 group: GroupMembership) -> Service:
    """The supervisor's own membership: "this host is reachable" (group ``host``)."""
    return Service(host=host, binary=BINARY, topic=TOPIC, conductor=conductor, group=group,
                   report_interval=conf.report_interval)


def run_supervisor(conf: cfg.ConfigOpts, host: str) -> int:
    requires = sup_conf.validate(conf)  # ConfigError: one line, non-zero exit (cli.main)
    services = list(conf.supervisor.services)
    transport = rpc.get_transport(conf)
    conductor = rpc.ConductorAPI(transport, timeout=conf.rpc_response_timeout)
    group = launch.group_from(conf)
    # This process group is the host: its services and their instances are in it (the
    # process fence agent kills the group).
    from vigil.ha.hostproc import write_record

    write_record(conf.state_path, host)
    svc = make_service(conf, host, conductor, group)
    supervisor = Supervisor(child_units(conf, host, services), requires,
                            timing=timing_from(conf), reporting=lambda: svc.reporting)
    server = messaging.get_rpc_server(transport, supervisor_target(host),
                                      [SupervisorEndpoint(supervisor)], executor="threading")
    failed: list[str] = []
    with launch.stop_on_signals(conf) as stop:
        svc.start()
        server.start()
        LOG.info("supervisor of %s started: %s", host, " -> ".join(supervisor.order))
        loop = threading.Thread(target=_loop, args=(supervisor, stop,
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


def _loop(supervisor: Supervisor, stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            supervisor.tick()
        except Exception:  # the supervisor must outlive a bug in one pass
            LOG.exception("supervisor: unexpected error in a pass")
        supervisor.clock.wait(stop, interval)
