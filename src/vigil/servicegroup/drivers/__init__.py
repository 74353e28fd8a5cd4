"""Liveness drivers, one module per backend, loaded by name (``servicegroup_driver``).

Client libraries of external backends are optional extras; a driver module is imported only
when configured, so a missing library is a one-line configuration error, not an ImportError at
start-up of every command.
"""

from __future__ import annotations

import importlib
from typing import Any

from vigil.errors import ConfigError
from vigil.servicegroup.drivers.base import Driver

# name -> "module:Class"
DRIVERS: dict[str, str] = {
    "db": "vigil.servicegroup.drivers.db:DbDriver",
    "mc": "vigil.servicegroup.drivers.mc:MemcachedDriver",
    "zk": "vigil.servicegroup.drivers.zk:ZooKeeperDriver",
    "etcd": "vigil.servicegroup.drivers.etcd:EtcdDriver",
    "redis": "vigil.servicegroup.drivers.redis:RedisDriver",
}


def driver_class(name: str) -> type[Driver]:
    try:
        target = DRIVERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown servicegroup_driver {name!r}; choose one of {', '.join(DRIVERS)}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"servicegroup_driver {name!r} is not available: {exc} "
            f"(install vigil[{name}])"
        ) from exc
    cls: type[Driver] = getattr(module, cls_name)
    return cls


def load(conf: Any) -> Driver:
    """Instantiate the configured driver. Drivers take the ConfigOpts and read their group."""
    cls = driver_class(conf.servicegroup_driver)
    if cls.__name__ == "DbDriver":
        return cls()
    return cls(conf)  # type: ignore[call-arg]
