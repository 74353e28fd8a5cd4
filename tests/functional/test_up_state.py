"""``vigil up`` owns its state directory: it records its API for the CLI, which uses it by
default (``--direct`` for the database, ``--debug`` and ``vigil status`` say which), a second
``vigil up`` on the same state stops at once naming the pid, and switching the kind of
simulated hosts on one state is refused. Every command runs as a real process, as an operator
in another terminal would run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import vigil
from tests.api.conftest import make_conf
from tests.api.test_real_clients import START_TIMEOUT, free_port
from tests.api.test_up import Lines
from tests.tools.wait import wait_for

pytestmark = pytest.mark.slow

DEMO: dict[str, dict[str, Any]] = {
    "DEFAULT": {"report_interval": "0.5", "service_down_time": "2.5"},
    "conductor": {"coalesce_interval": "0.1", "probe_interval": "0.2"},
}
# The subprocesses import this checkout's vigil, whatever the venv's console script points at.
ENV = {**os.environ, "PYTHONPATH": str(Path(vigil.__file__).resolve().parents[1])}
for _name in ("OS_ENDPOINT", "OS_TOKEN", "OS_CLOUD", "OS_AUTH_URL"):
    ENV.pop(_name, None)


@dataclass
class Up:
    proc: subprocess.Popen[str]
    conf: Path
    state: Path
    url: str
    token: str
    lines: Lines


def vigil(conf: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf),
                           *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def conf_file(tmp_path: Path, sections: dict[str, dict[str, str]] | None = None) -> Path:
    conf = {k: dict(v) for k, v in DEMO.items()}
    conf.update(sections or {})
    conf["DEFAULT"]["metadata_listen_port"] = str(free_port())
    conf["serial_console"] = {"serialproxy_port": str(free_port())}
    conf["api"] = {"port": str(free_port())}
    return make_conf(tmp_path, conf)[1]


@contextlib.contextmanager
def vigil_up(tmp_path: Path, conf: Path, *args: str) -> Iterator[Up]:
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf),
                             "up", *args], stdout=subprocess.PIPE,
                            stderr=(tmp_path / "up.stderr").open("w"), text=True, env=ENV,
                            start_new_session=True)
    lines = Lines(proc)
    try:
        url = lines.wait_for(r"Vigil API: (\S+)", START_TIMEOUT).group(1)
        token = lines.wait_for(r"Admin token \(in \S+\): (\S+)", 30).group(1)
        lines.wait_for(r"Recorded for the CLI: ", 30)
        yield Up(proc, conf, tmp_path / "state", url, token, lines)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def rows(state: Path) -> list[tuple[Any, ...]]:
    """The services' and nodes' identities: what a second vigil up must not add or revive."""
    engine = sa.create_engine(f"sqlite:///{state / 'vigil.sqlite'}")
    try:
        with engine.connect() as conn:
            services = conn.execute(sa.text(
                "SELECT id, host, binary, created_at, left_at FROM services ORDER BY id")).all()
            nodes = conn.execute(sa.text("SELECT uuid FROM baremetal_nodes ORDER BY uuid")).all()
        return [tuple(r) for r in services + nodes]
    finally:
        engine.dispose()


def status(conf: Path) -> dict[str, Any]:
    done = vigil(conf, "status", "--format", "json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_the_cli_uses_the_running_up_and_a_second_up_is_refused(tmp_path: Path) -> None:
    conf = conf_file(tmp_path)
    with vigil_up(tmp_path, conf, "--computes", "1") as up:
        record = up.state / "vigil-up.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        saved = json.loads(record.read_text())
        assert (saved["pid"], saved["endpoint"], saved["token"]) == (
            up.proc.pid, up.url, up.token)
        assert saved["mode"] == "fake"

        # The CLI goes through that API; --debug says so, --direct goes to the database.
        shown = wait_for(lambda: (s := status(conf))["services"].get("vigil-compute") == {
            "up": 1} and s, 60, "compute-1 up, seen through vigil status")
        assert shown["target"] == "api" and shown["endpoint"] == up.url
        assert shown["vigil_up"]["running"] and shown["vigil_up"]["pid"] == up.proc.pid
        via_api = vigil(conf, "service", "list", "--debug", "-f", "value", "-c", "Host",
                        "--binary", "vigil-compute")
        assert via_api.returncode == 0 and via_api.stdout.split() == ["compute-1"]
        assert via_api.stderr == (f"vigil: using the API at {up.url} (vigil up, pid "
                                  f"{up.proc.pid}, recorded in {up.state})\n")
        direct = vigil(conf, "service", "list", "--direct", "--debug", "-f", "value", "-c",
                       "Host", "--binary", "vigil-compute")
        assert direct.returncode == 0 and direct.stdout.split() == ["compute-1"]
        assert direct.stderr.startswith("vigil: using the database sqlite:///")
        assert direct.stderr.endswith(" directly (--direct)\n")

        # recovery, host, node and ring through the API too.
        for args in (["node", "create", "--name", "bm-x", "--cpus", "2", "--memory-mb", "512",
                      "--local-gb", "1"], ["node", "list"], ["ring", "show", "--node", "bm-x"],
                     ["host", "list"], ["host", "show", "compute-1"], ["recovery", "list"]):
            done = vigil(conf, *args, "--debug")
            assert done.returncode == 0, (args, done.stderr)
            assert done.stderr.startswith(f"vigil: using the API at {up.url} "), args
        # vigil up's simulated hosts through its API; an unknown host is one line, exit 2.
        kill = vigil(conf, "host", "kill-agent", "compute-1", "--debug")
        assert kill.returncode == 0 and kill.stdout.startswith("compute-1: compute agent killed")
        assert kill.stderr.startswith(f"vigil: using the API at {up.url} ")
        nowhere = vigil(conf, "host", "crash", "nowhere")
        assert (nowhere.returncode, nowhere.stderr) == (
            2, "vigil: error: no compute service on host 'nowhere'\n")
        # The API records its caller, the token's user, as the actor.
        maint = vigil(conf, "host", "maintenance", "compute-1", "--on", "--reason", "test",
                      "--format", "json")
        assert json.loads(maint.stdout)["maintenance_by"] == "admin (project admin)"

        # A second vigil up on the same state: one line naming the pid, nothing touched.
        before = rows(up.state)
        for args in (["--computes", "3"], ["--baremetal-nodes", "2"]):
            started = time.monotonic()
            second = vigil(conf, "up", *args, timeout=30)
            assert second.returncode == 1 and second.stdout == ""
            assert second.stderr == (f"vigil: error: vigil up is already running on "
                                     f"{up.state} (pid {up.proc.pid}); stop it first, or "
                                     "give this one another --state-path\n")
            assert time.monotonic() - started < 20
        assert rows(up.state) == before
        assert up.proc.poll() is None

        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(60) == 0
    assert not record.exists()
    shown = status(conf)
    assert shown["target"] == "database" and not shown["vigil_up"]["running"]

    # The state holds virtual hosts: bare-metal ones over it are refused, nothing changed.
    before = rows(tmp_path / "state")
    switch = vigil(conf, "up", "--baremetal-nodes", "2", timeout=30)
    assert switch.returncode == 1 and switch.stdout == ""
    assert len(switch.stderr.splitlines()) == 1
    assert "holds a vigil up of virtual hosts (the fake driver)" in switch.stderr
    assert rows(tmp_path / "state") == before
    # A state from before vigil-up.mode: judged by its hosts' hypervisor type.
    (tmp_path / "state" / "vigil-up.mode").unlink()
    legacy = vigil(conf, "up", "--baremetal-nodes", "2", timeout=30)
    assert legacy.returncode == 1 and legacy.stderr == switch.stderr
    assert rows(tmp_path / "state") == before


def test_a_killed_up_leaves_nothing_the_cli_trusts(tmp_path: Path) -> None:
    """kill -9: its record stays behind, but the kernel dropped its lock, so the CLI goes to
    the database and a new vigil up starts on the same state."""
    conf = conf_file(tmp_path)
    with vigil_up(tmp_path, conf, "--computes", "1") as up:
        os.killpg(up.proc.pid, signal.SIGKILL)
        up.proc.wait(30)
        assert (up.state / "vigil-up.json").exists()
        shown = status(conf)
        assert shown["target"] == "database" and not shown["vigil_up"]["running"]
        debug = vigil(conf, "service", "list", "--debug", "-f", "value", "-c", "Host")
        assert debug.returncode == 0
        assert debug.stderr.endswith(f"(no API configured and no vigil up running on "
                                     f"{up.state})\n")
    with vigil_up(tmp_path, conf, "--computes", "1") as again:
        assert status(conf)["vigil_up"]["pid"] == again.proc.pid


def test_state_path_moves_everything_under_it(tmp_path: Path) -> None:
    """``vigil --state-path DIR``: another demo's state (the refusal above points there), with
    its database, and the CLI looking for a vigil up there."""
    conf = conf_file(tmp_path)
    other = tmp_path / "bm"
    done = vigil(conf, "--state-path", str(other), "status", "--format", "json")
    assert done.returncode == 1, done.stderr  # nothing ran there: no services to read
    shown = json.loads(done.stdout)
    assert "vigil db sync" in shown["error"]
    assert shown["state_path"] == str(other)
    assert shown["database"] == f"sqlite:///{other}/vigil.sqlite"
    assert shown["why"] == f"no API configured and no vigil up running on {other}"
