"""Injectable time.

Liveness is decided by comparing timestamps, and the classic bug is comparing one host's wall
clock with another's. Vigil compares a heartbeat only with the clock that wrote it (the
database's ``now()``, a backend's TTL) or with the observer's own monotonic clock. What still
needs *this process's* time -- sleeping between reports, jitter, debounce, grace periods -- goes
through a :class:`Clock` so tests drive it without real waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """The time source of one process."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals, never for dates)."""

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until ``event`` is set; True if it was set."""


class RealClock:
    """The process's own clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class FakeClock:
    """A clock that only moves when a test says so.

    ``wait`` returns at once (as if the timeout elapsed, advancing the clock) unless the event is
    already set, so loops driven by it run step by step under the test's control.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.advance(max(0.0, timeout))
        return event.is_set()
