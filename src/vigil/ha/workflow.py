"""The recovery of one failed host: disable, fence, force down, evacuate, re-enable.

Every step follows the same pattern, which is what makes a recovery exactly-once and
resumable by whichever monitor leads next:

1. decide from what is *recorded* (the recovery's phase and timeline) and what is observed
   *now* (:func:`vigil.ha.policy.next_step`);
2. check leadership on this monitor's clock (:meth:`Election.check`);
3. write the step's effect on the database together with its timeline entry, in one
   transaction guarded by the fencing token, as one named transition of
   :data:`vigil.ha.transitions.TRANSITIONS` (:class:`vigil.ha.store.RecoveryStore`): the table says
   from which phases it may run, what it writes and its dedup key (a step that must happen once
   carries one), and the guarded write checks it.

The one step outside the database is the fence. Its intent (``fence_started``, attempt N) is
recorded first, together with the host's **quarantine**: from that commit on, the host may
start no instance (every start is a statement conditional on the quarantine's absence, see
:mod:`vigil.db.ha.hosts`), so a host that boots again after the fence (a ``reboot`` action, a
BMC, an operator) cannot run a second copy of anything this recovery moves. Its outcome
(``fenced`` or ``fence_failed``) is recorded after. A leader that finds an
intent without outcome (its predecessor died mid-fence) asks the agent for the power state: OFF
is recorded as fenced without fencing again; anything else counts the attempt as failed and a
new one follows, under the same brakes. Instances are evacuated only in phase ``forced_down``,
which only follows ``fenced``: never unfenced; and only while this recovery holds the
quarantine, in the same transaction as each request. The quarantine is released when every
evacuation is over (phase ``evacuated``), or when the recovery is cancelled; an operator may
release it earlier (``vigil host release``): the host then owns what is still placed on it and
nothing more is taken from it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from vigil.compute import evacuation
from vigil.db import db_now
from vigil.db.compute import instances as instances_db
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import AlreadyRecorded, Conflict, FenceFailed
from vigil.ha import policy
from vigil.ha.election import Election
from vigil.ha.fence.base import FenceAgent, PowerState, fence_and_verify
from vigil.ha.policy import Step
from vigil.ha.store import RecoveryNotify, RecoveryStore
from vigil.ha.transitions import TRANSITIONS, Transition
from vigil.objects.compute import VmState
from vigil.objects.ha import (
    REASON_PREFIX,
    EvacuationRecord,
    EvacuationStatus,
    EventRecord,
    HostRecord,
    Phase,
    RecoveryRecord,
    Trigger,
)
from vigil.objects.liveness import State

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    fence_timeout: float = 60.0
    fence_retry_base: float = 5.0
    fence_retry_max: float = 300.0
    evacuation_retry: float = 10.0
    max_inflight_evacuations: int = 50


class TokenBucket:
    """Evacuation requests per second, on the monitor's monotonic clock."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._now = now
        self._tokens = self.burst
        self._at = now()

    def take(self) -> bool:
        t = self._now()
        self._tokens = min(self.burst, self._tokens + (t - self._at) * self.rate)
        self._at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class Tick:
    """What one pass of the monitor knows, shared by the recoveries it advances."""

    states: Mapping[str, State]          # liveness ignoring forced_down, by host
    may_fence: bool                       # no brake holds
    brake: str | None
    fence_slots: int                      # fences the rate brake still allows this pass
    manual_may_fence: bool = False        # an operator's request may pass judgement brakes
    hosts: Mapping[str, HostRecord] = field(default_factory=dict)  # quarantine, maintenance
    left: frozenset[str] = frozenset()    # hosts whose compute service left cleanly

    def host(self, name: str) -> HostRecord:
        return self.hosts.get(name) or HostRecord(name)


def fence_in_flight(rec: RecoveryRecord, events: list[EventRecord]) -> bool:
    """A fence attempt was started and neither its success nor its failure is recorded."""
    if rec.phase != Phase.DISABLED or rec.fence_attempts == 0:
        return False
    failed = TRANSITIONS[Transition.FENCE_FAILED].dedup_key(rec.id, attempt=rec.fence_attempts)
    return not any(e.dedup_key == failed for e in events)


class Workflow:
    """Advances recoveries; stateless between calls except for the rate limiter."""

    def __init__(self, engine: Engine, election: Election, agent: FenceAgent, *,
                 options: Options, bucket: TokenBucket,
                 wake_scheduler: Callable[[], None] = lambda: None,
                 notify: RecoveryNotify | None = None) -> None:
        self.engine = engine
        self.election = election
        self.agent = agent
        self.options = options
        self.bucket = bucket
        self.wake_scheduler = wake_scheduler
        self.store = RecoveryStore(engine, election.check, notify)
        self.fences_done = 0  # fence calls made by this process (tests, benchmarks)

    # -- the state machine --------------------------------------------------------------------
    def advance(self, rec: RecoveryRecord, tick: Tick) -> RecoveryRecord:
        """Run the steps of ``rec`` that can run now, until one has to wait."""
        for _ in range(len(Phase) + 2):
            if not rec.open:
                return rec
            state = tick.states.get(rec.host, State.UNKNOWN)
            events = (recoveries_db.events(self.engine, rec.id) if rec.phase == Phase.DISABLED
                      else [])
            may_fence = tick.may_fence or (rec.trigger is Trigger.MANUAL
                                           and tick.manual_may_fence)
            host = tick.host(rec.host)
            step = policy.next_step(
                phase=rec.phase, host_state=state,
                fence_in_flight=fence_in_flight(rec, events),
                may_fence=may_fence and tick.fence_slots > 0,
                retry_due=self._retry_due(rec),
                stand_down=self._stand_down(rec, tick) is not None,
                may_evacuate=self._may_evacuate(state, host))
            if step is Step.WAIT:
                try:
                    self._note_hold(rec, state, tick, may_fence)
                except (AlreadyRecorded, Conflict) as exc:
                    LOG.info("recovery %s (%s): %s", rec.id, rec.host, exc)
                return rec
            rec = self._run(step, rec, tick)
        return rec

    def _run(self, step: Step, rec: RecoveryRecord, tick: Tick) -> RecoveryRecord:
        """One step, as the named transitions of :data:`vigil.ha.transitions.TRANSITIONS` it takes.
        Another leader did it (or is past it): the recovery as it now is."""
        if step is Step.FENCE:
            tick.fence_slots -= 1
        actions: dict[Step, Callable[[RecoveryRecord], RecoveryRecord]] = {
            Step.CANCEL: lambda r: self.cancel(r, self._stand_down(r, tick)
                                               or "the host reports again; it was never fenced"),
            Step.DISABLE: self.disable,
            Step.RESOLVE_FENCE: self.resolve_fence,
            Step.FENCE: self.fence,
            Step.FORCE_DOWN: self.force_down,
            Step.EVACUATE: self.evacuate,
            Step.RE_ENABLE: self.re_enable,
        }
        try:
            return actions[step](rec)
        except (AlreadyRecorded, Conflict) as exc:
            # Another leader did (or is past) this step: read the recovery again.
            LOG.info("recovery %s (%s): %s; re-reading it", rec.id, rec.host, exc)
            return recoveries_db.recovery_get(self.engine, rec.id)

    def _stand_down(self, rec: RecoveryRecord, tick: Tick) -> str | None:
        """Why a recovery must stop before its fence (None: it need not): an operator released
        the host from quarantine; or, for a recovery the monitor opened (an operator's
        ``vigil host evacuate`` asked for this host explicitly), the host was put in
        maintenance or its compute service left cleanly.
        """
        if rec.phase not in (Phase.DETECTED, Phase.DISABLED):
            return None  # fenced: the recovery runs to its end
        host = tick.host(rec.host)
        if rec.fence_attempts:
            # Read now, not from the tick: this very pass may have quarantined the host.
            host = hosts_db.host_get(self.engine, rec.host)
        if rec.fence_attempts and not (host.quarantined
                                       and host.quarantine_recovery_id == rec.id):
            # Quarantined at the first fence attempt, and no longer: an operator released it.
            return (f"the host was released from quarantine by {host.released_by or '?'}"
                    + (f": {host.release_reason}" if host.release_reason else ""))
        if rec.trigger is Trigger.MANUAL:
            return None
        if host.maintenance:
            return (f"the host was put in maintenance by {host.maintenance_by or 'an operator'}"
                    + (f": {host.maintenance_reason}" if host.maintenance_reason else ""))
        if rec.host in tick.left:
            return "its compute service left its group cleanly (a graceful stop, not a failure)"
        return None

    @staticmethod
    def _may_evacuate(state: State, host: HostRecord) -> bool:
        """A fenced host that reports again must first confirm it runs nothing (its agent
        acknowledges the quarantine): a fence agent that said "off" wrongly (a wrong plug, a
        BMC that lies) must not lead to two copies. A silent host is trusted to the fence."""
        return state is not State.UP or not host.quarantined or host.quarantine_acked

    def _retry_due(self, rec: RecoveryRecord) -> bool:
        if rec.next_attempt_at is None:
            return True
        return db_now(self.engine) >= rec.next_attempt_at

    def _note_hold(self, rec: RecoveryRecord, state: State, tick: Tick, may_fence: bool) -> None:
        """Record why a recovery waiting to be fenced or to evacuate is held (visible in the
        API/CLI)."""
        if rec.phase == Phase.FORCED_DOWN:
            reason = ("evacuation held: the host reports again; waiting for its agent to "
                      "confirm that it stopped its instances (quarantine acknowledged)")
            if rec.held_reason != reason:
                self.store.hold(rec, reason)
            return
        if rec.phase != Phase.DISABLED:
            return
        if not may_fence:
            reason = f"fencing held: {tick.brake}"
        elif tick.fence_slots <= 0:
            reason = "fencing held: max_fences_per_minute reached"
        elif state is not State.DOWN:
            reason = f"fencing held: host is {state.value}"
        else:
            return
        if rec.held_reason != reason:
            self.store.hold(rec, reason)

    # -- steps --------------------------------------------------------------------------------
    def disable(self, rec: RecoveryRecord) -> RecoveryRecord:
        since = rec.created_at.isoformat(timespec="seconds")
        reason = f"{REASON_PREFIX} host down since {since} (recovery {rec.uuid})"
        LOG.info("recovery %s: disabling the compute service of %s", rec.id, rec.host)
        return self.store.disable(rec, reason)

    def cancel(self, rec: RecoveryRecord, why: str) -> RecoveryRecord:
        LOG.warning("recovery %s of %s cancelled before any fence: %s", rec.id, rec.host, why)
        return self.store.cancel(rec, why)

    def fence(self, rec: RecoveryRecord) -> RecoveryRecord:
        attempt = rec.fence_attempts + 1
        rec = self.store.fence_started(rec, attempt, self.agent.name,
                                       quarantine=f"fence decided by recovery {rec.id} "
                                       f"({rec.uuid})")
        LOG.warning("recovery %s: fencing %s (attempt %d, %s agent)", rec.id, rec.host,
                    attempt, self.agent.name)
        self.election.check()
        self.fences_done += 1
        try:
            result = fence_and_verify(self.agent, rec.host, timeout=self.options.fence_timeout,
                                      cancel=self.election.lost)
        except FenceFailed as exc:
            wait = policy.backoff(attempt, base=self.options.fence_retry_base,
                                  cap=self.options.fence_retry_max)
            LOG.error("recovery %s: fencing %s failed (attempt %d), retry in %g s: %s", rec.id,
                      rec.host, attempt, wait, exc)
            return self.store.fence_failed(rec, attempt,
                                           error=f"fence attempt {attempt} failed: {exc}",
                                           detail=str(exc), retry_after=wait)
        LOG.warning("recovery %s: %s fenced: %s", rec.id, rec.host, result.detail)
        return self.store.fenced(rec, result.detail)

    def resolve_fence(self, rec: RecoveryRecord) -> RecoveryRecord:
        """A predecessor started fence attempt N and never recorded its end."""
        attempt = rec.fence_attempts
        state = self.agent.status(rec.host, timeout=self.options.fence_timeout)
        if state is PowerState.OFF:
            LOG.warning("recovery %s: fence attempt %d of %s was interrupted; the host reads "
                        "powered off: not fencing again", rec.id, attempt, rec.host)
            return self.store.fenced(
                rec, f"attempt {attempt} was interrupted by a change of leader; the "
                f"{self.agent.name} agent reads the host powered off, so it was not fenced "
                "again")
        LOG.warning("recovery %s: fence attempt %d of %s was interrupted and the power state "
                    "reads %s: fencing again", rec.id, attempt, rec.host, state.value)
        return self.store.fence_failed(
            rec, attempt, error=f"fence attempt {attempt} interrupted (power {state.value})",
            detail=f"attempt {attempt} was interrupted by a change of leader and the power "
            f"state reads {state.value}", retry_after=0.0)

    def force_down(self, rec: RecoveryRecord) -> RecoveryRecord:
        LOG.info("recovery %s: forcing %s down", rec.id, rec.host)
        return self.store.force_down(rec)

    def evacuate(self, rec: RecoveryRecord) -> RecoveryRecord:
        """Track requested evacuations, request new ones (rate-limited), finish when none is
        left. An instance stays this recovery's until its row is terminal. Once an operator
        released the host from quarantine, nothing more is requested: what was not yet handed
        to the scheduler stays on the host, which owns it again."""
        if rec.held_reason is not None:  # the host confirmed its quarantine: not held now
            rec = self.store.hold(rec, None)
        rows = {r.instance_uuid: r for r in evacuations_db.evacuations(self.engine, rec.id)}
        self._track(rec, [r for r in rows.values() if r.status == EvacuationStatus.REQUESTED])
        rows = {r.instance_uuid: r for r in evacuations_db.evacuations(self.engine, rec.id)}
        on_host = instances_db.instances(self.engine, host=rec.host)
        move, stay = policy.evacuation_order((i.uuid, i.evacuable) for i in on_host)
        generation = {i.uuid: i.generation for i in on_host}
        for uuid in stay:
            if uuid not in rows:
                self._not_evacuated(rec, uuid, "the instance is not evacuable "
                                    "(evacuable=false): left on its host")
        host = hosts_db.host_get(self.engine, rec.host)
        if not (host.quarantined and host.quarantine_recovery_id == rec.id):
            released = (f"the host was released from quarantine by {host.released_by or '?'}"
                        + (f" ({host.release_reason})" if host.release_reason else "")
                        + ": left on its host")
            for uuid in move:
                if uuid not in rows:
                    self._not_evacuated(rec, uuid, released)
            move = [u for u in move if u in rows]
        inflight = sum(1 for r in rows.values() if r.status == EvacuationStatus.REQUESTED)
        now = db_now(self.engine)
        requested = 0
        for uuid in move:
            row = rows.get(uuid)
            if row is not None and (row.status != EvacuationStatus.RETRY or (
                    row.next_attempt_at is not None and row.next_attempt_at > now)):
                continue
            if inflight >= self.options.max_inflight_evacuations or not self.bucket.take():
                break
            why = evacuations_db.evacuation_request(
                self.engine, self.election.check(), rec.id, uuid, rec.host, generation.get(uuid),
                task_states=evacuation.AFTER_FENCE.task_states,
                vm_states=evacuation.AFTER_FENCE.vm_states)
            if why is None:
                inflight += 1
                requested += 1
            else:
                LOG.info("recovery %s: not evacuating %s now: %s", rec.id, uuid, why)
        if requested:
            LOG.info("recovery %s: %d instance(s) of %s handed to the scheduler", rec.id,
                     requested, rec.host)
            self.wake_scheduler()
        rows = {r.instance_uuid: r for r in evacuations_db.evacuations(self.engine, rec.id)}
        pending_rows = [r for r in rows.values() if not r.status.finished]
        pending_new = [u for u in move if u not in rows]
        if pending_rows or pending_new or requested:
            return rec
        done = sum(1 for r in rows.values() if r.status == EvacuationStatus.DONE)
        failed = sum(1 for r in rows.values() if r.status == EvacuationStatus.FAILED)
        return self.store.evacuated(
            rec, f"{done} evacuated, {failed} failed, {len(stay)} not evacuable")

    def _track(self, rec: RecoveryRecord, requested: list[EvacuationRecord]) -> None:
        if not requested:
            return
        current = {i.uuid: i for i in
                   instances_db.instances(self.engine, uuids=[r.instance_uuid for r in requested])}
        for row in requested:
            inst = current.get(row.instance_uuid)
            uuid = row.instance_uuid
            token = self.election.check()
            expect = [EvacuationStatus.REQUESTED]
            if inst is None:
                evacuations_db.evacuation_update(self.engine, token, rec.id, uuid, expect=expect,
                                                 status=EvacuationStatus.GONE,
                                                 detail="deleted meanwhile")
            elif inst.host is not None and inst.host != rec.host:
                if inst.task_state is not None:
                    continue  # being rebuilt on its new host
                if inst.vm_state == VmState.ACTIVE:
                    if evacuations_db.evacuation_update(
                            self.engine, token, rec.id, uuid, expect=expect,
                            status=EvacuationStatus.DONE, target_host=inst.host,
                            event="instance_evacuated", detail=f"active on {inst.host}",
                            dedup_key=f"{rec.id}:evacuated:{uuid}"):
                        LOG.info("recovery %s: instance %s is active on %s", rec.id, uuid,
                                 inst.host)
                else:
                    evacuations_db.evacuation_update(
                        self.engine, token, rec.id, uuid, expect=expect,
                        status=EvacuationStatus.FAILED, target_host=inst.host,
                        event="evacuation_failed", detail=inst.fault or inst.vm_state,
                        dedup_key=f"{rec.id}:evacuation_failed:{uuid}")
            elif inst.host is None:
                if inst.task_state is None:
                    evacuations_db.evacuation_update(
                        self.engine, token, rec.id, uuid, expect=expect,
                        status=EvacuationStatus.FAILED, event="evacuation_failed",
                        detail=inst.fault or "the rebuild failed",
                        dedup_key=f"{rec.id}:evacuation_failed:{uuid}")
            elif inst.task_state is None:
                # Still on the failed host and idle again: the scheduler found no valid host
                # (or cancelled). Recorded and asked again later, never dropped.
                fault = inst.fault or "the scheduler gave it back"
                LOG.warning("recovery %s: evacuation of %s did not find a host (%s); retrying "
                            "in %g s", rec.id, uuid, fault, self.options.evacuation_retry)
                evacuations_db.evacuation_update(
                    self.engine, token, rec.id, uuid, expect=expect, status=EvacuationStatus.RETRY,
                    detail=fault, retry_after=self.options.evacuation_retry,
                    event="evacuation_retry", dedup_key=f"{rec.id}:retry:{uuid}:{row.attempts}")

    def _not_evacuated(self, rec: RecoveryRecord, uuid: str, detail: str) -> None:
        with contextlib.suppress(AlreadyRecorded):
            self.store.not_evacuated(rec, uuid, detail)

    def re_enable(self, rec: RecoveryRecord) -> RecoveryRecord:
        LOG.warning("recovery %s: %s reports again and its evacuations are over: clearing "
                    "forced_down and re-enabling it", rec.id, rec.host)
        done = self.store.re_enable(rec)
        self.agent.release(rec.host)
        return done
