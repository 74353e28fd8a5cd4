"""The leader lease and the fencing token on SQLite, PostgreSQL and MariaDB.

A deposed leader's late write must be rejected by the database itself, whatever the deposed
leader believes; steps with a dedup key must be recorded once.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from tests.tools.wait import wait_for
from vigil.clock import FakeClock
from vigil.db import services as services_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import AlreadyRecorded, Conflict, LeadershipLost
from vigil.ha.election import Election
from vigil.ha.store import RecoveryStore
from vigil.objects.ha import LeaderToken, Phase, RecoveryRecord


def test_one_holder_at_a_time_and_epochs_grow(sqlite_engine: Engine) -> None:
    a = lease_db.lease_acquire(sqlite_engine, "L", "a", ttl=30)
    assert a is not None and a.epoch == 1
    assert lease_db.lease_acquire(sqlite_engine, "L", "b", ttl=30) is None
    assert lease_db.lease_renew(sqlite_engine, a, ttl=30)
    lease_db.lease_release(sqlite_engine, a)
    b = lease_db.lease_acquire(sqlite_engine, "L", "b", ttl=30)
    assert b is not None and b.epoch == 2
    assert not lease_db.lease_renew(sqlite_engine, a, ttl=30)  # a's epoch is gone for good


def test_expiry_is_the_database_clock(sqlite_engine: Engine) -> None:
    a = lease_db.lease_acquire(sqlite_engine, "L", "a", ttl=0.3)
    assert a is not None
    assert lease_db.lease_acquire(sqlite_engine, "L", "b", ttl=30) is None
    time.sleep(0.5)
    b = lease_db.lease_acquire(sqlite_engine, "L", "b", ttl=30)
    assert b is not None and b.epoch == a.epoch + 1
    with pytest.raises(LeadershipLost):
        lease_db.check_token(sqlite_engine, a)
    lease_db.check_token(sqlite_engine, b)


def _recovery(engine: Engine, token: LeaderToken) -> RecoveryRecord:
    svc, _ = services_db.service_get_or_create(engine, "h1", "vigil-compute", "compute")
    rec = recoveries_db.recovery_open(engine, token, host="h1", service_id=svc.id,
                                      trigger="monitor", was_disabled=False,
                                      was_forced_down=False, detail="test")
    assert rec is not None
    return rec


def test_a_deposed_leaders_late_write_is_rejected(any_engine: Engine) -> None:
    old = lease_db.lease_acquire(any_engine, "L", "old", ttl=1.5)
    assert old is not None
    rec = _recovery(any_engine, old)  # within the lease, however loaded the machine is
    # The lease runs out on the database's clock: "new" takes it as soon as it has.
    new = wait_for(lambda: lease_db.lease_acquire(any_engine, "L", "new", ttl=30), 10,
                     "the old lease to run out")
    with pytest.raises(LeadershipLost):
        RecoveryStore(any_engine, lambda: old).disable(rec, "late")
    # Nothing of the rejected transaction was committed: neither the service nor the timeline.
    assert not services_db.service_get(any_engine, rec.service_id).disabled
    assert [e.kind for e in recoveries_db.events(any_engine, rec.id)] == ["detected"]
    assert recoveries_db.recovery_get(any_engine, rec.id).phase == Phase.DETECTED
    done = RecoveryStore(any_engine, lambda: new).disable(rec, "down")
    assert done.phase == Phase.DISABLED and done.epoch == new.epoch


def test_a_step_is_recorded_once(any_engine: Engine) -> None:
    token = lease_db.lease_acquire(any_engine, "L", "a", ttl=30)
    assert token is not None
    detected = _recovery(any_engine, token)
    store = RecoveryStore(any_engine, lambda: token)
    rec = store.disable(detected, "down")
    store.fence_started(rec, 1, "process", quarantine="test")
    with pytest.raises(AlreadyRecorded):
        store.fence_started(rec, 1, "process", quarantine="test")
    with pytest.raises(Conflict):  # a phase another leader already left
        store.disable(detected, "down")
    assert [e.kind for e in recoveries_db.events(any_engine, rec.id)] == [
        "detected", "disabled", "quarantined", "fence_started"]
    assert recoveries_db.fences_since(any_engine, 60) == 1


def test_one_open_recovery_per_host(sqlite_engine: Engine) -> None:
    token = lease_db.lease_acquire(sqlite_engine, "L", "a", ttl=30)
    assert token is not None
    rec = _recovery(sqlite_engine, token)
    assert recoveries_db.recovery_open(sqlite_engine, token, host="h1", service_id=rec.service_id,
                                       trigger="monitor", was_disabled=False, was_forced_down=False,
                                       detail="again") is None
    RecoveryStore(sqlite_engine, lambda: token).cancel(rec, "test")
    again = recoveries_db.recovery_open(sqlite_engine, token, host="h1",
                                        service_id=rec.service_id, trigger="monitor",
                                        was_disabled=False, was_forced_down=False,
                                        detail="a new incident")
    assert again is not None and again.id != rec.id


def test_racing_candidates_elect_exactly_one(any_engine: Engine) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def run(name: str) -> None:
        barrier.wait()
        if lease_db.lease_acquire(any_engine, "race", name, ttl=30) is not None:
            winners.append(name)

    threads = [threading.Thread(target=run, args=(f"c{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1, winners


def test_election_stops_acting_on_its_own_clock(sqlite_engine: Engine) -> None:
    """Cut off from the database, a leader stops before the lease can expire there."""
    clock = FakeClock()
    e = Election(sqlite_engine, "me", ttl=10.0, clock=clock)
    assert e.try_acquire() is not None
    assert e.check().epoch == 1 and not e.lost.is_set()
    clock.advance(8.9)  # ttl - margin (1 s) not yet elapsed
    e.check()
    clock.advance(0.2)
    with pytest.raises(LeadershipLost):
        e.check()
    assert e.lost.is_set() and not e.is_leader()
