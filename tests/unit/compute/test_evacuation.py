"""vigil.compute.evacuation: the one answer to "may this instance be evacuated from this host?",
as tables written out by hand (one row per case the four former copies disagreed on)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from vigil.compute import evacuation
from vigil.objects.compute import InstanceRecord, TaskState, VmState
from vigil.objects.ha import HostRecord
from vigil.objects.liveness import State

UP, DOWN, UNK = State.UP, State.DOWN, State.UNKNOWN
PLAIN = HostRecord("h1")
AT = dt.datetime(2026, 1, 1)
QUARANTINED = HostRecord("h1", quarantine_seq=1, quarantined_at=AT, quarantine_recovery_id=1)
ACKED = dataclasses.replace(QUARANTINED, quarantine_acked_seq=1)

# reporting, left, facts -> (operator may, scheduler proceeds)
HOST_TABLE = [
    (DOWN, False, None, True, True),
    (DOWN, False, PLAIN, True, True),
    (DOWN, True, None, False, False),          # a clean leave: its instances may still run
    (UP, False, None, False, False),           # it reports: forced_down alone is not enough
    (UNK, False, None, False, False),          # nothing could be read: never evacuate
    (UP, False, QUARANTINED, False, True),     # fenced by the HA workflow: the request stands
    (UNK, False, QUARANTINED, False, True),
    (UP, False, ACKED, True, True),            # its agent stopped everything and starts nothing
    (DOWN, True, ACKED, True, True),
    (UP, True, QUARANTINED, False, True),
]


@pytest.mark.parametrize(("reporting", "left", "facts", "operator", "scheduler"), HOST_TABLE)
def test_host_rules(reporting: State, left: bool, facts: HostRecord | None, operator: bool,
                    scheduler: bool) -> None:
    assert (evacuation.operator_refusal("h1", reporting, left=left, facts=facts)
            is None) == operator
    assert (evacuation.scheduler_refusal("h1", reporting, left=left, facts=facts)
            is None) == scheduler


@pytest.mark.parametrize(("reporting", "may"), [(DOWN, True), (UP, False), (UNK, False)])
def test_an_operators_host_evacuation_needs_a_host_that_stopped_reporting(
        reporting: State, may: bool) -> None:
    """The fence behind ``vigil host evacuate`` is the evidence: a clean leave is no reason to
    refuse it, a host that reports or cannot be read is."""
    assert (evacuation.host_request_refusal("h1", reporting) is None) == may


def test_a_host_without_a_compute_service_counts_as_down() -> None:
    assert evacuation.reporting_of({"h2": UP}, "h1") is DOWN
    assert evacuation.reporting_of({"h1": UP}, "h1") is UP


OPERATOR_OK = {(None, VmState.ACTIVE), (None, VmState.ERROR)}
AFTER_FENCE_OK = {(t, v) for t in (None, TaskState.SPAWNING, TaskState.REBUILD_SPAWNING)
                  for v in (VmState.ACTIVE, VmState.ERROR, VmState.BUILDING)}


def _instance(task: TaskState | None, vm: VmState) -> InstanceRecord:
    fields = {f.name: None for f in dataclasses.fields(InstanceRecord)}
    fields.update(uuid="u1", task_state=task, vm_state=vm, host="h1")
    return InstanceRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("task", "vm"), list(itertools.product([None, *TaskState], VmState)))
def test_instance_rules(task: TaskState | None, vm: VmState) -> None:
    inst = _instance(task, vm)
    assert (evacuation.OPERATOR_REQUEST.refusal(inst) is None) == ((task, vm) in OPERATOR_OK)
    assert (evacuation.AFTER_FENCE.refusal(inst) is None) == ((task, vm) in AFTER_FENCE_OK)
