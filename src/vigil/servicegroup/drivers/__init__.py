"""Liveness drivers, one module per backend, chosen by ``servicegroup_driver``.

The names and where each class lives are :data:`vigil.plugins.SERVICEGROUP_DRIVERS` (the same
table the option's choices come from); a driver module, and the client library it needs, is
imported only when configured.
"""

from __future__ import annotations

from typing import Any

from vigil import plugins
from vigil.servicegroup.drivers.base import Driver


def driver_class(name: str) -> type[Driver]:
    """The driver class of ``name``; ConfigError naming the valid ones if there is none."""
    return plugins.load(plugins.SERVICEGROUP_DRIVERS, name, Driver)


def load(conf: Any) -> Driver:
    """Instantiate the configured driver. Drivers take the ConfigOpts and read their group."""
    cls = driver_class(conf.servicegroup_driver)
    if cls.__name__ == "DbDriver":
        return cls()
    return cls(conf)  # type: ignore[call-arg]
