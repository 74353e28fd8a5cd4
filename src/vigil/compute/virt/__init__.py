"""Virt drivers, one module each, loaded by name (``[compute] compute_driver``)."""

from __future__ import annotations

import importlib

from oslo_config import cfg

from vigil.compute.virt.driver import VirtDriver
from vigil.errors import ConfigError

# name -> "module:Class"
DRIVERS: dict[str, str] = {
    "fake": "vigil.compute.virt.fake:FakeDriver",
    "process": "vigil.compute.virt.process:ProcessDriver",
    "baremetal": "vigil.compute.virt.baremetal:BaremetalDriver",
}


def load(conf: cfg.ConfigOpts, host: str, name: str | None = None) -> VirtDriver:
    """The configured driver (or ``name``) for ``host``."""
    name = name or conf.compute.compute_driver
    try:
        module_name, _, cls_name = DRIVERS[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"unknown compute_driver {name!r}; choose one of {', '.join(DRIVERS)}") from None
    cls: type[VirtDriver] = getattr(importlib.import_module(module_name), cls_name)
    return cls.from_conf(conf, host)
