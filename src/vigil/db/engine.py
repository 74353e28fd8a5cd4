"""Engine construction with per-dialect settings that correctness depends on.

Two kinds of settings beyond the URL:

- **TCP keepalives on every connection** (:class:`KeepAlive`). Without them a connection
  whose peer vanished without a reset (a partition, a host that lost power) looks open to the
  kernel for hours: a client blocked on it never wakes, and the server keeps the session, its
  open transaction and that transaction's row locks. psycopg2 takes them as libpq connection
  parameters; PyMySQL has none, so its socket gets them in a ``connect`` event.
- **Server-side session limits** (:class:`SessionLimits`), for the engines that ask for them
  (the HA monitor's: its transactions hold the lease row, see :mod:`vigil.ha.election`): how
  long a statement may run, wait for a lock, or sit idle inside a transaction before the
  *server* ends it, whatever became of the client. SQLite has no server: they do not apply.

And on every engine, the retry of a transaction that failed leaving nothing behind (a Galera
writer's failover, a deadlock, a certification failure; :mod:`vigil.db.retry`), with
``pool_pre_ping`` so that a connection the failover cut is noticed at checkout and replaced
instead of failing the caller's first statement.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from vigil.db import retry
from vigil.errors import ConfigError


@dataclass(frozen=True)
class KeepAlive:
    """TCP keepalive (and user timeout) of a database connection, in whole seconds.

    A silent peer is probed after ``idle`` seconds, then every ``interval`` seconds, and the
    connection is dropped after ``count`` unanswered probes: a dead peer is noticed about
    :attr:`dead_after` seconds after the last traffic. Keepalive only runs on an idle
    connection; a connection with unacknowledged data (a request sent into a partition) is
    governed by the retransmission timer instead, which ``TCP_USER_TIMEOUT`` (set to the same
    :attr:`dead_after`) bounds the same way.
    """

    idle: int = 10
    interval: int = 5
    count: int = 3

    def __post_init__(self) -> None:
        if min(self.idle, self.interval, self.count) < 1:
            raise ValueError(f"keepalive values must be at least 1: {self}")

    @property
    def dead_after(self) -> int:
        return self.idle + self.interval * self.count


@dataclass(frozen=True)
class SessionLimits:
    """Bounds, enforced by the database server, on one engine's sessions (seconds).

    They end a session's hold on its locks even when its client is gone or unreachable:

    - ``statement``: longest run of one statement, lock waits included (PostgreSQL
      ``statement_timeout``, MariaDB ``max_statement_time``);
    - ``lock_wait``: longest wait for a row lock, after which the statement fails and the
      caller retries later (``lock_timeout``, ``innodb_lock_wait_timeout``);
    - ``idle_in_transaction``: longest a session may sit between two statements of an open
      transaction before the server ends it, rolling back and releasing its locks
      (``idle_in_transaction_session_timeout``; MariaDB ``idle_transaction_timeout``, in
      whole seconds, at least 1);
    - ``client_io``: PyMySQL's own ``read_timeout``/``write_timeout`` (psycopg2 has none:
      there the keepalives bound a dead connection);
    - ``keepalive``: the client's TCP keepalives, also set on the server side of the session
      where the server allows it (PostgreSQL ``tcp_keepalives_*``, ``tcp_user_timeout``).

    MariaDB counts ``innodb_lock_wait_timeout`` and ``idle_transaction_timeout`` in whole
    seconds: they are rounded down, to at least 1 s.
    """

    statement: float
    lock_wait: float
    idle_in_transaction: float
    client_io: float
    keepalive: KeepAlive = field(default_factory=KeepAlive)

    def __post_init__(self) -> None:
        if min(self.statement, self.lock_wait, self.idle_in_transaction, self.client_io) <= 0:
            raise ValueError(f"session limits must be positive: {self}")

    def postgresql(self) -> dict[str, int]:
        """The PostgreSQL settings (milliseconds and seconds, as the server takes them)."""
        ka = self.keepalive
        return {"statement_timeout": _ms(self.statement),
                "lock_timeout": _ms(self.lock_wait),
                "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction),
                "tcp_keepalives_idle": ka.idle, "tcp_keepalives_interval": ka.interval,
                "tcp_keepalives_count": ka.count, "tcp_user_timeout": ka.dead_after * 1000}

    def mariadb(self) -> dict[str, float | int]:
        """The MariaDB settings (seconds; the integer ones rounded down, at least 1)."""
        return {"max_statement_time": self.statement,
                "innodb_lock_wait_timeout": _whole(self.lock_wait),
                "idle_transaction_timeout": _whole(self.idle_in_transaction)}

    def mysql(self) -> dict[str, int]:
        """MySQL, which has neither an idle-in-transaction limit nor a statement limit on
        writes: ``wait_timeout`` (which ends an idle session in a transaction or not) and
        ``max_execution_time`` (read-only statements)."""
        return {"max_execution_time": _ms(self.statement),
                "innodb_lock_wait_timeout": _whole(self.lock_wait),
                "wait_timeout": _whole(self.idle_in_transaction)}


DEFAULT_KEEPALIVE = KeepAlive()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))  # 0 would switch the limit off


def _whole(seconds: float) -> int:
    return max(1, math.floor(seconds))


# The database drivers Vigil's extras install, by the module SQLAlchemy imports for them.
DRIVER_EXTRAS = {"psycopg2": ("pg", "postgresql+psycopg2"), "pymysql": ("mysql", "mysql+pymysql")}
# What SQLAlchemy imports for a URL that names no driver, and the URL Vigil's extra serves.
DEFAULT_DRIVERS = {"psycopg": "postgresql+psycopg2", "MySQLdb": "mysql+pymysql"}


def missing_driver(url: URL, module: str) -> str:
    """One line for a database URL whose driver is not installed: the extra that installs it,
    and, for a URL with SQLAlchemy's default driver (which no extra installs), the URL form
    that uses the extra's."""
    shown = url.render_as_string(hide_password=True)
    if module in DRIVER_EXTRAS:
        extra, _ = DRIVER_EXTRAS[module]
        return (f"database {shown} needs the {module} driver: "
                f"pip install 'vigil[{extra}]'")
    if module in DEFAULT_DRIVERS:
        prefix = DEFAULT_DRIVERS[module]
        extra = DRIVER_EXTRAS[prefix.split("+")[1]][0]
        return (f"database {shown} asks for the {module} driver, which Vigil does not "
                f"install: write the URL as {prefix}://... and pip install 'vigil[{extra}]'")
    return f"database {shown} needs the Python module {module}, which is not installed"


def make_engine(url: str, *, echo: bool = False, limits: SessionLimits | None = None,
                retry_policy: retry.RetryPolicy = retry.DEFAULT_POLICY) -> Engine:
    """An engine for ``url``; creates the directory of a SQLite file.

    SQLite: WAL so readers (``vigil service list`` in another terminal) never block the
    conductor's writes, and a busy timeout so two writers wait instead of failing.
    PostgreSQL and MariaDB: TCP keepalives on every connection (``limits.keepalive``, else
    :data:`DEFAULT_KEEPALIVE`; values the URL sets itself are kept) and, with ``limits``,
    the session limits on every new connection. Every engine: its transactions retried by
    ``retry_policy`` (:func:`vigil.db.retry.install`).
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError and others for bad URLs
        raise ConfigError(f"invalid [database] connection URL: {exc}") from exc
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    backend = parsed.get_backend_name()
    keepalive = limits.keepalive if limits is not None else DEFAULT_KEEPALIVE
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            os.makedirs(os.path.dirname(os.path.abspath(database)) or ".", exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_recycle"] = 3600
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
        kwargs["connect_args"] = _connect_args(parsed, keepalive, limits)
    try:
        engine = create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise ConfigError(missing_driver(parsed, exc.name or "")) from exc
    except Exception as exc:  # bad options
        raise ConfigError(f"cannot use database {parsed.render_as_string()}: {exc}") from exc
    retry.install(engine, retry_policy)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    elif backend == "postgresql" and limits is not None:

        @event.listens_for(engine, "connect")
        def _pg_limits(dbapi_conn: Any, _record: Any) -> None:
            settings = limits.postgresql()
            if dbapi_conn.server_version < 120000:  # tcp_user_timeout is PostgreSQL 12+
                settings.pop("tcp_user_timeout")
            _apply(dbapi_conn, "; ".join(f"SET {k} = {v}" for k, v in settings.items()))

    elif backend == "mysql" and parsed.get_driver_name() == "pymysql":

        @event.listens_for(engine, "connect")
        def _mysql_socket_and_limits(dbapi_conn: Any, _record: Any) -> None:
            _socket_keepalive(getattr(dbapi_conn, "_sock", None), keepalive)
            if limits is not None:
                mariadb = "mariadb" in str(dbapi_conn.get_server_info()).lower()
                settings = limits.mariadb() if mariadb else limits.mysql()
                _apply(dbapi_conn, "SET SESSION " + ", ".join(f"{k} = {v}"
                                                              for k, v in settings.items()))

    return engine


def _connect_args(url: URL, keepalive: KeepAlive,
                  limits: SessionLimits | None) -> dict[str, Any]:
    """DBAPI connect arguments: keepalives (psycopg2) and client timeouts (PyMySQL), each
    only where the URL does not set it already (the URL's query wins)."""
    args: dict[str, Any] = {}
    if url.get_driver_name() == "psycopg2":
        args = {"keepalives": 1, "keepalives_idle": keepalive.idle,
                "keepalives_interval": keepalive.interval,
                "keepalives_count": keepalive.count}
        if _libpq_version() >= 120000:  # tcp_user_timeout is libpq 12+
            args["tcp_user_timeout"] = keepalive.dead_after * 1000
    elif url.get_driver_name() == "pymysql" and limits is not None:
        args = {"read_timeout": limits.client_io, "write_timeout": limits.client_io}
    return {k: v for k, v in args.items() if k not in url.query}


def _libpq_version() -> int:
    try:
        import psycopg2
    except ImportError:  # create_engine says so, as a ConfigError
        return 0
    return int(psycopg2.__libpq_version__)


def _apply(dbapi_conn: Any, statement: str) -> None:
    """Run the session's SET statement(s), committed: a SET inside a transaction that is
    later rolled back (as the pool does on every return) is undone on PostgreSQL."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute(statement)
    finally:
        cur.close()
    dbapi_conn.commit()


def _socket_keepalive(sock: socket.socket | None, keepalive: KeepAlive) -> None:
    """TCP keepalives on a PyMySQL socket (it turns SO_KEEPALIVE on, with the kernel's
    two-hour default idle time)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket: no TCP, nothing to keep alive
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", keepalive.idle),
                        ("TCP_KEEPINTVL", keepalive.interval),
                        ("TCP_KEEPCNT", keepalive.count),
                        ("TCP_USER_TIMEOUT", keepalive.dead_after * 1000)):
        option = getattr(socket, name, None)
        if option is not None:  # Linux has them all; other systems some
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
