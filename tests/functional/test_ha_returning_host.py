"""Exactly once when a fenced host comes back: its agent restarted at every point of the
recovery, real processes (PostgreSQL, RabbitMQ, two monitors), heartbeat files as the judge.
The scenario and its judge are in tests/functional/returning.py (shared with
bench/returning_host.py, which repeats it for the figures in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from tests.conftest import reset_schema
from tests.functional import returning
from tests.functional.hacluster import HaCluster
from vigil.db.engine import make_engine

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", returning.RESTART_POINTS)
def test_a_fenced_host_that_comes_back_never_runs_an_instance_twice(
        ha_cluster: HaCluster, rabbit_vhost_url: str, exchange: str, pg_url: str,
        point: str) -> None:
    engine = make_engine(pg_url)
    reset_schema(engine)
    engine.dispose()
    returning.configure(ha_cluster, db_url=pg_url, rabbit_url=rabbit_vhost_url,
                        exchange=exchange, point=point)
    out = returning.run(ha_cluster, point=point)
    assert out.ok, out


def test_the_judge_sees_a_second_writer() -> None:
    """The judge itself: overlapping copies are found, a clean hand-over is not."""
    handover = [(1.0, "h1", 10), (1.2, "h1", 10), (2.0, "h2", 20), (2.2, "h2", 20)]
    assert returning.double_writers(handover) == []
    doubled = [(1.0, "h1", 10), (1.4, "h1", 10), (1.2, "h2", 20), (1.6, "h2", 20)]
    assert len(returning.double_writers(doubled)) == 1
    restarted = [(1.0, "h1", 10), (1.2, "h1", 11), (1.4, "h1", 10)]  # two pids on one host
    assert len(returning.double_writers(restarted)) == 1
