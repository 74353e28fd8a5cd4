"""Options of the HA monitor ([ha]).

Each option says which formula it feeds; docs/ha.md has the whole picture. Inconsistent
values are refused at start-up by :func:`validate` (one line, no silent fixing).
"""

from __future__ import annotations

import re

from oslo_config import cfg

from vigil import plugins
from vigil.errors import ConfigError

FENCE_AGENTS = plugins.FENCE_AGENTS.names  # the loader's own table (vigil.plugins)

HA_OPTS: list[cfg.Opt] = [
    cfg.PortOpt(
        "metrics_port",
        default=0,
        help="Port of `vigil monitor`'s own Prometheus metrics (when each recovery step "
        "committed, counted from the recovery's opening; docs/operations.md). 0: not served.",
    ),
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
        help="command agent: a fence agent that follows the ClusterLabs convention (fence-"
        "agents' FenceAgentAPI), e.g. /usr/sbin/fence_ipmilan, unmodified. Each call gets "
        "action=, nodename=<host>, <fence_host_argument>=<plug> and the host's "
        "fence_hosts_file options on stdin, one name=value per line; exit 0 = done. The line "
        "is a template: {host}, {plug} and {action} are substituted in its words, nothing is "
        "appended. fence-agents' own agents read stdin only without arguments: give their "
        "bare path.",
    ),
    cfg.StrOpt(
        "fence_action",
        default="off",
        choices=("off", "reboot"),
        help="command agent: the action sent for a fence. off: verified by reading the "
        "power state back (status must then read off). reboot: verified by the agent's exit "
        "0, which by the convention means it saw the power-off part done; the host boots "
        "again, quarantined (docs/ha.md).",
    ),
    cfg.StrOpt(
        "fence_status_command",
        default="",
        help="command agent, optional: a separate command for action=status (same stdin, "
        "same placeholders). Exit 0 = on, 2 = off, 1 (or anything else) = cannot tell. "
        "Empty: fence_command is run with action=status. The power state verifies each "
        "power-off and lets a new leader resolve a fence interrupted by a monitor crash "
        "instead of issuing it again.",
    ),
    cfg.StrOpt(
        "fence_host_map",
        default="",
        help="command agent: host name -> the fence device's plug(s), Pacemaker's "
        "pcmk_host_map syntax: h1:1;h2:2,3 (pairs separated by ;, space or comma; a host's "
        "plugs by comma, all of which must be off for the host to be off). A host the map "
        "does not list is its own plug.",
    ),
    cfg.StrOpt(
        "fence_host_argument",
        default="plug",
        help="command agent: the stdin option the plug goes in (Pacemaker's "
        "pcmk_host_argument). fence-agents call it plug and accept port as an alias. none: "
        "send no plug (an agent with one device per host, such as fence_ipmilan or "
        "fence_redfish; fence_host_map must then be empty).",
    ),
    cfg.StrOpt(
        "fence_hosts_file",
        default="",
        help="JSON file of per-host fence device settings; the key \"*\" gives defaults for "
        "every host, a host's own entry overrides them. ipmi/redfish: the BMC: {\"h1\": "
        "{\"address\": \"10.0.0.5\", \"username\": \"admin\", \"password\": \"...\", "
        "\"port\": 623, \"system_id\": \"/redfish/v1/Systems/1\", \"verify\": true}}. "
        "command: any options of the fence agent, sent on its stdin (never in argv): "
        "{\"*\": {\"username\": \"admin\", \"password\": \"...\", \"lanplus\": 1}, "
        "\"h1\": {\"ip\": \"10.0.0.5\"}}; string, number or boolean values (true/false are "
        "sent as 1/0), {host} in a value becomes the host's name.",
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
    try:
        ha = conf.ha
        agent, _ = ha.fence_agent, ha.fence_action  # read, so that a bad choice is refused
    except (cfg.Error, ValueError) as exc:  # a value outside its choices
        line = str(exc).splitlines()[0]
        m = re.match(r"Value for option (\S+) .* is not valid: (.*)", line)
        raise ConfigError(f"[ha] {m[1]}: {m[2]}" if m else f"[ha] {line}") from exc
    if agent == "command" and not ha.fence_command.strip():
        raise ConfigError("[ha] fence_agent = command needs [ha] fence_command")
    if agent in ("ipmi", "redfish") and not ha.fence_hosts_file:
        raise ConfigError(f"[ha] fence_agent = {agent} needs [ha] fence_hosts_file")
    # The agents' own options (the command's templates, its host map, the hosts file) are
    # checked by the agent when the composition root builds it, at start-up too
    # (vigil.launch.monitor.monitor_from): conf declares and cross-checks options and imports
    # no agent.
    if ha.fence_retry_max < ha.fence_retry_base:
        raise ConfigError("[ha] fence_retry_max must be at least fence_retry_base")
    if ha.lease_ttl <= ha.poll_interval:
        raise ConfigError(f"[ha] lease_ttl ({ha.lease_ttl:g}) must be greater than "
                          f"poll_interval ({ha.poll_interval:g})")
