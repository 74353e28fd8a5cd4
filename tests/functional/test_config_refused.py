"""Every ``vigil`` command refuses a misspelled option or a badly typed value before it starts
anything: exit status 2, one line on stderr naming the file, section and option (and the closest
valid name), no traceback, and nothing created (no database file, no listener)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .procs import VIGIL

pytestmark = pytest.mark.slow

COMMANDS = [
    ["conductor"], ["compute", "--host", "h1"], ["scheduler"], ["api"], ["monitor"],
    ["up", "--computes", "0"], ["service", "list"], ["db", "sync"], ["server", "list"],
]

BAD = {
    # One letter missing: silently ignored before, the command used a local SQLite file.
    "typo": ("[database]\nconection = postgresql://vigil@127.0.0.1/vigil\n",
             "[database] conection: unknown option (did you mean 'connection'?)"),
    # A float for an integer option: started three daemons and crashed two at first use.
    "float": ("[DEFAULT]\nrpc_response_timeout = 3.0\n",
              "[DEFAULT] rpc_response_timeout = '3.0': not a valid integer"),
}


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_command_refuses_bad_config(tmp_path: Path, command: list[str], case: str) -> None:
    text, expected = BAD[case]
    state = tmp_path / "state"
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {state}\n{text}")
    result = run(["--config-file", str(conf), *command])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vigil: error: {conf}: {expected}"), (
        result.stderr)
    assert "Traceback" not in result.stderr
    assert not state.exists(), "the command created state before refusing its configuration"
