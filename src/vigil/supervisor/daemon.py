"""What ``vigil supervisor`` is made of: its membership and the units it runs. Their settings
(the report interval, the state path, the configuration files the children read) and its
:class:`~vigil.supervisor.core.Timing` are read from the configuration by the composition root
(:mod:`vigil.launch.settings`). The process (join the ``host`` group, serve
``restart_service``, run and check the services every ``check_interval`` until SIGTERM, then
stop them, dependents first, and exit non-zero if any failed to stop) is
:func:`vigil.daemons.supervisor.run_supervisor`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from vigil import rpc
from vigil.conf import supervisor as sup_conf
from vigil.service import GroupMembership, Service
from vigil.supervisor.units import ChildProcess, Unit

LOG = logging.getLogger(__name__)

BINARY = "vigil-supervisor"
TOPIC = "host"


def child_units(host: str, services: Sequence[str], *, state_path: str,
                config_args: Sequence[str]) -> list[Unit]:
    """The units of ``services`` (names of ``KNOWN_SERVICES``), each reporting under
    ``<state_path>/supervisor/<host>``; ``config_args`` (``--config-file``/``--config-dir``)
    make the children read the supervisor's own configuration files."""
    base = os.path.join(os.path.abspath(state_path), "supervisor", host)
    units: list[Unit] = []
    for name in services:
        argv = list(sup_conf.KNOWN_SERVICES[name])
        if name == "compute":
            argv += ["--host", host]
        units.append(ChildProcess(name, argv, os.path.join(base, f"{name}.report"),
                                  list(config_args)))
    return units


def make_service(host: str, conductor: rpc.ConductorAPI, group: GroupMembership, *,
                 report_interval: float) -> Service:
    """The supervisor's own membership: "this host is reachable" (group ``host``)."""
    return Service(host=host, binary=BINARY, topic=TOPIC, conductor=conductor, group=group,
                   report_interval=report_interval)
