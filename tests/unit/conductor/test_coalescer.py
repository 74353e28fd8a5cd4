"""Coalesced reports: many reports per tick become a few statements; failures drop, not lie."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from vigil.conductor.coalescer import ReportCoalescer
from vigil.db import services as services_db
from vigil.db.engine import make_engine


def coalescer(engine: Engine, batch: int = 100) -> ReportCoalescer:
    return ReportCoalescer(engine, conductor="c1", interval=0.1, batch_size=batch,
                           path_max_gap=dt.timedelta(seconds=10))


def test_one_flush_for_many_reports(any_engine: Engine) -> None:
    ids = [services_db.service_get_or_create(any_engine, f"h{i}", "b", "compute")[0].id
           for i in range(50)]
    c = coalescer(any_engine, batch=20)
    for _ in range(3):  # three reports each within one tick: still one heartbeat each
        for i in ids:
            assert c.add(i) == "ok"
    c.probe()
    with count_statements(any_engine) as seen:
        assert c.flush() == 50
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE SERVICES")]
    assert len(updates) == 3
    snap = services_db.snapshot(any_engine)
    assert {s.report_count for s in snap.services} == {1}
    assert len(snap.path_beats) == 1


def test_deleted_service_is_told(sqlite_engine: Engine) -> None:
    rec, _ = services_db.service_get_or_create(sqlite_engine, "h", "b", "compute")
    c = coalescer(sqlite_engine)
    services_db.service_soft_delete(sqlite_engine, rec.id)
    assert c.add(rec.id) == "ok"
    c.flush()
    assert c.add(rec.id) == "deleted"
    services_db.service_get_or_create(sqlite_engine, "h", "b", "compute")
    c.forget_deleted(rec.id)
    assert c.add(rec.id) == "ok"


def test_failed_flush_drops_reports_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    dead = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")
    c = coalescer(dead)
    with caplog.at_level(logging.WARNING, logger="vigil.conductor.coalescer"):
        for _ in range(3):
            c.add(1)
            c.probe()
            assert c.flush() == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert c.stats.failures == 3
