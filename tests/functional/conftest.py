"""Fixtures of the functional tests (real processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.hacluster import HaCluster


@pytest.fixture
def ha_cluster(tmp_path: Path) -> Iterator[HaCluster]:
    """An HA cluster harness of this test alone: its daemons' logs are shown on failure, and
    every daemon it started is killed (process group) at the end."""
    logs = tmp_path / "logs"
    logs.mkdir()
    c = HaCluster(tmp_path, logs)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.close()
