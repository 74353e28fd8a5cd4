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
the one that trusts the operator, as in Nova.
"""

from __future__ import annotations

from vigil.objects.ha import HostRecord
from vigil.objects.liveness import State


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
