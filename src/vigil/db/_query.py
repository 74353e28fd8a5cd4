"""What every query module of :mod:`vigil.db` shares: error translation at the boundary, the
database's clock, and the two reflexes that keep writes idempotent after a retry.

* :func:`translate_errors` turns connection-level failures into
  :class:`~vigil.errors.DatabaseUnavailable` (retryable), with the cause attached;
* :func:`now_in` / :func:`db_now` read the database's clock, the only one Vigil compares stored
  timestamps with;
* :func:`revive_or_insert` and :func:`retry_conflicts`: a row that must exist once per key
  (a service per host and binary, a compute node per host and hypervisor) is found, revived
  from its newest soft-deleted copy, or inserted; two processes racing to insert it are
  decided by the unique constraint, and the loser reads the winner's row on its retry
  (kazoo's "NodeExists is success" after a reconnect);
* :func:`insert_unique`: create a row whose name must be unique among live rows, or Conflict,
  whether the clash is seen before the insert or by the constraint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from vigil.db import retry
from vigil.db.types import utcnow
from vigil.errors import Conflict, DatabaseUnavailable

P = ParamSpec("P")
R = TypeVar("R")
# SQLite, PostgreSQL and MariaDB wordings of "the table is missing".
_NO_SCHEMA = ("no such table", "does not exist", "doesn't exist")
# Free text written to the database (reasons, details, errors) is clipped to this.
MAX_TEXT = 4000


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map connection-level database failures to DatabaseUnavailable (retryable).

    IntegrityError passes through: it is an answer (a unique key exists), which the caller
    turns into Conflict, AlreadyRecorded or a retry. Before translating, a transaction that
    failed leaving nothing behind (deadlock, Galera failover) is run again, within the
    engine's bounds (:mod:`vigil.db.retry`).
    """
    return translate_errors_once(retry.retrying(fn))


def translate_errors_once(fn: Callable[P, R]) -> Callable[P, R]:
    """:func:`translate_errors` without running anything again: for a probe that must say how
    the database is *now* (a load balancer's health check answers within its own timeout; a
    retry would only leave threads behind it, each holding a pool slot while it connects)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except IntegrityError:
            raise
        except (OperationalError, DBAPIError) as exc:
            text = str(exc.orig or exc)
            if any(m in text for m in _NO_SCHEMA):
                raise DatabaseUnavailable(
                    "the database has no Vigil schema yet: run 'vigil db sync'") from exc
            raise DatabaseUnavailable(f"database unavailable: {text}") from exc

    return wrapper


def cols_of(model: Any, record: type[Any]) -> list[Any]:
    """The columns of ``model`` named like the fields of the dataclass ``record``, in order."""
    return [getattr(model, f.name) for f in dataclasses.fields(record)]


def clip(value: str | None, limit: int = MAX_TEXT) -> str | None:
    return value[:limit] if value is not None else None


def now_in(conn: Connection) -> dt.datetime:
    """The database's clock, read in the caller's transaction."""
    value = conn.execute(select(utcnow())).scalar_one()
    assert isinstance(value, dt.datetime)
    return value


@translate_errors
def db_now(engine: Engine) -> dt.datetime:
    """The database's clock: what stored timestamps (heartbeats, deadlines) compare with."""
    with engine.connect() as conn:
        return now_in(conn)


def by_id_or_uuid(model: Any, ident: int | str) -> ColumnElement[bool]:
    """The condition naming a row by its integer id or its uuid."""
    cond: ColumnElement[bool] = model.id == ident if isinstance(ident, int) else (
        model.uuid == ident)
    return cond


class Origin(enum.Enum):
    """Where :func:`revive_or_insert` found the live row."""

    FOUND = "found"        # it was live already; nothing was written
    REVIVED = "revived"    # the newest soft-deleted row was made live again
    CREATED = "created"    # a new row was inserted


def revive_or_insert(conn: Connection, model: Any, match: Sequence[ColumnElement[bool]], *,
                     revive: Mapping[str, Any], create: Mapping[str, Any]) -> Origin:
    """Make sure a live row matching ``match`` exists, in the caller's transaction.

    Soft delete follows Nova (``deleted`` is 0 for a live row, the row's own id once deleted,
    :mod:`vigil.db.models`): a live match is left as it is; else the newest deleted match is
    revived with the ``revive`` values; else a row of the ``create`` values is inserted. A
    concurrent creator makes the insert fail on the unique constraint: run the transaction
    under :func:`retry_conflicts`, and the retry finds the winner's row.
    """
    live = conn.execute(select(model.id).where(*match, model.deleted == 0)).first()
    if live is not None:
        return Origin.FOUND
    dead = conn.execute(select(model.id).where(*match, model.deleted != 0)
                        .order_by(model.id.desc()).limit(1)).scalar()
    if dead is not None:
        conn.execute(update(model).where(model.id == dead)
                     .values(deleted=0, deleted_at=None, **revive))
        return Origin.REVIVED
    conn.execute(insert(model).values(deleted=0, **create))
    return Origin.CREATED


def retry_conflicts(fn: Callable[[], R], *, what: str, attempts: int = 3) -> R:
    """Run ``fn`` (one transaction) again when it lost an insert race (IntegrityError); after
    ``attempts`` losses, DatabaseUnavailable ("could not <what>: repeated conflicts")."""
    for _ in range(attempts):
        try:
            return fn()
        except IntegrityError:
            continue  # another process created it first; the next attempt reads theirs
    raise DatabaseUnavailable(f"could not {what}: repeated conflicts")


def insert_unique(engine: Engine, model: Any, values: Mapping[str, Any], *,
                  taken: ColumnElement[bool], conflict: str, read: Select[Any]) -> Row[Any]:
    """Insert a row unless a live row matches ``taken``; returns the row ``read`` selects.

    Conflict(``conflict``) if one does, whether it is seen by the check or, for a concurrent
    insert, by the unique constraint.
    """
    try:
        with engine.begin() as conn:
            if conn.execute(select(model.id).where(taken, model.deleted == 0)).first() is not None:
                raise Conflict(conflict)
            conn.execute(insert(model).values(**values))
            return conn.execute(read).one()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
