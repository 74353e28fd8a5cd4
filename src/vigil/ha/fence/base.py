"""The fence agent interface.

Fencing is what makes evacuation safe: an instance may only be started elsewhere once its old
copy provably cannot run, i.e. its host is powered off (or, for the process agent, its process
group is gone). An agent answers two questions:

- ``fence(host)``: power the host off. Idempotent (fencing a host that is off succeeds), raises
  :class:`FenceFailed` when it could not, and stops early when ``cancel`` is set (the monitor
  lost its leadership: every action stops at once).
- ``status(host)``: is it off? OFF, ON, or UNKNOWN when the agent cannot tell. A new leader
  uses it to resolve a fence its predecessor started but never recorded the end of, instead
  of fencing a second time.

:func:`fence_and_verify` runs both: a fence counts as *verified* only if the agent then reads
the power state as OFF; an agent that reads ON after a "successful" fence has failed.
"""

from __future__ import annotations

import abc
import enum
import threading
from dataclasses import dataclass
from typing import ClassVar

from vigil.errors import VigilError


class PowerState(enum.Enum):
    """What an agent knows of a host's power.

    OFF: verified off; the host cannot run anything. ON: it runs. UNKNOWN: the agent cannot
    tell (no status command, BMC unreachable): never treat as OFF.
    """

    OFF = "off"
    ON = "on"
    UNKNOWN = "unknown"


class FenceFailed(VigilError):
    """The host could not be fenced (yet). The recovery retries with backoff; its instances
    stay where they are."""


@dataclass(frozen=True)
class FenceResult:
    verified: bool  # the agent read the power state as OFF afterwards
    detail: str


class FenceAgent(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        """Power ``host`` off; returns a line describing what was done. Raises FenceFailed."""

    @abc.abstractmethod
    def status(self, host: str, *, timeout: float) -> PowerState:
        """The host's power as the agent can read it (never raises: UNKNOWN instead)."""

    def release(self, host: str) -> None:  # noqa: B027 - optional hook
        """The host came back (it reports again): forget any mark this agent keeps of it."""


def fence_and_verify(agent: FenceAgent, host: str, *, timeout: float,
                     cancel: threading.Event) -> FenceResult:
    """Fence, then read the power state back. Raises FenceFailed if it still reads ON."""
    detail = agent.fence(host, timeout=timeout, cancel=cancel)
    state = agent.status(host, timeout=timeout)
    if state is PowerState.ON:
        raise FenceFailed(f"{agent.name}: fencing {host} reported success ({detail}) but the "
                          "host still reads as powered on")
    if state is PowerState.OFF:
        return FenceResult(True, f"{detail}; power off verified")
    return FenceResult(False, f"{detail}; power state cannot be read back by the "
                              f"{agent.name} agent (not verified)")
