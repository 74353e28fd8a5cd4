"""Recoveries and their timeline: opening one, the leader's guarded transitions
(:class:`RecoveryStore`), the operator's requests and notes, and the reads the monitor, the API
and the CLI make.

Every write of the leader is guarded by its fencing token (:func:`vigil.db.ha.lease.guard`)
and is one named transition of :data:`vigil.ha.transitions.TRANSITIONS`, checked against the table
in the same transaction. Steps that must happen once are recorded with a ``dedup_key``
(unique): recording one twice raises :class:`~vigil.errors.AlreadyRecorded` instead of writing
a second row.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import by_id_or_uuid, clip, cols_of, now_in, translate_errors
from vigil.db.ha import hosts
from vigil.db.ha.lease import guard
from vigil.db.ha_models import Recovery, RecoveryEvent
from vigil.db.models import Service
from vigil.db.types import utcnow
from vigil.errors import AlreadyRecorded, Conflict, IllegalTransition, NotFound
from vigil.objects.ha import (
    REASON_PREFIX,
    EventRecord,
    LeaderToken,
    Phase,
    RecoveryRecord,
    RecoveryStatus,
    Trigger,
)

RECOVERY_COLS = cols_of(Recovery, RecoveryRecord)
EVENT_COLS = cols_of(RecoveryEvent, EventRecord)


def _recovery(row: Any) -> RecoveryRecord:
    values = row._asdict()
    values["was_disabled"] = bool(values["was_disabled"])
    values["was_forced_down"] = bool(values["was_forced_down"])
    values["trigger"] = Trigger(values["trigger"])
    values["phase"] = Phase(values["phase"])
    values["status"] = RecoveryStatus(values["status"])
    return RecoveryRecord(**values)


def record_event(conn: Connection, token: LeaderToken, recovery_id: int, kind: str, *,
                 detail: str | None = None, dedup_key: str | None = None,
                 instance_uuid: str | None = None) -> None:
    """One line of a recovery's timeline, in the caller's transaction (guarded by ``token``,
    whose epoch it records); a ``dedup_key`` already recorded fails the transaction."""
    conn.execute(insert(RecoveryEvent).values(
        recovery_id=recovery_id, kind=kind, detail=clip(detail), dedup_key=dedup_key,
        instance_uuid=instance_uuid, epoch=token.epoch, created_at=utcnow()))


def _get(conn: Connection, recovery_id: int) -> RecoveryRecord:
    row = conn.execute(select(*RECOVERY_COLS).where(Recovery.id == recovery_id)).first()
    if row is None:
        raise NotFound(f"recovery {recovery_id} not found")
    return _recovery(row)


@translate_errors
def recovery_open(engine: Engine, token: LeaderToken, *, host: str, service_id: int,
                  trigger: Trigger, was_disabled: bool, was_forced_down: bool,
                  detail: str) -> RecoveryRecord | None:
    """Open a recovery of ``host`` with its ``detected`` event; None if one is open already."""
    try:
        with engine.begin() as conn:
            guard(conn, token)
            result = conn.execute(insert(Recovery).values(
                uuid=str(uuidlib.uuid4()), host=host, active_host=host, service_id=service_id,
                trigger=trigger, phase=Phase.DETECTED, status=RecoveryStatus.ACTIVE,
                was_disabled=was_disabled,
                was_forced_down=was_forced_down, fence_attempts=0, epoch=token.epoch,
                created_at=utcnow(), updated_at=utcnow()))
            recovery_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            record_event(conn, token, recovery_id, Phase.DETECTED, detail=detail,
                         dedup_key=f"{recovery_id}:{Phase.DETECTED}")
            return _get(conn, recovery_id)
    except IntegrityError:
        return None


@translate_errors
def recovery_request(engine: Engine, *, host: str, service_id: int, was_disabled: bool,
                     was_forced_down: bool, detail: str) -> RecoveryRecord:
    """An operator's request (``vigil host evacuate``): an open recovery the leader will run.

    Not guarded: it decides nothing, it asks. The leader's guarded steps do the work. An open
    recovery of the host is returned as it is.
    """
    try:
        with engine.begin() as conn:
            result = conn.execute(insert(Recovery).values(
                uuid=str(uuidlib.uuid4()), host=host, active_host=host, service_id=service_id,
                trigger=Trigger.MANUAL, phase=Phase.DETECTED, status=RecoveryStatus.ACTIVE,
                was_disabled=was_disabled,
                was_forced_down=was_forced_down, fence_attempts=0, epoch=0,
                created_at=utcnow(), updated_at=utcnow()))
            recovery_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            conn.execute(insert(RecoveryEvent).values(
                recovery_id=recovery_id, kind=Phase.DETECTED, detail=clip(detail),
                dedup_key=f"{recovery_id}:{Phase.DETECTED}", epoch=0, created_at=utcnow()))
            return _get(conn, recovery_id)
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(select(*RECOVERY_COLS).where(Recovery.active_host == host)
                               ).first()
        if row is None:
            raise Conflict(f"could not open a recovery of {host}; try again") from None
        return _recovery(row)


@translate_errors
def recovery_note(engine: Engine, recovery_id: int, kind: str, detail: str) -> None:
    """An operator's action in a recovery's timeline (not guarded: it records, it decides
    nothing; epoch 0 marks it as not the leader's)."""
    with engine.begin() as conn:
        conn.execute(insert(RecoveryEvent).values(
            recovery_id=recovery_id, kind=kind, detail=clip(detail), epoch=0,
            created_at=utcnow()))


_ALLOWED = frozenset({"phase", "status", "fence_agent", "fence_attempts", "next_attempt_at",
                      "last_error", "held_reason"})


@translate_errors
def apply_transition(engine: Engine, token: LeaderToken, recovery_id: int, *, name: str,
                     sources: frozenset[Phase], expect_phase: Phase,
                     values: dict[str, Any] | None = None, event: str | None = None,
                     detail: str | None = None, dedup_key: str | None = None,
                     instance_uuid: str | None = None, retry_after: float | None = None,
                     finish: bool = False, service: dict[str, Any] | None = None,
                     enable_service: bool = False, quarantine: str | None = None,
                     release: tuple[str, str] | None = None) -> RecoveryRecord:
    """One named transition (``name``, for messages) of a recovery, in one transaction
    guarded by ``token``; :class:`vigil.ha.store.RecoveryStore` derives every argument that
    says *what* the transition is (``sources``, the phase and status in ``values``, ``event``,
    ``dedup_key``, ``finish``) from :data:`vigil.ha.transitions.TRANSITIONS`.

    Under the guard: the recovery must be open, in ``expect_phase`` (the phase its caller
    read) and that phase among ``sources`` (the phases the table allows the transition
    from), else :class:`~vigil.errors.IllegalTransition` and nothing is written. Then:
    change the host's service (``service`` values; ``enable_service`` re-enables it only if it
    is still disabled with the monitor's reason), update the recovery, record ``event``.
    ``retry_after`` sets next_attempt_at to the database's now plus that many seconds;
    ``finish`` closes the recovery (``active_host`` NULL). ``quarantine`` (a reason)
    quarantines the host for this recovery, and records a ``quarantined`` event the first
    time; ``release`` (actor, reason) ends this recovery's quarantine of the host, with a
    ``released`` event. The host's row must exist (:func:`vigil.db.ha.hosts.ensure`).
    """
    values = dict(values or {})
    unknown = set(values) - _ALLOWED
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    if service is not None and set(service) - {"disabled", "disabled_reason", "forced_down"}:
        raise ValueError(f"cannot update service fields {sorted(service)}")
    if "last_error" in values:
        values["last_error"] = clip(values["last_error"])
    try:
        with engine.begin() as conn:
            now = guard(conn, token)
            if retry_after is not None:
                values["next_attempt_at"] = now + dt.timedelta(seconds=retry_after)
            current = _get(conn, recovery_id)
            if not current.open or current.phase != expect_phase:
                raise IllegalTransition(
                    f"recovery {recovery_id}: {name} refused: it is no longer open in phase "
                    f"{expect_phase.value} (it is {'open' if current.open else 'closed'} in "
                    f"{current.phase.value}); re-read it")
            if current.phase not in sources:
                raise IllegalTransition(f"recovery {recovery_id}: {name} is not allowed from "
                                        f"phase {current.phase.value}")
            if service:
                conn.execute(update(Service).where(Service.id == current.service_id)
                             .values(**service, updated_at=now))
            if quarantine is not None:
                before = hosts.held_by(conn, current.host, recovery_id)
                seq = hosts.quarantine(conn, current.host, recovery_id=recovery_id,
                                       reason=quarantine, now=now)
                if not before:
                    record_event(conn, token, recovery_id, "quarantined", detail=quarantine,
                                 dedup_key=f"{recovery_id}:quarantined:{seq}")
            released = release is not None and hosts.release_in(
                conn, current.host, recovery_id=recovery_id, actor=release[0],
                reason=release[1], now=now)
            if enable_service:
                conn.execute(update(Service)
                             .where(Service.id == current.service_id,
                                    Service.disabled_reason.like(f"{REASON_PREFIX}%"))
                             .values(disabled=False, disabled_reason=None, updated_at=now))
            if values or finish:
                extra: dict[str, Any] = {"epoch": token.epoch, "updated_at": now}
                if finish:
                    extra.update(active_host=None, finished_at=now)
                result = conn.execute(
                    update(Recovery).where(Recovery.id == recovery_id,
                                           Recovery.active_host.is_not(None),
                                           Recovery.phase == expect_phase,
                                           Recovery.phase.in_(sorted(sources)))
                    .values(**values, **extra))
                if result.rowcount != 1:
                    raise IllegalTransition(f"recovery {recovery_id} is no longer in phase "
                                            f"{expect_phase.value} (or closed)")
            if event is not None:
                record_event(conn, token, recovery_id, event, detail=detail,
                             dedup_key=dedup_key, instance_uuid=instance_uuid)
            if released and release is not None:
                record_event(conn, token, recovery_id, "released",
                             detail=f"{release[1]} (by {release[0]})",
                             dedup_key=f"{recovery_id}:released")
            return _get(conn, recovery_id)
    except IntegrityError as exc:
        raise AlreadyRecorded(f"recovery {recovery_id}: {dedup_key} is recorded already"
                              ) from exc


@translate_errors
def recovery_get(engine: Engine, ident: int | str) -> RecoveryRecord:
    with engine.connect() as conn:
        row = conn.execute(select(*RECOVERY_COLS).where(by_id_or_uuid(Recovery, ident))).first()
    if row is None:
        raise NotFound(f"recovery {ident} not found")
    return _recovery(row)


@translate_errors
def recoveries(engine: Engine, *, open_only: bool = False, host: str | None = None,
               limit: int | None = None) -> list[RecoveryRecord]:
    """Newest first."""
    stmt = select(*RECOVERY_COLS)
    if open_only:
        stmt = stmt.where(Recovery.active_host.is_not(None))
    if host is not None:
        stmt = stmt.where(Recovery.host == host)
    stmt = stmt.order_by(Recovery.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_recovery(r) for r in conn.execute(stmt)]


@translate_errors
def events(engine: Engine, recovery_id: int) -> list[EventRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(*EVENT_COLS).where(RecoveryEvent.recovery_id == recovery_id)
                            .order_by(RecoveryEvent.id))
        return [EventRecord(**r._asdict()) for r in rows]


@translate_errors
def events_of_kind(engine: Engine, kind: str) -> list[EventRecord]:
    """Every event of one kind, all recoveries (tests and benchmarks count fences with it)."""
    with engine.connect() as conn:
        rows = conn.execute(select(*EVENT_COLS).where(RecoveryEvent.kind == kind)
                            .order_by(RecoveryEvent.id))
        return [EventRecord(**r._asdict()) for r in rows]


@translate_errors
def fences_since(engine: Engine, seconds: float) -> int:
    """Fences started fleet-wide in the last ``seconds`` (database clock): the rate brake
    counts every leader's fences, so a failover does not reset it."""
    with engine.connect() as conn:
        now = now_in(conn)
        return int(conn.execute(
            select(func.count()).select_from(RecoveryEvent)
            .where(RecoveryEvent.kind == "fence_started",
                   RecoveryEvent.created_at > now - dt.timedelta(seconds=seconds))).scalar_one())
