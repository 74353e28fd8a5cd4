"""The service runner against a real conductor over in-process messaging (fake://)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.tools.wait import wait_for
from vigil import launch, rpc
from vigil.clock import FakeClock
from vigil.conductor.manager import Conductor, LocalConductorAPI
from vigil.db import services as services_db
from vigil.errors import MessagingUnavailable
from vigil.launch.settings import conductor_settings
from vigil.objects.liveness import LivenessTiming, State
from vigil.objects.services import ServiceRecord
from vigil.service import Service
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.db import DbDriver


@pytest.fixture
def stack(make_conf: Any, sqlite_engine: Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    conf, _ = make_conf({
        "DEFAULT": {"report_interval": 0.1, "service_down_time": 1.0, "host": "ctl",
                    "transport_url": "fake://"},
        "database": {"connection": str(sqlite_engine.url)},
        "conductor": {"coalesce_interval": 0.05, "probe_interval": 0.05},
    })
    transport = rpc.get_transport(conf)
    conductor = Conductor(conductor_settings(conf), sqlite_engine, transport,
                          group_factory=lambda: launch.group_from(conf, sqlite_engine))
    group = ServiceGroup(DbDriver(), LivenessTiming(report_interval=0.1, service_down_time=1.0,
                                                    coalesce_interval=0.05),
                         engine=sqlite_engine)
    yield {"conf": conf, "transport": transport, "conductor": conductor, "group": group,
           "engine": sqlite_engine}
    conductor.stop()


def make_service(stack: dict[str, Any], host: str = "h1") -> Service:
    client = rpc.ConductorAPI(stack["transport"], timeout=1)
    return Service(host=host, binary="vigil-compute", topic="compute", conductor=client,
                   group=stack["group"], report_interval=0.1)


def test_reports_and_graceful_leave(stack: dict[str, Any]) -> None:
    stack["conductor"].start()
    svc = make_service(stack)
    svc.start()
    assert svc.registered.wait(10)
    engine = stack["engine"]
    wait_for(lambda: services_db.service_get(engine, svc.record.id).report_count >= 3)  # type: ignore[union-attr]
    assert stack["group"].state(svc.record.id) is State.UP  # type: ignore[union-attr]
    svc.stop()
    assert stack["group"].state(svc.record.id) is State.DOWN  # type: ignore[union-attr]


def test_agent_waits_for_a_late_conductor(stack: dict[str, Any]) -> None:
    svc = make_service(stack, "late")
    svc.start()
    # No conductor yet: the runner keeps trying instead of dying.
    assert not svc.registered.wait(1.5)
    stack["conductor"].start()
    assert svc.registered.wait(15)
    wait_for(lambda: svc.reports_ok >= 2)
    svc.stop()


def test_deleted_row_while_running_is_logged(stack: dict[str, Any],
                                             caplog: pytest.LogCaptureFixture) -> None:
    stack["conductor"].start()
    svc = make_service(stack, "gone")
    with caplog.at_level(logging.ERROR, logger="vigil.service"):
        svc.start()
        assert svc.registered.wait(10)
        services_db.service_soft_delete(stack["engine"], svc.record.id)  # type: ignore[union-attr]
        wait_for(lambda: any("was deleted while this service is running" in r.getMessage()
                             for r in caplog.records))
    svc.stop(leave=False)
    deleted_logs = [r for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(deleted_logs) == 1


class Flaky:
    """A conductor client that fails a set number of times (the RPC edge, simulated)."""

    def __init__(self, inner: LocalConductorAPI, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def service_get_or_create(self, host: str, binary: str, topic: str) -> ServiceRecord:
        return self.inner.service_get_or_create(host, binary, topic)

    def report_state(self, service_id: int, *, timeout: float | None = None) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise MessagingUnavailable("conductor did not answer")
        return self.inner.report_state(service_id)

    def service_leave(self, service_id: int) -> None:
        self.inner.service_leave(service_id)


def test_report_failures_logged_once_and_recovery_logged(
    stack: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = Flaky(LocalConductorAPI(stack["conductor"].manager), failures=5)
    svc = Service(host="flaky", binary="vigil-compute", topic="compute", conductor=client,
                  group=stack["group"], report_interval=0.1, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="vigil.service"):
        assert svc.register()
        results = [svc.report_once() for _ in range(7)]
    assert results == [False] * 5 + [True, True]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot report state" in m for m in messages) == 1
    assert sum("reporting again after 5 failed attempts" in m for m in messages) == 1


def test_jitter_stays_within_ten_percent(stack: dict[str, Any]) -> None:
    svc = make_service(stack)
    delays = [svc.next_delay() for _ in range(500)]
    assert all(0.09 <= d <= 0.11 for d in delays)
    assert max(delays) - min(delays) > 0.01  # it does vary


class Holding:
    """A conductor client whose reports are held (the call returns only when released): a
    conductor cut off with the report in its hands, as a partitioned controller's is."""

    def __init__(self, inner: LocalConductorAPI) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.timeouts: list[float | None] = []

    def service_get_or_create(self, host: str, binary: str, topic: str) -> ServiceRecord:
        return self.inner.service_get_or_create(host, binary, topic)

    def report_state(self, service_id: int, *, timeout: float | None = None) -> str:
        self.timeouts.append(timeout)
        self.release.wait(30)
        raise MessagingUnavailable("conductor did not answer report_state in time")

    def service_leave(self, service_id: int) -> None:
        self.inner.service_leave(service_id)


class CountingGroup:
    """The real ServiceGroup, counting the heartbeats that reach it."""

    def __init__(self, inner: ServiceGroup) -> None:
        self.inner = inner
        self.beats: list[float] = []

    def join(self, member: str, group: str) -> None:
        self.inner.join(member, group)

    def heartbeat(self, member: str, group: str) -> None:
        self.inner.heartbeat(member, group)
        self.beats.append(time.monotonic())

    def leave(self, member: str, group: str) -> None:
        self.inner.leave(member, group)


def test_a_held_state_report_never_delays_the_liveness_heartbeat(
        stack: dict[str, Any]) -> None:
    """Issue 14's partition: the backend's key must not expire behind a report a conductor
    holds. The heartbeats keep their interval, and the report asks for at most one interval."""
    conductor = Holding(LocalConductorAPI(stack["conductor"].manager))
    group = CountingGroup(stack["group"])
    svc = Service(host="held", binary="vigil-compute", topic="compute", conductor=conductor,
                  group=group, report_interval=0.1)
    svc.start()
    try:
        assert svc.registered.wait(10)
        wait_for(lambda: conductor.timeouts, 5, "a state report in the conductor's hands")
        start = time.monotonic()
        wait_for(lambda: len([t for t in group.beats if t > start]) >= 8, 5,
                 "heartbeats while the report is held")
        assert not svc.reporting  # the state reports are not getting out, and it says so
    finally:
        conductor.release.set()
        svc.stop(leave=False)
    assert conductor.timeouts[0] is not None and conductor.timeouts[0] <= 1.0


def test_the_state_report_waits_one_interval_not_the_rpc_timeout(
        stack: dict[str, Any]) -> None:
    """Over real oslo.messaging (fake://) with no conductor listening: the report gives up
    after its own bound (1 s), not the client's 30 s rpc_response_timeout."""
    client = rpc.ConductorAPI(stack["transport"], timeout=30)
    start = time.monotonic()
    with pytest.raises(MessagingUnavailable):
        client.report_state(1, timeout=1.0)
    assert time.monotonic() - start < 10


class HangingGroup(CountingGroup):
    """A liveness backend that accepts heartbeats, then hangs on them until released."""

    def __init__(self, inner: ServiceGroup) -> None:
        super().__init__(inner)
        self.hang = threading.Event()
        self.release = threading.Event()

    def heartbeat(self, member: str, group: str) -> None:
        if self.hang.is_set():
            self.release.wait(30)
        super().heartbeat(member, group)


def test_a_hung_heartbeat_stops_the_service_counting_as_reporting(
        stack: dict[str, Any]) -> None:
    """The state reports still get through, but the liveness half does not: "reporting" (what
    the supervisor's health check reads) must say so, as it does for a failing heartbeat."""
    stack["conductor"].start()
    group = HangingGroup(stack["group"])
    svc = Service(host="hung", binary="vigil-compute", topic="compute",
                  conductor=rpc.ConductorAPI(stack["transport"], timeout=1), group=group,
                  report_interval=0.1)
    svc.start()
    try:
        wait_for(lambda: svc.reporting, 10, "the service reporting")
        group.hang.set()
        wait_for(lambda: not svc.reporting, 5, "reporting to stop while the heartbeat hangs")
        group.hang.clear()
        group.release.set()
        wait_for(lambda: svc.reporting, 5, "reporting again once the heartbeat returns")
    finally:
        group.release.set()
        svc.stop(leave=False)
