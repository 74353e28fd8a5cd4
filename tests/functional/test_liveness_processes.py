"""Real processes over RabbitMQ: a conductor and two ``vigil compute`` agents.

kill -9 of an agent shows it down after service_down_time (not before); a restart brings the
same row back up; SIGTERM leaves the group at once; a dead conductor makes stale services
``unknown``, never ``down``, and everything recovers by itself when it returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil import launch
from vigil.objects.liveness import State
from vigil.registry import Registry

from .procs import Proc, db_sync, poll

REPORT = 0.5
DOWN = 2.5

pytestmark = pytest.mark.slow


@pytest.fixture
def env(make_conf: Any, rabbit_vhost_url: str, exchange: str, tmp_path: Path) -> Iterator[Any]:
    conf, path = make_conf({
        "DEFAULT": {"report_interval": REPORT, "service_down_time": DOWN, "host": "ctl",
                    "transport_url": rabbit_vhost_url, "control_exchange": exchange,
                    "rpc_response_timeout": 2},
        "database": {"connection": f"sqlite:///{tmp_path}/func.sqlite"},
        "conductor": {"coalesce_interval": 0.1, "probe_interval": 0.05},
    })
    procs: list[Proc] = []

    def start(name: str, *args: str) -> Proc:
        if args[:1] == ("conductor",):
            db_sync(path)  # only `vigil db sync` migrates (idempotent)
        p = Proc(name, ["--config-file", str(path), *args], tmp_path)
        procs.append(p)
        return p

    registry: Registry | None = None

    def states() -> dict[str, tuple[State, int]]:
        nonlocal registry
        if registry is None:
            registry = launch.registry_from(conf)
        try:
            return {v.record.host: (v.state, v.record.id)
                    for v in registry.list(binary="vigil-compute")}
        except Exception:  # schema not created yet by the conductor
            return {}

    yield start, states
    for p in procs:
        p.close()


def test_kill9_down_after_down_time_then_restart(env: Any) -> None:
    start, states = env
    conductor = start("conductor", "conductor")
    c1 = start("c1", "compute", "--host", "c1")
    c2 = start("c2", "compute", "--host", "c2")
    poll(lambda: len(states()) == 2 and all(s is State.UP for s, _ in states().values()),
         30, what="both computes up")
    row_id = states()["c1"][1]

    killed = time.monotonic()  # taken before the kill: elapsed can only be over-estimated
    c1.kill9()
    poll(lambda: states()["c1"][0] is State.DOWN, DOWN + 10, what="c1 down")
    elapsed = time.monotonic() - killed
    # Its last heartbeat was stamped at most one interval (+10% jitter) plus one coalescing
    # tick (0.1 s) before the kill, so down cannot show much earlier than that after it.
    assert elapsed >= DOWN - (REPORT * 1.1 + 0.1) - 0.2, elapsed
    assert states()["c2"][0] is State.UP

    start("c1-again", "compute", "--host", "c1")
    poll(lambda: states()["c1"][0] is State.UP, 20, what="c1 up again")
    assert states()["c1"][1] == row_id  # the same row came back

    assert c2.terminate() == 0
    # The leave is recorded before the process exits: down at once, no expiry to wait for.
    assert states()["c2"][0] is State.DOWN
    assert "left group compute" in c2.log()
    assert conductor.terminate() == 0


def test_conductor_outage_is_unknown_not_down_and_recovers(env: Any) -> None:
    start, states = env
    conductor = start("conductor", "conductor")
    start("c1", "compute", "--host", "c1")
    poll(lambda: states().get("c1", (None,))[0] is State.UP, 30, what="c1 up")

    conductor.kill9()
    # Reports stop arriving; the report path is dead too, so the verdict is unknown.
    poll(lambda: states()["c1"][0] is State.UNKNOWN, DOWN + 10, what="c1 unknown")
    deadline = time.monotonic() + DOWN
    while time.monotonic() < deadline:
        assert states()["c1"][0] is not State.DOWN
        time.sleep(0.1)

    start("conductor-again", "conductor")
    poll(lambda: states()["c1"][0] is State.UP, 30, what="c1 up after the conductor returns")
