"""Virt drivers, one module each, chosen by ``[compute] compute_driver``
(:data:`vigil.plugins.COMPUTE_DRIVERS`)."""

from __future__ import annotations

from vigil import plugins
from vigil.compute.virt.driver import NewTransport, VirtDriver, VirtSettings


def load(settings: VirtSettings, host: str, name: str | None = None, *,
         new_transport: NewTransport | None = None) -> VirtDriver:
    """The configured driver (or ``name``) for ``host``; ``new_transport`` for a driver that
    needs a messaging connection of its own (see :meth:`VirtDriver.from_settings`)."""
    cls = plugins.load(plugins.COMPUTE_DRIVERS, name or settings.compute_driver, VirtDriver)
    return cls.from_settings(settings, host, new_transport=new_transport)
