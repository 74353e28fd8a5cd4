"""[supervisor] services and requires: refused at start-up with one line when they cannot run,
and ``vigil supervisor`` exits non-zero with that line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from vigil.conf.supervisor import find_cycle, parse_requires
from vigil.errors import ConfigError


def test_a_valid_graph() -> None:
    assert parse_requires(["conductor", "compute"], {"compute": "conductor"}) == {
        "conductor": (), "compute": ("conductor",)}
    assert parse_requires(["compute", "scheduler", "conductor"],
                          {"compute": "conductor+scheduler"})["compute"] == (
        "conductor", "scheduler")


@pytest.mark.parametrize(("services", "requires", "message"), [
    (["compute", "nova-network"], {}, "unknown service 'nova-network'"),
    (["compute", "compute"], {}, "listed twice"),
    (["compute"], {"scheduler": "compute"}, "'scheduler' is not in [supervisor] services"),
    (["compute"], {"compute": "conductor"}, "needs 'conductor'"),
    (["compute", "conductor"], {"compute": "conductor", "conductor": "compute"},
     "dependency cycle compute -> conductor -> compute"),
    (["compute"], {"compute": "compute"}, "dependency cycle compute -> compute"),
])
def test_refused_with_one_line(services: list[str], requires: dict[str, str],
                               message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_requires(services, requires)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_find_cycle() -> None:
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ()}) == []
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) == ["a", "b", "c", "a"]


def test_vigil_supervisor_refuses_a_cycle_at_start(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "vigil.conf", {
        "DEFAULT": {"state_path": str(tmp_path / "state")},
        "supervisor": {"services": "compute,conductor",
                       "requires": "compute:conductor,conductor:compute"}})
    out = subprocess.run([sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf),
                          "supervisor", "--host", "h1"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "dependency cycle" in lines[0], out.stderr
