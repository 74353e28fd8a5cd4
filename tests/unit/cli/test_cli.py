"""The vigil command in-process: output formats, changes, and bad input that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vigil.cli.main import main
from vigil.db import migration
from vigil.db import services as services_db
from vigil.db.engine import make_engine

from ...conftest import write_config


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    cfg = write_config(tmp_path / "vigil.conf", {
        "DEFAULT": {"state_path": str(tmp_path), "report_interval": 1, "service_down_time": 5},
        "database": {"connection": url},
    })
    engine = make_engine(url)
    migration.sync(engine)
    for host in ("h1", "h2"):
        services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
    services_db.service_get_or_create(engine, "ctl", "vigil-conductor", "conductor")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config-file", str(cfg), *args])
        out, err = capsys.readouterr()
        return code, out, err

    run.engine = engine  # type: ignore[attr-defined]
    return run


def rows(engine: Any) -> list[dict[str, Any]]:
    return [r.to_primitive() for r in services_db.snapshot(engine).services]


def test_list_table_has_the_openstack_columns(cli: Any) -> None:
    code, out, _ = cli("service", "list")
    assert code == 0
    header = out.splitlines()[1]
    for col in ("ID", "Binary", "Host", "Zone", "Status", "State", "Updated At",
                "Disabled Reason", "Forced Down"):
        assert col in header
    assert out.count("vigil-compute") == 2 and "internal" in out and "nova" in out


def test_list_json_keys_and_filters(cli: Any) -> None:
    code, out, _ = cli("service", "list", "--format", "json", "--host", "h1")
    assert code == 0
    data = json.loads(out)
    assert [d["host"] for d in data] == ["h1"]
    assert set(data[0]) == {"id", "uuid", "binary", "host", "zone", "status", "state",
                            "state_reason", "updated_at", "disabled_reason", "forced_down",
                            "quarantined", "maintenance", "host_liveness"}
    # Registered a moment ago (created_at counts as the first sign of life).
    assert data[0]["state"] == "up"
    code, out, _ = cli("service", "list", "--format", "json", "--binary", "vigil-conductor")
    assert [d["host"] for d in json.loads(out)] == ["ctl"]


def test_set_disable_force_down_and_back(cli: Any) -> None:
    code, out, _ = cli("service", "set", "h1", "vigil-compute", "--disable", "--reason",
                       "maintenance", "--down", "--format", "json")
    assert code == 0
    (d,) = json.loads(out)
    assert d["status"] == "disabled" and d["disabled_reason"] == "maintenance"
    assert d["forced_down"] is True and d["state"] == "down"
    code, out, _ = cli("service", "set", "h1", "vigil-compute", "--enable", "--up",
                       "--format", "json")
    (d,) = json.loads(out)
    assert d["status"] == "enabled" and d["disabled_reason"] is None and not d["forced_down"]


def test_delete_by_id_and_uuid(cli: Any) -> None:
    before = rows(cli.engine)
    code, out, _ = cli("service", "delete", str(before[0]["id"]))
    assert code == 0 and "deleted service" in out
    code, _, _ = cli("service", "delete", before[1]["uuid"])
    assert code == 0
    assert [r["host"] for r in rows(cli.engine)] == ["ctl"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("service", "set", "nohost", "vigil-compute", "--disable"), 1, "no service"),
        (("service", "set", "h1", "vigil-compute", "--enable", "--reason", "x"), 2,
         "--reason is only allowed with --disable"),
        (("service", "set", "h1", "vigil-compute", "--enable", "--disable"), 2,
         "not allowed with argument"),
        (("service", "set", "h1", "vigil-compute", "--down", "--up"), 2, "not allowed"),
        (("service", "set", "h1", "vigil-compute"), 2, "nothing to change"),
        (("service", "set", "h1", "vigil-compute", "--disable", "--reason", "x" * 300), 2,
         "1 to 255 characters"),
        (("service", "delete", "424242"), 1, "not found"),
        (("service", "delete", "not-an-id"), 2, "neither a service id nor a UUID"),
        (("service", "delete", "6f1c2c47-3a0e-4b43-9a4d-1b7a3c6b2e10"), 1, "not found"),
        (("service", "list", "--format", "xml"), 2, "invalid choice"),
    ],
)
def test_bad_input_one_line_nonzero_and_nothing_changed(
    cli: Any, args: tuple[str, ...], code: int, message: str
) -> None:
    before = rows(cli.engine)
    try:
        got, _out, err = cli(*args)
    except SystemExit as exc:  # argparse usage errors exit from the parser
        got, err = exc.code, ""

    assert got == code
    if err:
        assert len(err.strip().splitlines()) == 1, err
        assert message in err
    assert rows(cli.engine) == before


def test_refuses_down_time_not_above_report_interval(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "bad.conf", {
        "DEFAULT": {"report_interval": 10, "service_down_time": 10, "state_path": str(tmp_path)}
    })
    assert main(["--config-file", str(cfg), "service", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vigil: error: service_down_time (10) must be greater than "
                          "report_interval (10)")
    assert len(err.splitlines()) == 1


def test_refuses_down_time_too_short_to_prove_a_death(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2.2 x 10 + 2 x 0.5 + (1 + 0.5) = 24.5 s at least; 20 s leaves the report path no room.
    cfg = write_config(tmp_path / "bad.conf", {
        "DEFAULT": {"report_interval": 10, "service_down_time": 20, "state_path": str(tmp_path)}
    })
    assert main(["--config-file", str(cfg), "service", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vigil: error: service_down_time (20) is too short: it must be at "
                          "least 2.2 x report_interval"), err
    assert "= 24.5 s" in err and len(err.splitlines()) == 1
    ok = write_config(tmp_path / "ok.conf", {
        "DEFAULT": {"report_interval": 10, "service_down_time": 24.5, "state_path": str(tmp_path)}
    })
    assert main(["--config-file", str(ok), "db", "sync"]) == 0


def test_sample_config_is_a_valid_config(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "sample"]) == 0
    sample = capsys.readouterr().out
    assert "#service_down_time = 60.0" in sample and "[database]" in sample
    path = tmp_path / "sample.conf"
    path.write_text(sample.replace("#state_path = ~/.local/state/vigil",
                                   f"state_path = {tmp_path}"))
    assert main(["--config-file", str(path), "db", "sync"]) == 0
    assert "database schema at" in capsys.readouterr().out


def test_unsynced_database_says_what_to_do(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "v.conf", {"DEFAULT": {"state_path": str(tmp_path)}})
    assert main(["--config-file", str(cfg), "service", "list"]) == 1
    assert "run 'vigil db sync'" in capsys.readouterr().err


def test_a_closed_pipe_is_a_quiet_exit(tmp_path: Path) -> None:
    """``vigil service list | head -1``: no traceback when the reader leaves early (the list
    is far larger than a pipe's buffer, so the writer does meet the closed pipe)."""
    import datetime as dt
    import subprocess
    import sys
    import uuid

    from sqlalchemy import insert

    from vigil.db.models import Service

    url = f"sqlite:///{tmp_path}/many.sqlite"
    conf = write_config(tmp_path / "many.conf", {
        "DEFAULT": {"state_path": str(tmp_path)}, "database": {"connection": url}})
    engine = make_engine(url)
    migration.sync(engine)
    with engine.begin() as conn:
        conn.execute(insert(Service), [
            {"uuid": str(uuid.uuid4()), "host": f"host-{i:05d}", "binary": "vigil-compute",
             "topic": "compute", "report_count": 0, "disabled": False, "forced_down": False,
             "version": 1, "created_at": dt.datetime(2026, 1, 1), "deleted": 0}
            for i in range(3000)])
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf),
                             "service", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err
