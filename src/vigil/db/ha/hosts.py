"""Query functions over ``hosts``: a compute host's quarantine and maintenance.

**Quarantine** is the half of exactly-once that the fence cannot give. A fence agent powers a
host off; nothing stops the machine from booting again (a ``reboot`` action does exactly that,
and so does an operator or a BMC). So the host is quarantined in the database *before* the
fence agent runs, in the same guarded transaction that records the fence's intent
(:func:`quarantine`, called by :func:`vigil.db.ha.recoveries.apply_transition`), and every start
of an instance on a host is a statement that fails while the host is quarantined
(:func:`vigil.db.compute.instances.instance_start`). A quarantined host that comes back therefore
starts nothing; its agent stops whatever it finds running and acknowledges it
(:func:`quarantine_ack`). The monitor releases the quarantine once every evacuation of the
recovery is over (:func:`release_in`); an operator can release it earlier
(:func:`operator_release`), with a reason that is kept.

**Maintenance** is an operator's word that a host is being worked on: the HA monitor opens no
recovery for it (Masakari's ``on_maintenance``).

A host has no row until something is said about it; :func:`host_get` answers a default
(neither quarantined nor in maintenance) for such a host.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import clip, cols_of, translate_errors
from vigil.db.ha_models import Host
from vigil.db.types import utcnow
from vigil.objects.ha import HostRecord

MAX_ACTOR = 255


_COLS = cols_of(Host, HostRecord)


def _record(row: Any) -> HostRecord:
    values = row._asdict()
    values["maintenance"] = bool(values["maintenance"])
    return HostRecord(**values)


def quarantined_clause(host: Any) -> Any:
    """An SQL condition true while ``host`` (a column or a bound value) is quarantined: the
    one test every start statement negates."""
    return (select(Host.host)
            .where(Host.host == host, Host.quarantined_at.is_not(None))
            .exists())


@translate_errors
def ensure(engine: Engine, host: str) -> None:
    """Create the host's row if it has none (so later updates never race an insert)."""
    try:
        with engine.begin() as conn:
            exists = conn.execute(select(Host.host).where(Host.host == host)).first()
            if exists is None:
                conn.execute(insert(Host).values(host=host, quarantine_seq=0, maintenance=False,
                                                  updated_at=utcnow()))
    except IntegrityError:
        pass  # created concurrently: it exists, which is all we wanted


@translate_errors
def host_get(engine: Engine, host: str) -> HostRecord:
    with engine.connect() as conn:
        row = conn.execute(select(*_COLS).where(Host.host == host)).first()
    return _record(row) if row is not None else HostRecord(host)


@translate_errors
def hosts(engine: Engine, names: Iterable[str] | None = None) -> dict[str, HostRecord]:
    """Rows of the hosts that have one (all of them, or those in ``names``): one statement."""
    stmt = select(*_COLS)
    if names is not None:
        stmt = stmt.where(Host.host.in_(list(names)))
    with engine.connect() as conn:
        return {r.host: _record(r) for r in conn.execute(stmt)}


# -- quarantine, inside the HA workflow's guarded transactions ----------------------------------
def quarantine(conn: Connection, host: str, *, recovery_id: int, reason: str,
               now: dt.datetime) -> int:
    """Quarantine ``host`` for ``recovery_id`` (idempotent for the same recovery); returns the
    quarantine's sequence number. The row must exist (:func:`ensure`)."""
    row = conn.execute(select(Host.quarantine_seq, Host.quarantined_at,
                              Host.quarantine_recovery_id).where(Host.host == host)).first()
    if row is None:
        raise LookupError(f"host {host} has no row: call ensure() first")
    if row[1] is not None and row[2] == recovery_id:
        return int(row[0])
    conn.execute(update(Host).where(Host.host == host).values(
        quarantine_seq=Host.quarantine_seq + 1, quarantined_at=now,
        quarantine_reason=clip(reason), quarantine_recovery_id=recovery_id,
        quarantine_acked_seq=None, quarantine_acked_at=None, updated_at=now))
    return int(row[0]) + 1


def release_in(conn: Connection, host: str, *, recovery_id: int, actor: str, reason: str,
               now: dt.datetime) -> bool:
    """Release the quarantine of ``host`` if ``recovery_id`` holds it; False if it does not
    (never quarantined by it, or released already)."""
    result = conn.execute(
        update(Host).where(Host.host == host, Host.quarantined_at.is_not(None),
                           Host.quarantine_recovery_id == recovery_id)
        .values(quarantined_at=None, released_at=now, released_by=actor[:MAX_ACTOR],
                release_reason=clip(reason), updated_at=now))
    return bool(result.rowcount == 1)


def held_by(conn: Connection, host: str, recovery_id: int) -> bool:
    """Whether ``recovery_id`` holds the quarantine of ``host`` (read in the caller's
    transaction)."""
    row = conn.execute(select(Host.host).where(
        Host.host == host, Host.quarantined_at.is_not(None),
        Host.quarantine_recovery_id == recovery_id)).first()
    return row is not None


# -- operators and agents ------------------------------------------------------------------------
@translate_errors
def operator_release(engine: Engine, host: str, *, actor: str,
                     reason: str) -> tuple[HostRecord, int | None]:
    """An operator ends the quarantine of ``host``. Returns the new record and the recovery that
    held it (None if the host was not quarantined: nothing changed)."""
    ensure(engine, host)
    with engine.begin() as conn:
        row = conn.execute(select(Host.quarantine_recovery_id, Host.quarantined_at)
                           .where(Host.host == host)).first()
        held = row[0] if row is not None and row[1] is not None else None
        if row is not None and row[1] is not None:
            now = conn.execute(select(utcnow())).scalar_one()
            conn.execute(update(Host).where(Host.host == host).values(
                quarantined_at=None, released_at=now, released_by=actor[:MAX_ACTOR],
                release_reason=clip(reason), updated_at=now))
        final = conn.execute(select(*_COLS).where(Host.host == host)).one()
    return _record(final), held


@translate_errors
def set_maintenance(engine: Engine, host: str, on: bool, *, actor: str,
                    reason: str | None) -> HostRecord:
    """Put ``host`` in maintenance (or take it out). Turning it on again keeps its start time
    and updates the reason."""
    ensure(engine, host)
    with engine.begin() as conn:
        now = conn.execute(select(utcnow())).scalar_one()
        if on:
            current = conn.execute(select(Host.maintenance, Host.maintenance_since)
                                   .where(Host.host == host)).one()
            since = current[1] if current[0] else now
            conn.execute(update(Host).where(Host.host == host).values(
                maintenance=True, maintenance_reason=clip(reason), maintenance_since=since,
                maintenance_by=actor[:MAX_ACTOR], updated_at=now))
        else:
            conn.execute(update(Host).where(Host.host == host).values(
                maintenance=False, maintenance_reason=None, maintenance_since=None,
                maintenance_by=None, updated_at=now))
        final = conn.execute(select(*_COLS).where(Host.host == host)).one()
    return _record(final)


@translate_errors
def quarantine_ack(engine: Engine, host: str, seq: int) -> bool:
    """The host's agent stopped everything under quarantine number ``seq``. False if that
    quarantine is not the current one any more (released or replaced)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(Host).where(Host.host == host, Host.quarantined_at.is_not(None),
                               Host.quarantine_seq == seq)
            .values(quarantine_acked_seq=seq, quarantine_acked_at=utcnow(),
                    updated_at=utcnow()))
        return bool(result.rowcount == 1)
