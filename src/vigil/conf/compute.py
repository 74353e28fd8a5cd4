"""Options of the compute agent ([compute]) and the scheduler ([scheduler]).

Names follow nova.conf where Nova has the option (``compute_driver``, ``instances_path``, the
allocation ratios, ``resume_guests_state_on_host_boot``, ``host_subset_size``,
``ram_weight_multiplier``, ``enabled_filters``); the ratios keep Nova's historical defaults.

Vigil groups them by the process that reads them, so some moved: Nova's ``[DEFAULT]``
compute options are under ``[compute]`` and its ``[filter_scheduler]`` options under
``[scheduler]``. The old places stay valid as deprecated aliases (oslo.config reads them and logs
a deprecation warning), so a nova.conf fragment keeps working.
"""

from __future__ import annotations

from oslo_config import cfg

from vigil import plugins


def _nova(name: str, group: str) -> list[cfg.DeprecatedOpt]:
    """Nova's place of an option Vigil moved (see the module docstring). The name is spelled
    out although it did not change: oslo-config-generator lists an alias only with its name."""
    return [cfg.DeprecatedOpt(name, group=group)]


COMPUTE_DRIVERS = plugins.COMPUTE_DRIVERS.names  # the loader's own table (vigil.plugins)
FILTERS = ("ComputeFilter", "CoreFilter", "RamFilter", "DiskFilter", "AvailabilityZoneFilter")

COMPUTE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "compute_driver",
        deprecated_opts=_nova("compute_driver", "DEFAULT"),
        default="fake",
        choices=COMPUTE_DRIVERS,
        help="Virt driver. 'fake': instances exist only in the agent's memory (simulated hosts). "
        "'process': each instance is a real OS process the agent starts and supervises, with "
        "its disk a directory under instances_path. 'baremetal': the host manages a share of the "
        "bare-metal nodes (vigil node create), one compute node each, given out by a hash ring "
        "over the live baremetal hosts ([baremetal] options, docs/baremetal.md).",
    ),
    cfg.StrOpt(
        "instances_path",
        deprecated_opts=_nova("instances_path", "DEFAULT"),
        default="$state_path/instances",
        help="Where the process driver keeps instance directories (<instances_path>/<uuid>). "
        "May be shared between hosts: an evacuated instance then reuses its directory.",
    ),
    cfg.StrOpt(
        "process_command",
        default="",
        help="Command line of a process-driver instance, with {dir}, {host}, {uuid} and {name} "
        "substituted. Empty: the built-in workload, 'python -m vigil.compute.workload {dir} "
        "--host {host}', which appends '<unix time> <host> <pid>' to {dir}/heartbeat every "
        "second.",
    ),
    cfg.StrOpt(
        "hypervisor_hostname",
        help="Name of this host's compute node. Default: the service's host name.",
    ),
    cfg.StrOpt(
        "host_ip",
        help="IP address shown for this hypervisor.",
    ),
    cfg.StrOpt(
        "availability_zone",
        help="Availability zone of this host's node (AvailabilityZoneFilter). Default: "
        "[DEFAULT] default_availability_zone.",
    ),
    cfg.IntOpt("vcpus", default=0, min=0,
               help="vCPUs this host offers. 0: the driver's value (fake: 16; process: the "
               "machine's CPU count)."),
    cfg.IntOpt("memory_mb", default=0, min=0,
               help="Memory this host offers, MB. 0: the driver's value (fake: 32768; process: "
               "the machine's memory)."),
    cfg.IntOpt("local_gb", default=0, min=0,
               help="Disk this host offers, GB. 0: the driver's value (fake: 1024; process: "
               "the size of the file system of instances_path)."),
    cfg.FloatOpt("cpu_allocation_ratio", deprecated_opts=_nova("cpu_allocation_ratio", "DEFAULT"),
                 default=16.0, min=0.0,
                 help="Virtual CPUs per physical CPU (Nova's historical default 16.0)."),
    cfg.FloatOpt("ram_allocation_ratio", deprecated_opts=_nova("ram_allocation_ratio", "DEFAULT"),
                 default=1.5, min=0.0,
                 help="Virtual RAM per physical RAM (Nova's historical default 1.5)."),
    cfg.FloatOpt("disk_allocation_ratio", deprecated_opts=_nova("disk_allocation_ratio", "DEFAULT"),
                 default=1.0, min=0.0,
                 help="Virtual disk per physical disk (Nova's default 1.0)."),
    cfg.FloatOpt(
        "update_resources_interval",
        default=60.0,
        min=0.05,
        help="Seconds between inventory reports of the agent to the conductor.",
    ),
    cfg.FloatOpt(
        "instance_sync_interval",
        default=10.0,
        min=0.05,
        help="Seconds between the agent's reconciliations of its instances with the database "
        "(through the conductor): stale local copies of instances now owned by another host are "
        "destroyed, dead instance processes are reported, lost spawn requests are redone.",
    ),
    cfg.BoolOpt(
        "resume_guests_state_on_host_boot",
        deprecated_opts=_nova("resume_guests_state_on_host_boot", "DEFAULT"),
        default=True,
        help="When the agent starts, restart instances the database places on this host as "
        "active but that are not running here (e.g. after the host's processes were killed). "
        "Instances that were evacuated meanwhile are not placed here and are never restarted.",
    ),
]

SCHEDULER_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "enabled_filters",
        deprecated_opts=_nova("enabled_filters", "filter_scheduler"),
        default=list(FILTERS),
        help="Filters every candidate host must pass, in order. ComputeFilter: the host's "
        "compute service is up (batch liveness; unknown is not up) and enabled. Core/Ram/"
        "DiskFilter: enough vCPU/RAM/disk after allocation ratios. AvailabilityZoneFilter: the "
        "requested zone, if any.",
    ),
    cfg.FloatOpt(
        "ram_weight_multiplier",
        deprecated_opts=_nova("ram_weight_multiplier", "filter_scheduler"),
        default=1.0,
        help="Weight of free RAM. Positive spreads instances over hosts, negative stacks them.",
    ),
    cfg.IntOpt(
        "host_subset_size",
        deprecated_opts=_nova("host_subset_size", "filter_scheduler"),
        default=1,
        min=1,
        help="Pick at random among this many best hosts. Above 1, concurrent schedulers collide "
        "less often on one host (a collision only costs a retry: claims are atomic).",
    ),
    cfg.IntOpt(
        "max_claim_attempts",
        default=10,
        min=1,
        help="Claims tried for one instance before giving up when hosts keep filling up under "
        "concurrent boots.",
    ),
    cfg.FloatOpt(
        "pending_poll_interval",
        default=1.0,
        min=0.01,
        help="Seconds between the scheduler's scans for instances waiting to be scheduled. An "
        "RPC cast wakes it at once; the scan catches requests whose cast was lost or made from "
        "another process on fake:// messaging.",
    ),
    cfg.IntOpt(
        "workers",
        default=1,
        min=1,
        help="Threads of one scheduler that claim hosts for a batch concurrently. Above 1 "
        "helps on PostgreSQL/MariaDB, where each claim waits for its commit to be flushed; on "
        "SQLite (one writer) it only adds contention.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=200,
        min=1,
        help="Most pending instances scheduled against one snapshot of host states.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("compute", COMPUTE_OPTS), ("scheduler", SCHEDULER_OPTS)]
