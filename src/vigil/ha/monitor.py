"""``vigil monitor``: watch the compute hosts, lead, and run recoveries.

Several monitors may run; the one holding the lease acts, the others only observe (so a
successor already has the DOWN history of every host when it takes over, and its detection
grace does not start from zero). One pass, every ``poll_interval``:

1. one batch liveness snapshot of the compute services: each host's state *ignoring*
   forced_down (is it really reporting?), the liveness driver's session, the database's health;
   and one of the ``host`` group (the hosts' supervisors, :mod:`vigil.supervisor`);
2. the pure decisions: per host, from its two facts (:func:`vigil.ha.policy.host_decision`:
   a DOWN agent on a live host is restarted by its supervisor, not fenced, unless it is not
   back within ``service_restart_timeout`` or would not stop); then over the fleet
   (:func:`vigil.ha.policy.decide`): brakes, hosts past their grace. A host that never had a
   supervisor goes straight to ``decide``, exactly as before;
3. as leader: raise/clear alerts, ask supervisors to restart agents, open recoveries, advance
   every open recovery (:class:`vigil.ha.workflow.Workflow`).

In dry-run mode the monitor takes no lease and writes nothing: it logs what it would do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from vigil.clock import Clock, RealClock
from vigil.db.baremetal import members as members_db
from vigil.db.compute import instances as instances_db
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import LeadershipLost, Unavailable
from vigil.ha import policy
from vigil.ha.election import Election
from vigil.ha.fence.base import FenceAgent
from vigil.ha.restarts import AgentRestarts, RestartSender
from vigil.ha.store import RecoveryNotify
from vigil.ha.workflow import Options, Tick, TokenBucket, Workflow
from vigil.names import COMPUTE_TOPIC
from vigil.objects.ha import HostRecord, RecoveryRecord, Trigger
from vigil.objects.liveness import SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)

HOST_TOPIC = "host"  # the supervisors' group (vigil.supervisor.daemon)
AGENT_RESTART_ALERT = "agent_restart:"
SUPERVISOR_DOWN_ALERT = "supervisor_down:"
ALERT_KINDS = {policy.Brake.MASS_FAILURE: "mass_failure",
               policy.Brake.UNPROVEN: "unproven_death"}


@dataclass
class Observation:
    """One look at the fleet."""

    database_ok: bool
    driver_connected: bool
    states: dict[str, State] = field(default_factory=dict)      # ignoring forced_down
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    hosts: dict[str, HostRecord] = field(default_factory=dict)  # quarantine, maint.
    # The supervisors' states (ignoring forced_down), by host; a host absent never had one.
    host_states: dict[str, State] = field(default_factory=dict)

    @property
    def left(self) -> frozenset[str]:
        """Hosts whose compute service left its group cleanly (a graceful stop)."""
        return frozenset(h for h, s in self.services.items() if s.left_at is not None)


def without_bare_metal(engine: Engine, services: list[ServiceRecord]
                       ) -> list[ServiceRecord]:
    """The compute services the HA monitor looks after: all but the bare-metal ones.

    A bare-metal compute service does not run its instances: they run on the nodes, which
    the hash ring hands over to a live service when it dies (vigil.baremetal). Fencing the
    service's host would not stop them, and evacuating them would race that hand-over. A
    service counts as bare metal while its ring membership matches its current version (an
    agent restarted with another driver does not register again, and is looked after).
    """
    members = members_db.members(engine)
    if not members:
        return services
    return [s for s in services if members.get(s.host) != s.version]


class Monitor:
    """The HA monitor. ``tick()`` is one pass; ``run()`` loops until stopped."""

    def __init__(
        self,
        engine: Engine,
        group: ServiceGroup,
        agent: FenceAgent,
        *,
        holder: str,
        pol: policy.Policy,
        options: Options,
        poll_interval: float = 1.0,
        lease_ttl: float = 10.0,
        evacuations_per_second: float = 20.0,
        dry_run: bool = False,
        clock: Clock | None = None,
        wake_scheduler: Callable[[], None] = lambda: None,
        only_hosts: frozenset[str] | None = None,
        restart_agent: RestartSender | None = None,
        service_restart_timeout: float = 30.0,
        notify: RecoveryNotify | None = None,
    ) -> None:
        self.engine = engine
        self.group = group
        self.agent = agent
        self.policy = pol
        self.poll_interval = poll_interval
        self.dry_run = dry_run
        # ``vigil host evacuate`` runs a monitor for one host only: it opens nothing else and
        # advances no other recovery.
        self.only_hosts = only_hosts
        self.clock = clock or RealClock()
        self.election = Election(engine, holder, ttl=lease_ttl, clock=self.clock)
        self.workflow = Workflow(
            engine, self.election, agent, options=options,
            bucket=TokenBucket(evacuations_per_second, evacuations_per_second,
                               self.clock.monotonic),
            wake_scheduler=wake_scheduler, notify=notify)
        self.down_since: dict[str, float] = {}
        self.restarts = AgentRestarts(restart_agent)
        self.service_restart_timeout = service_restart_timeout
        self.verdicts: dict[str, policy.HostVerdict] = {}
        self.reliable_since: float | None = None
        self.last_decision: policy.Decision | None = None
        self._dry_run_logged: set[str] = set()
        self._last_brake: policy.Brake | None = None
        self._stop = threading.Event()
        self.ticks = 0

    # -- observing ----------------------------------------------------------------------------
    def observe(self) -> Observation:
        connected = self.group.session() is SessionState.CONNECTED
        try:
            members = self.group.members(COMPUTE_TOPIC)
            cared = {s.id for s in without_bare_metal(self.engine, members.records)}
            hosts = hosts_db.hosts(self.engine)
            sup = self.group.members(HOST_TOPIC)  # the supervisors: each host's own liveness
        except Unavailable as exc:
            LOG.warning("monitor: cannot read the compute services: %s", exc)
            return Observation(False, connected)
        mine = [m for m in members if m.record.id in cared]
        connected = connected and self.group.session() is SessionState.CONNECTED
        # Liveness without the forced_down override (``reporting``): whether each host really
        # reports. (A host this monitor forced down must be seen coming back.)
        return Observation(True, connected, {m.host: m.reporting for m in mine},
                           {m.host: m.record for m in mine}, hosts,
                           {m.host: m.reporting for m in sup})

    def decide(self, obs: Observation, now: float,
               open_hosts: set[str]) -> policy.Decision:
        reliable = (obs.database_ok and obs.driver_connected
                    and State.UNKNOWN not in obs.states.values())
        self.reliable_since = policy.next_reliable_since(self.reliable_since, reliable, now)
        self.down_since = policy.observe(self.down_since, obs.states, now)
        left = obs.left
        self.verdicts = {
            h: policy.host_decision(policy.HostFacts(
                s, obs.host_states.get(h), maintenance=h in obs.hosts and obs.hosts[h].maintenance,
                in_recovery=h in open_hosts, left=h in left,
                restart_requested_at=self.restarts.requested_at(h),
                failed_to_stop=self.restarts.failed_to_stop(h)),
                now=now, restart_timeout=self.service_restart_timeout)
            for h, s in obs.states.items()}
        # A DOWN agent on a live host is its supervisor's to restart: not a failed host, so
        # neither recovered nor counted by the mass-failure brake (an upgrade restarting every
        # agent at once is not a mass failure).
        hosts = {h: policy.HostView(s, self.down_since.get(h), h in open_hosts,
                                    maintenance=h in obs.hosts and obs.hosts[h].maintenance,
                                    left=h in left)
                 for h, s in obs.states.items()
                 if s is not State.DOWN or self.verdicts[h].action.hands_to_decide}
        health = policy.Health(obs.database_ok, obs.driver_connected, self.reliable_since)
        return policy.decide(hosts, health,
                             proves_death=self.group.driver.capabilities.proves_death,
                             now=now, policy=self.policy)

    # -- one pass -----------------------------------------------------------------------------
    def tick(self) -> policy.Decision:
        self.ticks += 1
        now = self.clock.monotonic()
        obs = self.observe()
        open_recs: list[RecoveryRecord] = []
        if obs.database_ok:
            try:
                open_recs = recoveries_db.recoveries(self.engine, open_only=True)
            except Unavailable as exc:
                LOG.warning("monitor: cannot read recoveries: %s", exc)
                obs = Observation(False, obs.driver_connected)
        decision = self.decide(obs, now, {r.host for r in open_recs})
        self.last_decision = decision
        self._log_brake(decision)
        if self.dry_run:
            self._dry_run(obs, decision)
            return decision
        if not obs.database_ok:
            return decision
        if self.election.try_acquire() is None:
            return decision
        try:
            self._lead(obs, decision, open_recs)
        except LeadershipLost as exc:
            self.election.step_down(str(exc))
        except Unavailable as exc:
            LOG.warning("monitor: pass interrupted: %s", exc)
        return decision

    def _lead(self, obs: Observation, decision: policy.Decision,
              open_recs: list[RecoveryRecord]) -> None:
        token = self.election.check()
        for brake, kind in ALERT_KINDS.items():
            if decision.brake is brake:
                alerts_db.alert_raise(self.engine, token, kind, decision.message)
            elif decision.brake is None or decision.brake in ALERT_KINDS:
                # Cleared only by a reliable view that no longer shows it.
                alerts_db.alert_clear(self.engine, token, kind)
        if self.only_hosts is not None:
            open_recs = [r for r in open_recs if r.host in self.only_hosts]
        else:
            self._supervised(obs)
        for host in decision.open:
            if self.only_hosts is not None and host not in self.only_hosts:
                continue
            svc = obs.services[host]
            verdict = self.verdicts.get(host)
            why = (f"; {verdict.reason}" if verdict is not None
                   and verdict.action is policy.HostAction.RECOVER else "")
            rec = recoveries_db.recovery_open(
                self.engine, self.election.check(), host=host, service_id=svc.id,
                trigger=Trigger.MONITOR, was_disabled=svc.disabled, was_forced_down=svc.forced_down,
                detail=f"compute service {svc.id} of {host} down for at least "
                f"{self.policy.detection_grace:g} s (monitor {self.election.holder}){why}")
            if rec is not None:
                LOG.warning("recovery %s opened for %s%s", rec.id, host, why)
                self.workflow.store.tell("vigil.recovery.opened", rec, why.lstrip("; ") or None)
                open_recs.append(rec)
                self._escalated(host, rec.id, why)
        slots = policy.fence_slots(recoveries_db.fences_since(self.engine, 60.0), self.policy)
        view_ok = decision.brake not in (policy.Brake.DATABASE, policy.Brake.DRIVER,
                                         policy.Brake.UNKNOWN)
        tick = Tick(states=obs.states, may_fence=decision.may_fence,
                    brake=decision.message or None, fence_slots=slots,
                    manual_may_fence=view_ok, hosts=obs.hosts, left=obs.left)
        for rec in open_recs:
            self.workflow.advance(rec, tick)

    # -- hosts with a supervisor --------------------------------------------------------------
    def _supervised(self, obs: Observation) -> None:
        """Act on the per-host verdicts that are not recoveries: ask supervisors to restart
        DOWN agents, record their answers, alert on a dead supervisor; every such decision is
        an alert (``vigil recovery list``), raised and cleared with what happened."""
        now = self.clock.monotonic()
        token = self.election.check()
        active = {a.kind for a in alerts_db.alerts(self.engine, active_only=True)}
        for host, verdict in self.verdicts.items():
            restart_kind = _alert_kind(AGENT_RESTART_ALERT, host)
            down_kind = _alert_kind(SUPERVISOR_DOWN_ALERT, host)
            action = verdict.action
            if action is policy.HostAction.RESTART_AGENT:
                LOG.warning("%s: %s", host, verdict.reason)
                self.restarts.request(host, now)
                alerts_db.alert_raise(self.engine, token, restart_kind,
                                      f"{host}: {verdict.reason}")
            elif obs.states.get(host) is State.UP and host in self.restarts.hosts():
                req = self.restarts.forget(host)
                if req is not None and restart_kind in active:
                    msg = (f"{host}: compute agent back {now - req.requested_at:.1f} s after "
                           f"its restart was requested (supervisor: "
                           f"{req.outcome.value if req.outcome else 'no answer'}); no fence")
                    LOG.warning("%s", msg)
                    alerts_db.alert_raise(self.engine, token, restart_kind, msg)
                    alerts_db.alert_clear(self.engine, token, restart_kind)
            elif obs.states.get(host) is State.UP and restart_kind in active:
                alerts_db.alert_clear(self.engine, token, restart_kind)
            if action is policy.HostAction.ALERT_SUPERVISOR:
                if down_kind not in active:
                    LOG.error("%s: %s", host, verdict.reason)
                alerts_db.alert_raise(self.engine, token, down_kind, f"{host}: {verdict.reason}")
            elif down_kind in active and obs.host_states.get(host) is State.UP:
                LOG.warning("%s: its supervisor reports again", host)
                alerts_db.alert_clear(self.engine, token, down_kind)
        for req in self.restarts.unreported():
            if self.restarts.get(req.host) is req:  # still waiting for that agent
                alerts_db.alert_raise(
                    self.engine, token, _alert_kind(AGENT_RESTART_ALERT, req.host),
                    f"{req.host}: restart of its compute agent requested; supervisor: "
                    f"{req.outcome.value if req.outcome else 'no answer'} ({req.detail})")

    def _escalated(self, host: str, recovery_id: int, why: str) -> None:
        """A recovery opened for a host whose agent this monitor asked to restart: the restart
        request and its answer go into the recovery's timeline, and the alert is closed."""
        req = self.restarts.forget(host)
        if req is None:
            return
        ago = self.clock.monotonic() - req.requested_at
        recoveries_db.recovery_note(
            self.engine, recovery_id, "agent_restart_escalated",
            f"restart of the compute agent requested {ago:.1f} s before; supervisor: "
            f"{req.outcome.value if req.outcome else 'no answer'} "
            f"({req.detail}){why}")
        kind = _alert_kind(AGENT_RESTART_ALERT, host)
        token = self.election.check()
        alerts_db.alert_raise(self.engine, token, kind,
                              f"{host}: escalated to recovery {recovery_id}{why}")
        alerts_db.alert_clear(self.engine, token, kind)

    def _log_brake(self, decision: policy.Decision) -> None:
        if decision.brake is not self._last_brake:
            if decision.brake is not None:
                LOG.warning("monitor: brake: %s", decision.message)
            elif self._last_brake is not None:
                LOG.info("monitor: brake released")
            self._last_brake = decision.brake

    def _dry_run(self, obs: Observation, decision: policy.Decision) -> None:
        for host in decision.open:
            if host in self._dry_run_logged:
                continue
            self._dry_run_logged.add(host)
            try:
                on_host = instances_db.instances(self.engine, host=host)
            except Unavailable:
                on_host = []
            move = [i.uuid for i in on_host if i.evacuable]
            LOG.warning("dry run: would recover %s: disable its compute service, fence it with "
                        "the %s agent, force it down, evacuate %d instance(s) %s, leave %d "
                        "non-evacuable", host, self.agent.name, len(move), move,
                        len(on_host) - len(move))
        self._dry_run_logged &= {h for h, s in obs.states.items() if s is State.DOWN}

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        if not self.dry_run:
            self.election.start()
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # the monitor must outlive a bug in one pass
                    LOG.exception("monitor: unexpected error in a pass")
                self.clock.wait(stop, self.poll_interval)
        finally:
            self.election.stop(release=True)

    def stop(self) -> None:
        self._stop.set()


def _alert_kind(prefix: str, host: str) -> str:
    return (prefix + host)[:64]  # the alerts' kind column


def describe(monitor: Monitor) -> dict[str, Any]:
    """A small status summary (logs, tests)."""
    d = monitor.last_decision
    return {"leader": monitor.election.is_leader(), "holder": monitor.election.holder,
            "brake": d.brake.value if d is not None and d.brake is not None else None,
            "down_since": dict(monitor.down_since), "ticks": monitor.ticks}
