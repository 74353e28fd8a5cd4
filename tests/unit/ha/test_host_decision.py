"""The host/service decision table (:func:`vigil.ha.policy.host_decision`), row by row, with
an injected (plain float) monotonic clock."""

from __future__ import annotations

import pytest

from vigil.ha.policy import HostAction, HostFacts, host_decision
from vigil.objects.liveness import State

UP, DOWN, UNK = State.UP, State.DOWN, State.UNKNOWN
A = HostAction
NOW = 100.0
TIMEOUT = 30.0


@pytest.mark.parametrize(("name", "facts", "action"), [
    # Hosts that never had a supervisor: exactly today's behaviour (decide() alone).
    ("no supervisor, agent up", HostFacts(UP, None), A.LEGACY),
    ("no supervisor, agent down", HostFacts(DOWN, None), A.LEGACY),
    ("no supervisor, agent unknown", HostFacts(UNK, None), A.LEGACY),
    ("no supervisor, maintenance", HostFacts(DOWN, None, maintenance=True), A.LEGACY),
    # The table.
    ("both up", HostFacts(UP, UP), A.NOTHING),
    ("host up, agent down, not asked yet", HostFacts(DOWN, UP), A.RESTART_AGENT),
    ("host up, agent down, asked just now", HostFacts(DOWN, UP, restart_requested_at=NOW),
     A.WAIT_RESTART),
    ("host up, agent down, asked 29.9 s ago",
     HostFacts(DOWN, UP, restart_requested_at=NOW - 29.9), A.WAIT_RESTART),
    ("host up, agent down, asked exactly timeout ago",
     HostFacts(DOWN, UP, restart_requested_at=NOW - TIMEOUT), A.RECOVER),
    ("host up, agent down, asked long ago",
     HostFacts(DOWN, UP, restart_requested_at=NOW - 300), A.RECOVER),
    ("host up, agent failed to stop",
     HostFacts(DOWN, UP, restart_requested_at=NOW, failed_to_stop=True), A.RECOVER),
    ("host down, agent down", HostFacts(DOWN, DOWN), A.RECOVER),
    ("host down, agent down, restart asked before",
     HostFacts(DOWN, DOWN, restart_requested_at=NOW - 1), A.RECOVER),
    ("host down, agent up: the supervisor died", HostFacts(UP, DOWN), A.ALERT_SUPERVISOR),
    # UNKNOWN anywhere: nothing.
    ("host unknown, agent down", HostFacts(DOWN, UNK), A.NOTHING),
    ("host unknown, agent up", HostFacts(UP, UNK), A.NOTHING),
    ("host up, agent unknown", HostFacts(UNK, UP), A.NOTHING),
    ("host down, agent unknown", HostFacts(UNK, DOWN), A.NOTHING),
    ("both unknown", HostFacts(UNK, UNK), A.NOTHING),
    ("host unknown, agent down, asked long ago (no escalation on a hole)",
     HostFacts(DOWN, UNK, restart_requested_at=NOW - 300), A.NOTHING),
    # Maintenance: nothing, whatever the facts.
    ("maintenance, both down", HostFacts(DOWN, DOWN, maintenance=True), A.NOTHING),
    ("maintenance, host up agent down", HostFacts(DOWN, UP, maintenance=True), A.NOTHING),
    ("maintenance, supervisor died", HostFacts(UP, DOWN, maintenance=True), A.NOTHING),
    # An open recovery is the workflow's; a clean leave is decide()'s (never recovered).
    ("open recovery, host up agent up", HostFacts(UP, UP, in_recovery=True), A.RECOVER),
    ("open recovery, host up agent down", HostFacts(DOWN, UP, in_recovery=True), A.RECOVER),
    ("agent left cleanly, host up", HostFacts(DOWN, UP, left=True), A.LEGACY),
])
def test_host_decision_table(name: str, facts: HostFacts, action: HostAction) -> None:
    verdict = host_decision(facts, now=NOW, restart_timeout=TIMEOUT)
    assert verdict.action is action, (name, verdict)
    assert verdict.reason


def test_only_legacy_and_recover_reach_decide() -> None:
    """What the fleet-wide decide() sees: a DOWN agent whose supervisor is restarting it, or
    whose host state is unknown, is neither recovered nor counted."""
    assert {a for a in HostAction if a.hands_to_decide} == {A.LEGACY, A.RECOVER}


def test_escalation_reason_says_why() -> None:
    timed_out = host_decision(HostFacts(DOWN, UP, restart_requested_at=0.0), now=NOW,
                              restart_timeout=TIMEOUT)
    assert "escalated" in timed_out.reason and "service_restart_timeout" in timed_out.reason
    stuck = host_decision(HostFacts(DOWN, UP, restart_requested_at=NOW, failed_to_stop=True),
                          now=NOW, restart_timeout=TIMEOUT)
    assert "failed to stop" in stuck.reason
