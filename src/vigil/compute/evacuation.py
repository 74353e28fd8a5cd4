"""May instances be taken off this host now? The one rule, for every path that evacuates.

Evacuation starts a second copy of an instance on another host. It is safe only if the first
copy cannot run, now or later:

- *later* is the ownership generation's job: an evacuation starts a new generation, and no
  host can start an instance outside the generation it read
  (:func:`vigil.db.compute.instances.instance_start`), so a host that comes back never restarts what
  was taken from it;
- *now* is this module's: the source host must not be running the instance. Evidence, from
  strongest to weakest: its agent acknowledged a quarantine (it stopped everything and may
  start nothing); the host is quarantined, i.e. a fence was decided, and the HA workflow asks
  for evacuations only after that fence succeeded; the host stopped reporting while reports
  were getting through (DOWN). Not evidence: a forced_down flag on a host that still reports
  (an operator's word is not the machine's state), a clean leave of its compute service (a
  stopped agent leaves its instances running), and UNKNOWN (nothing could be read).

Two callers, two strengths. :func:`operator_refusal` judges an operator's request
(``vigil server evacuate``, Nova's API): there is no fence behind it, so quarantine alone is
not enough unless the agent acknowledged it. :func:`scheduler_refusal` is the scheduler's
re-check when it claims a target: the request was accepted earlier (by an operator's check or
by the HA workflow after a fence), and only a source that visibly came back without being
quarantined cancels it.

A DOWN host that is in fact alive and cut off from the control plane keeps running its copy
until it can reach the conductor again (then it destroys it): only a fence closes that gap,
which is why ``vigil host evacuate`` (it fences) is the safe tool and ``vigil server evacuate``
the one that trusts the operator, as in Nova. :func:`host_request_refusal` judges that
request: the fence behind it is the evidence, so only a host that still reports, or whose
state cannot be read, is refused.

*Which instances* may be taken is the other half, :class:`InstanceRule`, with two policies:
:data:`OPERATOR_REQUEST` (Nova's: an idle ACTIVE or ERROR instance) and :data:`AFTER_FENCE`
(the HA workflow's compare-and-set on a fenced, quarantined host, where an instance caught
``spawning`` counts as idle: nothing can be spawning there any more). The persistence layer
stands below this module, so the HA workflow hands :data:`AFTER_FENCE`'s states to the
compare-and-set (:func:`vigil.db.ha.evacuations.evacuation_request`) rather than the SQL
importing them.

Where the source's compute service has no record at all, its liveness counts as DOWN
(:func:`reporting_of`): nothing can be reporting for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vigil.objects.compute import InstanceRecord, TaskState, VmState
from vigil.objects.ha import HostRecord
from vigil.objects.liveness import State


@dataclass(frozen=True)
class InstanceRule:
    """The instance states an evacuation may take an instance from."""

    task_states: tuple[TaskState | None, ...]
    vm_states: tuple[VmState, ...]

    def refusal(self, inst: InstanceRecord) -> str | None:
        """Why ``inst`` may not be evacuated under this rule (None: it may)."""
        if inst.task_state not in self.task_states:
            return (f"Cannot 'evacuate' instance {inst.uuid} while it is in task_state "
                    f"{inst.task_state}")
        if inst.vm_state not in self.vm_states:
            return (f"Cannot 'evacuate' instance {inst.uuid} while it is in vm_state "
                    f"{inst.vm_state}")
        return None


# An operator's ``vigil server evacuate`` (Nova's rule): idle, ACTIVE or ERROR.
OPERATOR_REQUEST = InstanceRule((None,), (VmState.ACTIVE, VmState.ERROR))
# The HA workflow, on a fenced and quarantined host: nothing can be spawning there any more,
# so an instance caught spawning (or being built) there is idle too.
AFTER_FENCE = InstanceRule((None, TaskState.SPAWNING, TaskState.REBUILD_SPAWNING),
                           (VmState.ACTIVE, VmState.ERROR, VmState.BUILDING))


def reporting_of(states: Mapping[str, State], host: str) -> State:
    """The source's liveness (ignoring forced_down) from a by-host map: a host with no compute
    service record counts as DOWN."""
    return states.get(host, State.DOWN)


def _common(host: str, reporting: State, left: bool) -> str | None:
    if reporting is State.UP:
        return (f"Compute service of {host} is still in use (it reports): evacuate only "
                "instances of a host that is down. forced_down alone is not enough: fence it "
                "with 'vigil host evacuate', or stop it for good first.")
    if reporting is State.UNKNOWN:
        return (f"Compute service of {host} is in an unknown state: its liveness cannot be "
                "read right now, so it is not known to be down and evacuating could run the "
                "instance twice.")
    if left:
        return (f"Compute service of {host} was stopped cleanly (it left its group): its "
                "instances may still run there. Fence the host with 'vigil host evacuate', or "
                "start its compute service again.")
    return None


def operator_refusal(host: str, reporting: State, *, left: bool,
                     facts: HostRecord | None) -> str | None:
    """Why an operator's evacuation from ``host`` is refused (None: it may go ahead).

    ``reporting`` is the source's liveness *ignoring* forced_down.
    """
    if facts is not None and facts.quarantine_acked:
        return None
    return _common(host, reporting, left)


def scheduler_refusal(host: str, reporting: State, *, left: bool,
                      facts: HostRecord | None) -> str | None:
    """Why the scheduler cancels an accepted evacuation from ``host`` (None: it proceeds)."""
    if facts is not None and facts.quarantined:
        return None
    return _common(host, reporting, left)


def host_request_refusal(host: str, reporting: State) -> str | None:
    """Why an operator's ``vigil host evacuate`` (the HA workflow, fence included) of ``host``
    is refused (None: the leader may take it). The fence is the evidence of death, so a clean
    leave is no reason to refuse; only a host that still reports, or that cannot be read."""
    if reporting is State.UP:
        return (f"compute service of {host} still reports (state up): it is not dead; "
                "evacuating it would run its instances twice")
    if reporting is State.UNKNOWN:
        return (f"the liveness of {host} cannot be read right now (unknown): not evacuating "
                "on an unknown state")
    return None
