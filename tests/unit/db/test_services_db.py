"""The services table on SQLite, PostgreSQL and MariaDB: one clock, soft delete, coalescing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from vigil.db import db_now, migration
from vigil.db import services as services_db
from vigil.db.models import ReportPath, Service
from vigil.errors import ServiceNotFound


def test_sync_is_idempotent(any_engine: Engine) -> None:
    assert migration.sync(any_engine) == (migration.head(), migration.head())


def test_get_or_create_bumps_version_and_is_unique(any_engine: Engine) -> None:
    rec, created = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    assert created and rec.version == 1 and rec.report_count == 0 and not rec.disabled
    again, created2 = services_db.service_get_or_create(any_engine, "h1", "vigil-compute",
                                                        "compute")
    assert not created2 and again.id == rec.id and again.version == 2
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Service)).scalar() == 1


def test_created_disabled_when_new_services_disabled(any_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute",
                                               enabled=False)
    assert rec.disabled and rec.disabled_reason


def test_soft_delete_and_revive_same_row(any_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    services_db.service_soft_delete(any_engine, rec.id)
    with pytest.raises(ServiceNotFound):
        services_db.service_get(any_engine, rec.id)
    with pytest.raises(ServiceNotFound):
        services_db.service_soft_delete(any_engine, rec.id)
    revived, created = services_db.service_get_or_create(any_engine, "h1", "vigil-compute",
                                                         "compute")
    assert not created and revived.id == rec.id and revived.uuid == rec.uuid
    assert revived.version == rec.version + 1
    assert services_db.service_get(any_engine, rec.uuid).id == rec.id


def test_unique_host_binary_among_live_rows(any_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    with pytest.raises(sa.exc.IntegrityError), any_engine.begin() as conn:
        conn.execute(sa.insert(Service).values(
            uuid="00000000-0000-0000-0000-000000000001", host="h1", binary="vigil-compute",
            topic="compute", created_at=dt.datetime(2026, 1, 1), deleted=0))
    # A deleted row of the same pair does not conflict.
    services_db.service_soft_delete(any_engine, rec.id)
    with any_engine.begin() as conn:
        conn.execute(sa.insert(Service).values(
            uuid="00000000-0000-0000-0000-000000000002", host="h1", binary="vigil-compute",
            topic="compute", created_at=dt.datetime(2026, 1, 1), deleted=0))


def test_reports_use_the_database_clock(any_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    before = db_now(any_engine)
    assert services_db.record_reports(any_engine, [rec.id], 100) == set()
    after = db_now(any_engine)
    got = services_db.service_get(any_engine, rec.id)
    assert got.last_seen_up is not None
    assert before <= got.last_seen_up <= after
    assert got.report_count == 1


def test_coalesced_reports_cost_one_statement_per_batch(any_engine: Engine) -> None:
    ids = [services_db.service_get_or_create(any_engine, f"h{i}", "vigil-compute", "compute")[0].id
           for i in range(25)]
    with count_statements(any_engine) as seen:
        missing = services_db.record_reports(any_engine, ids + ids[:5], batch_size=10)
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert missing == set()
    assert len(updates) == 3  # 25 distinct ids in batches of 10
    snap = services_db.snapshot(any_engine)
    assert all(s.report_count == 1 for s in snap.services)


def test_reports_of_deleted_rows_are_returned(any_engine: Engine) -> None:
    a, _ = services_db.service_get_or_create(any_engine, "a", "vigil-compute", "compute")
    b, _ = services_db.service_get_or_create(any_engine, "b", "vigil-compute", "compute")
    services_db.service_soft_delete(any_engine, b.id)
    assert services_db.record_reports(any_engine, [a.id, b.id, 999], 100) == {b.id, 999}


def test_snapshot_is_constant_statements(any_engine: Engine) -> None:
    for i in range(30):
        services_db.service_get_or_create(any_engine, f"h{i}", "vigil-compute", "compute")
    with count_statements(any_engine) as seen:
        snap = services_db.snapshot(any_engine)
    assert len(snap.services) == 30
    assert len(seen) <= 3
    with count_statements(any_engine) as seen_filtered:
        only = services_db.snapshot(any_engine, host="h3", binary="vigil-compute")
    assert [s.host for s in only.services] == ["h3"]
    assert len(seen_filtered) <= 3


def test_leave_then_report(any_engine: Engine) -> None:
    """A report that was queued before a clean leave and written after it does not undo the
    leave; only registering again (a restart) does."""
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    services_db.record_reports(any_engine, [rec.id], 10)
    services_db.record_leave(any_engine, rec.id)
    left = services_db.service_get(any_engine, rec.id)
    assert left.left_at is not None and left.last_seen_up is not None
    assert left.left_at >= left.last_seen_up
    services_db.record_reports(any_engine, [rec.id], 10)
    assert services_db.service_get(any_engine, rec.id).left_at == left.left_at
    again, created = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    assert not created and again.id == rec.id and again.left_at is None


def test_report_path_continuity(any_engine: Engine) -> None:
    since1 = services_db.beat_report_path(any_engine, "c1", dt.timedelta(seconds=30))
    since2 = services_db.beat_report_path(any_engine, "c1", dt.timedelta(seconds=30))
    assert since1 == since2
    # A gap longer than max_gap restarts continuity: healthy since this very beat.
    since3 = services_db.beat_report_path(any_engine, "c1", dt.timedelta(seconds=-1))
    with any_engine.connect() as conn:
        last_beat = conn.execute(sa.select(ReportPath.last_beat)).scalar_one()
    assert since3 == last_beat and since3 >= since1


def test_report_path_join_inherits_and_leave_removes(any_engine: Engine) -> None:
    gap = dt.timedelta(seconds=30)
    first = services_db.join_report_path(any_engine, "c1", gap)  # no one else: from now
    second = services_db.join_report_path(any_engine, "c2", gap)  # joins: opens no hole
    assert second == first
    # c1 rejoins with its row still there (it stopped consuming, or crashed): from now.
    again = services_db.join_report_path(any_engine, "c1", gap)
    assert again > first
    services_db.leave_report_path(any_engine, "c2")  # a clean stop: its row goes
    with any_engine.connect() as conn:
        assert conn.execute(sa.select(ReportPath.conductor)).scalars().all() == ["c1"]


def test_update_validates_columns(any_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(any_engine, "h1", "vigil-compute", "compute")
    with pytest.raises(ValueError):
        services_db.service_update(any_engine, rec.id, {"host": "evil"})
    with pytest.raises(ServiceNotFound):
        services_db.service_update(any_engine, 12345, {"disabled": True})
