"""``vigil server|flavor|hypervisor`` against a real SQLite database, through main()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.compute.helpers import add_host
from vigil import launch
from vigil.cli.main import main


@pytest.fixture
def cli(make_conf: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    conf, path = make_conf({"database": {"connection": f"sqlite:///{tmp_path}/v.sqlite"}})
    engine = launch.engine_from(conf, sync=True)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config-file", str(path), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    run.engine = engine  # type: ignore[attr-defined]
    return run


def test_flavor_commands(cli: Any) -> None:
    code, out, _ = cli("flavor", "create", "c1.big", "--vcpus", "3", "--ram", "3000",
                       "--disk", "30", "--id", "big")
    assert code == 0 and "c1.big" in out
    code, out, _ = cli("flavor", "list", "--format", "json")
    assert {"id": "big", "name": "c1.big", "vcpus": 3, "ram": 3000, "disk": 30}.items() <= (
        next(f for f in json.loads(out) if f["id"] == "big").items())
    assert cli("flavor", "create", "c1.big", "--vcpus", "1", "--ram", "1")[0] == 1  # Conflict
    code, _, err = cli("flavor", "create", "bad", "--vcpus", "0", "--ram", "1")
    assert code == 2 and "vcpus must be" in err
    assert cli("flavor", "delete", "big")[0] == 0
    assert cli("flavor", "show", "big")[0] == 1


def test_server_commands_without_a_scheduler(cli: Any) -> None:
    add_host(cli.engine, "h1", state="unknown")
    code, out, _ = cli("server", "create", "--flavor", "m1.tiny", "--name", "vm1",
                       "--format", "json")
    assert code == 0
    server = json.loads(out)
    assert server["status"] == "BUILD" and server["OS-EXT-STS:task_state"] == "scheduling"
    code, out, _ = cli("server", "list")
    assert code == 0 and "vm1" in out and "BUILD" in out and "scheduling" in out
    assert cli("server", "show", "vm1")[0] == 0
    code, _, err = cli("server", "evacuate", "vm1")
    assert code == 1 and "never placed" in err
    code, _, err = cli("server", "create", "--flavor", "nope", "--name", "x")
    assert code == 2 and "Flavor nope could not be found." in err
    code, out, _ = cli("server", "delete", server["id"], "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "DELETED"
    code, out, _ = cli("hypervisor", "list", "--long")
    assert code == 0 and "unknown" in out and "h1" in out
    code, out, _ = cli("hypervisor", "show", "h1", "--format", "json")
    assert code == 0 and json.loads(out)["state"] == "unknown"
    shown = json.loads(out)
    code, out, _ = cli("hypervisor", "stats", "--format", "json")
    stats = json.loads(out)
    assert code == 0 and stats["count"] >= 1 and stats["vcpus"] >= shown["vcpus"]
