"""The leader's writes to a recovery: one method per named transition of
:data:`vigil.ha.transitions.TRANSITIONS`.

The table says what a transition may write (from which phases, to which phase and status,
which event, which dedup key); :func:`vigil.db.ha.recoveries.apply_transition` writes it in
one transaction that begins with the fencing-token guard and checks the table's source phases
on the row it guards. So the workflow names steps (``store.fenced(rec, detail)``) and spells
no phase, status, event or key, and a step asked out of order writes nothing.

It sits in ``ha/`` rather than ``db/`` because the table is HA policy and ``db`` stands below
``ha`` (docs/architecture.md, "Layers"): persistence enforces the sources it is given and knows
no table.

Each committed step is also told to ``notify`` as ``vigil.recovery.<event>`` (and
``vigil.recovery.completed`` when the host is back), for the versioned notifications; an
operator's request is told as ``vigil.recovery.opened`` when its first step is written (the
monitor tells its own openings).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.ha import transitions
from vigil.ha.transitions import Transition
from vigil.objects.ha import LeaderToken, RecoveryRecord, RecoveryStatus, Trigger

LOG = logging.getLogger(__name__)

RecoveryNotify = Callable[[str, RecoveryRecord, str | None], None]
"""Told ``(event_type, recovery after the step, detail)`` after each committed step
(:meth:`vigil.notifications.Notifier.recovery_changed`)."""


class RecoveryStore:
    """The leader's writes to a recovery, one method per named transition of
    :data:`vigil.ha.transitions.TRANSITIONS`.

    Each method is one transaction that starts with the fencing-token guard and then checks,
    on the row it guards, that the recovery is still open, still in the phase the caller read
    (``rec.phase``), and that the table allows the transition from it; the phase, status,
    event and dedup key all come from the table, so no caller spells them. Refusals:
    :class:`~vigil.errors.IllegalTransition` (the table forbids it, or the recovery moved on:
    re-read), :class:`~vigil.errors.AlreadyRecorded` (the step's dedup key is recorded: it was
    done), :class:`~vigil.errors.LeadershipLost`. A refused transition writes nothing.

    ``token`` is called once per write, just before it (the monitor passes
    :meth:`vigil.ha.election.Election.check`, which also stops a leader whose lease ran out on
    its own clock).
    """

    def __init__(self, engine: Engine, token: Callable[[], LeaderToken],
                 notify: RecoveryNotify | None = None) -> None:
        self.engine = engine
        self.token = token
        self.notify = notify

    def tell(self, event_type: str, rec: RecoveryRecord, detail: str | None) -> None:
        """Notify ``event_type`` of ``rec`` (after the write committed). A notification that
        cannot be sent is logged and dropped: it must never stop a recovery."""
        if self.notify is None:
            return
        try:
            self.notify(event_type, rec, detail)
        except Exception as exc:  # the broker, a serializer: whatever it is, carry on
            LOG.warning("notification %s of recovery %s not sent: %s", event_type, rec.id, exc)

    def disable(self, rec: RecoveryRecord, reason: str) -> RecoveryRecord:
        """Disable the host's compute service with ``reason`` (unless an operator had)."""
        service = None if rec.was_disabled else {"disabled": True,
                                                 "disabled_reason": reason[:255]}
        return self._write(rec, Transition.DISABLE, service=service,
                           detail=reason if service else
                           "already disabled by an operator; left as it was")

    def cancel(self, rec: RecoveryRecord, why: str) -> RecoveryRecord:
        """Close an unfenced recovery: re-enable what the monitor disabled, end its
        quarantine."""
        return self._write(rec, Transition.CANCEL, values={"held_reason": None}, detail=why,
                           enable_service=not rec.was_disabled,
                           release=("monitor", f"recovery cancelled: {why}"))

    def fence_started(self, rec: RecoveryRecord, attempt: int, agent: str,
                      quarantine: str) -> RecoveryRecord:
        """The intent of fence attempt ``attempt``, recorded before the fence runs, with the
        host's quarantine (so a host that boots again starts nothing)."""
        transitions.transition(rec.phase, Transition.FENCE_STARTED, open=rec.open)
        hosts_db.ensure(self.engine, rec.host)  # the quarantine updates it, never inserts
        return self._write(rec, Transition.FENCE_STARTED, attempt=attempt,
                           values={"fence_attempts": attempt, "fence_agent": agent,
                                   "held_reason": None},
                           detail=f"attempt {attempt} with the {agent} agent",
                           quarantine=quarantine)

    def fence_failed(self, rec: RecoveryRecord, attempt: int, *, error: str, detail: str,
                     retry_after: float) -> RecoveryRecord:
        """Attempt ``attempt`` failed (or was interrupted): the next one after ``retry_after``
        seconds of the database's clock."""
        return self._write(rec, Transition.FENCE_FAILED, attempt=attempt,
                           values={"last_error": error}, retry_after=retry_after,
                           detail=detail)

    def fenced(self, rec: RecoveryRecord, detail: str) -> RecoveryRecord:
        return self._write(rec, Transition.FENCED, detail=detail,
                           values={"last_error": None, "next_attempt_at": None})

    def force_down(self, rec: RecoveryRecord) -> RecoveryRecord:
        return self._write(rec, Transition.FORCE_DOWN,
                           service=None if rec.was_forced_down else {"forced_down": True})

    def hold(self, rec: RecoveryRecord, reason: str | None) -> RecoveryRecord:
        """Record why the recovery waits (None: it no longer does), for the API and CLI."""
        return self._write(rec, Transition.HOLD, values={"held_reason": reason})

    def not_evacuated(self, rec: RecoveryRecord, instance_uuid: str,
                      detail: str) -> RecoveryRecord:
        """An instance left on the host (not evacuable, or the host was released): once per
        instance."""
        return self._write(rec, Transition.NOT_EVACUATED, instance=instance_uuid,
                           detail=detail)

    def evacuated(self, rec: RecoveryRecord, detail: str) -> RecoveryRecord:
        """Every evacuation is over: end the quarantine, wait for the host to return."""
        return self._write(rec, Transition.EVACUATED, values={"held_reason": None},
                           detail=detail,
                           release=("monitor", "every evacuation of the recovery is over"))

    def re_enable(self, rec: RecoveryRecord) -> RecoveryRecord:
        """The host is back: clear forced_down and re-enable it (only what the monitor
        changed), close the recovery."""
        return self._write(
            rec, Transition.RE_ENABLE,
            service=None if rec.was_forced_down else {"forced_down": False},
            enable_service=not rec.was_disabled,
            detail="the host reports again; stale copies are destroyed by its agent")

    def _request_detail(self, rec: RecoveryRecord) -> str | None:
        """Who asked, as the request's ``detected`` event recorded it."""
        if self.notify is None:
            return None
        found = [e.detail for e in recoveries_db.events(self.engine, rec.id)
                 if e.kind == "detected"]
        return found[0] if found else None

    def _write(self, rec: RecoveryRecord, step: Transition, *,
               values: dict[str, Any] | None = None, detail: str | None = None,
               attempt: int | None = None, instance: str | None = None,
               retry_after: float | None = None, service: dict[str, Any] | None = None,
               enable_service: bool = False, quarantine: str | None = None,
               release: tuple[str, str] | None = None) -> RecoveryRecord:
        rule = transitions.transition(rec.phase, step, open=rec.open)  # refused before any write
        values = dict(values or {})
        if rule.target is not None:
            values["phase"] = rule.target
        if rule.status is not None:
            values["status"] = rule.status
        after = recoveries_db.apply_transition(
            self.engine, self.token(), rec.id, name=step.name.lower(), sources=rule.sources,
            expect_phase=rec.phase, values=values, event=step.value, detail=detail,
            dedup_key=rule.dedup_key(rec.id, attempt=attempt, instance=instance),
            instance_uuid=instance, retry_after=retry_after, finish=rule.closes,
            service=service, enable_service=enable_service, quarantine=quarantine,
            release=release)
        if step is Transition.DISABLE and rec.trigger is Trigger.MANUAL:
            # An operator's request is written by the API or the CLI, which send nothing: the
            # leader announces it when it takes it up (its first step, written once), so that
            # every recovery, monitor's or operator's, is heard opening exactly once.
            self.tell("vigil.recovery.opened", rec, self._request_detail(rec))
        if step.value is not None:
            self.tell(f"vigil.recovery.{step.value}", after, detail)
        if rule.closes and after.status is RecoveryStatus.DONE:
            self.tell("vigil.recovery.completed", after, None)
        return after
