"""Liveness drivers, one module per backend, chosen by ``servicegroup_driver``.

The names and where each class lives are :data:`vigil.plugins.SERVICEGROUP_DRIVERS` (the same
table the option's choices come from); a driver module, and the client library it needs, is
imported only when configured. Every driver is built the same way: ``cls(options, timing)``,
its typed options (:mod:`vigil.servicegroup.drivers.options`) and the liveness timing.
"""

from __future__ import annotations

from typing import Any

from vigil import plugins
from vigil.objects.liveness import LivenessTiming
from vigil.servicegroup.drivers.base import Driver
from vigil.servicegroup.drivers.options import DriverOptions, options_from, timing_from


def driver_class(name: str) -> type[Driver]:
    """The driver class of ``name``; ConfigError naming the valid ones if there is none."""
    return plugins.load(plugins.SERVICEGROUP_DRIVERS, name, Driver)


def build(name: str, options: DriverOptions, timing: LivenessTiming) -> Driver:
    """Driver ``name`` over its typed options."""
    return driver_class(name)(options, timing)


def load(conf: Any) -> Driver:
    """The configured driver: its options parsed and checked from ``conf`` first (ConfigError),
    then the class imported (ConfigError naming the extra if its library is missing)."""
    name = conf.servicegroup_driver
    return build(name, options_from(conf, name), timing_from(conf))
