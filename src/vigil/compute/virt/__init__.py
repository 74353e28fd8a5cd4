"""Virt drivers, one module each, chosen by ``[compute] compute_driver``
(:data:`vigil.plugins.COMPUTE_DRIVERS`)."""

from __future__ import annotations

from oslo_config import cfg

from vigil import plugins
from vigil.compute.virt.driver import VirtDriver


def load(conf: cfg.ConfigOpts, host: str, name: str | None = None) -> VirtDriver:
    """The configured driver (or ``name``) for ``host``."""
    cls = plugins.load(plugins.COMPUTE_DRIVERS, name or conf.compute.compute_driver, VirtDriver)
    return cls.from_conf(conf, host)
