"""The ``simulated`` fence agent: for ``vigil up``'s simulated hosts, which share one process.

Nothing can be powered off there, so fencing marks the host powered off with a file
``<simulated_power_dir>/<host>.off`` and status reads the mark. It proves nothing about a real
machine and says so: it exists so the embedded demo can show the whole workflow. The mark is
removed when the host reports again (:meth:`release`).

:class:`SimulatedPower` is the other side of the demo: what makes a simulated host die and come
back. ``vigil host crash`` writes ``<host>.crash`` (the plug is pulled), ``vigil host revive``
removes it and any fence mark (powered on again), and ``vigil up`` runs a host's agent only
while neither mark exists. :class:`AgentKills` is the same for ``vigil host kill-agent``.
:func:`simulate` is the one entry point of the CLI and of the API's host actions (which only
``vigil up``'s API offers: only it knows its power directory).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from vigil.ha.fence.base import FenceAgent, PowerState


class SimulatedFence(FenceAgent):
    name = "simulated"

    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir

    @classmethod
    def from_conf(cls, conf: Any) -> SimulatedFence:
        return cls(conf.ha.simulated_power_dir)

    def _mark(self, host: str) -> str:
        return os.path.join(self.power_dir, f"{host}.off")

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        os.makedirs(self.power_dir, exist_ok=True)
        with open(self._mark(host), "w") as f:
            f.write("off\n")
        return f"simulated host {host} marked powered off"

    def status(self, host: str, *, timeout: float) -> PowerState:
        return PowerState.OFF if os.path.exists(self._mark(host)) else PowerState.ON

    def release(self, host: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._mark(host))


class SimulatedPower:
    """Power marks of ``vigil up``'s simulated hosts, shared through files so that a CLI in
    another terminal can pull a plug inside the ``vigil up`` process."""

    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir

    def _path(self, host: str, suffix: str) -> str:
        if not host or "/" in host or host.startswith("."):
            raise ValueError(f"not a host name: {host!r}")
        return os.path.join(self.power_dir, f"{host}.{suffix}")

    def crash(self, host: str) -> None:
        os.makedirs(self.power_dir, exist_ok=True)
        with open(self._path(host, "crash"), "w") as f:
            f.write("crashed\n")

    def revive(self, host: str) -> None:
        for suffix in ("crash", "off"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(host, suffix))

    def is_off(self, host: str) -> bool:
        """Crashed, or fenced (powered off) and not powered on since."""
        return any(os.path.exists(self._path(host, s)) for s in ("crash", "off"))


class AgentKills:
    """``vigil host kill-agent HOST`` marks, shared through files like the power marks: the
    CLI in another terminal kills a simulated host's agent inside ``vigil up``'s process."""

    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir

    def _path(self, host: str) -> str:
        if not host or "/" in host or host.startswith("."):
            raise ValueError(f"not a host name: {host!r}")
        return os.path.join(self.power_dir, f"{host}.kill-agent")

    def kill(self, host: str) -> None:
        os.makedirs(self.power_dir, exist_ok=True)
        with open(self._path(host), "w") as f:
            f.write("kill\n")

    def take(self, host: str) -> bool:
        """Whether a kill of ``host``'s agent was asked (the mark is consumed)."""
        try:
            os.unlink(self._path(host))
            return True
        except FileNotFoundError:
            return False


# Each simulation, with the line the operator reads after it.
SIMULATIONS = {
    "crash": "{host}: crashed (simulated); watch it: vigil recovery list",
    "revive": "{host}: powered on (simulated); it reports again within a few seconds",
    "kill-agent": "{host}: compute agent killed (simulated); its supervisor restarts it; "
                  "watch it: vigil service list",
}


def simulate(power_dir: str, host: str, action: str) -> str:
    """Do ``action`` (a key of :data:`SIMULATIONS`) to simulated ``host``; returns its line."""
    if action == "crash":
        SimulatedPower(power_dir).crash(host)
    elif action == "revive":
        SimulatedPower(power_dir).revive(host)
    elif action == "kill-agent":
        AgentKills(power_dir).kill(host)
    else:
        raise ValueError(f"not a simulation: {action!r}")
    return SIMULATIONS[action].format(host=host)
