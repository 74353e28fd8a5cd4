"""The HA leader's lease, and the guard every write of the recovery workflow starts with.

**Every write of the workflow is conditional on the leader's fencing token.** A
:class:`~vigil.objects.ha.LeaderToken` names the lease and the ``epoch`` it was granted with;
each guarded write starts its transaction with :func:`guard`, an UPDATE of the lease row that
matches only while that epoch still holds an unexpired lease (database clock). The UPDATE takes
the lease row's lock (PostgreSQL and InnoDB row lock; SQLite's single writer lock) until the
transaction ends, so a takeover, which must UPDATE the same row, is ordered entirely before or
entirely after the write: a deposed leader's late write matches nothing and raises
:class:`~vigil.errors.LeadershipLost`, and nothing of its transaction is committed.

The lease's expiry is written and compared on the database's clock only; how a monitor keeps
and gives up the lease on its own clock is :mod:`vigil.ha.election`'s business.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import now_in, translate_errors, translate_errors_once
from vigil.db.ha_models import HaLease
from vigil.db.types import utcnow
from vigil.errors import LeadershipLost
from vigil.objects.ha import LeaderToken, LeaseRecord


def _lease(conn: Connection, name: str) -> LeaseRecord | None:
    now = now_in(conn)
    row = conn.execute(select(HaLease.name, HaLease.holder, HaLease.epoch, HaLease.acquired_at,
                              HaLease.expires_at).where(HaLease.name == name)).first()
    if row is None:
        return None
    return LeaseRecord(row[0], row[1], int(row[2]), row[3], row[4], now)


@translate_errors
def lease_get(engine: Engine, name: str) -> LeaseRecord | None:
    with engine.connect() as conn:
        return _lease(conn, name)


# Acquisition and renewal are tried once: the election's own loop is their retry, at its own
# cadence, and a standby behind a silent holder must hear "not now" within its lock wait, not
# after the retry policy's backoff (a renewal retried past the lease would also be pointless:
# the leader's own deadline has stopped it by then).
@translate_errors_once
def lease_acquire(engine: Engine, name: str, holder: str, ttl: float) -> LeaderToken | None:
    """Take the lease if nobody holds it (or it expired, database clock): a new epoch.

    The expiry is written as the database's now plus ``ttl`` and compared with the database's
    now: no reader's clock is involved.
    """
    try:
        with engine.begin() as conn:
            now = now_in(conn)
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


@translate_errors_once
def lease_renew(engine: Engine, token: LeaderToken, ttl: float) -> bool:
    """Extend our lease; False if it is no longer ours (expired and possibly taken)."""
    with engine.begin() as conn:
        now = now_in(conn)
        result = conn.execute(
            update(HaLease)
            .where(HaLease.name == token.name, HaLease.holder == token.holder,
                   HaLease.epoch == token.epoch, HaLease.expires_at > now)
            .values(expires_at=now + dt.timedelta(seconds=ttl)))
        return bool(result.rowcount == 1)


@translate_errors_once  # best effort: the lease expires by itself
def lease_release(engine: Engine, token: LeaderToken) -> None:
    """Give the lease up now (a clean stop): a standby takes over without waiting for expiry."""
    with engine.begin() as conn:
        conn.execute(
            update(HaLease)
            .where(HaLease.name == token.name, HaLease.holder == token.holder,
                   HaLease.epoch == token.epoch)
            .values(holder=None, expires_at=utcnow()))


def guard(conn: Connection, token: LeaderToken) -> dt.datetime:
    """The first statement of every guarded write; returns the database's now."""
    now = now_in(conn)
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
