"""The ClusterLabs fence-agent convention (fence-agents' doc/FenceAgentAPI.md), as the
``command`` agent speaks it.

An agent (``fence_ipmilan``, ``fence_redfish``, ``fence_virsh``, an operator's script) reads
its options on stdin, one ``name=value`` line each, and answers with its exit code:

- ``action=off`` / ``on``: 0 done (the agent verified it), 1 failed (device unreachable
  included);
- ``action=reboot``: 0 if the *off* part succeeded and was verified by the agent, 1 otherwise;
- ``action=status``: 0 reachable and ON, 2 reachable and OFF, 1 could not be contacted.

Pacemaker maps cluster nodes to the agent's plugs with ``pcmk_host_map``
(``node1:1;node2:2,3``) and names the argument the plug goes in with ``pcmk_host_argument``;
Vigil's ``[ha] fence_host_map`` and ``fence_host_argument`` are the same thing. Everything
here is checked when the monitor starts: a typo is a one-line configuration error, not a
failed fence at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from vigil.errors import ConfigError
from vigil.ha.fence.base import PowerState

FENCE_ACTIONS = ("off", "reboot")
# Lines Vigil writes itself: a device option of the same name would contradict them.
RESERVED = frozenset({"action", "nodename"})
# fence_host_argument = none: no plug line at all (Pacemaker's pcmk_host_argument = none), for
# agents with one device per host that take no plug (fence_ipmilan, fence_redfish).
NO_HOST_ARGUMENT = "none"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
# Option names whose values are secrets: never in argv, logs or exception text.
SECRET_NAME = re.compile(r"passw|secret", re.IGNORECASE)
# password=x, passwd: x, "password": "x" (an agent's debug output, a JSON dump)
_SECRET_ASSIGNMENT = re.compile(r"""(\b[\w-]*(?:passw|secret)[\w-]*["']?\s*[=:]\s*["']?)"""
                                r"""[^\s"',]+""", re.IGNORECASE)
REDACTED = "***"


def check_name(name: Any, what: str) -> str:
    """An option name the convention can carry (``name=value``: no ``=``, space or newline)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{what}: {name!r} is not an option name "
                          "(letters, digits, _ and -, not starting with a digit)")
    return name


def parse_host_map(text: str) -> dict[str, tuple[str, ...]]:
    """``pcmk_host_map`` syntax: host -> its plugs, in order.

    Pairs are ``host:plug`` (or ``host=plug``), separated by ``;``, whitespace or ``,``; a host
    with several plugs (two power supplies) lists them after one colon, separated by ``,``:
    ``h1:1;h2:2,3`` or ``h1:1, h2:2,3``. A comma-separated item with a colon starts a new pair,
    one without is one more plug of the current host. A host listed twice, an empty name or
    plug, or a plug before any host is refused.
    """
    hosts: dict[str, tuple[str, ...]] = {}
    current: str | None = None
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        if "\\" in item or any(not ch.isprintable() for ch in item):
            raise ConfigError(f"[ha] fence_host_map: {item!r} has an escape or control "
                              "character")
        name, sep, plug = item.partition(":") if ":" in item else item.partition("=")
        if sep:
            if not name:
                raise ConfigError(f"[ha] fence_host_map: {item!r} has no host name")
            if name in hosts:
                raise ConfigError(f"[ha] fence_host_map: host {name!r} is listed twice")
            current = name
            hosts[name] = ()
        elif current is None:
            raise ConfigError(f"[ha] fence_host_map: plug {item!r} comes before any "
                              "host (write host:plug)")
        else:
            plug = item
        if not plug:
            raise ConfigError(f"[ha] fence_host_map: host {current!r} has an empty plug")
        if ":" in plug or "=" in plug:
            raise ConfigError(f"[ha] fence_host_map: {item!r}: a plug cannot contain : or =")
        if plug in hosts[current]:
            raise ConfigError(f"[ha] fence_host_map: host {current!r} lists plug {plug!r} "
                              "twice")
        hosts[current] = (*hosts[current], plug)
    return hosts


def plugs_for(host_map: Mapping[str, tuple[str, ...]], host: str) -> tuple[str, ...]:
    """The host's plugs; a host the map does not list is its own plug (one agent per host)."""
    return host_map.get(host) or (host,)


def _value(source: str, host: str, key: str, value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int. fencing.py reads 1/0.
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"[ha] {source}: entry {host!r}: {key} must be a string, number or "
                          f"boolean, not {type(value).__name__}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError(f"[ha] {source}: entry {host!r}: the value of {key} has a newline "
                          "(one option per stdin line)")
    return value


def parse_device_options(data: Any, source: str = "fence_hosts_file",
                         host_argument: str = "plug") -> dict[str, dict[str, str]]:
    """The command agent's per-host options (``"*"`` for every host), rendered as the strings
    sent on stdin. Any option name the convention can carry is allowed: it is the agent's to
    know them (``ip``, ``username``, ``password``, ``lanplus``...)."""
    if not isinstance(data, dict):
        raise ConfigError(f"[ha] {source}: expected a JSON object mapping hosts to options")
    out: dict[str, dict[str, str]] = {}
    for host, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"[ha] {source}: entry {host!r} is not an object")
        options = {}
        for key, value in entry.items():
            check_name(key, f"[ha] {source}: entry {host!r}")
            if key in RESERVED or key == host_argument:
                raise ConfigError(f"[ha] {source}: entry {host!r}: {key} is set by Vigil "
                                  "for each call; remove it")
            options[key] = _value(source, host, key, value)
        out[host] = options
    return out


def device_options(hosts: Mapping[str, Mapping[str, str]], host: str) -> dict[str, str]:
    """The host's options: its entry over the ``"*"`` defaults; ``{host}`` in a value that is
    not a secret becomes the host's name (``"ip": "{host}-ipmi"``)."""
    merged = {**hosts.get("*", {}), **hosts.get(host, {})}
    return {k: v if SECRET_NAME.search(k) else v.replace("{host}", host)
            for k, v in merged.items()}


def stdin_text(action: str, host: str, host_argument: str, plug: str,
               options: Mapping[str, str]) -> str:
    """What the agent reads: ``action``, ``nodename``, the plug (unless the host argument is
    ``none``), then the device options."""
    lines = [f"action={action}", f"nodename={host}"]
    if host_argument != NO_HOST_ARGUMENT:
        lines.append(f"{host_argument}={plug}")
    lines += [f"{k}={v}" for k, v in options.items()]
    return "".join(f"{line}\n" for line in lines)


def status_from_exit(code: int) -> PowerState:
    """A status call's exit code: 0 ON, 2 OFF, 1 (or anything else) UNKNOWN."""
    return {0: PowerState.ON, 2: PowerState.OFF}.get(code, PowerState.UNKNOWN)


def secrets_of(options: Mapping[str, str]) -> list[str]:
    return [v for k, v in options.items() if v and SECRET_NAME.search(k)]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without the given secret values, nor anything written ``password=...``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SECRET_ASSIGNMENT.sub(rf"\g<1>{REDACTED}", text)
