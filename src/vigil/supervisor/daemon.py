"""What ``vigil supervisor`` is made of: its membership, its timing and the units it runs, from
the configuration. The process (join the ``host`` group, serve ``restart_service``, run and
check the services every ``check_interval`` until SIGTERM, then stop them, dependents first,
and exit non-zero if any failed to stop) is :func:`vigil.daemons.supervisor.run_supervisor`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from oslo_config import cfg

from vigil import rpc
from vigil.conf import supervisor as sup_conf
from vigil.service import GroupMembership, Service
from vigil.supervisor.core import Timing
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
