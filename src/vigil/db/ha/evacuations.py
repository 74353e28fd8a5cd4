"""Evacuations: one row per instance a recovery hands to the scheduler, and the guarded
compare-and-set that hands it over.

:func:`evacuation_request` is one of the package's cross-domain transactions: under the
leader's fencing token it checks the recovery still holds the host's quarantine, writes the
evacuation row, compare-and-sets the *compute* instance row to ``rebuilding`` in a new
ownership generation, and records the timeline event. It lives here, with the evacuation it
starts; the instance row is the only compute table it touches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import clip, cols_of, translate_errors
from vigil.db.compute_models import Instance
from vigil.db.ha import hosts
from vigil.db.ha.lease import guard
from vigil.db.ha.recoveries import record_event
from vigil.db.ha_models import RecoveryEvacuation
from vigil.db.types import utcnow
from vigil.objects.compute import TaskState, VmState
from vigil.objects.ha import EvacuationRecord, EvacuationStatus, LeaderToken

EVAC_COLS = cols_of(RecoveryEvacuation, EvacuationRecord)

def _evacuation(row: Any) -> EvacuationRecord:
    values = row._asdict()
    values["status"] = EvacuationStatus(values["status"])
    return EvacuationRecord(**values)


@translate_errors
def evacuations(engine: Engine, recovery_id: int) -> list[EvacuationRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(*EVAC_COLS)
                            .where(RecoveryEvacuation.recovery_id == recovery_id)
                            .order_by(RecoveryEvacuation.id))
        return [_evacuation(r) for r in rows]


@translate_errors
def evacuation_request(engine: Engine, token: LeaderToken, recovery_id: int,
                       instance_uuid: str, source_host: str, generation: int | None = None, *,
                       task_states: Sequence[TaskState | None],
                       vm_states: Sequence[VmState]) -> str | None:
    """Hand one instance of a fenced host to the scheduler, exactly once per attempt.

    One guarded transaction: this recovery still holds the host's quarantine (an operator may
    have released it: then the host owns its instances again and nothing more is taken from
    it); the evacuation row is created (UNIQUE per recovery and instance) or moved from
    ``retry`` back to ``requested``; and the instance is compare-and-set from idle on
    ``source_host`` (in ``generation``, the ownership generation the caller read, when given)
    to ``rebuilding`` in a new generation, so no start the source host asks for afterwards can
    match it. Which states count as idle is the caller's rule (``task_states``, ``vm_states``:
    :data:`vigil.compute.evacuation.AFTER_FENCE`, whose home stands above this layer). Returns
    None on success, else why nothing was done (the whole transaction rolled back).
    """
    try:
        with engine.begin() as conn:
            now = guard(conn, token)
            if not hosts.held_by(conn, source_host, recovery_id):
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
            idle = [Instance.task_state.in_([t for t in task_states if t is not None])]
            if None in task_states:
                idle.append(Instance.task_state.is_(None))
            cond = [Instance.uuid == instance_uuid, Instance.deleted == 0,
                    Instance.host == source_host, or_(*idle),
                    Instance.vm_state.in_(list(vm_states))]
            if generation is not None:
                cond.append(Instance.generation == generation)
            moved = conn.execute(
                update(Instance).where(*cond)
                .values(task_state=TaskState.REBUILDING, requested_host=None,
                        generation=Instance.generation + 1, updated_at=utcnow()))
            if moved.rowcount != 1:
                raise _Rollback("the instance is not idle on the host (moved, deleted or busy)")
            record_event(conn, token, recovery_id, "evacuation_requested",
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
            now = guard(conn, token)
            values: dict[str, Any] = {"status": status, "detail": clip(detail),
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
                record_event(conn, token, recovery_id, event, detail=detail,
                             instance_uuid=instance_uuid, dedup_key=dedup_key)
    except IntegrityError:
        return False
    return True
