"""The lease when the database stops answering without failing (a partition): the leader steps
down at its own deadline whatever its renewal is doing, hung renewals do not pile up, a late
renewal brings nothing back, and a standby's takeover does not wait behind a dead holder.

Real PostgreSQL and MariaDB, reached through the tests' TCP proxy where the connection must
hang; the FakeClock where the deadline must be exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from tests.conftest import reset_schema
from tests.functional.procs import poll
from tests.tools.tcpproxy import TcpProxy
from vigil.clock import FakeClock
from vigil.db.engine import KeepAlive, SessionLimits, make_engine
from vigil.db.ha import lease as lease_db
from vigil.ha.election import Election, lease_session_limits

UPDATE_LEASE = b"UPDATE ha_leases"


@pytest.fixture(params=["postgresql", "mysql"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty PostgreSQL or MariaDB database."""
    url = str(request.getfixturevalue("pg_url" if request.param == "postgresql"
                                      else "mysql_url"))
    engine = make_engine(url)
    reset_schema(engine)
    engine.dispose()
    yield url


@pytest.fixture
def direct(server_url: str) -> Iterator[Engine]:
    engine = make_engine(server_url)
    yield engine
    engine.dispose()


@pytest.fixture
def proxy(server_url: str) -> Iterator[TcpProxy]:
    url = make_url(server_url)
    with TcpProxy((url.host or "127.0.0.1", int(url.port or 0))) as p:
        yield p


def through(proxy: TcpProxy, server_url: str) -> str:
    return make_url(server_url).set(host=proxy.host, port=proxy.port).render_as_string(
        hide_password=False)


def renewal_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "ha-lease-renew")


def test_a_hung_renewal_steps_down_exactly_at_the_deadline_and_does_not_pile_up(
        server_url: str, proxy: TcpProxy, direct: Engine) -> None:
    # Only the renewal's connection stalls (a flow dropped by a firewall): the database stays
    # reachable over new connections, so a new term can start while the old renewal hangs.
    # The server ends the stalled transaction after its idle limit; its client never hears
    # of it (the proxy holds the news), so the renewal hangs until the heal.
    limits = SessionLimits(statement=0.5, lock_wait=0.5, idle_in_transaction=0.5,
                           client_io=60, keepalive=KeepAlive())
    engine = make_engine(through(proxy, server_url), limits=limits)
    clock = FakeClock()
    ttl = 2.5  # margin 0.25: every instant below is exact in binary floating point
    e = Election(engine, "me", ttl=ttl, clock=clock)
    stop = threading.Event()
    try:
        t0 = clock.monotonic()
        first = e.try_acquire()
        assert first is not None
        proxy.stall_on(UPDATE_LEASE, connection_only=True)
        assert e.renew_in_background()
        poll(proxy.stalled.is_set, 5, what="the renewal's UPDATE to reach the server")
        assert not e.sleep(stop, 2.0)
        assert e.is_leader() and not e.lost.is_set()  # t0 + 2.0: still within validity
        assert not e.sleep(stop, 0.25)  # t0 + 2.25 = t0 + ttl - margin: the deadline
        assert clock.monotonic() == t0 + ttl - e.margin
        assert e.lost.is_set() and not e.is_leader()
        assert e.renewal_in_flight()  # ... while the renewal still hangs

        # A new term (the lease expired in the database, the server ended the stalled
        # transaction): its renewal cannot start while the old one hangs, so it steps down
        # at its own deadline too; one hung thread, never two.
        second = poll(e.try_acquire, 10, interval=0.1, what="a new term")
        assert second.epoch == first.epoch + 1
        assert not e.renew_in_background()
        assert renewal_threads() == 1
        assert not e.sleep(stop, ttl)
        assert e.lost.is_set() and not e.is_leader()

        proxy.heal()  # the old renewal hears that its session was ended: it fails, late
        poll(lambda: not e.renewal_in_flight(), 10, what="the hung renewal to end")
        assert not e.is_leader()
        lease = lease_db.lease_get(direct, "ha-monitor")
        assert lease is not None and lease.epoch == second.epoch
    finally:
        proxy.heal()
        engine.dispose()


def test_a_renewal_answering_after_the_deadline_brings_nothing_back_and_hands_over(
        server_url: str, proxy: TcpProxy, direct: Engine) -> None:
    # No session limits: the stalled renewal stays open on the server and commits at the heal.
    engine = make_engine(through(proxy, server_url))
    clock = FakeClock()
    e = Election(engine, "me", ttl=30.0, clock=clock)
    try:
        token = e.try_acquire()
        assert token is not None
        proxy.stall_on(UPDATE_LEASE)
        assert e.renew_in_background()
        poll(proxy.stalled.is_set, 5, what="the stall")
        assert not e.sleep(threading.Event(), 60)
        assert e.lost.is_set()
        proxy.heal()
        poll(lambda: not e.renewal_in_flight(), 10, what="the late renewal")
        assert not e.is_leader() and e.lost.is_set()
        # The renewal did commit, late: the lease was extended in the database, and released
        # at once rather than left to block the standbys for another ttl.
        lease = lease_db.lease_get(direct, "ha-monitor")
        assert lease is not None and not lease.held and lease.holder is None
        standby = lease_db.lease_acquire(direct, "ha-monitor", "standby", 30)
        assert standby is not None and standby.epoch == token.epoch + 1
    finally:
        proxy.heal()
        engine.dispose()


def test_the_renewal_loop_signals_the_loss_while_the_renewal_hangs(
        server_url: str, proxy: TcpProxy) -> None:
    """The background loop, real clock: a partition (everything stalls, nothing fails), and
    ``lost`` is set by the deadline, counted from before the last renewal was sent."""
    engine = make_engine(through(proxy, server_url))  # no limits: nothing would ever fail
    ttl = 1.5
    e = Election(engine, "me", ttl=ttl)
    try:
        assert e.try_acquire() is not None
        e.start()
        proxy.stall_on(UPDATE_LEASE)
        poll(proxy.stalled.is_set, 5, what="the stall")
        stalled_at = proxy.stalled_at
        assert stalled_at is not None
        assert e.lost.wait(ttl + 1)
        # The last renewal that answered was sent at most ttl/3 before the stall; the one
        # that hangs was sent at the stall.
        assert time.monotonic() - stalled_at <= ttl - e.margin + 0.3
        assert not e.is_leader() and renewal_threads() == 1
    finally:
        e.stop(release=False)
        proxy.heal()
        engine.dispose()


def test_a_takeover_behind_a_dead_holder_fails_fast_and_quietly_then_succeeds(
        server_url: str, direct: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """The lease expired, but a silent transaction still holds its row: the standby's attempt
    gives up at its lock wait (no error, no warning: "not now"), and succeeds once the
    holder is gone."""
    ttl = 2.0
    limits = lease_session_limits(ttl)
    engine = make_engine(server_url, limits=limits)
    standby = Election(engine, "standby", ttl=ttl)
    old = lease_db.lease_acquire(direct, "ha-monitor", "old", 0.2)
    assert old is not None
    holder = direct.connect()  # the cut-off leader's transaction, holding the row
    holder.execute(text("UPDATE ha_leases SET guarded_at = guarded_at WHERE name = 'ha-monitor'"))
    try:
        time.sleep(0.3)  # the lease expires in the database
        caplog.set_level(logging.DEBUG, logger="vigil.ha.election")
        started = time.monotonic()
        assert standby.try_acquire() is None
        waited = time.monotonic() - started
        assert waited < limits.statement + 0.5, waited
        # This thread's records only: an earlier test's stopped election may still be ending.
        mine = [r for r in caplog.records if r.thread == threading.get_ident()]
        assert not [r for r in mine if r.levelno >= logging.WARNING], [
            r.getMessage() for r in mine]
        assert any("lease acquisition failed" in r.getMessage() for r in caplog.records)
        holder.rollback()
        token = standby.try_acquire()
        assert token is not None and token.epoch == old.epoch + 1
    finally:
        holder.close()
        engine.dispose()


def test_lease_session_limits_formula() -> None:
    limits = lease_session_limits(10)
    assert (limits.statement, limits.lock_wait, limits.idle_in_transaction) == (2.5, 2.5, 2.5)
    assert limits.client_io == 5
    assert (limits.keepalive.idle, limits.keepalive.interval, limits.keepalive.count) == (5, 1, 3)
    assert limits.mariadb() == {"max_statement_time": 2.5, "innodb_lock_wait_timeout": 2,
                                "idle_transaction_timeout": 2}
    assert lease_session_limits(2).postgresql()["idle_in_transaction_session_timeout"] == 500
    assert lease_session_limits(2).mariadb()["idle_transaction_timeout"] == 1  # at least 1 s


def test_stopping_during_a_partition_does_not_wait_for_the_release(
        server_url: str, proxy: TcpProxy) -> None:
    engine = make_engine(through(proxy, server_url))
    e = Election(engine, "me", ttl=1.0)
    try:
        assert e.try_acquire() is not None
        proxy.stall()
        started = time.monotonic()
        e.stop(release=True)  # the release hangs in its worker; the lease expires by itself
        assert time.monotonic() - started < e.ttl + 0.5
        assert e.lost.is_set() and not e.is_leader()
    finally:
        proxy.heal()
        engine.dispose()
