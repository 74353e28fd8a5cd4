"""Option definitions, grouped as in nova.conf.

``service_down_time``/``report_interval`` are floats (Nova: ints) so tests and the detection
benchmark can run with sub-second intervals; whole numbers read from nova.conf still parse.
"""

from __future__ import annotations

import os
import socket

from oslo_config import cfg

from vigil import plugins

SERVICEGROUP_DRIVERS = plugins.SERVICEGROUP_DRIVERS.names  # the loader's table (vigil.plugins)


def _default_state_path() -> str:
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(base, "vigil")


DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.HostAddressOpt(
        "metrics_host",
        default="127.0.0.1",
        help="Address the daemons' own metrics ports listen on ([conductor] metrics_port, "
        "[ha] metrics_port).",
    ),
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="Name of this host, as services register it. Default: the machine's hostname.",
    ),
    cfg.StrOpt(
        "state_path",
        default=_default_state_path(),
        sample_default="~/.local/state/vigil",
        help="Directory for Vigil's local state (the embedded SQLite database, tokens).",
    ),
    cfg.StrOpt(
        "servicegroup_driver",
        default="db",
        choices=SERVICEGROUP_DRIVERS,
        help="Liveness backend. 'db': the services table's heartbeat column only. Others add the "
        "backend's own verdict; a service is down if either says so.",
    ),
    cfg.FloatOpt(
        "report_interval",
        default=10.0,
        min=0.05,
        help="Seconds between state reports of every service (with +/-10% jitter so a fleet "
        "does not beat in lockstep).",
    ),
    cfg.FloatOpt(
        "service_down_time",
        default=60.0,
        min=0.1,
        help="A service whose last heartbeat is older than this many seconds is down. Must be "
        "greater than report_interval (Vigil refuses to start otherwise); a few intervals is "
        "usual so one lost report is not a death.",
    ),
    cfg.BoolOpt(
        "enable_new_services",
        default=True,
        help="Whether a service registering for the first time starts enabled.",
    ),
    cfg.StrOpt(
        "default_availability_zone",
        default="nova",
        help="Zone shown for compute services (other services show 'internal', as in Nova).",
    ),
]

DATABASE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        default="sqlite:///$state_path/vigil.sqlite",
        secret=True,
        help="SQLAlchemy URL of the database. Default: a SQLite file in state_path. Also "
        "postgresql+psycopg2://... and mysql+pymysql://... (MariaDB).",
    ),
    # vigil.db.retry: a transaction that failed leaving nothing behind (deadlock, Galera
    # certification failure or failover) is run again; one lost at COMMIT never is.
    cfg.IntOpt(
        "max_attempts",
        default=8,
        min=1,
        help="Most runs of one transaction that failed leaving nothing behind (a deadlock, a "
        "Galera certification failure or failover, a connection lost before COMMIT). 1: never "
        "run again.",
    ),
    cfg.FloatOpt(
        "retry_interval",
        default=0.1,
        min=0,
        help="Seconds: the pause after attempt n is drawn from [0, min(max_retry_interval, "
        "retry_interval x 2^(n-1))] (full jitter).",
    ),
    cfg.FloatOpt(
        "max_retry_interval",
        default=2.0,
        min=0,
        help="Seconds: the longest pause between two attempts.",
    ),
    cfg.FloatOpt(
        "retry_deadline",
        default=12.0,
        min=0,
        help="Seconds after the first attempt past which no new attempt starts. The default "
        "spans a Galera writer's failover behind HAProxy (about 6 s until the survivors "
        "commit) with room to spare.",
    ),
]

CONDUCTOR_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "coalesce_interval",
        default=0.5,
        min=0.01,
        help="Seconds the conductor gathers state reports before writing them. All reports of "
        "one tick become a few UPDATE statements (one per batch_size services), not one each.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=500,
        min=1,
        help="Most service ids written by one UPDATE statement.",
    ),
    cfg.FloatOpt(
        "probe_interval",
        default=1.0,
        min=0.05,
        help="Seconds between the conductor's probes of its own report path (messaging -> "
        "conductor -> database). Readers call a stale heartbeat 'down' only when this path has "
        "been healthy for a whole service_down_time; otherwise 'unknown'.",
    ),
    cfg.FloatOpt(
        "stop_consuming_after",
        default=None,
        min=0.01,
        help="Seconds without a committed report-path write after which a conductor stops "
        "taking reports off the queue (so that the other conductors get them) until its "
        "database writes commit again; it resumes by itself. Must lie above one report-path "
        "beat (probe_interval + coalesce_interval) and below the report path's gap "
        "tolerance (service_down_time - 2.2 x report_interval - 2 x coalesce_interval). "
        "Unset: halfway between the two, at most 5 s.",
    ),
    cfg.PortOpt(
        "metrics_port",
        default=0,
        help="Port of `vigil conductor`'s own Prometheus metrics (report flush latency, "
        "reports per flush, failed flushes; docs/operations.md). 0: not served.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Every option, by group; used by ``vigil config sample`` and by :func:`vigil.conf.make`."""
    from vigil.conf import api, backends, baremetal, compute, console, ha, log, metadata, supervisor

    return [
        (None, DEFAULT_OPTS),
        *log.list_opts(),
        ("database", DATABASE_OPTS),
        ("conductor", CONDUCTOR_OPTS),
        *backends.list_opts(),
        *compute.list_opts(),
        *api.list_opts(),
        *ha.list_opts(),
        *baremetal.list_opts(),
        *metadata.list_opts(),
        *console.list_opts(),
        *supervisor.list_opts(),
    ]
