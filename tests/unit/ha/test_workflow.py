"""The recovery's named transitions (vigil.ha.transitions.TRANSITIONS, vigil.ha.store.RecoveryStore)
on real databases.

The expected table below is written out by hand, apart from the code's: every transition it
lists must be accepted from its phase and land where it says; every other (phase, open,
transition) must be refused with IllegalTransition and write nothing at all (recovery row,
timeline, service, quarantine), both when the caller asks from the phase it read and when a
stale caller's request reaches the guarded write.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.engine import Engine

from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.db.ha_models import Recovery
from vigil.errors import IllegalTransition
from vigil.ha import transitions
from vigil.ha.store import RecoveryStore
from vigil.ha.transitions import TRANSITIONS, Transition
from vigil.objects.ha import LeaderToken, Phase, RecoveryRecord, RecoveryStatus, Trigger

T = Transition
P = Phase

# phase -> {allowed transition: phase after it}. A closed recovery allows nothing.
EXPECTED: dict[Phase, dict[Transition, Phase]] = {
    P.DETECTED: {T.DISABLE: P.DISABLED, T.CANCEL: P.DETECTED},
    P.DISABLED: {T.CANCEL: P.DISABLED, T.FENCE_STARTED: P.DISABLED,
                 T.FENCE_FAILED: P.DISABLED, T.FENCED: P.FENCED, T.HOLD: P.DISABLED},
    P.FENCED: {T.FORCE_DOWN: P.FORCED_DOWN},
    P.FORCED_DOWN: {T.HOLD: P.FORCED_DOWN, T.NOT_EVACUATED: P.FORCED_DOWN,
                    T.EVACUATED: P.EVACUATED},
    P.EVACUATED: {T.RE_ENABLE: P.COMPLETED},
    P.COMPLETED: {},
}
CLOSES = {T.CANCEL: RecoveryStatus.CANCELLED, T.RE_ENABLE: RecoveryStatus.DONE}
# The status a recovery has in each phase while open (EVACUATED waits for the host).
OPEN_STATUS = {P.EVACUATED: RecoveryStatus.WAITING}

_n = itertools.count()


def call(store: RecoveryStore, rec: RecoveryRecord, step: Transition) -> RecoveryRecord:
    """Each named method, with arguments that make its dedup key new."""
    calls: dict[Transition, Callable[[], RecoveryRecord]] = {
        T.DISABLE: lambda: store.disable(rec, "down"),
        T.CANCEL: lambda: store.cancel(rec, "it reports again"),
        T.FENCE_STARTED: lambda: store.fence_started(rec, rec.fence_attempts + 1, "process",
                                                     quarantine="fence decided"),
        T.FENCE_FAILED: lambda: store.fence_failed(rec, next(_n), error="e", detail="d",
                                                   retry_after=5.0),
        T.FENCED: lambda: store.fenced(rec, "power off verified"),
        T.FORCE_DOWN: lambda: store.force_down(rec),
        T.HOLD: lambda: store.hold(rec, "fencing held: a brake"),
        T.NOT_EVACUATED: lambda: store.not_evacuated(rec, f"uuid-{next(_n)}", "stays"),
        T.EVACUATED: lambda: store.evacuated(rec, "0 evacuated"),
        T.RE_ENABLE: lambda: store.re_enable(rec),
    }
    assert set(calls) == set(Transition)
    return calls[step]()


def _open(engine: Engine, token: LeaderToken, phase: Phase, *, is_open: bool) -> RecoveryRecord:
    """A recovery of a new host, put in ``phase`` (open or closed) directly."""
    host = f"h{next(_n)}"
    svc, _ = services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
    rec = recoveries_db.recovery_open(engine, token, host=host, service_id=svc.id,
                                      trigger=Trigger.MONITOR, was_disabled=False,
                                      was_forced_down=False, detail="test")
    assert rec is not None
    hosts_db.ensure(engine, host)  # as the first fence does: the world compared is stable
    values: dict[str, Any] = {"phase": phase,
                              "status": OPEN_STATUS.get(phase, RecoveryStatus.ACTIVE)}
    if not is_open:
        values.update(active_host=None, status=RecoveryStatus.DONE)
    with engine.begin() as conn:
        conn.execute(update(Recovery).where(Recovery.id == rec.id).values(**values))
    return recoveries_db.recovery_get(engine, rec.id)


def _world(engine: Engine, rec: RecoveryRecord) -> tuple[Any, ...]:
    """Everything a transition may write."""
    svc = services_db.service_get(engine, rec.service_id)
    return (recoveries_db.recovery_get(engine, rec.id),
            recoveries_db.events(engine, rec.id),
            (svc.disabled, svc.disabled_reason, svc.forced_down),
            hosts_db.host_get(engine, rec.host))


def test_the_table_is_the_expected_one() -> None:
    for phase in Phase:
        assert transitions.allowed(phase) == set(EXPECTED[phase]), phase
        assert transitions.allowed(phase, open=False) == frozenset()
        for step, after in EXPECTED[phase].items():
            rule = TRANSITIONS[step]
            assert (rule.target or phase) == after
            assert rule.closes == (step in CLOSES)
            assert rule.status == CLOSES.get(step, OPEN_STATUS.get(after))
    # Phases only move forward.
    for step, rule in TRANSITIONS.items():
        if rule.target is not None:
            assert all(rule.target.rank > src.rank for src in rule.sources), step


def test_every_listed_transition_is_accepted_and_every_other_refused(
        any_engine: Engine) -> None:
    token = lease_db.lease_acquire(any_engine, "L", "m1", ttl=60)
    assert token is not None
    store = RecoveryStore(any_engine, lambda: token)
    for phase, is_open, step in itertools.product(Phase, (True, False), Transition):
        case = f"{step.name} from {phase.value} ({'open' if is_open else 'closed'})"
        rec = _open(any_engine, token, phase, is_open=is_open)
        before = _world(any_engine, rec)
        if is_open and step in EXPECTED[phase]:
            done = call(store, rec, step)
            assert done.phase == EXPECTED[phase][step], case
            assert done.open == (step not in CLOSES), case
            assert done.status == CLOSES.get(step, OPEN_STATUS.get(done.phase,
                                                                  RecoveryStatus.ACTIVE)), case
            assert done.epoch == token.epoch, case
            last = recoveries_db.events(any_engine, rec.id)[-1]
            if step.value is None:
                assert len(recoveries_db.events(any_engine, rec.id)) == len(before[1]), case
            else:
                kinds = [e.kind for e in recoveries_db.events(any_engine, rec.id)]
                assert step.value in kinds[len(before[1]):], case
                mine = [e for e in recoveries_db.events(any_engine, rec.id)
                        if e.kind == step.value][-1]
                assert mine.dedup_key is not None and mine.dedup_key.startswith(f"{rec.id}:")
            assert last.epoch == token.epoch or step.value is None, case
            continue
        with pytest.raises(IllegalTransition):
            call(store, rec, step)
        # A stale caller who believes the recovery is in a phase that allows the step: the
        # guarded write reads the row and refuses it all the same.
        believed = next((p for p in Phase if step in EXPECTED[p]), None)
        if believed is not None and believed != phase:
            with pytest.raises(IllegalTransition):
                call(store, dataclasses.replace(rec, phase=believed, active_host=rec.host),
                     step)
        # And the table's sources are checked inside the transaction, not only by the store.
        with pytest.raises(IllegalTransition):
            recoveries_db.apply_transition(any_engine, token, rec.id, name=step.name,
                                           sources=TRANSITIONS[step].sources,
                                           expect_phase=phase, event=step.value)
        assert _world(any_engine, rec) == before, case


def test_the_phase_a_caller_read_must_still_hold(sqlite_engine: Engine) -> None:
    """Two callers read DISABLED; the first fences; the second's FENCED, FENCE_FAILED and HOLD
    (all allowed from DISABLED) are refused: it must re-read."""
    token = lease_db.lease_acquire(sqlite_engine, "L", "m1", ttl=60)
    assert token is not None
    store = RecoveryStore(sqlite_engine, lambda: token)
    rec = _open(sqlite_engine, token, Phase.DISABLED, is_open=True)
    store.fenced(rec, "off")
    for step in (T.FENCED, T.FENCE_FAILED, T.HOLD, T.CANCEL):
        with pytest.raises(IllegalTransition):
            call(store, rec, step)
    assert [e.kind for e in recoveries_db.events(sqlite_engine, rec.id)] == ["detected",
                                                                             "fenced"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(list(Transition)), min_size=1, max_size=12))
def test_any_sequence_follows_the_table(sqlite_engine: Engine,
                                        steps: list[Transition]) -> None:
    """Whatever order steps are asked in, the database ends where the hand-written table
    says, and every refusal left it as it was."""
    token = lease_db.lease_acquire(sqlite_engine, "L", "m1", ttl=60) or LeaderToken(
        "L", "m1", lease_db.lease_get(sqlite_engine, "L").epoch)  # type: ignore[union-attr]
    store = RecoveryStore(sqlite_engine, lambda: token)
    rec = _open(sqlite_engine, token, Phase.DETECTED, is_open=True)
    phase, is_open = Phase.DETECTED, True
    for step in steps:
        if is_open and step in EXPECTED[phase]:
            rec = call(store, rec, step)
            phase, is_open = EXPECTED[phase][step], step not in CLOSES
        else:
            before = _world(sqlite_engine, rec)
            with pytest.raises(IllegalTransition):
                call(store, rec, step)
            assert _world(sqlite_engine, rec) == before
        assert (rec.phase, rec.open) == (phase, is_open)
    assert recoveries_db.recovery_get(sqlite_engine, rec.id) == rec


def test_each_committed_step_is_told_once_and_a_refused_one_never(sqlite_engine: Engine) -> None:
    """The notifications' source: every step with an event is told after it committed, with
    the recovery as it is after the step; the host's return adds ``completed``; a refused step
    tells nothing; a notify that raises does not stop the step."""
    token = lease_db.lease_acquire(sqlite_engine, "L", "m1", ttl=60)
    assert token is not None
    told: list[tuple[str, Phase, RecoveryStatus, str | None]] = []

    def notify(event: str, rec: RecoveryRecord, detail: str | None) -> None:
        told.append((event, rec.phase, rec.status, detail))

    store = RecoveryStore(sqlite_engine, lambda: token, notify)
    rec = _open(sqlite_engine, token, Phase.DETECTED, is_open=True)
    for step in (T.DISABLE, T.FENCE_STARTED, T.HOLD, T.FENCED, T.FORCE_DOWN, T.EVACUATED,
                 T.RE_ENABLE):
        rec = call(store, rec, step)
    assert [e for e, *_ in told] == [
        "vigil.recovery.disabled", "vigil.recovery.fence_started", "vigil.recovery.fenced",
        "vigil.recovery.forced_down", "vigil.recovery.evacuated", "vigil.recovery.re_enabled",
        "vigil.recovery.completed"]
    assert told[2][1:3] == (Phase.FENCED, RecoveryStatus.ACTIVE)
    assert told[2][3] == "power off verified"
    assert told[-1][1:3] == (Phase.COMPLETED, RecoveryStatus.DONE)

    told.clear()
    with pytest.raises(IllegalTransition):
        store.fenced(rec, "again")  # closed: refused before any write
    assert told == []

    def broken(event: str, rec: RecoveryRecord, detail: str | None) -> None:
        raise OSError("broker gone")

    other = _open(sqlite_engine, token, Phase.DETECTED, is_open=True)
    after = RecoveryStore(sqlite_engine, lambda: token, broken).disable(other, "down")
    assert after.phase is Phase.DISABLED
