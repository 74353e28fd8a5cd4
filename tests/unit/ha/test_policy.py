"""The pure HA policy, table-tested with an injected (plain float) monotonic clock."""

from __future__ import annotations

import pytest

from vigil.ha import policy
from vigil.ha.policy import Brake, Health, HostView, Policy, Step
from vigil.objects.ha import Phase
from vigil.objects.liveness import State

UP, DOWN, UNK = State.UP, State.DOWN, State.UNKNOWN
OK = Health(database_ok=True, driver_connected=True, reliable_since=0.0)
P = Policy(detection_grace=10.0, max_down_fraction=0.5, max_fences_per_minute=2,
           allow_unproven_death=False)


def hosts(*specs: tuple[str, State, float | None]) -> dict[str, HostView]:
    return {h: HostView(s, since) for h, s, since in specs}


FLEET4 = [("a", UP, None), ("b", UP, None), ("c", UP, None)]


@pytest.mark.parametrize(("name", "fleet", "health", "proves", "now", "pol", "brake", "opened"), [
    ("all up: nothing", [*FLEET4, ("d", UP, None)], OK, True, 100.0, P, None, ()),
    ("down past grace: open", [*FLEET4, ("d", DOWN, 80.0)], OK, True, 100.0, P, None, ("d",)),
    ("down exactly at grace: open", [*FLEET4, ("d", DOWN, 90.0)], OK, True, 100.0, P, None,
     ("d",)),
    ("down inside grace: wait", [*FLEET4, ("d", DOWN, 95.0)], OK, True, 100.0, P, None, ()),
    ("grace counts from reliability", [*FLEET4, ("d", DOWN, 10.0)],
     Health(True, True, 95.0), True, 100.0, P, None, ()),
    ("db unreachable holds", [*FLEET4, ("d", DOWN, 0.0)], Health(False, True, None), True,
     100.0, P, Brake.DATABASE, ()),
    ("driver disconnected holds", [*FLEET4, ("d", DOWN, 0.0)], Health(True, False, None), True,
     100.0, P, Brake.DRIVER, ()),
    ("any unknown holds", [("a", UNK, None), ("b", UP, None), ("c", UP, None),
                           ("d", DOWN, 0.0)], OK, True, 100.0, P, Brake.UNKNOWN, ()),
    ("unproven death holds", [*FLEET4, ("d", DOWN, 0.0)], OK, False, 100.0, P, Brake.UNPROVEN,
     ()),
    ("unproven allowed", [*FLEET4, ("d", DOWN, 0.0)], OK, False, 100.0,
     Policy(10.0, 0.5, 2, True), None, ("d",)),
    ("unproven but nothing down: no brake", [*FLEET4, ("d", UP, None)], OK, False, 100.0, P,
     None, ()),
    ("half down is not more than half", [("a", UP, None), ("b", UP, None), ("c", DOWN, 0.0),
                                         ("d", DOWN, 0.0)], OK, True, 100.0, P, None,
     ("c", "d")),
    ("three of four down: mass failure", [("a", UP, None), ("b", DOWN, 0.0), ("c", DOWN, 0.0),
                                          ("d", DOWN, 0.0)], OK, True, 100.0, P,
     Brake.MASS_FAILURE, ()),
    ("half down with a 0.25 limit", [("a", UP, None), ("b", UP, None), ("c", DOWN, 0.0),
                                     ("d", DOWN, 0.0)], OK, True, 100.0,
     Policy(10.0, 0.25, 2, False), Brake.MASS_FAILURE, ()),
    ("one of two down", [("a", UP, None), ("b", DOWN, 0.0)], OK, True, 100.0, P, None, ("b",)),
    ("no hosts", [], OK, True, 100.0, P, None, ()),
])
def test_decide(name: str, fleet: list[tuple[str, State, float | None]], health: Health,
                proves: bool, now: float, pol: Policy, brake: Brake | None,
                opened: tuple[str, ...]) -> None:
    d = policy.decide(hosts(*fleet), health, proves_death=proves, now=now, policy=pol)
    assert d.brake is brake, (name, d)
    assert d.open == opened, (name, d)
    assert d.may_fence is (brake is None)
    assert d.alert is (brake in (Brake.UNPROVEN, Brake.MASS_FAILURE))


def test_hosts_in_recovery_are_not_opened_again() -> None:
    fleet = {"a": HostView(UP), "b": HostView(DOWN, 0.0, in_recovery=True)}
    assert policy.decide(fleet, OK, proves_death=True, now=100.0, policy=P).open == ()


MAINT = HostView(DOWN, 0.0, maintenance=True)
LEFT = HostView(DOWN, 0.0, left=True)


@pytest.mark.parametrize(("name", "fleet", "brake", "opened"), [
    ("maintenance: never opened", {"a": HostView(UP), "b": MAINT}, None, ()),
    ("left cleanly: never opened", {"a": HostView(UP), "b": LEFT}, None, ()),
    ("maintenance and left are not a mass failure",
     {"a": HostView(UP), "b": MAINT, "c": LEFT, "d": LEFT, "e": HostView(DOWN, 0.0)}, None,
     ("e",)),
    ("a real mass failure still brakes",
     {"a": HostView(UP), "b": HostView(DOWN, 0.0), "c": HostView(DOWN, 0.0), "d": MAINT},
     Brake.MASS_FAILURE, ()),
    ("an unknown host in maintenance does not hold the others",
     {"a": HostView(UP), "b": HostView(UNK, maintenance=True), "c": HostView(UP),
      "d": HostView(DOWN, 0.0)}, None, ("d",)),
    ("an unknown host that left still holds (the view has a hole)",
     {"a": HostView(UP), "b": HostView(UNK, left=True), "c": HostView(DOWN, 0.0)},
     Brake.UNKNOWN, ()),
])
def test_maintenance_and_clean_leaves_are_not_failures(
        name: str, fleet: dict[str, HostView], brake: Brake | None,
        opened: tuple[str, ...]) -> None:
    d = policy.decide(fleet, OK, proves_death=True, now=100.0, policy=P)
    assert (d.brake, d.open) == (brake, opened), name


def test_waiting_reports_seconds_left() -> None:
    d = policy.decide(hosts(("a", UP, None), ("b", DOWN, 97.0)), OK, proves_death=True,
                      now=100.0, policy=P)
    assert d.waiting == {"b": pytest.approx(7.0)}


@pytest.mark.parametrize(("previous", "states", "now", "expected"), [
    ({}, {"a": DOWN}, 5.0, {"a": 5.0}),
    ({"a": 1.0}, {"a": DOWN}, 5.0, {"a": 1.0}),       # a run keeps its start
    ({"a": 1.0}, {"a": UNK}, 5.0, {}),                # unknown breaks the run
    ({"a": 1.0}, {"a": UP}, 5.0, {}),
    ({"a": 1.0}, {}, 5.0, {}),                        # a host that disappeared
])
def test_observe(previous: dict[str, float], states: dict[str, State], now: float,
                 expected: dict[str, float]) -> None:
    assert policy.observe(previous, states, now) == expected


@pytest.mark.parametrize(("previous", "reliable", "now", "expected"), [
    (None, True, 3.0, 3.0), (1.0, True, 3.0, 1.0), (1.0, False, 3.0, None),
    (None, False, 3.0, None),
])
def test_next_reliable_since(previous: float | None, reliable: bool, now: float,
                             expected: float | None) -> None:
    assert policy.next_reliable_since(previous, reliable, now) == expected


def test_a_flap_restarts_the_grace() -> None:
    """DOWN, one UNKNOWN, DOWN again: the grace counts from the second DOWN only."""
    since: dict[str, float] = {}
    reliable: float | None = None
    t = 0.0
    for t, state, ok in [(0.0, DOWN, True), (6.0, UNK, False), (7.0, DOWN, True),
                         (12.0, DOWN, True), (17.5, DOWN, True)]:
        since = policy.observe(since, {"a": state, "b": UP, "c": UP}, t)
        reliable = policy.next_reliable_since(reliable, ok, t)
        d = policy.decide({"a": HostView(state, since.get("a")), "b": HostView(UP),
                           "c": HostView(UP)}, Health(True, True, reliable),
                          proves_death=True, now=t, policy=P)
        if t < 17.0:
            assert d.open == (), t
    assert t == 17.5 and d.open == ("a",)


@pytest.mark.parametrize(("recent", "limit", "slots"), [(0, 2, 2), (1, 2, 1), (2, 2, 0),
                                                        (5, 2, 0)])
def test_fence_slots(recent: int, limit: int, slots: int) -> None:
    assert policy.fence_slots(recent, Policy(max_fences_per_minute=limit)) == slots


@pytest.mark.parametrize(("attempt", "wait"), [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0),
                                               (10, 60.0)])
def test_backoff(attempt: int, wait: float) -> None:
    assert policy.backoff(attempt, base=5.0, cap=60.0) == wait


# stand_down: the host was put in maintenance or its service left cleanly (a monitor-opened
# recovery). may_evac: False while a fenced host reports again and has not acknowledged its
# quarantine.
@pytest.mark.parametrize(
    ("phase", "state", "in_flight", "may_fence", "due", "stand_down", "may_evac", "step"), [
    ("detected", DOWN, False, True, True, False, True, Step.DISABLE),
    ("detected", UNK, False, False, True, False, True, Step.DISABLE),
    ("detected", UP, False, True, True, False, True, Step.CANCEL),
    ("detected", DOWN, False, True, True, True, True, Step.CANCEL),     # maintenance / left
    ("disabled", DOWN, False, True, True, False, True, Step.FENCE),
    ("disabled", DOWN, False, False, True, False, True, Step.WAIT),    # a brake holds
    ("disabled", DOWN, False, True, False, False, True, Step.WAIT),    # backoff not over
    ("disabled", UNK, False, True, True, False, True, Step.WAIT),      # never fence on unknown
    ("disabled", UP, False, True, True, False, True, Step.CANCEL),     # back before the fence
    ("disabled", DOWN, False, True, True, True, True, Step.CANCEL),    # maintenance / left
    ("disabled", UP, True, True, True, False, True, Step.RESOLVE_FENCE),
    ("disabled", DOWN, True, False, True, False, True, Step.RESOLVE_FENCE),
    ("disabled", DOWN, True, True, True, True, True, Step.RESOLVE_FENCE),  # resolved first
    ("fenced", UP, False, False, True, False, True, Step.FORCE_DOWN),  # fenced: no way back
    ("fenced", DOWN, False, False, True, True, True, Step.FORCE_DOWN),  # even in maintenance
    ("forced_down", UP, False, False, True, False, True, Step.EVACUATE),
    ("forced_down", DOWN, False, False, True, True, True, Step.EVACUATE),
    ("forced_down", UP, False, False, True, False, False, Step.WAIT),  # not acknowledged
    ("evacuated", DOWN, False, True, True, False, True, Step.WAIT),
    ("evacuated", UNK, False, True, True, False, True, Step.WAIT),
    ("evacuated", UP, False, True, True, False, True, Step.RE_ENABLE),
    ("completed", UP, False, True, True, False, True, Step.WAIT),
])
def test_next_step(phase: str, state: State, in_flight: bool, may_fence: bool, due: bool,
                   stand_down: bool, may_evac: bool, step: Step) -> None:
    assert policy.next_step(phase=Phase(phase), host_state=state, fence_in_flight=in_flight,
                            may_fence=may_fence, retry_due=due, stand_down=stand_down,
                            may_evacuate=may_evac) is step


def test_evacuation_order_keeps_order_and_splits() -> None:
    assert policy.evacuation_order([("1", True), ("2", False), ("3", True)]) == (["1", "3"],
                                                                                ["2"])
