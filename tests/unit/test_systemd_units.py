"""The shipped systemd units (etc/systemd): one per daemon and a target grouping them, each
starting a real ``vigil`` subcommand, and accepted by ``systemd-analyze verify`` (run where the
tool exists: CI's Debian has it)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.cli.main import DAEMON_COMMANDS, build_parser

UNITS = Path(__file__).resolve().parents[2] / "etc" / "systemd"
INSTALLED = "/usr/bin/vigil"


def services() -> dict[str, str]:
    return {p.stem.removeprefix("vigil-"): p.read_text() for p in UNITS.glob("vigil-*.service")}


def exec_start(text: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_every_daemon_has_a_unit_in_the_target() -> None:
    assert set(services()) == DAEMON_COMMANDS - {"up"}
    for name, text in services().items():
        assert "WantedBy=vigil.target" in text and "PartOf=vigil.target" in text, name
    assert (UNITS / "vigil.target").exists()


def test_each_unit_runs_its_vigil_subcommand() -> None:
    parser = build_parser()
    for name, text in services().items():
        argv = exec_start(text)
        assert argv[0] == INSTALLED
        args = parser.parse_args(argv[1:])  # exits (fails the test) on an unknown command
        assert args.cmd == name
        assert args.config_file == ["/etc/vigil/vigil.conf"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    # The units name the packaged path; verify them against this environment's vigil, since
    # systemd-analyze checks that ExecStart's program exists.
    vigil = Path(sys.executable).parent / "vigil"
    assert vigil.exists(), vigil
    for unit in [*UNITS.glob("*.service"), UNITS / "vigil.target"]:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(vigil)))
    result = subprocess.run([tool, "verify", "--man=no",
                             *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and not output.strip(), output
