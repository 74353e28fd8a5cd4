"""The monitor acting on the host/service decision, in one process: a real conductor, fake
agents, and c1 under an in-process supervisor (what ``vigil up`` runs) over fake://.

- c1's agent dies while its supervisor reports: the monitor asks the supervisor (RPC) to
  restart it, the agent comes back, no recovery is opened, the alert says what happened;
- the agent does not come back within ``service_restart_timeout``: the monitor escalates to an
  ordinary recovery whose timeline says why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.wait import wait_for
from tests.unit.inprocess import Stack, inprocess_stack
from vigil.compute.agent import ComputeAgent
from vigil.compute.virt.driver import VirtDriver
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.ha.restarts import AgentRestarts
from vigil.launch.monitor import supervisor_client
from vigil.launch.settings import compute_settings, virt_driver
from vigil.supervisor.core import Timing
from vigil.up import SimulatedHost


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with inprocess_stack(
            tmp_path, ("c2", "c3"), monitor=True,
            ha={"detection_grace": 0.3, "poll_interval": 0.1, "lease_ttl": 2.0,
                "allow_unproven_death": True, "fence_agent": "simulated",
                "service_restart_timeout": 3.0}) as s:
        s.monitor.restarts = AgentRestarts(supervisor_client(s.conf, s.transport))
        yield s


def supervised(stack: Stack, host: str) -> SimulatedHost:
    def make_agent(h: str, driver: VirtDriver) -> ComputeAgent:
        return ComputeAgent(compute_settings(stack.conf), h, stack.transport, stack.client,
                            stack.group, driver=driver)

    sim = SimulatedHost(host, make_agent, virt_driver(stack.conf, host, "fake"), stack.client,
                        stack.group, stack.transport,
                        Timing(report_timeout=5, start_timeout=5, stop_timeout=1,
                               backoff_base=0.05, backoff_max=1),
                        stack.conf.report_interval)
    sim.start()
    return sim


def active(stack: Stack) -> dict[str, str]:
    return {a.kind: a.message for a in alerts_db.alerts(stack.engine, active_only=True)}


def all_alerts(stack: Stack) -> dict[str, str]:
    return {a.kind: a.message for a in alerts_db.alerts(stack.engine)}


def test_a_dead_agent_on_a_live_host_is_restarted_not_fenced(stack: Stack) -> None:
    sim = supervised(stack, "c1")
    stop = threading.Event()
    ticking = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            if ticking.is_set():
                sim.supervisor.tick()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        ticking.set()
        wait_for(lambda: stack.group.get_all("host") == ["c1"], 10, "c1's supervisor up")
        wait_for(lambda: "c1" in stack.group.get_all("compute"), 10, "c1's agent up")
        ticking.clear()  # the supervisor does not notice on its own: the monitor must ask
        sim.unit.crash()
        wait_for(lambda: "agent_restart:c1" in active(stack), 10, "the restart request")
        ticking.set()
        wait_for(lambda: "agent_restart:c1" not in active(stack), 10, "the agent back")
        message = all_alerts(stack)["agent_restart:c1"]
        assert "back" in message and "no fence" in message, message
        assert recoveries_db.recoveries(stack.engine, host="c1") == []
        assert "c1" in stack.group.get_all("compute")
    finally:
        stop.set()
        t.join(5)
        sim.stop()


def test_an_agent_not_back_in_time_escalates_to_a_recovery(stack: Stack) -> None:
    sim = supervised(stack, "c1")  # never ticked again: it reports, restarts nothing
    try:
        sim.supervisor.tick()
        wait_for(lambda: stack.group.get_all("host") == ["c1"], 10, "c1's supervisor up")
        wait_for(lambda: "c1" in stack.group.get_all("compute"), 10, "c1's agent up")
        sim.unit.crash()
        wait_for(lambda: "agent_restart:c1" in active(stack), 10, "the restart request")
        assert recoveries_db.recoveries(stack.engine, host="c1") == []
        rec = wait_for(lambda: next(iter(recoveries_db.recoveries(stack.engine, host="c1")),
                                    None), 15, "the escalation")
        # Written in the same pass, just after the recovery row: wait for it.
        events = wait_for(lambda: (ev := recoveries_db.events(stack.engine, rec.id))
                          and any(e.kind == "agent_restart_escalated" for e in ev) and ev,
                          5, "the escalation in the timeline")
        assert "escalated" in (events[0].detail or ""), events[0]
        assert "service_restart_timeout" in (events[0].detail or "")
        wait_for(lambda: "agent_restart:c1" not in active(stack), 5, "the alert closed")
    finally:
        sim.stop()
