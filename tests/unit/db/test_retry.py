"""vigil.db.retry: the policy's arithmetic and verdicts as tables, then the real failures on the
real MariaDB: a deadlock (two connections locking two rows in opposite orders), a connection
killed in the middle of a transaction (KILL CONNECTION: 2013 at the next statement), a
connection killed before COMMIT (not retried: the outcome of a COMMIT is unknown), a server
that refuses connections, errors that are answers (not retried), and a guarded write whose
lease was taken between two attempts (LeadershipLost, nothing written)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from tests.conftest import reset_schema
from tests.tools.wait import wait_for
from vigil.db import retry
from vigil.db._query import translate_errors, translate_errors_once
from vigil.db.engine import make_engine
from vigil.db.ha import lease
from vigil.db.retry import Phase, RetryPolicy, Verdict
from vigil.errors import DatabaseUnavailable, LeadershipLost

FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, deadline=10)


# -- the policy ------------------------------------------------------------------------------
@pytest.mark.parametrize(("attempt", "draw", "pause"), [
    (1, 1.0, 0.1), (2, 1.0, 0.2), (3, 1.0, 0.4), (5, 1.0, 1.6), (6, 1.0, 2.0), (20, 1.0, 2.0),
    (3, 0.5, 0.2), (3, 0.0, 0.0),
])
def test_the_pause_doubles_up_to_the_maximum_with_full_jitter(attempt: int, draw: float,
                                                              pause: float) -> None:
    assert RetryPolicy().pause(attempt, lambda: draw) == pytest.approx(pause)


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"initial": -1}, {"deadline": -0.1}])
def test_a_policy_that_makes_no_sense_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(**bad)


def _mysql_error(code: int, phase: Phase | None, statement: str | None = "UPDATE t",
                 cls: type[DBAPIError] = OperationalError) -> DBAPIError:
    exc = cls(statement, None, pymysql.err.OperationalError(code, "message"))
    if phase is not None:
        setattr(exc, retry._PHASE, phase)
    return exc


@pytest.mark.parametrize(("code", "phase", "verdict"), [
    (1213, Phase.STATEMENT, Verdict.RETRY),   # deadlock
    (1213, Phase.END, Verdict.RETRY),         # Galera certification failure, at COMMIT
    (1205, Phase.STATEMENT, Verdict.RETRY),   # lock wait timeout
    (1047, Phase.STATEMENT, Verdict.RETRY),   # WSREP not ready (non-primary node)
    (2013, Phase.STATEMENT, Verdict.RETRY),   # lost during a statement: rolled back
    (2006, Phase.CONNECT, Verdict.RETRY),
    (2003, Phase.CONNECT, Verdict.RETRY),
    (2013, Phase.END, Verdict.AMBIGUOUS),     # lost during COMMIT: may have committed
    (2006, Phase.END, Verdict.AMBIGUOUS),
    (1064, Phase.STATEMENT, Verdict.FATAL),   # syntax error
    (1146, Phase.STATEMENT, Verdict.FATAL),   # no such table
    (1969, Phase.STATEMENT, Verdict.FATAL),   # max_statement_time: an answer
])
def test_verdicts(code: int, phase: Phase, verdict: Verdict) -> None:
    assert retry.classify(_mysql_error(code, phase)) is verdict


def test_without_a_noted_phase_a_lost_connection_is_retried_only_inside_a_statement() -> None:
    assert retry.classify(_mysql_error(2013, None, statement="SELECT 1")) is Verdict.RETRY
    assert retry.classify(_mysql_error(2013, None, statement=None)) is Verdict.AMBIGUOUS


def test_an_integrity_error_is_an_answer_whatever_its_code() -> None:
    assert retry.classify(_mysql_error(1213, Phase.STATEMENT, cls=IntegrityError)) is (
        Verdict.FATAL)
    assert retry.classify(ValueError("not a database error")) is Verdict.FATAL


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def _failing(times: int, code: int = 1213) -> Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise _mysql_error(code, Phase.STATEMENT)
        return f"done after {calls['n']}"

    return fn


def test_run_retries_until_success_within_the_attempts() -> None:
    t = FakeTime()
    out = retry.run(_failing(3), RetryPolicy(attempts=4), sleep=t.sleep, clock=lambda: t.now,
                    draw=lambda: 1.0)
    assert out == "done after 4"
    assert t.slept == pytest.approx([0.1, 0.2, 0.4])


def test_run_gives_up_after_the_last_attempt_with_the_last_error() -> None:
    t = FakeTime()
    with pytest.raises(OperationalError):
        retry.run(_failing(10), RetryPolicy(attempts=3), sleep=t.sleep, clock=lambda: t.now,
                  draw=lambda: 1.0)
    assert len(t.slept) == 2


def test_run_starts_no_attempt_past_the_deadline() -> None:
    t = FakeTime()
    with pytest.raises(OperationalError):
        retry.run(_failing(100), RetryPolicy(attempts=100, initial=1, maximum=1, deadline=3.5),
                  sleep=t.sleep, clock=lambda: t.now, draw=lambda: 1.0)
    assert t.slept == [1, 1, 1]  # a 4th pause would end at 4 s > 3.5 s


@pytest.mark.parametrize("code", [1064, 2013])
def test_run_does_not_retry_a_fatal_or_ambiguous_error(code: int) -> None:
    t = FakeTime()
    calls = {"n": 0}

    def fn() -> None:
        calls["n"] += 1
        raise _mysql_error(code, Phase.END)

    with pytest.raises(OperationalError):
        retry.run(fn, RetryPolicy(), sleep=t.sleep, clock=lambda: t.now)
    assert calls["n"] == 1 and t.slept == []


# -- the real MariaDB ------------------------------------------------------------------------
@pytest.fixture
def engine(mysql_url: str) -> Iterator[Engine]:
    e = make_engine(mysql_url, retry_policy=FAST)
    yield e
    e.dispose()


@pytest.fixture
def table(engine: Engine) -> Iterator[str]:
    name = f"retry_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id INT PRIMARY KEY, n INT NOT NULL)"))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES (1, 0), (2, 0)"))
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {name}"))


def _raw(mysql_url: str) -> pymysql.connections.Connection[Any]:
    u = sa.engine.make_url(mysql_url)
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username,
                           password=u.password or "", database=u.database)


def _counts(engine: Engine, table: str) -> dict[int, int]:
    with engine.connect() as conn:
        return {int(r[0]): int(r[1]) for r in conn.execute(sa.text(f"SELECT id, n FROM {table}"))}


def _waiting_for_a_lock(mysql_url: str) -> bool:
    with _raw(mysql_url) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx "
                    "WHERE trx_state = 'LOCK WAIT'")
        row = cur.fetchone()
        return bool(row and row[0] > 0)


def test_a_deadlock_victim_is_run_again_and_both_transactions_apply_once(
        engine: Engine, table: str, mysql_url: str) -> None:
    """The other transaction locks row 2 and writes many rows (so InnoDB picks ours, the
    lighter one, as the victim); ours locks row 1; the other then waits for row 1; ours asks for
    row 2: a cycle. Ours fails with 1213, is run again once the other committed, and succeeds."""
    other = _raw(mysql_url)
    attempts: list[int] = []
    other_done = threading.Event()
    errors: list[BaseException] = []

    def others_side() -> None:
        try:
            with other.cursor() as cur:
                cur.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")  # waits for ours
            other.commit()
        except BaseException as exc:
            errors.append(exc)
        finally:
            other_done.set()

    @translate_errors
    def ours(engine: Engine) -> None:
        attempts.append(len(attempts) + 1)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
            if len(attempts) == 1:
                threading.Thread(target=others_side, daemon=True).start()
                wait_for(lambda: _waiting_for_a_lock(mysql_url), 10, "the other to wait")
            conn.execute(sa.text(f"UPDATE {table} SET n = n + 1 WHERE id = 2"))

    with other.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 2")
        cur.execute(f"CREATE TEMPORARY TABLE heavy_{table} (i INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO heavy_{table} SELECT seq FROM seq_1_to_200")
    try:
        ours(engine)
        assert other_done.wait(10) and not errors, errors
    finally:
        other.close()
    assert attempts == [1, 2]
    assert _counts(engine, table) == {1: 2, 2: 2}  # each transaction applied exactly once


def _kill(mysql_url: str, connection_id: int) -> None:
    with _raw(mysql_url) as c, c.cursor() as cur:
        cur.execute(f"KILL CONNECTION {connection_id}")


def _connection_id(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())


def test_a_connection_killed_inside_a_transaction_is_replaced_and_the_transaction_run_again(
        engine: Engine, table: str, mysql_url: str) -> None:
    attempts: list[int] = []

    @translate_errors
    def bump(engine: Engine) -> None:
        attempts.append(len(attempts) + 1)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
            if len(attempts) == 1:
                _kill(mysql_url, _connection_id(conn))  # the server rolls ours back
            conn.execute(sa.text(f"UPDATE {table} SET n = n + 1 WHERE id = 2"))

    bump(engine)
    assert attempts == [1, 2]
    assert _counts(engine, table) == {1: 1, 2: 1}


def test_a_connection_lost_at_commit_is_not_run_again(engine: Engine, table: str,
                                                      mysql_url: str) -> None:
    """The COMMIT is sent on a killed connection: the client cannot know whether it was
    applied (here it was not), so the transaction is not run again; the caller gets
    DatabaseUnavailable and reads before deciding."""
    attempts: list[int] = []
    phases: list[Phase] = []

    @translate_errors
    def bump(engine: Engine) -> None:
        attempts.append(len(attempts) + 1)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
                _kill(mysql_url, _connection_id(conn))
        except DBAPIError as exc:
            phases.append(retry.phase_of(exc))
            raise

    with pytest.raises(DatabaseUnavailable):
        bump(engine)
    assert attempts == [1]
    assert phases == [Phase.END]
    assert _counts(engine, table) == {1: 0, 2: 0}


def test_errors_that_are_answers_are_not_retried(engine: Engine, table: str) -> None:
    calls: list[str] = []

    @translate_errors
    def bad_sql(engine: Engine) -> None:
        calls.append("syntax")
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET n = WHERE"))

    @translate_errors
    def duplicate(engine: Engine) -> None:
        calls.append("duplicate")
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 5)"))

    with pytest.raises(DatabaseUnavailable) as info:
        bad_sql(engine)
    assert isinstance(info.value.__cause__, ProgrammingError)
    with pytest.raises(IntegrityError):
        duplicate(engine)
    assert calls == ["syntax", "duplicate"]
    assert _counts(engine, table) == {1: 0, 2: 0}


def test_a_refused_connection_is_retried_until_the_policy_gives_up() -> None:
    """Nothing listens on the port: every attempt fails while connecting (2003), which is
    safe to retry; after the policy's attempts, DatabaseUnavailable. A probe made with
    translate_errors_once tries once."""
    e = make_engine("mysql+pymysql://root@127.0.0.1:9/none?connect_timeout=2",
                    retry_policy=FAST)
    phases: list[Phase] = []
    sa.event.listen(e, "handle_error",
                    lambda ctx: phases.append(retry.phase_of(ctx.sqlalchemy_exception)))

    @translate_errors
    def read(engine: Engine) -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @translate_errors_once
    def probe(engine: Engine) -> None:  # a health check: says how it is now
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        with pytest.raises(DatabaseUnavailable, match="2003"):
            read(e)
        assert phases == [Phase.CONNECT] * FAST.attempts
        phases.clear()
        with pytest.raises(DatabaseUnavailable, match="2003"):
            probe(e)
        assert phases == [Phase.CONNECT]
    finally:
        e.dispose()


def test_a_guarded_write_retried_after_the_lease_moved_raises_and_writes_nothing(
        engine: Engine, mysql_url: str) -> None:
    """Attempt 1 of a guarded write loses its connection after the guard; before attempt 2
    another monitor takes the expired lease. Attempt 2's guard matches nothing:
    LeadershipLost, and neither attempt's write is in the database."""
    reset_schema(engine)
    token = lease.lease_acquire(engine, "ha-monitor", "ctl1:1", ttl=30)
    assert token is not None
    attempts: list[int] = []
    name = f"retry_guarded_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id INT PRIMARY KEY)"))

    @translate_errors
    def guarded_insert(engine: Engine) -> None:
        attempts.append(len(attempts) + 1)
        with engine.begin() as conn:
            lease.guard(conn, token)
            conn.execute(sa.text(f"INSERT INTO {name} VALUES ({len(attempts)})"))
            if len(attempts) == 1:
                with _raw(mysql_url) as c, c.cursor() as cur:
                    # (row-locked by our guard until the kill rolls ours back)
                    cur.execute(f"KILL CONNECTION {_connection_id(conn)}")
                    cur.execute("UPDATE ha_leases SET expires_at = UTC_TIMESTAMP(6) "
                                "WHERE name = 'ha-monitor'")
                    c.commit()
                assert lease.lease_acquire(engine, "ha-monitor", "ctl2:1", ttl=30) is not None
            conn.execute(sa.text("SELECT 1"))

    with pytest.raises(LeadershipLost):
        guarded_insert(engine)
    assert attempts == [1, 2]
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one() == 0
        conn.execute(sa.text(f"DROP TABLE {name}"))


# -- the assumption the retry rests on -------------------------------------------------------
# Helpers a retried function may call besides its one write transaction: idempotent ones.
IDEMPOTENT_HELPERS = {"ensure",          # vigil.db.ha.hosts: insert the row if missing
                      "insert_unique"}   # one transaction of its own, the caller's only one


def test_every_retried_function_writes_in_one_transaction() -> None:
    """Running a function of vigil.db again is only the same as its caller calling again if a
    RETRY verdict means none of its writes committed: each function decorated with
    translate_errors opens at most one write transaction (``engine.begin()``), besides reads
    and idempotent helpers. A second one (committed, then the next one fails) would be run
    twice: split the function, or make the first step idempotent and list it above."""
    import ast
    from pathlib import Path

    import vigil

    offenders = []
    for path in sorted(Path(vigil.__file__).parent.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef) or not any(
                    "translate_errors" in ast.unparse(d) for d in fn.decorator_list):
                continue
            calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)]
            writes = sum(ast.unparse(c.func) == "engine.begin" for c in calls)
            helpers = {ast.unparse(c.func) for c in calls  # calls handing the engine on
                       if any(isinstance(a, ast.Name) and a.id == "engine" for a in c.args)}
            if writes > 1 or helpers - IDEMPOTENT_HELPERS:
                offenders.append(f"{path.name}:{fn.name} ({writes} engine.begin, "
                                 f"helpers {sorted(helpers - IDEMPOTENT_HELPERS)})")
    assert offenders == []


def test_the_configured_policy_is_the_engines(make_conf: Any) -> None:
    conf, _ = make_conf({"database": {"max_attempts": 3, "retry_interval": 0.5,
                                      "max_retry_interval": 4, "retry_deadline": 30}})
    from vigil import launch

    engine = launch.engine_from(conf)
    try:
        assert retry.policy_of(engine) == RetryPolicy(attempts=3, initial=0.5, maximum=4,
                                                      deadline=30)
    finally:
        engine.dispose()
    conf, _ = make_conf()
    engine = launch.engine_from(conf)
    try:
        assert retry.policy_of(engine) == retry.DEFAULT_POLICY
    finally:
        engine.dispose()
