"""Options of the HA monitor ([ha]).

Each option says which formula it feeds; docs/ha.md has the whole picture. Inconsistent
values are refused at start-up by :func:`validate` (one line, no silent fixing).
"""

from __future__ import annotations

from oslo_config import cfg

from vigil.errors import ConfigError

FENCE_AGENTS = ("process", "command", "ipmi", "redfish", "simulated")

HA_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "detection_grace",
        default=10.0,
        min=0.0,
        help="Seconds a compute service must be seen DOWN without interruption (monitor's "
        "monotonic clock, counted from when its own view last became reliable) before its host "
        "is recovered. Detection time = the driver's time to DOWN (service_down_time, or the "
        "backend's session/lease expiry) + detection_grace + up to one poll_interval.",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=1.0,
        min=0.05,
        help="Seconds between two looks of the monitor at the fleet (one batch liveness "
        "snapshot each).",
    ),
    cfg.FloatOpt(
        "max_down_fraction",
        default=0.5,
        min=0.0,
        max=1.0,
        help="Brake: when more than this fraction of compute hosts is DOWN at once, nothing is "
        "fenced and an alert is raised (vigil recovery list). A mass failure is more likely the "
        "network, the liveness backend or the monitor itself than the hosts.",
    ),
    cfg.IntOpt(
        "max_fences_per_minute",
        default=2,
        min=1,
        help="Brake: at most this many fences started fleet-wide in any 60 s (database clock, "
        "counted across leaders).",
    ),
    cfg.BoolOpt(
        "allow_unproven_death",
        default=False,
        help="Fence on a DOWN from a liveness driver that cannot prove death (db, mc, redis: "
        "their DOWN is inferred from missing heartbeats). With the db driver the inference is "
        "gated by the report path's health, which makes it a reasonably strong signal; see "
        "docs/ha.md for the trade-off. zk and etcd prove death and need no such permission.",
    ),
    cfg.BoolOpt(
        "dry_run",
        default=False,
        help="Log what the monitor would do; change nothing (no lease, no recovery rows).",
    ),
    cfg.StrOpt(
        "fence_agent",
        default="process",
        choices=FENCE_AGENTS,
        help="How a host is fenced. process: kill the host's process group (a host is a "
        "process group; for tests and single-machine demos). command: run fence_command. ipmi: "
        "chassis power off through the BMC (pyghmi). redfish: ForceOff through the BMC "
        "(sushy). simulated: mark a simulated host powered off (vigil up's fake hosts).",
    ),
    cfg.StrOpt(
        "fence_command",
        default="",
        help="command agent: the command that powers a host off, {host} substituted (else the "
        "host is appended as the last argument). Exit 0 = fenced.",
    ),
    cfg.StrOpt(
        "fence_status_command",
        default="",
        help="command agent, optional: prints/exits the power state of {host}: exit 0 = off, "
        "exit 1 = on, anything else = cannot tell. Lets a new leader verify a fence that was "
        "interrupted by a monitor crash instead of issuing it again.",
    ),
    cfg.StrOpt(
        "fence_hosts_file",
        default="",
        help="ipmi/redfish: JSON file mapping host name to its BMC: {\"h1\": {\"address\": "
        "\"10.0.0.5\", \"username\": \"admin\", \"password\": \"...\", \"port\": 623, "
        "\"system_id\": \"/redfish/v1/Systems/1\", \"verify\": true}}; the key \"*\" gives "
        "defaults for every host.",
    ),
    cfg.FloatOpt(
        "fence_timeout",
        default=60.0,
        min=0.1,
        help="Seconds one fence attempt may take (command run, power-off confirmation).",
    ),
    cfg.FloatOpt(
        "fence_retry_base",
        default=5.0,
        min=0.01,
        help="Backoff after a failed fence: base * 2^(attempt-1) seconds, capped by "
        "fence_retry_max (database clock).",
    ),
    cfg.FloatOpt(
        "fence_retry_max",
        default=300.0,
        min=0.01,
        help="Longest wait between two fence attempts of one host.",
    ),
    cfg.FloatOpt(
        "evacuations_per_second",
        default=20.0,
        min=0.01,
        help="Rate limit of evacuation requests per monitor (token bucket, monotonic clock).",
    ),
    cfg.IntOpt(
        "max_inflight_evacuations",
        default=50,
        min=1,
        help="At most this many instances of one recovery waiting for the scheduler or being "
        "rebuilt at a time.",
    ),
    cfg.FloatOpt(
        "evacuation_retry",
        default=10.0,
        min=0.01,
        help="Seconds before an evacuation that found no valid host is asked again.",
    ),
    cfg.FloatOpt(
        "lease_ttl",
        default=10.0,
        min=0.5,
        help="Leader lease duration (database clock). A dead leader is replaced after at most "
        "this long; the leader renews every lease_ttl/3 and stops acting by itself once "
        "lease_ttl minus a safety margin has passed on its own clock since its last renewal "
        "was sent.",
    ),
    cfg.StrOpt(
        "simulated_power_dir",
        default="$state_path/ha/power",
        help="simulated agent: where powered-off simulated hosts are marked (one file each).",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("ha", HA_OPTS)]


def validate(conf: cfg.ConfigOpts) -> None:
    """Refuse [ha] values that cannot work together."""
    ha = conf.ha
    if ha.fence_agent == "command" and not ha.fence_command.strip():
        raise ConfigError("[ha] fence_agent = command needs [ha] fence_command")
    if ha.fence_agent in ("ipmi", "redfish") and not ha.fence_hosts_file:
        raise ConfigError(f"[ha] fence_agent = {ha.fence_agent} needs [ha] fence_hosts_file")
    if ha.fence_retry_max < ha.fence_retry_base:
        raise ConfigError("[ha] fence_retry_max must be at least fence_retry_base")
    if ha.lease_ttl <= ha.poll_interval:
        raise ConfigError(f"[ha] lease_ttl ({ha.lease_ttl:g}) must be greater than "
                          f"poll_interval ({ha.poll_interval:g})")
