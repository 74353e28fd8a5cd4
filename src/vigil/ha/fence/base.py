"""The fence agent interface.

Fencing is what makes evacuation safe: an instance may only be started elsewhere once its old
copy provably cannot run, i.e. its host is powered off (or, for the process agent, its process
group is gone). An agent answers two questions:

- ``fence(host)``: power the host off (its ``action``: ``off``, or ``reboot`` for the command
  agent when configured so). Idempotent (fencing a host that is off succeeds), raises
  :class:`FenceFailed` when it could not, and stops early when ``cancel`` is set (the monitor
  lost its leadership: every action stops at once).
- ``status(host)``: is it off? OFF, ON, or UNKNOWN when the agent cannot tell. A new leader
  uses it to resolve a fence its predecessor started but never recorded the end of, instead
  of fencing a second time.

:func:`fence_and_verify` runs both: an ``off`` counts as *verified* only if the agent then
reads the power state as OFF. An agent that reads ON after a "successful" fence has failed, and
so has one that can read the power state but then cannot: the fence is retried rather than
trusted blind. A ``reboot`` is verified by the agent's own exit code (see there).
"""

from __future__ import annotations

import abc
import enum
import threading
from dataclasses import dataclass
from typing import ClassVar

from vigil.errors import FenceFailed


class PowerState(enum.Enum):
    """What an agent knows of a host's power.

    OFF: verified off; the host cannot run anything. ON: it runs. UNKNOWN: the agent cannot
    tell (no status command, BMC unreachable): never treat as OFF.
    """

    OFF = "off"
    ON = "on"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FenceResult:
    verified: bool  # the power-off was confirmed: status read OFF, or a reboot's exit 0
    detail: str


class FenceAgent(abc.ABC):
    name: ClassVar[str]
    #: What a fence does: "off", or "reboot" (off, then on again). A rebooted host comes back,
    #: which is safe only because a fenced host is quarantined (docs/ha.md, "Quarantine").
    action: str = "off"
    #: Whether :meth:`status` can read the power state at all. An agent that can, but reads
    #: UNKNOWN right after a fence (BMC unreachable), has not shown the host off: the fence
    #: fails and is retried. One that cannot only ever gives an unverified fence.
    can_read_status: bool = True

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
    """Fence, then read the power state back. Raises FenceFailed if it still reads ON, or
    cannot be read by an agent that can read it.

    A reboot is not read back: the host may already be booting again, so ON would be the
    expected answer, not a failure. Its verification is the agent's exit 0, which by the
    fence-agent convention (FenceAgentAPI) means the agent itself saw the *off* part done.
    """
    detail = agent.fence(host, timeout=timeout, cancel=cancel)
    if agent.action == "reboot":
        return FenceResult(True, f"{detail}; reboot: the agent's exit 0 confirms the power-off "
                                 "part (FenceAgentAPI); the power is not read back, the host "
                                 "may be booting again (quarantined)")
    state = agent.status(host, timeout=timeout)
    if state is PowerState.ON:
        raise FenceFailed(f"{agent.name}: fencing {host} reported success ({detail}) but the "
                          "host still reads as powered on")
    if state is PowerState.OFF:
        return FenceResult(True, f"{detail}; power off verified")
    if agent.can_read_status:
        raise FenceFailed(f"{agent.name}: fencing {host} reported success ({detail}) but the "
                          "power state could not be read after the fence")
    return FenceResult(False, f"{detail}; power state cannot be read back by the "
                              f"{agent.name} agent (not verified)")
