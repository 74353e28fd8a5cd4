"""Query functions of host high availability: the leader lease and the recovery workflow.

Same rules as :mod:`vigil.db.api` (one short transaction per call, driver errors become
DatabaseUnavailable, plain dataclasses out), plus one of its own:

**Every write of the workflow is conditional on the leader's fencing token.** A
:class:`LeaderToken` names the lease and the ``epoch`` it was granted with; each write starts
its transaction with :func:`_guard`, an UPDATE of the lease row that matches only while that
epoch still holds an unexpired lease (database clock). The UPDATE takes the lease row's lock
(PostgreSQL and InnoDB row lock; SQLite's single writer lock) until the transaction ends, so a
takeover, which must UPDATE the same row, is ordered entirely before or entirely after the
write: a deposed leader's late write matches nothing and raises :class:`LeadershipLost`, and
nothing of its transaction is committed.

Steps that must happen once are recorded with a ``dedup_key`` (unique): recording one twice
raises :class:`AlreadyRecorded` instead of writing a second row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db import hosts_api
from vigil.db.api import translate_errors
from vigil.db.compute_models import Instance
from vigil.db.ha_models import HaAlert, HaLease, Recovery, RecoveryEvacuation, RecoveryEvent
from vigil.db.models import Service
from vigil.db.types import utcnow
from vigil.errors import AlreadyRecorded, Conflict, LeadershipLost, NotFound
from vigil.objects.compute import TaskState, VmState
from vigil.objects.ha import (
    REASON_PREFIX,
    AlertRecord,
    EvacuationRecord,
    EvacuationStatus,
    EventRecord,
    LeaderToken,
    LeaseRecord,
    Phase,
    RecoveryRecord,
    RecoveryStatus,
    Trigger,
)

MAX_TEXT = 4000
def _cols(model: Any, record: type[Any]) -> list[Any]:
    return [getattr(model, f.name) for f in dataclasses.fields(record)]


_RECOVERY_COLS = _cols(Recovery, RecoveryRecord)
_EVENT_COLS = _cols(RecoveryEvent, EventRecord)
_EVAC_COLS = _cols(RecoveryEvacuation, EvacuationRecord)
_ALERT_COLS = [HaAlert.id, HaAlert.kind, HaAlert.active_kind, HaAlert.message, HaAlert.raised_at,
               HaAlert.last_seen_at, HaAlert.cleared_at]


def _recovery(row: Any) -> RecoveryRecord:
    values = row._asdict()
    values["was_disabled"] = bool(values["was_disabled"])
    values["was_forced_down"] = bool(values["was_forced_down"])
    values["trigger"] = Trigger(values["trigger"])
    values["phase"] = Phase(values["phase"])
    values["status"] = RecoveryStatus(values["status"])
    return RecoveryRecord(**values)


def _evacuation(row: Any) -> EvacuationRecord:
    values = row._asdict()
    values["status"] = EvacuationStatus(values["status"])
    return EvacuationRecord(**values)


def _alert(row: Any) -> AlertRecord:
    id_, kind, active_kind, message, raised_at, last_seen_at, cleared_at = row
    return AlertRecord(id_, kind, active_kind is not None, message, raised_at, last_seen_at,
                       cleared_at)


def _text(value: str | None) -> str | None:
    return value[:MAX_TEXT] if value is not None else None


# -- the lease ---------------------------------------------------------------------------------
def _now(conn: Connection) -> dt.datetime:
    value = conn.execute(select(utcnow())).scalar_one()
    assert isinstance(value, dt.datetime)
    return value


def _lease(conn: Connection, name: str) -> LeaseRecord | None:
    now = _now(conn)
    row = conn.execute(select(HaLease.name, HaLease.holder, HaLease.epoch, HaLease.acquired_at,
                              HaLease.expires_at).where(HaLease.name == name)).first()
    if row is None:
        return None
    return LeaseRecord(row[0], row[1], int(row[2]), row[3], row[4], now)


@translate_errors
def lease_get(engine: Engine, name: str) -> LeaseRecord | None:
    with engine.connect() as conn:
        return _lease(conn, name)


@translate_errors
def lease_acquire(engine: Engine, name: str, holder: str, ttl: float) -> LeaderToken | None:
    """Take the lease if nobody holds it (or it expired, database clock): a new epoch.

    The expiry is written as the database's now plus ``ttl`` and compared with the database's
    now: no reader's clock is involved.
    """
    try:
        with engine.begin() as conn:
            now = _now(conn)
            expires = now + dt.timedelta(seconds=ttl)
            result = conn.execute(
                update(HaLease)
                .where(HaLease.name == name,
                       or_(HaLease.expires_at <= now, HaLease.holder.is_(None)))
                .values(holder=holder, epoch=HaLease.epoch + 1, acquired_at=now,
                        expires_at=expires))
            if result.rowcount == 0:
                exists = conn.execute(select(HaLease.name).where(HaLease.name == name)).first()
                if exists is not None:
                    return None
                conn.execute(insert(HaLease).values(name=name, holder=holder, epoch=1,
                                                    acquired_at=now, expires_at=expires))
            epoch = conn.execute(select(HaLease.epoch).where(HaLease.name == name)).scalar_one()
    except IntegrityError:
        return None  # another candidate inserted the row first
    return LeaderToken(name, holder, int(epoch))


@translate_errors
def lease_renew(engine: Engine, token: LeaderToken, ttl: float) -> bool:
    """Extend our lease; False if it is no longer ours (expired and possibly taken)."""
    with engine.begin() as conn:
        now = _now(conn)
        result = conn.execute(
            update(HaLease)
            .where(HaLease.name == token.name, HaLease.holder == token.holder,
                   HaLease.epoch == token.epoch, HaLease.expires_at > now)
            .values(expires_at=now + dt.timedelta(seconds=ttl)))
        return bool(result.rowcount == 1)


@translate_errors
def lease_release(engine: Engine, token: LeaderToken) -> None:
    """Give the lease up now (a clean stop): a standby takes over without waiting for expiry."""
    with engine.begin() as conn:
        conn.execute(
            update(HaLease)
            .where(HaLease.name == token.name, HaLease.holder == token.holder,
                   HaLease.epoch == token.epoch)
            .values(holder=None, expires_at=utcnow()))


def _guard(conn: Connection, token: LeaderToken) -> dt.datetime:
    """The first statement of every guarded write; returns the database's now."""
    now = _now(conn)
    result = conn.execute(
        update(HaLease)
        .where(HaLease.name == token.name, HaLease.holder == token.holder,
               HaLease.epoch == token.epoch, HaLease.expires_at > now)
        .values(guarded_at=now))
    if result.rowcount != 1:
        raise LeadershipLost(f"lease {token.name!r} epoch {token.epoch} is no longer held by "
                             f"{token.holder}")
    return now


@translate_errors
def check_token(engine: Engine, token: LeaderToken) -> None:
    """Raise LeadershipLost unless ``token`` still holds the lease (a read-only check)."""
    with engine.connect() as conn:
        lease = _lease(conn, token.name)
    if (lease is None or not lease.held or lease.holder != token.holder
            or lease.epoch != token.epoch):
        raise LeadershipLost(f"lease {token.name!r} epoch {token.epoch} is no longer held")


# -- recoveries --------------------------------------------------------------------------------
def _event(conn: Connection, token: LeaderToken, recovery_id: int, kind: str, *,
           detail: str | None = None, dedup_key: str | None = None,
           instance_uuid: str | None = None) -> None:
    conn.execute(insert(RecoveryEvent).values(
        recovery_id=recovery_id, kind=kind, detail=_text(detail), dedup_key=dedup_key,
        instance_uuid=instance_uuid, epoch=token.epoch, created_at=utcnow()))


def _get(conn: Connection, recovery_id: int) -> RecoveryRecord:
    row = conn.execute(select(*_RECOVERY_COLS).where(Recovery.id == recovery_id)).first()
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
            _guard(conn, token)
            result = conn.execute(insert(Recovery).values(
                uuid=str(uuidlib.uuid4()), host=host, active_host=host, service_id=service_id,
                trigger=trigger, phase=Phase.DETECTED, status=RecoveryStatus.ACTIVE,
                was_disabled=was_disabled,
                was_forced_down=was_forced_down, fence_attempts=0, epoch=token.epoch,
                created_at=utcnow(), updated_at=utcnow()))
            recovery_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            _event(conn, token, recovery_id, Phase.DETECTED, detail=detail,
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
                recovery_id=recovery_id, kind=Phase.DETECTED, detail=_text(detail),
                dedup_key=f"{recovery_id}:{Phase.DETECTED}", epoch=0, created_at=utcnow()))
            return _get(conn, recovery_id)
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(select(*_RECOVERY_COLS).where(Recovery.active_host == host)
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
            recovery_id=recovery_id, kind=kind, detail=_text(detail), epoch=0,
            created_at=utcnow()))


@translate_errors
def recovery_step(engine: Engine, token: LeaderToken, recovery_id: int, *,
                  values: dict[str, Any] | None = None, expect_phase: str | None = None,
                  event: str | None = None, detail: str | None = None,
                  dedup_key: str | None = None, instance_uuid: str | None = None,
                  retry_after: float | None = None, finish: bool = False,
                  service: dict[str, Any] | None = None,
                  enable_service: bool = False, quarantine: str | None = None,
                  release: tuple[str, str] | None = None) -> RecoveryRecord:
    """One guarded step, in one transaction: change the host's service (``service`` values;
    ``enable_service`` re-enables it only if it is still disabled with the monitor's reason),
    update the recovery (only if still open and in ``expect_phase``), record an event.
    ``retry_after`` sets next_attempt_at to the database's now plus that many seconds;
    ``finish`` closes the recovery (``active_host`` NULL).
    ``quarantine`` (a reason) quarantines the host for this recovery, and records a
    ``quarantined`` event the first time; ``release`` (actor, reason) ends this recovery's
    quarantine of the host, with a ``released`` event. The host's row must exist
    (:func:`vigil.db.hosts_api.ensure`).

    Raises LeadershipLost, AlreadyRecorded (the dedup key exists: the step was done), or
    Conflict (the recovery moved on: another leader did this step).
    """
    allowed = {"phase", "status", "fence_agent", "fence_attempts", "next_attempt_at",
               "last_error", "held_reason"}
    values = dict(values or {})
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    if service is not None and set(service) - {"disabled", "disabled_reason", "forced_down"}:
        raise ValueError(f"cannot update service fields {sorted(service)}")
    if "last_error" in values:
        values["last_error"] = _text(values["last_error"])
    try:
        with engine.begin() as conn:
            now = _guard(conn, token)
            if retry_after is not None:
                values["next_attempt_at"] = now + dt.timedelta(seconds=retry_after)
            current = _get(conn, recovery_id)
            if not current.open or (expect_phase is not None and current.phase != expect_phase):
                raise Conflict(f"recovery {recovery_id} is no longer in phase {expect_phase} "
                               "(or closed)")
            if service:
                conn.execute(update(Service).where(Service.id == current.service_id)
                             .values(**service, updated_at=now))
            if quarantine is not None:
                before = hosts_api.held_by(conn, current.host, recovery_id)
                seq = hosts_api.quarantine(conn, current.host, recovery_id=recovery_id,
                                           reason=quarantine, now=now)
                if not before:
                    _event(conn, token, recovery_id, "quarantined", detail=quarantine,
                           dedup_key=f"{recovery_id}:quarantined:{seq}")
            released = release is not None and hosts_api.release_in(
                conn, current.host, recovery_id=recovery_id, actor=release[0],
                reason=release[1], now=now)
            if enable_service:
                conn.execute(update(Service)
                             .where(Service.id == current.service_id,
                                    Service.disabled_reason.like(f"{REASON_PREFIX}%"))
                             .values(disabled=False, disabled_reason=None, updated_at=now))
            if values or finish:
                stmt = update(Recovery).where(Recovery.id == recovery_id,
                                              Recovery.active_host.is_not(None))
                if expect_phase is not None:
                    stmt = stmt.where(Recovery.phase == expect_phase)
                extra: dict[str, Any] = {"epoch": token.epoch, "updated_at": now}
                if finish:
                    extra.update(active_host=None, finished_at=now)
                result = conn.execute(stmt.values(**values, **extra))
                if result.rowcount != 1:
                    raise Conflict(f"recovery {recovery_id} is no longer in phase "
                                   f"{expect_phase} (or closed)")
            if event is not None:
                _event(conn, token, recovery_id, event, detail=detail, dedup_key=dedup_key,
                       instance_uuid=instance_uuid)
            if released and release is not None:
                _event(conn, token, recovery_id, "released",
                       detail=f"{release[1]} (by {release[0]})",
                       dedup_key=f"{recovery_id}:released")
            return _get(conn, recovery_id)
    except IntegrityError as exc:
        raise AlreadyRecorded(f"recovery {recovery_id}: {dedup_key} is recorded already"
                              ) from exc


@translate_errors
def recovery_get(engine: Engine, ident: int | str) -> RecoveryRecord:
    cond = Recovery.id == ident if isinstance(ident, int) else Recovery.uuid == ident
    with engine.connect() as conn:
        row = conn.execute(select(*_RECOVERY_COLS).where(cond)).first()
    if row is None:
        raise NotFound(f"recovery {ident} not found")
    return _recovery(row)


@translate_errors
def recoveries(engine: Engine, *, open_only: bool = False, host: str | None = None,
               limit: int | None = None) -> list[RecoveryRecord]:
    """Newest first."""
    stmt = select(*_RECOVERY_COLS)
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
        rows = conn.execute(select(*_EVENT_COLS).where(RecoveryEvent.recovery_id == recovery_id)
                            .order_by(RecoveryEvent.id))
        return [EventRecord(**r._asdict()) for r in rows]


@translate_errors
def events_of_kind(engine: Engine, kind: str) -> list[EventRecord]:
    """Every event of one kind, all recoveries (tests and benchmarks count fences with it)."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_EVENT_COLS).where(RecoveryEvent.kind == kind)
                            .order_by(RecoveryEvent.id))
        return [EventRecord(**r._asdict()) for r in rows]


@translate_errors
def fences_since(engine: Engine, seconds: float) -> int:
    """Fences started fleet-wide in the last ``seconds`` (database clock): the rate brake
    counts every leader's fences, so a failover does not reset it."""
    with engine.connect() as conn:
        now = _now(conn)
        return int(conn.execute(
            select(func.count()).select_from(RecoveryEvent)
            .where(RecoveryEvent.kind == "fence_started",
                   RecoveryEvent.created_at > now - dt.timedelta(seconds=seconds))).scalar_one())


@translate_errors
def db_now(engine: Engine) -> dt.datetime:
    with engine.connect() as conn:
        return _now(conn)


# -- evacuations -------------------------------------------------------------------------------
EVACUABLE_TASK_STATES: tuple[TaskState | None, ...] = (None, TaskState.SPAWNING,
                                                      TaskState.REBUILD_SPAWNING)
EVACUABLE_VM_STATES = (VmState.ACTIVE, VmState.ERROR, VmState.BUILDING)


@translate_errors
def evacuations(engine: Engine, recovery_id: int) -> list[EvacuationRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(*_EVAC_COLS)
                            .where(RecoveryEvacuation.recovery_id == recovery_id)
                            .order_by(RecoveryEvacuation.id))
        return [_evacuation(r) for r in rows]


@translate_errors
def evacuation_request(engine: Engine, token: LeaderToken, recovery_id: int,
                       instance_uuid: str, source_host: str,
                       generation: int | None = None) -> str | None:
    """Hand one instance of a fenced host to the scheduler, exactly once per attempt.

    One guarded transaction: this recovery still holds the host's quarantine (an operator may
    have released it: then the host owns its instances again and nothing more is taken from
    it); the evacuation row is created (UNIQUE per recovery and instance) or moved from
    ``retry`` back to ``requested``; and the instance is compare-and-set from idle on
    ``source_host`` (in ``generation``, the ownership generation the caller read, when given)
    to ``rebuilding`` in a new generation, so no start the source host asks for afterwards can
    match it. ``spawning``/``rebuild_spawning`` count as idle here: the host is fenced and
    quarantined, so nothing can be spawning there any more. Returns None on success, else why
    nothing was done (the whole transaction rolled back).
    """
    try:
        with engine.begin() as conn:
            now = _guard(conn, token)
            if not hosts_api.held_by(conn, source_host, recovery_id):
                raise _Rollback(NOT_QUARANTINED)
            row = conn.execute(select(RecoveryEvacuation.id, RecoveryEvacuation.status)
                               .where(RecoveryEvacuation.recovery_id == recovery_id,
                                      RecoveryEvacuation.instance_uuid == instance_uuid)
                               ).first()
            if row is None:
                conn.execute(insert(RecoveryEvacuation).values(
                    recovery_id=recovery_id, instance_uuid=instance_uuid,
                    status=EvacuationStatus.REQUESTED, attempts=1, requested_at=now,
                    created_at=now, updated_at=now))
                attempt = 1
            elif row[1] == EvacuationStatus.RETRY:
                conn.execute(update(RecoveryEvacuation)
                             .where(RecoveryEvacuation.id == row[0],
                                    RecoveryEvacuation.status == EvacuationStatus.RETRY)
                             .values(status=EvacuationStatus.REQUESTED,
                                     attempts=RecoveryEvacuation.attempts + 1,
                                     requested_at=now, next_attempt_at=None, updated_at=now))
                attempt = int(conn.execute(select(RecoveryEvacuation.attempts)
                                           .where(RecoveryEvacuation.id == row[0])
                                           ).scalar_one())
            else:
                return f"already {row[1]}"
            idle = [Instance.task_state.is_(None),
                    Instance.task_state.in_([t for t in EVACUABLE_TASK_STATES if t])]
            cond = [Instance.uuid == instance_uuid, Instance.deleted == 0,
                    Instance.host == source_host, or_(*idle),
                    Instance.vm_state.in_(EVACUABLE_VM_STATES)]
            if generation is not None:
                cond.append(Instance.generation == generation)
            moved = conn.execute(
                update(Instance).where(*cond)
                .values(task_state=TaskState.REBUILDING, requested_host=None,
                        generation=Instance.generation + 1, updated_at=utcnow()))
            if moved.rowcount != 1:
                raise _Rollback("the instance is not idle on the host (moved, deleted or busy)")
            _event(conn, token, recovery_id, "evacuation_requested",
                   instance_uuid=instance_uuid, detail=f"attempt {attempt}",
                   dedup_key=f"{recovery_id}:evacuate:{instance_uuid}:{attempt}")
    except _Rollback as exc:
        return str(exc)
    except IntegrityError:
        return "requested already (by another leader)"
    return None


class _Rollback(Exception):
    """Internal: abort the transaction with a reason."""


# evacuation_request's answer when the recovery no longer holds the host's quarantine.
NOT_QUARANTINED = "the host is not quarantined by this recovery (released)"


@translate_errors
def evacuation_update(engine: Engine, token: LeaderToken, recovery_id: int,
                      instance_uuid: str, *, expect: Sequence[str], status: str,
                      detail: str | None = None, target_host: str | None = None,
                      retry_after: float | None = None, event: str | None = None,
                      dedup_key: str | None = None) -> bool:
    """Guarded status change of one evacuation (only from a status in ``expect``), with an
    optional timeline event. False if it was not in ``expect`` (another leader moved it)."""
    try:
        with engine.begin() as conn:
            now = _guard(conn, token)
            values: dict[str, Any] = {"status": status, "detail": _text(detail),
                                      "updated_at": now}
            if target_host is not None:
                values["target_host"] = target_host
            if EvacuationStatus(status).finished:
                values["finished_at"] = now
            values["next_attempt_at"] = (now + dt.timedelta(seconds=retry_after)
                                         if retry_after is not None else None)
            result = conn.execute(
                update(RecoveryEvacuation)
                .where(RecoveryEvacuation.recovery_id == recovery_id,
                       RecoveryEvacuation.instance_uuid == instance_uuid,
                       RecoveryEvacuation.status.in_(list(expect)))
                .values(**values))
            if result.rowcount != 1:
                return False
            if event is not None:
                _event(conn, token, recovery_id, event, detail=detail,
                       instance_uuid=instance_uuid, dedup_key=dedup_key)
    except IntegrityError:
        return False
    return True


# -- alerts ------------------------------------------------------------------------------------
@translate_errors
def alert_raise(engine: Engine, token: LeaderToken, kind: str, message: str) -> None:
    """Raise (or refresh) the open alert of ``kind``."""
    try:
        with engine.begin() as conn:
            now = _guard(conn, token)
            result = conn.execute(update(HaAlert).where(HaAlert.active_kind == kind)
                                  .values(message=_text(message), last_seen_at=now))
            if result.rowcount == 0:
                conn.execute(insert(HaAlert).values(kind=kind, active_kind=kind,
                                                    message=_text(message), raised_at=now,
                                                    last_seen_at=now))
    except IntegrityError:
        pass  # raised concurrently: it is open, which is what we wanted


@translate_errors
def alert_clear(engine: Engine, token: LeaderToken, kind: str) -> bool:
    with engine.begin() as conn:
        now = _guard(conn, token)
        result = conn.execute(update(HaAlert).where(HaAlert.active_kind == kind)
                              .values(active_kind=None, cleared_at=now))
        return bool(result.rowcount)


@translate_errors
def alerts(engine: Engine, *, active_only: bool = False,
           limit: int | None = None) -> list[AlertRecord]:
    stmt = select(*_ALERT_COLS)
    if active_only:
        stmt = stmt.where(HaAlert.active_kind.is_not(None))
    stmt = stmt.order_by(HaAlert.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_alert(r) for r in conn.execute(stmt)]
