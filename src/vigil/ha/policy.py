"""Pure HA decisions: no I/O, no clock reads. Every input is passed in.

Times here are the *monitor's* monotonic clock (seconds, floats): how long the monitor has
itself observed a host DOWN, and how long its own view has been trustworthy. Never a
timestamp from another machine.

The brakes, in the order :func:`decide` applies them (the first that holds wins):

1. the database is unreachable                       -> hold (nothing can be read or written)
2. the liveness driver's own session is not connected -> hold
3. any compute service is UNKNOWN                    -> hold (the view has a hole: what looks
   DOWN may be the same outage seen from elsewhere)
4. the driver cannot prove death and unproven death is not allowed -> hold + alert
5. more than ``max_down_fraction`` of compute hosts are DOWN at once -> hold + alert
   (a mass failure is more likely the network or the monitor than the hosts)

Hosts in maintenance are not watched at all (Masakari's ``on_maintenance``), and a host whose
compute service *left* its group cleanly (a graceful stop) has not failed: neither is ever
recovered, nor counted by the mass-failure brake.

Otherwise a host is recovered once it has been DOWN continuously for ``detection_grace``,
counted from the later of its first DOWN observation and the moment the monitor's view last
became reliable (after a reconnection, a stale picture must first prove itself again).
The rate brake (``max_fences_per_minute``) is separate: :func:`fence_slots`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vigil.objects.ha import Phase
from vigil.objects.liveness import State


@dataclass(frozen=True)
class Policy:
    """The [ha] knobs decide() needs."""

    detection_grace: float = 10.0
    max_down_fraction: float = 0.5
    max_fences_per_minute: int = 2
    allow_unproven_death: bool = False


@dataclass(frozen=True)
class Health:
    """The monitor's own view. ``reliable_since``: since when (monotonic) the view has been
    continuously reliable; None while it is not."""

    database_ok: bool
    driver_connected: bool
    reliable_since: float | None


@dataclass(frozen=True)
class HostView:
    """One compute host as the monitor sees it. ``state`` is the liveness *ignoring*
    forced_down (is it really reporting?); ``down_since`` the monitor's monotonic time of the
    first DOWN of the current uninterrupted DOWN run. ``maintenance``: an operator took the
    host out of the monitor's care. ``left``: its compute service left its group cleanly (a
    graceful stop, not a failure)."""

    state: State
    down_since: float | None = None
    in_recovery: bool = False
    maintenance: bool = False
    left: bool = False


class Brake(enum.Enum):
    """Why nothing new may be fenced now. The caller must not open recoveries nor fence while
    any brake holds; steps after a completed fence (force down, evacuate, re-enable) are safe
    and continue."""

    DATABASE = "database unreachable"
    DRIVER = "liveness driver not connected"
    UNKNOWN = "some compute services are in an unknown state"
    UNPROVEN = "the liveness driver cannot prove death"
    MASS_FAILURE = "too many compute hosts down at once"


ALERTING = frozenset({Brake.UNPROVEN, Brake.MASS_FAILURE})


@dataclass(frozen=True)
class Decision:
    """What the leader may do now.

    ``brake``: None when fencing is allowed. ``open``: hosts whose recovery starts now (empty
    while a brake holds). ``waiting``: DOWN hosts still inside their grace, with seconds left.
    ``message``: a line for logs and alerts.
    """

    brake: Brake | None
    open: tuple[str, ...] = ()
    waiting: Mapping[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def may_fence(self) -> bool:
        return self.brake is None

    @property
    def alert(self) -> bool:
        return self.brake in ALERTING


def observe(previous: Mapping[str, float], states: Mapping[str, State],
            now: float) -> dict[str, float]:
    """The next ``down_since`` map: a host stays in it only while every observation of it is
    DOWN. UP or UNKNOWN ends the run: DOWN must be continuous to count."""
    return {host: previous.get(host, now) for host, state in states.items()
            if state is State.DOWN}


def next_reliable_since(previous: float | None, reliable: bool, now: float) -> float | None:
    """Since when the view has been reliable without a break (None while it is not)."""
    if not reliable:
        return None
    return previous if previous is not None else now


def counted_down_since(host: HostView, health: Health) -> float | None:
    """When this host's DOWN starts to count: not before the view was last reliable."""
    if host.down_since is None or health.reliable_since is None:
        return None
    return max(host.down_since, health.reliable_since)


def decide(hosts: Mapping[str, HostView], health: Health, *, proves_death: bool, now: float,
           policy: Policy) -> Decision:
    """Which failed hosts to start recovering now, or which brake holds (see module doc)."""
    if not health.database_ok:
        return Decision(Brake.DATABASE, message=Brake.DATABASE.value)
    if not health.driver_connected:
        return Decision(Brake.DRIVER, message=Brake.DRIVER.value)
    watched = {h: v for h, v in hosts.items() if not v.maintenance}
    unknown = sorted(h for h, v in watched.items() if v.state is State.UNKNOWN)
    if unknown:
        return Decision(Brake.UNKNOWN, message=f"{len(unknown)} compute service(s) unknown: "
                        + ", ".join(unknown[:10]))
    counted = {h: v for h, v in watched.items() if not v.left}
    down = sorted(h for h, v in counted.items() if v.state is State.DOWN)
    if down and not proves_death and not policy.allow_unproven_death:
        return Decision(Brake.UNPROVEN, message=(
            f"{len(down)} compute host(s) down ({', '.join(down[:10])}) but the liveness "
            "driver cannot prove death; set [ha] allow_unproven_death = true to act on it"))
    if counted and len(down) / len(counted) > policy.max_down_fraction:
        return Decision(Brake.MASS_FAILURE, message=(
            f"{len(down)} of {len(counted)} compute hosts are down at once (more than "
            f"max_down_fraction {policy.max_down_fraction:g}): not fencing any; "
            f"down: {', '.join(down[:20])}"))
    opening: list[str] = []
    waiting: dict[str, float] = {}
    for host in down:
        view = hosts[host]
        if view.in_recovery:
            continue
        since = counted_down_since(view, health)
        if since is None:
            continue
        left = since + policy.detection_grace - now
        if left <= 0:
            opening.append(host)
        else:
            waiting[host] = left
    return Decision(None, tuple(opening), waiting)


def fence_slots(recent_fences: int, policy: Policy) -> int:
    """How many fences may start now, given those started fleet-wide in the last minute."""
    return max(0, policy.max_fences_per_minute - recent_fences)


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` + 1 (attempt >= 1): doubling, capped."""
    if attempt < 1:
        return 0.0
    return float(min(cap, base * 2 ** (attempt - 1)))


class Step(enum.Enum):
    """The next step of one recovery, from its recorded phase and the host's state now."""

    DISABLE = "disable"
    FENCE = "fence"
    RESOLVE_FENCE = "resolve_interrupted_fence"  # a fence was started, outcome never recorded
    CANCEL = "cancel"              # the host came back (or was taken out of our care) unfenced
    WAIT = "wait"                  # nothing to do yet (brake, backoff, unknown state)
    FORCE_DOWN = "force_down"
    EVACUATE = "evacuate"
    RE_ENABLE = "re_enable"


def next_step(*, phase: Phase, host_state: State, fence_in_flight: bool, may_fence: bool,
              retry_due: bool, stand_down: bool = False, may_evacuate: bool = True) -> Step:
    """The recovery state machine as one pure function (:class:`~vigil.objects.ha.Phase`).

    ``host_state`` ignores forced_down (is the host really reporting?). Before the fence, a
    host that reports again cancels the recovery, and so does ``stand_down`` (the host was put
    in maintenance, or its service left cleanly: not a failure); an interrupted fence is
    resolved first whatever else holds. After the fence the recovery runs to its end:
    ``may_evacuate`` is False while a fenced host reports again and its agent has not yet
    confirmed that it stopped everything (quarantine acknowledged); a host that reports again
    is re-enabled once its evacuations are over.
    """
    if phase is Phase.DETECTED:
        if host_state is State.UP or stand_down:
            return Step.CANCEL
        return Step.DISABLE
    if phase is Phase.DISABLED:
        if fence_in_flight:
            return Step.RESOLVE_FENCE
        if host_state is State.UP or stand_down:
            return Step.CANCEL
        if host_state is not State.DOWN or not may_fence or not retry_due:
            return Step.WAIT
        return Step.FENCE
    if phase is Phase.FENCED:
        return Step.FORCE_DOWN
    if phase is Phase.FORCED_DOWN:
        return Step.EVACUATE if may_evacuate else Step.WAIT
    if phase is Phase.EVACUATED:
        if host_state is State.UP:
            return Step.RE_ENABLE
        return Step.WAIT
    return Step.WAIT


def evacuation_order(instances: Iterable[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    """Split ``(uuid, evacuable)`` pairs into (to evacuate, to leave), order kept."""
    move: list[str] = []
    stay: list[str] = []
    for uuid, evacuable in instances:
        (move if evacuable else stay).append(uuid)
    return move, stay


class HostAction(enum.Enum):
    """What the monitor does about one compute host, from its two liveness facts: the host's
    (its supervisor, group ``host``) and its compute agent's (group ``compute``)."""

    LEGACY = "legacy"          # no supervisor ever, or a clean leave: decide() as before
    NOTHING = "nothing"        # healthy, in maintenance, or a fact unknown: do nothing
    RESTART_AGENT = "restart_agent"  # host up, agent down: ask its supervisor (once)
    WAIT_RESTART = "wait_restart"    # asked: wait up to service_restart_timeout
    RECOVER = "recover"        # fence + evacuate, through decide() (brakes, grace apply)
    ALERT_SUPERVISOR = "alert_supervisor_down"  # host down, agent up: alert, never fence

    @property
    def hands_to_decide(self) -> bool:
        """Whether the host goes to :func:`decide` as it is (otherwise a DOWN agent there is
        not a failed host: neither recovered nor counted by the mass-failure brake)."""
        return self in (HostAction.LEGACY, HostAction.RECOVER)


@dataclass(frozen=True)
class HostFacts:
    """One compute host as the monitor sees it, both facts ignoring forced_down.

    ``host``: its supervisor's state, None if it never had one (no ``host`` member). ``left``:
    the compute agent left its group cleanly. ``restart_requested_at``: when (monitor's
    monotonic clock) this monitor asked the supervisor to restart the agent, in the current
    DOWN run. ``failed_to_stop``: the supervisor answered that the agent would not stop.
    """

    compute: State
    host: State | None
    maintenance: bool = False
    in_recovery: bool = False
    left: bool = False
    restart_requested_at: float | None = None
    failed_to_stop: bool = False


@dataclass(frozen=True)
class HostVerdict:
    action: HostAction
    reason: str


def host_decision(facts: HostFacts, *, now: float, restart_timeout: float) -> HostVerdict:
    """The host/service decision table (docs/ha.md), first match wins:

    ======================  ============  ==========  ====================================


    open recovery            -             -          RECOVER (the workflow drives it)
    no supervisor, or left   -             -          LEGACY (exactly today's behaviour)
    maintenance              -             -          NOTHING
    host                     compute
    UNKNOWN (either)                                  NOTHING (the view has a hole)
    UP                       UP                       NOTHING
    DOWN                     UP                       ALERT_SUPERVISOR (never a fence)
    DOWN                     DOWN                     RECOVER (the host is gone)
    UP                       DOWN, failed to stop     RECOVER (escalation)
    UP                       DOWN, not asked          RESTART_AGENT
    UP                       DOWN, asked >= timeout   RECOVER (escalation)
    UP                       DOWN, asked < timeout    WAIT_RESTART
    ======================  ============  ==========  ===========================================
    """
    if facts.in_recovery:
        return HostVerdict(HostAction.RECOVER, "a recovery is open")
    if facts.host is None:
        return HostVerdict(HostAction.LEGACY, "no supervisor on this host")
    if facts.left:
        return HostVerdict(HostAction.LEGACY, "the compute agent left its group cleanly")
    if facts.maintenance:
        return HostVerdict(HostAction.NOTHING, "in maintenance")
    if State.UNKNOWN in (facts.host, facts.compute):
        return HostVerdict(HostAction.NOTHING, f"host {facts.host.value}, compute agent "
                           f"{facts.compute.value}: not acting on an unknown state")
    if facts.compute is State.UP:
        if facts.host is State.UP:
            return HostVerdict(HostAction.NOTHING, "host and compute agent up")
        return HostVerdict(HostAction.ALERT_SUPERVISOR,
                           "the host's supervisor is down but its compute agent reports: "
                           "the supervisor died, not the host (not fencing)")
    if facts.host is State.DOWN:
        return HostVerdict(HostAction.RECOVER, "host and compute agent both down")
    if facts.failed_to_stop:
        return HostVerdict(HostAction.RECOVER, "escalated: the supervisor failed to stop the "
                           "compute agent")
    if facts.restart_requested_at is None:
        return HostVerdict(HostAction.RESTART_AGENT, "host up, compute agent down: asking the "
                           "supervisor to restart it")
    waited = now - facts.restart_requested_at
    if waited >= restart_timeout:
        return HostVerdict(HostAction.RECOVER, f"escalated: the compute agent is not back "
                           f"{waited:.1f} s after its restart was requested "
                           f"(service_restart_timeout {restart_timeout:g} s)")
    return HostVerdict(HostAction.WAIT_RESTART, f"waiting for the restarted compute agent "
                       f"({restart_timeout - waited:.1f} s left)")
