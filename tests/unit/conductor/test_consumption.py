"""The consumption lease: the rule table-tested on numbers, the guard stepped on a fake clock.

The guard drives a recording stand-in for oslo.messaging's server (start/stop/wait are all it
uses); tests/functional/test_conductor_wedged.py runs the real thing, two conductor processes
on RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest

import vigil.conf
from vigil.clock import FakeClock
from vigil.conductor.consumption import Action, ConsumptionGuard, Decision, decide
from vigil.conductor.manager import _ReleasingServer, stop_consuming_after
from vigil.errors import ConfigError, DatabaseUnavailable

STOP_AFTER = 5.0
CHECK = 1.0


@pytest.mark.parametrize(
    ("consuming", "now", "last_write", "expected"),
    [
        (True, 100.0, 99.0, Decision(Action.KEEP, CHECK)),  # fresh lease: look again in 1 s
        (True, 100.0, 95.5, Decision(Action.KEEP, 0.5)),  # lease ends sooner than a check
        (True, 100.0, 95.0, Decision(Action.STOP, CHECK)),  # exactly out: stop
        (True, 100.0, 10.0, Decision(Action.STOP, CHECK)),  # long out
        (True, 100.0, None, Decision(Action.STOP, CHECK)),  # never wrote: may not consume
        (False, 100.0, 99.9, Decision(Action.JOIN, CHECK)),  # stopped: try to join
        (False, 100.0, None, Decision(Action.JOIN, CHECK)),
    ],
)
def test_decide(consuming: bool, now: float, last_write: float | None,
                expected: Decision) -> None:
    assert decide(consuming, now, last_write, STOP_AFTER, CHECK) == expected


class RecordingServer:
    """Records the calls; refuses to start twice (the guard's server, _ReleasingServer, makes
    a new oslo.messaging server for each start, so a restart needs no wait)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = False

    def start(self) -> None:
        assert not self.running, self.calls
        self.running = True
        self.calls.append("start")

    def stop(self) -> None:
        self.running = False
        self.calls.append("stop")

    def wait(self) -> None:
        assert not self.running
        self.calls.append("wait")


class Db:
    """The database as the guard sees it: a join that commits or raises."""

    def __init__(self) -> None:
        self.up = True
        self.joins = 0

    def join(self) -> None:
        if not self.up:
            raise DatabaseUnavailable("stalled")
        self.joins += 1


def test_stops_when_writes_stop_and_resumes_by_itself() -> None:
    clock = FakeClock()
    server, db = RecordingServer(), Db()
    beats: list[float] = []
    guard = ConsumptionGuard(server, last_write=lambda: beats[-1] if beats else None,
                             join=db.join, stop_after=STOP_AFTER, check_interval=CHECK,
                             clock=clock)
    guard._try_join()  # what start() does before its thread
    assert guard.consuming and server.calls == ["start"]
    for _ in range(10):  # beats commit every second: it keeps consuming
        clock.advance(1.0)
        beats.append(clock.monotonic())
        assert guard.step().action is Action.KEEP
    db.up = False  # writes stop committing
    for _ in range(4):
        clock.advance(1.0)
        assert guard.step().action is Action.KEEP
    clock.advance(1.0)
    assert guard.step().action is Action.STOP
    assert not guard.consuming and server.calls[-1] == "stop" and guard.stops == 1
    for _ in range(3):  # it keeps trying to join, and stays stopped while that fails
        clock.advance(1.0)
        assert guard.step().action is Action.JOIN
        assert not guard.consuming
    db.up = True
    clock.advance(1.0)
    guard.step()
    assert guard.consuming and guard.resumes == 1
    assert server.calls[-2:] == ["stop", "start"]  # the old one drains by itself
    # The join renewed the lease although no beat has committed since.
    clock.advance(STOP_AFTER - 0.5)
    assert guard.step().action is Action.KEEP


def test_a_conductor_that_cannot_write_at_start_never_consumes() -> None:
    clock = FakeClock()
    server, db = RecordingServer(), Db()
    db.up = False
    guard = ConsumptionGuard(server, last_write=lambda: None, join=db.join,
                             stop_after=STOP_AFTER, check_interval=CHECK, clock=clock)
    guard._try_join()
    for _ in range(20):
        clock.advance(1.0)
        guard.step()
    assert server.calls == [] and not guard.consuming
    db.up = True
    guard.step()
    assert server.calls == ["start"] and guard.consuming and guard.resumes == 0


def test_resuming_waits_for_nothing_the_old_server_holds() -> None:
    """During a database failover the old server's handlers hang on the lost writer, and
    closing a connection to a cut-off broker blocks: a resume that waited for them started
    consuming seconds after the database was back (issue 14's partition scenario). The guard
    resumes as soon as a join commits, and never calls wait() before shutdown."""
    clock = FakeClock()
    db = Db()

    class HangingWait(RecordingServer):
        def wait(self) -> None:
            raise AssertionError("the guard waited for the old server")

    server = HangingWait()
    guard = ConsumptionGuard(server, last_write=lambda: None, join=db.join,
                             stop_after=STOP_AFTER, check_interval=CHECK, clock=clock)
    guard._try_join()
    clock.advance(STOP_AFTER)
    assert guard.step().action is Action.STOP
    guard.step()  # joins and starts again at once
    assert guard.consuming and server.calls == ["start", "stop", "start"]
    clock.advance(CHECK)
    assert guard.step().action is Action.KEEP


def test_stop_after_shutdown_does_not_restart() -> None:
    clock = FakeClock()
    server, db = RecordingServer(), Db()
    guard = ConsumptionGuard(server, last_write=lambda: None, join=db.join,
                             stop_after=STOP_AFTER, check_interval=CHECK, clock=clock)
    guard._try_join()
    assert guard.stop() is True
    assert server.calls == ["start", "stop", "wait"]
    guard._try_join()  # a join that was in flight during the shutdown commits late
    assert server.calls == ["start", "stop", "wait"] and not guard.consuming


@pytest.mark.parametrize(
    ("configured", "max_gap", "expected"),
    [
        (None, 37.0, 5.0),  # Nova's defaults: capped at 5 s
        (None, 0.7, 0.5),  # the suite's fast settings: halfway between a beat (0.3) and 0.7
        (2.0, 37.0, 2.0),
        (36.0, 37.0, 36.0),
        (37.0, 37.0, None),  # below the tolerance: readers assume no longer, and the stop
        # itself takes a moment
        (0.3, 37.0, None),  # not above one beat: a healthy conductor would stop
        (40.0, 37.0, None),  # beyond the tolerance: readers would close its hole too soon
    ],
)
def test_stop_consuming_after_is_checked(configured: float | None, max_gap: float,
                                         expected: float | None) -> None:
    conf = vigil.conf.make()
    conf([])
    conf.set_override("coalesce_interval", 0.1, group="conductor")
    conf.set_override("probe_interval", 0.2, group="conductor")
    conf.set_override("stop_consuming_after", configured, group="conductor")
    if expected is None:
        with pytest.raises(ConfigError, match="stop_consuming_after"):
            stop_consuming_after(conf, max_gap)
    else:
        assert stop_consuming_after(conf, max_gap) == pytest.approx(expected)


class OsloServer:
    """What _ReleasingServer drives: an oslo.messaging server that starts once, and whose
    wait() blocks until ``release`` is set (handlers stuck on a lost database writer)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.listener = self

    def start(self) -> None:
        assert not self.calls, "oslo.messaging starts a server once before wait()"
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def cleanup(self) -> None:  # the listener's: closes the AMQP consumer
        self.calls.append("cleanup")

    def wait(self) -> None:
        assert self.release.wait(10)
        self.calls.append("wait")


def test_a_restart_makes_a_new_server_and_the_old_one_drains_by_itself() -> None:
    made: list[OsloServer] = []

    def make() -> OsloServer:
        made.append(OsloServer())
        return made[-1]

    servers = _ReleasingServer(make)
    servers.start()
    servers.stop()  # returns although the old server's handlers hang
    servers.start()
    assert len(made) == 2
    assert made[0].calls == ["start", "stop", "cleanup"]  # the consumer closed at once
    assert made[1].calls == ["start"]
    made[0].release.set()
    servers.stop()
    made[1].release.set()
    servers.wait()  # the shutdown waits for both
    assert made[0].calls[-1] == "wait" and made[1].calls == ["start", "stop", "cleanup", "wait"]
