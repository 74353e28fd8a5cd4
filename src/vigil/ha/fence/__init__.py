"""Fence agents, one module each, loaded by name (``[ha] fence_agent``).

Client libraries (pyghmi for ipmi, sushy for redfish) are the optional extra ``vigil[ha]`` and
are imported only when their agent is configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from vigil.errors import ConfigError
from vigil.ha.fence.base import FenceAgent, FenceResult, PowerState

__all__ = ["AGENTS", "FenceAgent", "FenceResult", "PowerState", "load"]

AGENTS: dict[str, str] = {
    "process": "vigil.ha.fence.process:ProcessFence",
    "command": "vigil.ha.fence.command:CommandFence",
    "ipmi": "vigil.ha.fence.ipmi:IpmiFence",
    "redfish": "vigil.ha.fence.redfish:RedfishFence",
    "simulated": "vigil.ha.fence.simulated:SimulatedFence",
}


def load(conf: Any, name: str | None = None) -> FenceAgent:
    """The configured agent (or ``name``); each agent class has ``from_conf(conf)``."""
    name = name or conf.ha.fence_agent
    try:
        module_name, _, cls_name = AGENTS[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown [ha] fence_agent {name!r}; choose one of "
                          f"{', '.join(AGENTS)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"fence agent {name!r} is not available: {exc} "
                          "(install vigil[ha])") from exc
    agent: FenceAgent = getattr(module, cls_name).from_conf(conf)
    return agent
