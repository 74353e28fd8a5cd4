"""What make_engine puts on every connection, read back from the real sockets and servers:
TCP keepalives everywhere (the URL's own values kept), and the server-side session limits on
the engines that ask for them; and what those limits do to a transaction whose client went
silent while it held a row lock."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from vigil.db.engine import DEFAULT_KEEPALIVE, KeepAlive, SessionLimits, make_engine

LIMITS = SessionLimits(statement=0.8, lock_wait=0.4, idle_in_transaction=1.0, client_io=3,
                       keepalive=KeepAlive(idle=2, interval=1, count=4))


@pytest.fixture(params=["postgresql", "mysql"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("pg_url" if request.param == "postgresql"
                                       else "mysql_url"))


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for e in made:
        e.dispose()


@contextlib.contextmanager
def sock_of(dbapi_conn: Any) -> Iterator[socket.socket]:
    """The connection's own TCP socket (psycopg2: a duplicate descriptor of it, closed after;
    socket options belong to the socket, not the descriptor)."""
    if hasattr(dbapi_conn, "_sock"):  # PyMySQL
        yield dbapi_conn._sock
        return
    with socket.socket(fileno=os.dup(dbapi_conn.fileno())) as sock:
        yield sock


def keepalive_of(engine: Engine) -> tuple[int, int, int, int, int]:
    with engine.connect() as conn, sock_of(conn.connection.dbapi_connection) as sock:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))


def test_every_engine_keeps_its_connections_alive(server_url: str,
                                                  engines: list[Engine]) -> None:
    engines.append(make_engine(server_url))
    ka = DEFAULT_KEEPALIVE
    assert keepalive_of(engines[0])[:4] == (1, ka.idle, ka.interval, ka.count)
    engines.append(make_engine(server_url, limits=LIMITS))
    assert keepalive_of(engines[1]) == (1, 2, 1, 4, 6000)  # the limits' own keepalive


def test_keepalive_values_in_the_url_are_kept(pg_url: str, engines: list[Engine]) -> None:
    url = make_url(pg_url).update_query_dict({"keepalives_idle": "42"})
    engines.append(make_engine(url.render_as_string(hide_password=False)))
    _, idle, interval, _, _ = keepalive_of(engines[0])
    assert (idle, interval) == (42, DEFAULT_KEEPALIVE.interval)


def test_pymysql_client_timeouts_in_the_url_are_kept(mysql_url: str,
                                                     engines: list[Engine]) -> None:
    url = make_url(mysql_url).update_query_dict({"read_timeout": "17"})
    engines.append(make_engine(url.render_as_string(hide_password=False), limits=LIMITS))
    with engines[0].connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert (dbapi._read_timeout, dbapi._write_timeout) == (17, 3)


def session_limits(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                     "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
                     "tcp_user_timeout")
            return {n: conn.execute(text(f"SHOW {n}")).scalar_one() for n in names}
        row = conn.execute(text(
            "SELECT @@session.max_statement_time, @@session.innodb_lock_wait_timeout, "
            "@@session.idle_transaction_timeout")).one()
        return dict(zip(("max_statement_time", "innodb_lock_wait_timeout",
                         "idle_transaction_timeout"), (str(v) for v in row), strict=True))


def test_the_limits_hold_on_every_session_of_the_engine(server_url: str,
                                                        engines: list[Engine]) -> None:
    plain = make_engine(server_url)
    limited = make_engine(server_url, limits=LIMITS)
    engines += [plain, limited]
    if plain.dialect.name == "postgresql":
        assert session_limits(plain)["statement_timeout"] == "0"
        expected = {"statement_timeout": "800ms", "lock_timeout": "400ms",
                    "idle_in_transaction_session_timeout": "1s", "tcp_keepalives_idle": "2",
                    "tcp_keepalives_interval": "1", "tcp_keepalives_count": "4",
                    "tcp_user_timeout": "6000"}
    else:
        assert session_limits(plain)["idle_transaction_timeout"] == "0"
        # whole seconds, rounded down, at least 1
        expected = {"max_statement_time": "0.8", "innodb_lock_wait_timeout": "1",
                    "idle_transaction_timeout": "1"}
    # A rolled-back transaction (what the pool does on every return) keeps them.
    for _ in range(2):
        with limited.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()
        assert session_limits(limited) == expected


def test_sqlite_ignores_the_limits(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.sqlite", limits=LIMITS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()


@pytest.fixture
def lock_table(server_url: str, engines: list[Engine]) -> str:
    admin = make_engine(server_url)
    engines.append(admin)
    with admin.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS limits_probe"))
        conn.execute(text("CREATE TABLE limits_probe (id INT PRIMARY KEY, v INT NOT NULL)"))
        conn.execute(text("INSERT INTO limits_probe VALUES (1, 0)"))
    return server_url


def test_a_silent_holder_is_ended_by_the_server_and_a_waiter_fails_fast(
        lock_table: str, engines: list[Engine]) -> None:
    """The holder takes the row lock and goes silent inside its transaction (its client is
    still connected: no reset, as in a partition). A waiter gives up after its lock wait and
    retries; the server ends the holder's session after the idle limit, and the waiter gets
    the row. Without limits the holder would keep the row for as long as its connection
    lives."""
    engine = make_engine(lock_table, limits=LIMITS)
    engines.append(engine)
    holder = engine.connect()
    holder.execute(text("UPDATE limits_probe SET v = v + 1 WHERE id = 1"))
    silent_since = time.monotonic()

    def bump() -> float:
        started = time.monotonic()
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE limits_probe SET v = v + 10 WHERE id = 1"))
        except Exception as exc:  # the lock wait's failure (the driver's), asserted below
            waited = time.monotonic() - started
            text_ = str(exc).lower()
            assert "lock" in text_ or "max_statement_time" in text_, exc
            return -waited
        return time.monotonic() - silent_since

    outcomes = []
    while (got := bump()) < 0:
        outcomes.append(-got)
        assert time.monotonic() - silent_since < 5, outcomes
    assert outcomes, "the row was never held?"
    # Each failed attempt waited about the lock wait (MariaDB: its statement limit, 0.8 s,
    # comes before its lock wait, rounded up to 1 s).
    assert all(w < 1.5 for w in outcomes), outcomes
    # Released by the server after about the idle limit (1 s), not by the client.
    assert 0.9 <= got < 2.5, got
    with pytest.raises(Exception):  # noqa: B017 - the driver's own "connection gone" error
        holder.execute(text("SELECT 1"))
    holder.close()
    with engine.connect() as conn:  # the holder's +1 was rolled back
        assert conn.execute(text("SELECT v FROM limits_probe")).scalar_one() == 10
