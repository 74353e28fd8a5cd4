"""Per-host BMC settings of the ipmi and redfish agents (``[ha] fence_hosts_file``).

(The command agent reads the same file with its own, open-ended rules: any option its fence
agent takes, sent on stdin; see :mod:`vigil.ha.fence.fenceapi`.)

One JSON file maps host names to their BMC; the key ``"*"`` gives defaults for every host, so
a uniform fleet needs only ``{"*": {"username": ..., "password": ...}, "h1": {"address": ...}}``.
Validated as a whole when the monitor starts: a typo is a one-line configuration error, not a
failed fence at 3 a.m.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vigil.errors import ConfigError

_KNOWN = {"address", "username", "password", "port", "system_id", "verify", "interface"}


@dataclass(frozen=True)
class BmcConfig:
    host: str
    address: str
    username: str | None = None
    password: str | None = None
    port: int | None = None
    system_id: str | None = None  # redfish: /redfish/v1/Systems/<id>; None: the only system
    verify: bool = True           # redfish: verify the BMC's TLS certificate

    def __repr__(self) -> str:  # never print the password (logs, tracebacks)
        return (f"BmcConfig(host={self.host!r}, address={self.address!r}, "
                f"username={self.username!r}, port={self.port!r}, "
                f"system_id={self.system_id!r}, verify={self.verify!r})")


def parse_hosts(data: Any, source: str = "fence_hosts_file") -> dict[str, dict[str, Any]]:
    """Validate the mapping's shape; returns it with every entry checked."""
    if not isinstance(data, dict):
        raise ConfigError(f"[ha] {source}: expected a JSON object mapping hosts to BMCs")
    for host, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"[ha] {source}: entry {host!r} is not an object")
        unknown = set(entry) - _KNOWN
        if unknown:
            raise ConfigError(f"[ha] {source}: entry {host!r} has unknown keys "
                              f"{sorted(unknown)} (known: {sorted(_KNOWN)})")
        if "port" in entry and (not isinstance(entry["port"], int)
                                or not 0 < entry["port"] < 65536):
            raise ConfigError(f"[ha] {source}: entry {host!r}: port must be 1..65535")
        if "verify" in entry and not isinstance(entry["verify"], bool):
            raise ConfigError(f"[ha] {source}: entry {host!r}: verify must be true or false")
    return data


def read_hosts_file(path: str) -> Any:
    """The file's JSON, unchecked: each agent checks the entries it understands."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as exc:
        raise ConfigError(f"[ha] fence_hosts_file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"[ha] fence_hosts_file {path} is not valid JSON: {exc}") from exc


def load_hosts(path: str) -> dict[str, dict[str, Any]]:
    """The ipmi and redfish agents' BMCs: only the keys these agents know."""
    return parse_hosts(read_hosts_file(path), f"fence_hosts_file {path}")


def bmc_for(hosts: dict[str, dict[str, Any]], host: str) -> BmcConfig | None:
    """The host's BMC (its entry over the ``*`` defaults), None if it has no address."""
    merged = {**hosts.get("*", {}), **hosts.get(host, {})}
    address = merged.get("address")
    if not address:
        return None
    return BmcConfig(host=host, address=str(address).replace("{host}", host),
                     username=merged.get("username"), password=merged.get("password"),
                     port=merged.get("port"), system_id=merged.get("system_id"),
                     verify=bool(merged.get("verify", True)))
