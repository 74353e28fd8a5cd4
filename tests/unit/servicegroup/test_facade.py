"""ServiceGroup facade against a real database: policy, batch cost, unknown on errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from vigil.db import db_now
from vigil.db import services as services_db
from vigil.db.engine import make_engine
from vigil.db.models import ReportPath, Service
from vigil.errors import BackendUnavailable, DatabaseUnavailable
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.db import DbDriver
from vigil.servicegroup.drivers.options import DbOptions

TIMING = LivenessTiming(report_interval=10, service_down_time=60, coalesce_interval=0.5)


def group(engine: Engine | None, driver: Driver | None = None) -> ServiceGroup:
    return ServiceGroup(driver or DbDriver(), TIMING, engine=engine)


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
    assert group(sqlite_engine, _Broken(DbOptions(), TIMING)).state(sid) is State.UNKNOWN
    assert group(sqlite_engine, _SaysDown(DbOptions(), TIMING)).state(sid) is State.DOWN
    # forced_down wins over an unreachable backend.
    services_db.service_update(sqlite_engine, sid, {"forced_down": True})
    assert group(sqlite_engine, _Broken(DbOptions(), TIMING)).state(sid) is State.DOWN


class _Counting(_Broken):
    """A backend that says UP for every member it is asked about, and counts the asking."""

    def __init__(self) -> None:
        super().__init__(DbOptions(), TIMING)
        self.calls: list[list[int]] = []

    def get_states(self, services: Sequence[ServiceRecord],
                   view: LivenessView) -> dict[int, State]:
        self.calls.append([s.id for s in services])
        return {s.id: State.UP for s in services}


def test_members_give_both_answers_from_one_read(any_engine: Engine) -> None:
    """``state`` honours forced_down, ``reporting`` does not; one snapshot, one backend call."""
    ids = {}
    for name in ("fresh", "stale", "forced"):
        ids[name] = services_db.service_get_or_create(any_engine, name, "vigil-compute",
                                                      "compute")[0].id
    other = services_db.service_get_or_create(any_engine, "fresh", "vigil-scheduler",
                                              "scheduler")[0].id
    set_times(any_engine, ids["fresh"], seen_ago=5)
    set_times(any_engine, ids["stale"], seen_ago=300)
    set_times(any_engine, ids["forced"], seen_ago=1)
    set_times(any_engine, other, seen_ago=1)
    services_db.service_update(any_engine, ids["forced"], {"forced_down": True})
    healthy_path(any_engine)
    backend = _Counting()
    sg = group(any_engine, backend)
    with count_statements(any_engine) as seen:
        members = sg.members("compute")
    assert len(seen) <= 3 and backend.calls == [sorted(ids.values())]
    assert [(m.host, m.state, m.reporting) for m in members] == [
        ("fresh", State.UP, State.UP),
        ("stale", State.DOWN, State.DOWN),  # the row is stale whatever the backend says
        ("forced", State.DOWN, State.UP),   # forced down, but it reports
    ]
    assert members.up_hosts() == ["fresh"]
    assert members.by_host()["forced"].record.id == ids["forced"]
    assert set(members.by_id()) == set(ids.values())
    # Exact filters, as the snapshot's.
    assert [m.record.id for m in sg.members("compute", host="stale")] == [ids["stale"]]
    assert [m.record.id for m in sg.members(host="fresh")] == [ids["fresh"], other]
    assert [m.record.id for m in sg.members(binary="vigil-scheduler")] == [other]
    assert not sg.members("compute", host="nobody")
    # The flat forms agree with the members.
    snap = services_db.snapshot(any_engine, topic="compute")
    assert sg.states(snap) == {m.record.id: m.state for m in members}
    assert sg.states(snap, honour_forced_down=False) == {m.record.id: m.reporting
                                                          for m in members}


def test_members_when_the_backend_is_gone_are_unknown_but_forced_down_is_down(
        sqlite_engine: Engine) -> None:
    up, forced = (services_db.service_get_or_create(sqlite_engine, h, "vigil-compute",
                                                    "compute")[0].id for h in ("up", "forced"))
    for sid in (up, forced):
        set_times(sqlite_engine, sid, seen_ago=1)
    services_db.service_update(sqlite_engine, forced, {"forced_down": True})
    healthy_path(sqlite_engine)
    members = group(sqlite_engine, _Broken(DbOptions(), TIMING)).members("compute")
    assert [(m.state, m.reporting) for m in members] == [
        (State.UNKNOWN, State.UNKNOWN), (State.DOWN, State.UNKNOWN)]


def test_members_propagate_a_database_error() -> None:
    """No answer is not an answer: the caller decides (503, a skipped pass, UNKNOWN)."""
    dead = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailable):
        group(dead).members("compute")


def test_session_is_the_drivers() -> None:
    assert group(None).session() is SessionState.CONNECTED
