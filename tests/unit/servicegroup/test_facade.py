"""ServiceGroup facade against a real database: policy, batch cost, unknown on errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from vigil.db import db_now
from vigil.db import services as services_db
from vigil.db.engine import make_engine
from vigil.db.models import ReportPath, Service
from vigil.errors import BackendUnavailable
from vigil.objects.liveness import LivenessView, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.db import DbDriver


def group(engine: Engine | None, driver: Driver | None = None) -> ServiceGroup:
    return ServiceGroup(driver or DbDriver(), service_down_time=60, report_interval=10,
                        coalesce_interval=0.5,
                        engine=engine)


def set_times(engine: Engine, service_id: int, *, seen_ago: float | None) -> None:
    now = db_now(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(Service).where(Service.id == service_id).values(
            last_seen_up=None if seen_ago is None else now - dt.timedelta(seconds=seen_ago),
            created_at=now - dt.timedelta(seconds=3600)))


def healthy_path(engine: Engine, for_seconds: float = 3600) -> None:
    now = db_now(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(ReportPath))
        conn.execute(sa.insert(ReportPath).values(
            conductor="c1", last_beat=now, healthy_since=now - dt.timedelta(seconds=for_seconds)))


def test_states_policy(any_engine: Engine) -> None:
    ids = {}
    for name in ("fresh", "stale", "forced", "disabled", "never"):
        ids[name] = services_db.service_get_or_create(any_engine, name, "vigil-compute",
                                                      "compute")[0].id
    set_times(any_engine, ids["fresh"], seen_ago=5)
    set_times(any_engine, ids["stale"], seen_ago=300)
    set_times(any_engine, ids["forced"], seen_ago=1)
    set_times(any_engine, ids["disabled"], seen_ago=1)
    set_times(any_engine, ids["never"], seen_ago=None)
    services_db.service_update(any_engine, ids["forced"], {"forced_down": True})
    services_db.service_update(any_engine, ids["disabled"], {"disabled": True})
    healthy_path(any_engine)
    sg = group(any_engine)
    states = sg.states(services_db.snapshot(any_engine))
    assert states == {
        ids["fresh"]: State.UP, ids["stale"]: State.DOWN, ids["forced"]: State.DOWN,
        ids["disabled"]: State.UP, ids["never"]: State.DOWN,
    }
    assert sorted(sg.get_all("compute")) == ["disabled", "fresh"]
    assert sg.is_up(ids["fresh"]) and not sg.is_up(ids["stale"])


def test_stale_is_unknown_without_a_healthy_report_path(any_engine: Engine) -> None:
    sid = services_db.service_get_or_create(any_engine, "h", "vigil-compute", "compute")[0].id
    set_times(any_engine, sid, seen_ago=300)
    sg = group(any_engine)
    assert sg.state(sid) is State.UNKNOWN  # no conductor has ever beaten
    healthy_path(any_engine, for_seconds=5)  # recovered 5 s ago: not a whole down time
    assert sg.state(sid) is State.UNKNOWN
    healthy_path(any_engine, for_seconds=61)
    assert sg.state(sid) is State.DOWN


def test_database_error_is_unknown_never_down() -> None:
    dead = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")
    assert group(dead).state(1) is State.UNKNOWN


def test_batch_liveness_costs_constant_statements(any_engine: Engine) -> None:
    for i in range(40):
        services_db.service_get_or_create(any_engine, f"h{i}", "vigil-compute", "compute")
    sg = group(any_engine)
    with count_statements(any_engine) as seen:
        states = sg.states(services_db.snapshot(any_engine))
    assert len(states) == 40 and len(seen) <= 3


class _Broken(Driver):
    name = "broken"
    capabilities = Capabilities(proves_death=False, server_side_expiry=False,
                                external_server=True)

    def join(self, member: str, group: str) -> None: ...
    def heartbeat(self, member: str, group: str) -> None: ...
    def leave(self, member: str, group: str) -> None: ...

    def get_states(self, services: Sequence[ServiceRecord],
                   view: LivenessView) -> dict[int, State]:
        raise BackendUnavailable("backend gone")


class _SaysDown(_Broken):
    def get_states(self, services: Sequence[ServiceRecord],
                   view: LivenessView) -> dict[int, State]:
        return {s.id: State.DOWN for s in services}


def test_driver_unavailable_is_unknown_and_driver_down_is_down(sqlite_engine: Engine) -> None:
    sid = services_db.service_get_or_create(sqlite_engine, "h", "vigil-compute", "compute")[0].id
    set_times(sqlite_engine, sid, seen_ago=1)
    healthy_path(sqlite_engine)
    assert group(sqlite_engine, _Broken()).state(sid) is State.UNKNOWN
    assert group(sqlite_engine, _SaysDown()).state(sid) is State.DOWN
    # forced_down wins over an unreachable backend.
    services_db.service_update(sqlite_engine, sid, {"forced_down": True})
    assert group(sqlite_engine, _Broken()).state(sid) is State.DOWN
