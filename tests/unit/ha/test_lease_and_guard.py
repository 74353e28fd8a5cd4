"""The leader lease and the fencing token on SQLite, PostgreSQL and MariaDB.

A deposed leader's late write must be rejected by the database itself, whatever the deposed
leader believes; steps with a dedup key must be recorded once.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from vigil.clock import FakeClock
from vigil.db import api as db
from vigil.db import ha_api
from vigil.errors import AlreadyRecorded, Conflict, LeadershipLost
from vigil.ha.election import Election
from vigil.objects.ha import LeaderToken, Phase, RecoveryRecord, RecoveryStatus


def test_one_holder_at_a_time_and_epochs_grow(sqlite_engine: Engine) -> None:
    a = ha_api.lease_acquire(sqlite_engine, "L", "a", ttl=30)
    assert a is not None and a.epoch == 1
    assert ha_api.lease_acquire(sqlite_engine, "L", "b", ttl=30) is None
    assert ha_api.lease_renew(sqlite_engine, a, ttl=30)
    ha_api.lease_release(sqlite_engine, a)
    b = ha_api.lease_acquire(sqlite_engine, "L", "b", ttl=30)
    assert b is not None and b.epoch == 2
    assert not ha_api.lease_renew(sqlite_engine, a, ttl=30)  # a's epoch is gone for good


def test_expiry_is_the_database_clock(sqlite_engine: Engine) -> None:
    a = ha_api.lease_acquire(sqlite_engine, "L", "a", ttl=0.3)
    assert a is not None
    assert ha_api.lease_acquire(sqlite_engine, "L", "b", ttl=30) is None
    time.sleep(0.5)
    b = ha_api.lease_acquire(sqlite_engine, "L", "b", ttl=30)
    assert b is not None and b.epoch == a.epoch + 1
    with pytest.raises(LeadershipLost):
        ha_api.check_token(sqlite_engine, a)
    ha_api.check_token(sqlite_engine, b)


def _recovery(engine: Engine, token: LeaderToken) -> RecoveryRecord:
    svc, _ = db.service_get_or_create(engine, "h1", "vigil-compute", "compute")
    rec = ha_api.recovery_open(engine, token, host="h1", service_id=svc.id, trigger="monitor",
                               was_disabled=False, was_forced_down=False, detail="test")
    assert rec is not None
    return rec


def test_a_deposed_leaders_late_write_is_rejected(any_engine: Engine) -> None:
    old = ha_api.lease_acquire(any_engine, "L", "old", ttl=0.3)
    assert old is not None
    rec = _recovery(any_engine, old)
    time.sleep(0.5)
    new = ha_api.lease_acquire(any_engine, "L", "new", ttl=30)
    assert new is not None
    with pytest.raises(LeadershipLost):
        ha_api.recovery_step(any_engine, old, rec.id, values={"phase": Phase.DISABLED},
                             service={"disabled": True, "disabled_reason": "late"},
                             event="disabled", dedup_key=f"{rec.id}:disabled")
    # Nothing of the rejected transaction was committed: neither the service nor the timeline.
    assert not db.service_get(any_engine, rec.service_id).disabled
    assert [e.kind for e in ha_api.events(any_engine, rec.id)] == ["detected"]
    assert ha_api.recovery_get(any_engine, rec.id).phase == Phase.DETECTED
    done = ha_api.recovery_step(any_engine, new, rec.id, values={"phase": Phase.DISABLED},
                                expect_phase=Phase.DETECTED, event="disabled",
                                dedup_key=f"{rec.id}:disabled")
    assert done.phase == Phase.DISABLED and done.epoch == new.epoch


def test_a_step_is_recorded_once(any_engine: Engine) -> None:
    token = ha_api.lease_acquire(any_engine, "L", "a", ttl=30)
    assert token is not None
    rec = _recovery(any_engine, token)
    ha_api.recovery_step(any_engine, token, rec.id, event="fence_started",
                         dedup_key=f"{rec.id}:fence_started:1")
    with pytest.raises(AlreadyRecorded):
        ha_api.recovery_step(any_engine, token, rec.id, event="fence_started",
                             dedup_key=f"{rec.id}:fence_started:1")
    with pytest.raises(Conflict):  # a phase another leader already left
        ha_api.recovery_step(any_engine, token, rec.id, values={"phase": Phase.FENCED},
                             expect_phase=Phase.DISABLED)
    assert [e.kind for e in ha_api.events(any_engine, rec.id)] == ["detected", "fence_started"]
    assert ha_api.fences_since(any_engine, 60) == 1


def test_one_open_recovery_per_host(sqlite_engine: Engine) -> None:
    token = ha_api.lease_acquire(sqlite_engine, "L", "a", ttl=30)
    assert token is not None
    rec = _recovery(sqlite_engine, token)
    assert ha_api.recovery_open(sqlite_engine, token, host="h1", service_id=rec.service_id,
                                trigger="monitor", was_disabled=False, was_forced_down=False,
                                detail="again") is None
    ha_api.recovery_step(sqlite_engine, token, rec.id, values={"status": RecoveryStatus.CANCELLED},
                         finish=True)
    again = ha_api.recovery_open(sqlite_engine, token, host="h1", service_id=rec.service_id,
                                 trigger="monitor", was_disabled=False, was_forced_down=False,
                                 detail="a new incident")
    assert again is not None and again.id != rec.id


def test_racing_candidates_elect_exactly_one(any_engine: Engine) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def run(name: str) -> None:
        barrier.wait()
        if ha_api.lease_acquire(any_engine, "race", name, ttl=30) is not None:
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
