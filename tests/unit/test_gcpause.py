"""vigil.gcpause: the collector is off inside, back on after the last holder, and left off if
it was off before."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from vigil import gcpause


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_enabled_after() -> None:
    with gcpause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_and_concurrent_holders_enable_once_the_last_leaves() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with gcpause.paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with gcpause.paused():
        thread.start()
        assert inside.wait(5)
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread still holds it
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_an_exception_inside_still_enables_it() -> None:
    with pytest.raises(ValueError), gcpause.paused():
        raise ValueError
    assert gc.isenabled()


def test_a_long_overlapping_pause_collects_the_young(monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[int] = []
    monkeypatch.setattr(gcpause, "MAX_PAUSE", 0.0)
    monkeypatch.setattr(gcpause.gc, "collect", lambda generation=2: collected.append(generation))
    with gcpause.paused():
        with gcpause.paused():
            pass
        assert collected == [1]
    assert gc.isenabled()


def test_frozen_hides_what_exists_and_gives_it_back_after_the_last_holder() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with gcpause.frozen():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with gcpause.frozen():
        assert gc.get_freeze_count() > 0
        thread.start()
        assert inside.wait(5)
    assert gc.get_freeze_count() > 0  # the other thread still holds it
    leave.set()
    thread.join(5)
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
