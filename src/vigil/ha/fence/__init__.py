"""Fence agents, one module each, loaded by name (``[ha] fence_agent``).

Client libraries (pyghmi for ipmi, sushy for redfish) are the optional extra ``vigil[ha]`` and
are imported only when their agent is configured.
"""

from __future__ import annotations

from typing import Any

from vigil import plugins
from vigil.ha.fence.base import FenceAgent, FenceResult, PowerState

__all__ = ["FenceAgent", "FenceResult", "PowerState", "load"]


def load(conf: Any, name: str | None = None) -> FenceAgent:
    """The configured agent (or ``name``, from :data:`vigil.plugins.FENCE_AGENTS`); each agent
    class has ``from_conf(conf)``."""
    cls = plugins.load(plugins.FENCE_AGENTS, name or conf.ha.fence_agent, FenceAgent)
    return cls.from_conf(conf)  # type: ignore[attr-defined, no-any-return]
