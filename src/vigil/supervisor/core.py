"""The supervised services' state machine: one :meth:`Supervisor.tick` at a time.

Each service is in one :class:`UnitState`. A pass walks the services in start order (every
service after those it requires), so a requirement's new state is seen by its dependents in the
same pass:

- RUNNING and exited            -> STOPPED, restarted after ``backoff(failures)``;
- RUNNING, a requirement down   -> STOPPING (kept stopped until the requirement is ready);
- RUNNING, its reports stale    -> STOPPING (a failure: restarted after backoff), but only
  while the supervisor's own reports get out: when nobody can report (conductor, broker or
  database away), restarting every agent of the fleet would not help and would hurt;
- RUNNING, restart requested    -> STOPPING, started again at once;
- STOPPING, exited              -> STOPPED;  not exited by ``stop_timeout`` -> STOP_FAILED;
- STOPPED, requirements ready and backoff over -> start -> RUNNING.

STOP_FAILED is final for this supervisor: starting a second copy beside one that would not
stop could run two agents for one host; only a fence (or the process finally exiting) ends it.
The monitor learns it from :meth:`Supervisor.restart` and fences the host.

Times are the supervisor's monotonic clock (injected): nothing here compares another machine's
clock.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vigil.clock import Clock, RealClock
from vigil.supervisor.units import Unit

LOG = logging.getLogger(__name__)


class UnitState(enum.Enum):
    """Where one supervised service is. What the supervisor does in each is the module doc."""

    STOPPED = "stopped"          # not running: started when its requirements are ready
    RUNNING = "running"          # started and alive (``ready`` once it has reported)
    STOPPING = "stopping"        # SIGTERM sent; waiting for it to exit until the deadline
    STOP_FAILED = "stop_failed"  # did not exit in time: nothing is started; fence the host


class Outcome(enum.Enum):
    """The answer to a restart request (what the monitor does with it: docs/ha.md)."""

    RESTARTED = "restarted"          # it runs again (a new process)
    RUNNING = "running"              # it runs and reports: not restarted (the view lagged)
    PENDING = "pending"              # still under way when the wait ended (blocked, backoff)
    FAILED_TO_STOP = "failed_to_stop"  # escalate: the host must be fenced
    UNKNOWN_SERVICE = "unknown_service"  # this host's supervisor does not run it


@dataclass(frozen=True)
class Timing:
    """The [supervisor] knobs the state machine needs (seconds)."""

    report_timeout: float = 60.0
    start_timeout: float = 30.0
    stop_timeout: float = 10.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0


def backoff(failures: int, *, base: float, cap: float) -> float:
    """Seconds to wait before restarting after the ``failures``-th failure in a row: none for
    the first start, then base * 2^(failures-1), capped."""
    if failures < 1:
        return 0.0
    return float(min(cap, base * 2 ** (failures - 1)))


def start_order(requires: Mapping[str, Sequence[str]], listed: Sequence[str]) -> list[str]:
    """``listed`` reordered so that every service comes after what it requires, otherwise in
    the listed order (the graph is acyclic: :func:`vigil.conf.supervisor.validate`)."""
    out: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for dep in requires.get(name, ()):
            place(dep)
        out.append(name)

    for name in listed:
        place(name)
    return out


@dataclass
class _Slot:
    """The supervisor's book on one service."""

    unit: Unit
    state: UnitState = UnitState.STOPPED
    failures: int = 0            # failures in a row (reset after a healthy backoff_max)
    next_start: float = 0.0
    started_at: float | None = None
    mark: int | None = None      # the last report mark seen
    reported_at: float | None = None  # when (our clock) the mark last changed
    stop_deadline: float | None = None
    stop_reason: str = ""
    restart_requested: bool = False
    generation: int = 0          # starts so far: a restart request waits for the next one
    last_pid: int | None = None


class Supervisor:
    """The state machine over a host's services; thread-safe (``tick`` from the loop thread,
    ``restart``/``describe`` from RPC threads)."""

    def __init__(self, units: Sequence[Unit], requires: Mapping[str, Sequence[str]], *,
                 timing: Timing, clock: Clock | None = None,
                 reporting: Callable[[], bool] = lambda: True) -> None:
        self.clock = clock or RealClock()
        self.timing = timing
        self.requires = {u.name: tuple(requires.get(u.name, ())) for u in units}
        self.order = start_order(self.requires, [u.name for u in units])
        self._slots = {u.name: _Slot(u) for u in units}
        now = self.clock.monotonic()
        for slot in self._slots.values():
            if slot.unit.adopt():  # left running by a supervisor killed alone
                slot.state, slot.started_at, slot.generation = UnitState.RUNNING, now, 1
                slot.last_pid = slot.unit.pid()
        # Whether the supervisor's own reports get out: a stale agent is restarted only then.
        self._reporting = reporting
        self._cond = threading.Condition()
        self.stopping = False

    # -- queries ------------------------------------------------------------------------------
    def state(self, name: str) -> UnitState:
        with self._cond:
            return self._slots[name].state

    def pid(self, name: str) -> int | None:
        with self._cond:
            return self._slots[name].unit.pid()

    def ready(self, name: str) -> bool:
        """Running and reported at least once: what its dependents wait for."""
        with self._cond:
            return self._ready(self._slots[name])

    def _ready(self, slot: _Slot) -> bool:
        return slot.state is UnitState.RUNNING and slot.reported_at is not None

    def describe(self) -> dict[str, dict[str, object]]:
        with self._cond:
            return {n: {"state": s.state.value, "pid": s.unit.pid(), "failures": s.failures,
                        "ready": self._ready(s)} for n, s in self._slots.items()}

    # -- one pass -----------------------------------------------------------------------------
    def tick(self) -> None:
        """Check every service once and act (module doc)."""
        with self._cond:
            now = self.clock.monotonic()
            reporting = self._reporting()
            for name in self.order:
                self._step(name, self._slots[name], now, reporting)
            self._cond.notify_all()

    def _step(self, name: str, slot: _Slot, now: float, reporting: bool) -> None:
        t = self.timing
        down = [d for d in self.requires[name] if not self._ready(self._slots[d])]
        if slot.state is UnitState.RUNNING:
            if not slot.unit.alive():
                slot.failures += 1
                slot.state = UnitState.STOPPED
                slot.next_start = now + (0.0 if slot.restart_requested else
                                         backoff(slot.failures, base=t.backoff_base,
                                                 cap=t.backoff_max))
                LOG.error("%s (pid %s) exited; restarting it in %.1f s (failure %d in a row)",
                          name, slot.last_pid, slot.next_start - now, slot.failures)
                return self._step_stopped(name, slot, now, down)
            mark = slot.unit.report_mark()
            if mark is not None and mark != slot.mark:
                slot.mark, slot.reported_at = mark, now
            if down:
                return self._begin_stop(name, slot, now, f"it requires {', '.join(down)}, "
                                        "which is down", failure=False)
            if slot.restart_requested:
                return self._begin_stop(name, slot, now, "a restart was requested",
                                        failure=False)
            assert slot.started_at is not None
            since = slot.reported_at if slot.reported_at is not None else slot.started_at
            limit = t.report_timeout if slot.reported_at is not None else t.start_timeout
            if now - since > limit and reporting and not self.stopping:
                return self._begin_stop(name, slot, now, f"its reports have not got out for "
                                        f"{now - since:.1f} s", failure=True)
            if slot.failures and now - slot.started_at >= t.backoff_max:
                slot.failures = 0  # it has run long enough: the next failure starts over
            return None
        if slot.state is UnitState.STOPPING:
            if not slot.unit.alive():
                slot.state = UnitState.STOPPED
                LOG.warning("%s stopped (%s)", name, slot.stop_reason)
                return self._step_stopped(name, slot, now, down)
            assert slot.stop_deadline is not None
            if now >= slot.stop_deadline:
                slot.state = UnitState.STOP_FAILED
                LOG.error("%s (pid %s) FAILED TO STOP: still running %.1f s after SIGTERM (%s). "
                          "Not killing it and not starting another: the host must be fenced",
                          name, slot.last_pid, t.stop_timeout, slot.stop_reason)
            return None
        if slot.state is UnitState.STOP_FAILED:
            if not slot.unit.alive():
                LOG.warning("%s finally exited after failing to stop", name)
                slot.state = UnitState.STOPPED
                return self._step_stopped(name, slot, now, down)
            return None
        return self._step_stopped(name, slot, now, down)

    def _step_stopped(self, name: str, slot: _Slot, now: float, down: list[str]) -> None:
        if self.stopping or down:
            return
        if slot.restart_requested:
            slot.next_start = min(slot.next_start, now)
        if now < slot.next_start:
            return
        try:
            slot.unit.start()
        except OSError as exc:
            slot.failures += 1
            slot.next_start = now + backoff(slot.failures, base=self.timing.backoff_base,
                                            cap=self.timing.backoff_max)
            LOG.error("cannot start %s (retrying in %.1f s): %s", name,
                      slot.next_start - now, exc)
            return
        slot.state = UnitState.RUNNING
        slot.started_at = now
        slot.mark = slot.reported_at = None
        slot.restart_requested = False
        slot.generation += 1
        slot.last_pid = slot.unit.pid()

    def _begin_stop(self, name: str, slot: _Slot, now: float, reason: str, *,
                    failure: bool) -> None:
        if failure:
            slot.failures += 1
            slot.next_start = now + backoff(slot.failures, base=self.timing.backoff_base,
                                            cap=self.timing.backoff_max)
        LOG.warning("stopping %s (pid %s): %s", name, slot.last_pid, reason)
        slot.unit.terminate()
        slot.state = UnitState.STOPPING
        slot.stop_reason = reason
        slot.stop_deadline = now + self.timing.stop_timeout

    # -- requests -----------------------------------------------------------------------------
    def restart(self, name: str, wait: float) -> tuple[Outcome, str]:
        """Restart ``name`` (stop it if it runs, start it at once, backoff skipped) and wait up
        to ``wait`` seconds for the outcome. The loop thread does the work."""
        deadline = self.clock.monotonic() + wait
        with self._cond:
            slot = self._slots.get(name)
            if slot is None:
                return Outcome.UNKNOWN_SERVICE, f"this supervisor does not run {name!r}"
            if slot.state is UnitState.STOP_FAILED:
                return Outcome.FAILED_TO_STOP, (f"{name} (pid {slot.last_pid}) failed to stop "
                                                f"({slot.stop_reason})")
            age = (self.clock.monotonic() - slot.reported_at
                   if slot.reported_at is not None else None)
            if (slot.state is UnitState.RUNNING and age is not None
                    and age <= self.timing.report_timeout / 2 and slot.unit.alive()):
                # Its reports get out now: the caller's DOWN was formed before (a request sent
                # while a crashed agent was coming back). A monitor sees DOWN only after
                # service_down_time without a report; restarting a healthy agent would only
                # make it DOWN again. If the caller still sees it DOWN, it escalates anyway.
                return Outcome.RUNNING, (f"{name} runs and reports (pid {slot.last_pid}, last "
                                         f"report {age:.1f} s ago): not restarted")
            if slot.state is UnitState.RUNNING and slot.reported_at is None:
                # Already restarted (after a crash) and not yet reporting: stopping this fresh
                # copy would only delay it. The request is "make it run again": it does.
                target = slot.generation
                LOG.warning("restart of %s requested: it was just restarted (pid %s)", name,
                            slot.last_pid)
            else:
                target = slot.generation + 1
                slot.restart_requested = True
                LOG.warning("restart of %s requested (it is %s)", name, slot.state.value)
            while True:
                now_state: UnitState = self._slots[name].state  # changed by the loop thread
                if now_state is UnitState.STOP_FAILED:
                    return Outcome.FAILED_TO_STOP, (f"{name} (pid {slot.last_pid}) failed to "
                                                    f"stop ({slot.stop_reason})")
                if slot.generation >= target and slot.state is UnitState.RUNNING:
                    return Outcome.RESTARTED, f"{name} runs again (pid {slot.last_pid})"
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return Outcome.PENDING, f"{name} is {slot.state.value}"
                self._cond.wait(min(left, 0.5))

    def stop_all(self, *, poll: float = 0.05) -> list[str]:
        """Stop every service, dependents first, each within ``stop_timeout``. Returns the
        names of those that failed to stop (the caller exits non-zero: not killed)."""
        failed: list[str] = []
        stop = threading.Event()
        with self._cond:
            self.stopping = True
        for name in reversed(self.order):
            with self._cond:
                slot = self._slots[name]
                if slot.state is UnitState.RUNNING and slot.unit.alive():
                    self._begin_stop(name, slot, self.clock.monotonic(), "supervisor stopping",
                                     failure=False)
            while True:
                with self._cond:
                    self._step(name, slot, self.clock.monotonic(), True)
                    state: UnitState = self._slots[name].state
                    if state is UnitState.STOP_FAILED:
                        failed.append(name)
                        break
                    if state is UnitState.STOPPED:
                        break
                self.clock.wait(stop, poll)
        return failed
