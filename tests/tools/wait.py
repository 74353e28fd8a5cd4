"""The one poll-with-deadline of the test suite.

A test that waits for something another thread or process does polls for it, with a deadline
that fails the test with what it was waiting for, instead of sleeping for a guessed time (too
short on a loaded machine: flaky; too long everywhere: slow). The clock and the sleep are
injectable, so the helper itself is tested without waiting (tests/unit/test_tools.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(pred: Callable[[], T | None], timeout: float = 10.0, what: str = "condition", *,
             interval: float = 0.02, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], object] = time.sleep) -> T:
    """Call ``pred`` until it returns a truthy value, and return that value; AssertionError
    naming ``what`` once ``timeout`` seconds passed (``pred`` is always asked at least once,
    and once more at the deadline)."""
    deadline = clock() + timeout
    while True:
        value = pred()
        if value:
            return value
        if clock() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        sleep(interval)
