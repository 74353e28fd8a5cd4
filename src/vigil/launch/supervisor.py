"""What ``vigil supervisor`` (and ``vigil up``'s simulated supervisors) read from the
configuration: the supervisor's timing and the arguments that make its children read the same
files. Apart from :mod:`.settings` so that the supervisor imports none of the daemons it
does not run."""

from __future__ import annotations

import os

from oslo_config import cfg

from vigil.supervisor.core import Timing


def supervisor_timing(conf: cfg.ConfigOpts) -> Timing:
    """``[supervisor]``'s knobs; an unset ``report_timeout`` is ``service_down_time``."""
    s = conf.supervisor
    return Timing(report_timeout=s.report_timeout or conf.service_down_time,
                  start_timeout=s.start_timeout, stop_timeout=s.stop_timeout,
                  backoff_base=s.restart_backoff_base, backoff_max=s.restart_backoff_max)


def config_args(conf: cfg.ConfigOpts) -> list[str]:
    """The command-line arguments that make a child read ``conf``'s own files."""
    args: list[str] = []
    for path in conf.config_file or ():
        args += ["--config-file", os.path.abspath(path)]
    for path in conf.config_dir or ():
        args += ["--config-dir", os.path.abspath(path)]
    return args
