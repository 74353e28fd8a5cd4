"""The supervisor's state machine over in-memory units and a fake clock: order, dependencies,
backoff, health checks, restart requests and the failure to stop."""

from __future__ import annotations

import threading

import pytest

from vigil.clock import FakeClock
from vigil.supervisor.core import Outcome, Supervisor, Timing, UnitState, backoff, start_order

T = Timing(report_timeout=5.0, start_timeout=10.0, stop_timeout=3.0, backoff_base=1.0,
           backoff_max=8.0)


class FakeUnit:
    """A service in memory: the test decides whether it lives, reports and obeys SIGTERM."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.running = False
        self.obeys_sigterm = True
        self.mark: int | None = None
        self.starts = 0
        self.leftover = False  # left running by a previous supervisor

    def start(self) -> None:
        self.running, self.mark = True, None
        self.starts += 1
        self.log.append(f"start {self.name}")

    def adopt(self) -> bool:
        if self.leftover:
            self.running = True
        return self.leftover

    def alive(self) -> bool:
        return self.running

    def terminate(self) -> None:
        self.log.append(f"term {self.name}")
        if self.obeys_sigterm:
            self.running = False

    def report_mark(self) -> int | None:
        return self.mark

    def pid(self) -> int | None:
        return 1000 + self.starts if self.running else None

    def report(self) -> None:
        self.mark = (self.mark or 0) + 1


def make(names: list[str], requires: dict[str, tuple[str, ...]] | None = None,
         reporting: bool = True) -> tuple[Supervisor, dict[str, FakeUnit], FakeClock, list[str]]:
    log: list[str] = []
    units = {n: FakeUnit(n, log) for n in names}
    clock = FakeClock()
    sup = Supervisor(list(units.values()), requires or {}, timing=T, clock=clock,
                     reporting=lambda: reporting)
    return sup, units, clock, log


def test_start_order_puts_requirements_first_and_keeps_the_listed_order() -> None:
    assert start_order({"compute": ("network",), "network": ()}, ["compute", "network"]) == [
        "network", "compute"]
    assert start_order({}, ["a", "b", "c"]) == ["a", "b", "c"]
    assert start_order({"c": ("a",), "b": ("c",)}, ["a", "b", "c"]) == ["a", "c", "b"]


@pytest.mark.parametrize(("failures", "wait"), [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0),
                                                (4, 8.0), (10, 8.0)])
def test_backoff_doubles_and_is_capped(failures: int, wait: float) -> None:
    assert backoff(failures, base=1.0, cap=8.0) == wait


def test_dependents_start_after_their_requirement_reports_and_stop_while_it_is_down() -> None:
    sup, u, clock, log = make(["compute", "network"], {"compute": ("network",)})
    sup.tick()
    assert log == ["start network"]  # compute waits: network has not reported yet
    u["network"].report()
    sup.tick()
    assert log == ["start network", "start compute"]
    u["compute"].report()
    sup.tick()
    assert sup.ready("compute")
    u["network"].running = False  # network crashes
    sup.tick()
    assert sup.state("network") is UnitState.STOPPED
    assert sup.state("compute") is UnitState.STOPPING and log[-1] == "term compute"
    sup.tick()
    assert sup.state("compute") is UnitState.STOPPED
    clock.advance(30)  # long past any backoff: compute still waits for network
    sup.tick()
    assert sup.state("network") is UnitState.RUNNING
    assert sup.state("compute") is UnitState.STOPPED
    u["network"].report()
    sup.tick()
    assert sup.state("compute") is UnitState.RUNNING


def test_a_crashed_service_is_restarted_with_backoff() -> None:
    sup, u, clock, _log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    for wait in (1.0, 2.0, 4.0):
        u["compute"].running = False
        sup.tick()
        assert sup.state("compute") is UnitState.STOPPED
        clock.advance(wait - 0.01)
        sup.tick()
        assert sup.state("compute") is UnitState.STOPPED, wait
        clock.advance(0.01)
        sup.tick()
        assert sup.state("compute") is UnitState.RUNNING, wait
    assert u["compute"].starts == 4
    clock.advance(T.backoff_max)  # healthy long enough: the count starts over
    u["compute"].report()
    sup.tick()
    u["compute"].running = False
    sup.tick()
    clock.advance(1.0)
    sup.tick()
    assert sup.state("compute") is UnitState.RUNNING


def test_stale_reports_restart_it_only_while_the_supervisor_reports() -> None:
    sup, u, clock, log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    clock.advance(T.report_timeout + 0.1)
    sup.tick()
    assert sup.state("compute") is UnitState.STOPPING and "term compute" in log

    quiet, qu, qclock, qlog = make(["compute"], reporting=False)
    quiet.tick()
    qu["compute"].report()
    quiet.tick()
    qclock.advance(60)
    quiet.tick()  # nobody's reports get out: restarting would not help
    assert quiet.state("compute") is UnitState.RUNNING and "term compute" not in qlog


def test_a_service_that_never_reports_fails_after_start_timeout() -> None:
    sup, _u, clock, _ = make(["compute"])
    sup.tick()
    clock.advance(T.start_timeout - 0.1)
    sup.tick()
    assert sup.state("compute") is UnitState.RUNNING
    clock.advance(0.2)
    sup.tick()
    assert sup.state("compute") is UnitState.STOPPING


def test_failure_to_stop_is_final_and_reported() -> None:
    sup, u, clock, log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    u["compute"].obeys_sigterm = False
    clock.advance(T.report_timeout / 2 + 0.1)  # hung: its reports stopped
    answer: list[tuple[Outcome, str]] = []
    t = threading.Thread(target=lambda: answer.append(sup.restart("compute", 1000.0)))
    t.start()
    for _ in range(500):
        sup.tick()
        t.join(0.01)
        if "term compute" in log:
            break
    assert "term compute" in log
    clock.advance(T.stop_timeout)
    sup.tick()
    t.join(5)
    assert answer and answer[0][0] is Outcome.FAILED_TO_STOP, answer
    assert sup.state("compute") is UnitState.STOP_FAILED
    clock.advance(100)
    sup.tick()
    assert u["compute"].starts == 1  # never a second copy beside the stuck one
    assert sup.restart("compute", 0.0)[0] is Outcome.FAILED_TO_STOP
    assert sup.stop_all() == ["compute"]


def test_restart_request_restarts_and_skips_backoff() -> None:
    sup, u, clock, log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    clock.advance(T.report_timeout / 2 + 0.1)  # its reports stopped
    answer: list[tuple[Outcome, str]] = []
    t = threading.Thread(target=lambda: answer.append(sup.restart("compute", 1000.0)))
    t.start()
    for _ in range(200):
        sup.tick()
        t.join(0.01)
        if answer:
            break
    assert answer and answer[0][0] is Outcome.RESTARTED, answer
    assert u["compute"].starts == 2 and log.count("term compute") == 1
    assert sup.restart("nova-compute", 0.0)[0] is Outcome.UNKNOWN_SERVICE


def test_a_request_for_a_just_restarted_agent_does_not_restart_it_again() -> None:
    sup, u, clock, log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    u["compute"].running = False  # crashed; restarted by the supervisor on its own
    sup.tick()
    clock.advance(1.0)
    sup.tick()
    assert u["compute"].starts == 2
    assert sup.restart("compute", 0.0)[0] is Outcome.RESTARTED
    sup.tick()
    assert u["compute"].starts == 2 and "term compute" not in log


def test_a_leftover_copy_is_adopted_not_doubled() -> None:
    log: list[str] = []
    unit = FakeUnit("compute", log)
    unit.leftover = True
    sup = Supervisor([unit], {}, timing=T, clock=FakeClock())
    sup.tick()
    assert sup.state("compute") is UnitState.RUNNING and unit.starts == 0


def test_stop_all_stops_dependents_first() -> None:
    sup, u, _clock, log = make(["network", "compute"], {"compute": ("network",)})
    sup.tick()
    u["network"].report()
    sup.tick()
    assert sup.stop_all() == []
    assert [line for line in log if line.startswith("term")] == ["term compute", "term network"]


def test_a_request_for_an_agent_that_reports_now_restarts_nothing() -> None:
    """The monitor saw it DOWN while it was coming back; by the time the request arrives it
    reports: a restart would only make it DOWN again."""
    sup, u, clock, log = make(["compute"])
    sup.tick()
    u["compute"].report()
    sup.tick()
    clock.advance(T.report_timeout / 2 - 0.1)
    assert sup.restart("compute", 0.0)[0] is Outcome.RUNNING
    sup.tick()
    assert u["compute"].starts == 1 and "term compute" not in log
    clock.advance(0.2)  # its last report is older than half the report timeout: restarted
    assert sup.restart("compute", 0.0)[0] is Outcome.PENDING
    sup.tick()
    assert log[-1] == "term compute"
