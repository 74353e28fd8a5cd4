"""The shared test helpers (tests/tools): a clock that only the helper moves, a real engine."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.tools.sql import count_statements
from tests.tools.wait import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_returns_the_first_truthy_value() -> None:
    clock = Clock()
    answers = iter([None, 0, "", "ready"])
    assert wait_for(lambda: next(answers), 10, "x", interval=1, clock=clock,
                    sleep=clock.sleep) == "ready"
    assert clock.sleeps == [1, 1, 1]


def test_wait_for_fails_at_the_deadline_naming_what_it_waited_for() -> None:
    clock = Clock()
    asked: list[float] = []
    with pytest.raises(AssertionError, match="timed out after 2 s waiting for the leader"):
        wait_for(lambda: asked.append(clock.now), 2, "the leader", interval=0.5, clock=clock,
                 sleep=clock.sleep)
    assert asked[0] == 0 and asked[-1] == 2  # asked at once, and once more at the deadline


def test_count_statements(sqlite_engine: Engine) -> None:
    with count_statements(sqlite_engine) as seen, sqlite_engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        conn.execute(sa.text("SELECT 2"))
    assert seen == ["SELECT 1", "SELECT 2"]
    with sqlite_engine.connect() as conn:
        conn.execute(sa.text("SELECT 3"))
    assert seen == ["SELECT 1", "SELECT 2"]  # no longer listening
