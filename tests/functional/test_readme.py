"""The README's "Using it" commands work as written, in order, against a real ``vigil up``.

Every shell line of that section's code blocks runs in bash, as an operator would paste it,
with three substitutions only: ``vigil`` is this checkout's CLI on a configuration with free
ports and a temporary state directory (what ``vigil up`` in the README gets by default), the
README's ``http://127.0.0.1:8774`` is that ``vigil up``'s API, and ``<token>`` the admin token
it printed. Skipped, and said why: starting ``vigil up`` (the test started it), installing
packages, and a Keystone login (no Keystone here; tests/api covers it with a fake one).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.functional.test_up_state import ENV, conf_file, vigil_up
from tests.tools.wait import wait_for

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP = (re.compile(r"^vigil( --state-path \S+)? up\b"), re.compile(r"pip install"),
        re.compile(r"--os-cloud"))
# Lines that wait for something the previous lines set going (the failover): polled.
EVENTUAL = re.compile(r"^vigil recovery show ")


def commands(section: str = "## Using it") -> list[str]:
    """The shell commands of the section's ``sh`` blocks, continuation lines joined."""
    text = README.read_text()
    start = text.index(section)
    end = re.compile(r"\n##+ ").search(text, start + len(section))
    assert end is not None
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text[start:end.start()], flags=re.S):
        pending = ""
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1]
                continue
            out.append(pending + line)
            pending = ""
    return out


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    import sys

    conf = conf_file(tmp_path, {"ha": {"detection_grace": "0.5", "poll_interval": "0.2"}})
    bin_dir = Path(sys.executable).parent
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "vigil").write_text(f'#!/bin/sh\nexec {sys.executable} -m vigil.cli.main '
                                f'--config-file {conf} "$@"\n')
    (shim / "vigil").chmod(0o755)
    env = {k: v for k, v in ENV.items() if not k.startswith("OS_")}
    env["PATH"] = f"{shim}:{bin_dir}:{env['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    lines = commands()
    assert any(line.startswith("openstack ") for line in lines)
    ran = 0
    with vigil_up(tmp_path, conf, "--computes", "3") as up:
        wait_for(lambda: subprocess.run(
            ["vigil", "service", "list", "-f", "value", "-c", "State", "--binary",
             "vigil-compute"], env=env, capture_output=True, text=True).stdout.split()
            == ["up"] * 3, 60, "three computes up")
        for line in lines:
            if any(p.search(line) for p in SKIP):
                continue
            cmd = line.replace("http://127.0.0.1:8774", up.url).replace("<token>", up.token)

            def run(cmd: str = cmd) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], cwd=work,
                                      env=env, capture_output=True, text=True, timeout=300)

            if EVENTUAL.search(line):
                done = wait_for(lambda: (d := run()).returncode == 0 and d, 120,
                                f"README line {line!r}")
            else:
                done = run()
            assert done.returncode == 0, f"README line {line!r}:\n{done.stdout}{done.stderr}"
            ran += 1
    assert ran >= 30, ran
