"""vigil.objects.capacity: the scheduler's in-memory answer and the claim's SQL are built from
one table, so they must agree on every node, usage, ratio and request (a real SQLite)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from vigil.db.compute import nodes as nodes_db
from vigil.objects import capacity
from vigil.objects.compute import Inventory

_n = itertools.count()
small = st.integers(min_value=0, max_value=6)
ratios = st.sampled_from([0.0, 0.5, 1.0, 1.5, 16.0])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(totals=st.tuples(small, small, small), ratio=st.tuples(ratios, ratios, ratios),
       first=st.tuples(small, small, small), second=st.tuples(small, small, small))
def test_python_and_sql_agree(sqlite_engine: Engine, totals: tuple[int, int, int],
                              ratio: tuple[float, float, float], first: tuple[int, int, int],
                              second: tuple[int, int, int]) -> None:
    name = f"n{next(_n)}"
    node = nodes_db.compute_node_update(sqlite_engine, name, Inventory(
        name, "fake", 1, *totals, *ratio))
    for asked in (first, second):  # the second sees the first's usage, if it landed
        expect = capacity.fits(node, vcpus=asked[0], memory_mb=asked[1], root_gb=asked[2])
        with sqlite_engine.begin() as conn:
            landed = nodes_db.add_usage(conn, node.id, *asked, sign=+1, check=True)
        assert landed == expect, (node, asked)
        node = nodes_db.compute_node_get(sqlite_engine, node.id)


def test_each_resource_is_nova_rule() -> None:
    assert [r.request for r in capacity.RESOURCES] == ["vcpus", "memory_mb", "root_gb"]
    assert [(r.used, r.total, r.ratio) for r in capacity.RESOURCES] == [
        ("vcpus_used", "vcpus", "cpu_allocation_ratio"),
        ("memory_mb_used", "memory_mb", "ram_allocation_ratio"),
        ("local_gb_used", "local_gb", "disk_allocation_ratio")]
