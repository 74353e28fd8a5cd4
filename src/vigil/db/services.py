"""Query functions over the services and report_paths tables: registration, heartbeats, the
snapshot every liveness read starts from, and the conductors' report-path beats.

The rules of :mod:`vigil.db` apply (one short transaction per call, errors translated at the
boundary, plain records out).
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Sequence
from itertools import starmap
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from vigil.db._query import (
    Origin,
    by_id_or_uuid,
    retry_conflicts,
    revive_or_insert,
    translate_errors,
    translate_errors_once,
)
from vigil.db.models import ReportPath, Service
from vigil.db.types import utcnow
from vigil.errors import ServiceNotFound
from vigil.objects.liveness import PathBeat, join_healthy_since, next_healthy_since
from vigil.objects.services import ServiceRecord, Snapshot

# In ServiceRecord's field order, each read as the record's type: Boolean columns (and the
# ``deleted`` test, computed by the database) come back as bool on every dialect, so a row is the
# record's arguments as they are (:func:`_record`).
_COLUMNS = (
    Service.id, Service.uuid, Service.host, Service.binary, Service.topic, Service.report_count,
    Service.disabled, Service.disabled_reason, Service.forced_down, Service.version,
    Service.last_seen_up, Service.left_at, Service.created_at, Service.updated_at,
    (Service.deleted != 0).label("deleted"),
)


# The snapshot's columns: every one but ``deleted``, which its statement's filter makes False
# for every row (the record's default). One column fewer to fetch and convert per service.
_LIVE_COLUMNS = _COLUMNS[:-1]


def _record(row: Any) -> ServiceRecord:
    # A row unpacked straight into the record: this runs once per service on every list
    # (10,000 rows must stay well under 100 ms); named Row access or a conversion per field
    # cost several times more.
    return ServiceRecord(*row)


@translate_errors
def snapshot(
    engine: Engine,
    *,
    host: str | None = None,
    binary: str | None = None,
    topic: str | None = None,
    ids: Sequence[int] | None = None,
) -> Snapshot:
    """Live services matching exact filters, the database's now, and report-path beats.

    Two statements whatever the number of services: this is what lists and batch liveness use.
    """
    stmt = select(*_LIVE_COLUMNS).where(Service.deleted == 0)
    if host is not None:
        stmt = stmt.where(Service.host == host)
    if binary is not None:
        stmt = stmt.where(Service.binary == binary)
    if topic is not None:
        stmt = stmt.where(Service.topic == topic)
    if ids is not None:
        stmt = stmt.where(Service.id.in_(list(ids)))
    stmt = stmt.order_by(Service.id)
    with engine.connect() as conn:
        # The clock is read once, with the beats, before the rows: a heartbeat written between
        # the two reads can only look fresher, never staler, than it is.
        beats_stmt = select(ReportPath.last_beat, ReportPath.healthy_since)
        now = conn.execute(select(utcnow())).scalar_one()
        beats = conn.execute(beats_stmt).all()
        rows = conn.execute(stmt).all()
    return Snapshot(
        now=now,
        # starmap: the rows unpacked into records without a Python call per row of our own.
        services=list(starmap(ServiceRecord, rows)),
        path_beats=[(b[0], b[1]) for b in beats],
    )


def _live_by_host_binary(conn: Connection, host: str, binary: str) -> Any:
    return conn.execute(
        select(*_COLUMNS).where(
            Service.host == host, Service.binary == binary, Service.deleted == 0
        )
    ).first()


@translate_errors
def service_get(engine: Engine, ident: int | str) -> ServiceRecord:
    """A live service by integer id or uuid; ServiceNotFound otherwise."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(by_id_or_uuid(Service, ident),
                                                   Service.deleted == 0)).first()
    if row is None:
        raise ServiceNotFound(f"service {ident} not found")
    return _record(row)


@translate_errors
def service_get_by_host_binary(engine: Engine, host: str, binary: str) -> ServiceRecord:
    with engine.connect() as conn:
        row = _live_by_host_binary(conn, host, binary)
    if row is None:
        raise ServiceNotFound(f"no service with host {host!r} and binary {binary!r}")
    return _record(row)


@translate_errors
def service_get_or_create(
    engine: Engine, host: str, binary: str, topic: str, *, enabled: bool = True
) -> tuple[ServiceRecord, bool]:
    """The live row for (host, binary), reviving the newest soft-deleted one, else a new row.

    Bumps ``version`` (one per start) and clears ``left_at`` so a restarted service is a member
    again. Returns (record, created). Safe against two starts racing: the unique constraint
    decides and the loser reads the winner's row.
    """
    match = [Service.host == host, Service.binary == binary]

    def register() -> tuple[ServiceRecord, bool]:
        with engine.begin() as conn:
            origin = revive_or_insert(
                conn, Service, match,
                revive=dict(topic=topic, created_at=utcnow(), last_seen_up=None),
                create=dict(uuid=str(uuidlib.uuid4()), host=host, binary=binary, topic=topic,
                            report_count=0, disabled=not enabled,
                            disabled_reason=None if enabled else "disabled on creation "
                            "(enable_new_services=false)",
                            forced_down=False, version=0, created_at=utcnow()))
            conn.execute(
                update(Service)
                .where(*match, Service.deleted == 0)
                .values(version=Service.version + 1, left_at=None, updated_at=utcnow())
            )
            return _record(_live_by_host_binary(conn, host, binary)), origin is Origin.CREATED

    return retry_conflicts(register, what=f"register service {host}/{binary}")


@translate_errors
def record_reports(engine: Engine, ids: Sequence[int], batch_size: int) -> set[int]:
    """Apply heartbeats of many services in ``ceil(len/batch_size)`` UPDATE statements.

    Returns the ids that matched no live row (deleted while running), found with one extra
    SELECT only when some row did not match.
    """
    if not ids:
        return set()
    unique = sorted(set(ids))
    missing: set[int] = set()
    with engine.begin() as conn:
        for start in range(0, len(unique), batch_size):
            chunk = unique[start:start + batch_size]
            result = conn.execute(
                update(Service)
                .where(Service.id.in_(chunk), Service.deleted == 0)
                .values(
                    last_seen_up=utcnow(), updated_at=utcnow(),
                    report_count=Service.report_count + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != len(chunk):
                live = set(
                    conn.execute(
                        select(Service.id).where(Service.id.in_(chunk), Service.deleted == 0)
                    ).scalars()
                )
                missing.update(set(chunk) - live)
    return missing


@translate_errors
def record_leave(engine: Engine, service_id: int) -> None:
    """A clean leave: the service is down from now on, until it registers again.

    Only :func:`service_get_or_create` (a restart) clears ``left_at``; a heartbeat does not,
    so a report still queued in a conductor when the service left cannot bring it back up.
    """
    with engine.begin() as conn:
        conn.execute(
            update(Service)
            .where(Service.id == service_id, Service.deleted == 0)
            .values(left_at=utcnow(), updated_at=utcnow())
        )


@translate_errors
def service_update(
    engine: Engine, service_id: int, values: dict[str, Any]
) -> ServiceRecord:
    allowed = {"disabled", "disabled_reason", "forced_down"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    with engine.begin() as conn:
        result = conn.execute(
            update(Service)
            .where(Service.id == service_id, Service.deleted == 0)
            .values(**values, updated_at=utcnow())
        )
        if result.rowcount == 0:
            raise ServiceNotFound(f"service {service_id} not found")
        row = conn.execute(select(*_COLUMNS).where(Service.id == service_id)).one()
    return _record(row)


@translate_errors
def service_soft_delete(engine: Engine, service_id: int) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            update(Service)
            .where(Service.id == service_id, Service.deleted == 0)
            .values(deleted=Service.id, deleted_at=utcnow(), updated_at=utcnow())
        )
        if result.rowcount == 0:
            raise ServiceNotFound(f"service {service_id} not found")


@translate_errors
def beat_report_path(engine: Engine, conductor: str, max_gap: dt.timedelta) -> dt.datetime:
    """Record that ``conductor``'s report path just worked; returns its healthy_since."""
    with engine.begin() as conn:
        now = conn.execute(select(utcnow())).scalar_one()
        row = conn.execute(
            select(ReportPath.last_beat, ReportPath.healthy_since).where(
                ReportPath.conductor == conductor
            )
        ).first()
        previous = PathBeat(row[0], row[1]) if row is not None else None
        since = next_healthy_since(previous, now, max_gap)
        _write_path(conn, conductor, now, since, exists=row is not None)
    assert isinstance(since, dt.datetime)
    return since


def _write_path(conn: Connection, conductor: str, now: dt.datetime, since: dt.datetime,
                *, exists: bool) -> None:
    """``conductor``'s row: its last beat now, and ``since``."""
    if exists:
        conn.execute(update(ReportPath).where(ReportPath.conductor == conductor)
                     .values(last_beat=now, healthy_since=since))
    else:
        conn.execute(insert(ReportPath).values(conductor=conductor, last_beat=now,
                                               healthy_since=since))


@translate_errors_once
def join_report_path(engine: Engine, conductor: str, max_gap: dt.timedelta) -> dt.datetime:
    """Record that ``conductor`` is about to take reports; returns its healthy_since.

    Written before its RPC server starts (or restarts after a stall), so that no conductor
    ever consumes without a row: a row is what lets readers see its hole if it then stalls.
    The rule is :func:`~vigil.objects.liveness.join_healthy_since`.

    Tried once (no :mod:`vigil.db.retry`): its caller, the consumption guard, tries again every
    check interval, so the first join after the database is back commits. Inside the retry's
    backoff a join could wait seconds after a Galera failover (6 s in issue 14's partition
    scenario) while no conductor took reports.
    """
    with engine.begin() as conn:
        now = conn.execute(select(utcnow())).scalar_one()
        rows = conn.execute(
            select(ReportPath.conductor, ReportPath.last_beat, ReportPath.healthy_since)
        ).all()
        own = next((PathBeat(r[1], r[2]) for r in rows if r[0] == conductor), None)
        others = [PathBeat(r[1], r[2]) for r in rows if r[0] != conductor]
        since = join_healthy_since(own, others, now, max_gap)
        _write_path(conn, conductor, now, since, exists=own is not None)
    assert isinstance(since, dt.datetime)
    return since


@translate_errors
def leave_report_path(engine: Engine, conductor: str) -> None:
    """A clean stop: the conductor consumes no more and wrote every report it took.

    Its row goes: a row left behind would read as a conductor that stopped beating while
    possibly still consuming, a hole in the path (see ``reports_healthy_since``).
    """
    with engine.begin() as conn:
        conn.execute(delete(ReportPath).where(ReportPath.conductor == conductor))
