"""Running a transaction again after a failure that left nothing behind (Galera failover,
deadlock, certification failure), and never after one that may have committed.

Why not oslo.db's ``wrap_db_retry``: it is not a dependency (it would bring oslo.db's engine
facade and its own exception filters, which Vigil's :func:`vigil.db._query.translate_errors`
already does for its one error tree), and it cannot tell a connection lost *during a statement*
(the server rolled the transaction back: safe to run again) from one lost *during COMMIT* (the
commit may have been applied: running a non-idempotent transaction again could apply it twice).
This module can, because :func:`install` records on every error where it happened.

The verdicts (:func:`classify`):

- :attr:`Verdict.RETRY`: the server rolled the transaction back, or it never started.
  MySQL/MariaDB 1213 (deadlock; also Galera's certification failure, reported at COMMIT),
  1205 (lock wait timeout), 1047 (``WSREP has not yet prepared node for application use``:
  the node is not in the primary component); PostgreSQL 40001, 40P01, 55P03; and a lost or
  refused connection (2002, 2003, 2006, 2013, 2055, 1053, 1927, 4031, or any error SQLAlchemy
  calls a disconnect) *while connecting or during a statement*.
- :attr:`Verdict.AMBIGUOUS`: the connection was lost at COMMIT (or where this module cannot
  tell): the transaction may or may not be in the database. Not retried; the caller sees
  :class:`~vigil.errors.DatabaseUnavailable` and reads the state again before deciding, which
  every caller does already (rule 6 of :mod:`vigil.db`: writes are compare-and-sets on what the
  caller read).
- :attr:`Verdict.FATAL`: an answer (IntegrityError, a syntax error, a statement timeout):
  retrying changes nothing.

Why running the whole function again is the same as the caller calling again: every function
of :mod:`vigil.db` runs its own short transaction(s) (rule 1), so a RETRY verdict means none of
its writes is in the database. A guarded write (:func:`vigil.db.ha.lease.guard`) re-checks the
leader's token in the new transaction: a lease lost in between raises LeadershipLost, and
nothing is written twice.
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError

LOG = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# The server rolled the whole transaction back (or refused it before it began).
MYSQL_ROLLED_BACK = {
    1047: "WSREP has not yet prepared node for application use",
    1205: "lock wait timeout",
    1213: "deadlock or Galera certification failure",
}
# The connection is gone (or could not be made).
MYSQL_LOST = {
    1053: "server shutdown in progress",
    1927: "connection killed",
    2002: "cannot connect (socket)",
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection during query",
    2055: "lost connection (system error)",
    4031: "disconnected by the server (idle transaction timeout)",
}
PG_ROLLED_BACK = {"40001": "serialization failure", "40P01": "deadlock",
                  "55P03": "lock not available"}

_PHASE = "vigil_failed_in"


class Phase(enum.Enum):
    """Where a database error happened, as :func:`install`'s listener saw it."""

    CONNECT = "connect"      # no connection yet: no transaction either
    STATEMENT = "statement"  # inside the transaction, before COMMIT
    END = "end"              # COMMIT or ROLLBACK: the outcome of a COMMIT is unknown


class Verdict(enum.Enum):
    """What the retry loop does with an error."""

    RETRY = "retry"          # nothing was written: run the transaction again
    AMBIGUOUS = "ambiguous"  # it may have committed: do not run it again
    FATAL = "fatal"          # an answer, not a failure: do not run it again


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a transaction is run again (seconds).

    Attempt ``n`` (from 1) that fails with a RETRY verdict is followed, after a pause drawn
    uniformly from ``[0, min(maximum, initial * 2**(n-1))]`` ("full jitter": processes that
    failed together do not retry together), by another, while fewer than ``attempts`` were
    made and less than ``deadline`` has passed since the first began. The defaults span a
    Galera writer's failover behind HAProxy (2 failed checks 1 s apart, then the backup takes
    the connections: about 3 s) with room to spare, and bound the wait of a caller of a
    database that is really gone to about ``deadline`` plus one connect timeout. Configured
    by ``[database] max_attempts``, ``retry_interval``, ``max_retry_interval`` and
    ``retry_deadline`` (:func:`vigil.launch.engine_from`).
    """

    attempts: int = 8
    initial: float = 0.1
    maximum: float = 2.0
    deadline: float = 12.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.initial, self.maximum, self.deadline) < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def pause(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """The pause after failed attempt ``attempt`` (1-based)."""
        return draw() * min(self.maximum, self.initial * 2.0 ** (attempt - 1))


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)

# Policies by engine (weak: an engine disposed of takes its policy with it).
_POLICIES: weakref.WeakKeyDictionary[Engine, RetryPolicy] = weakref.WeakKeyDictionary()


def install(engine: Engine, policy: RetryPolicy = DEFAULT_POLICY) -> None:
    """Record where each of ``engine``'s errors happened, and retry its transactions by
    ``policy`` (what :func:`vigil.db.engine.make_engine` does for every engine)."""
    _POLICIES[engine] = policy
    if not event.contains(engine, "handle_error", _note_phase):
        event.listen(engine, "handle_error", _note_phase)


def policy_of(engine: object) -> RetryPolicy:
    """The policy :func:`install` gave ``engine``; an engine made otherwise is retried by
    :data:`DEFAULT_POLICY` (its errors' phases are then guessed, see :func:`phase_of`)."""
    if isinstance(engine, Engine):
        return _POLICIES.get(engine, DEFAULT_POLICY)
    return DEFAULT_POLICY


def _note_phase(ctx: ExceptionContext) -> None:
    exc = ctx.sqlalchemy_exception
    if exc is None:
        return
    if ctx.connection is None:
        phase = Phase.CONNECT  # raised while the pool made a connection
    elif ctx.statement is not None:
        phase = Phase.STATEMENT
    else:
        phase = Phase.END
    setattr(exc, _PHASE, phase)


def phase_of(exc: DBAPIError) -> Phase:
    """Where ``exc`` happened. Without :func:`install`'s note: a statement if the error names
    one, else END (the cautious guess: a connect error is then not retried)."""
    noted = getattr(exc, _PHASE, None)
    if isinstance(noted, Phase):
        return noted
    return Phase.STATEMENT if exc.statement is not None else Phase.END


def error_code(exc: DBAPIError) -> int | str | None:
    """The server's error code: an int (MySQL) or a SQLSTATE string (PostgreSQL)."""
    orig: Any = exc.orig
    pgcode = getattr(orig, "pgcode", None)
    if isinstance(pgcode, str):
        return pgcode
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def classify(exc: BaseException) -> Verdict:
    """The verdict on ``exc`` (see the module's docstring)."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return Verdict.FATAL
    code = error_code(exc)
    if code in MYSQL_ROLLED_BACK or code in PG_ROLLED_BACK:
        return Verdict.RETRY
    if exc.connection_invalidated or code in MYSQL_LOST:
        if phase_of(exc) in (Phase.CONNECT, Phase.STATEMENT):
            return Verdict.RETRY
        return Verdict.AMBIGUOUS
    return Verdict.FATAL


def run(fn: Callable[[], R], policy: RetryPolicy, *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random) -> R:
    """``fn()``, run again after each RETRY-verdict error while ``policy`` allows; the last
    error (or any other) is raised as it is."""
    start = clock()
    attempt = 1
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if classify(exc) is not Verdict.RETRY or attempt >= policy.attempts:
                raise
            pause = policy.pause(attempt, draw)
            if clock() + pause - start > policy.deadline:
                raise
            LOG.warning("database transaction failed (%s, attempt %d of %d); running it again "
                        "in %.2f s: %s", error_code(exc), attempt, policy.attempts, pause,
                        exc.orig)
            sleep(pause)
            attempt += 1


def retrying(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function whose first argument is an Engine: its call is :func:`run` under
    that engine's policy. Used by :func:`vigil.db._query.translate_errors`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        policy = policy_of(args[0] if args else kwargs.get("engine"))
        if policy.attempts == 1:
            return fn(*args, **kwargs)
        return run(lambda: fn(*args, **kwargs), policy)

    return wrapper
