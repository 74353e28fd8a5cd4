"""vigil.upstate: the state directory's lock (real flock, held by another process), the
record the CLI trusts only while that lock is held, and the mode a state was made with."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil import upstate
from vigil.errors import ConfigError, Conflict

HOLD = """
import sys, time
from vigil import upstate
upstate.lock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def other(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path/state``'s lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "state")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def run(state: Path, pid: int) -> upstate.UpRun:
    return upstate.UpRun(pid=pid, endpoint="http://127.0.0.1:1", token="t",
                         database="sqlite://", state_path=str(state), mode="fake")


def test_a_held_lock_names_its_pid_and_dies_with_it(
        tmp_path: Path, other: subprocess.Popen[str]) -> None:
    state = tmp_path / "state"
    assert upstate.holder(str(state)) == other.pid
    with pytest.raises(upstate.StateInUse, match=rf"already running on {state} "
                       rf"\(pid {other.pid}\)"):
        upstate.lock(str(state))
    other.kill()
    other.wait(10)
    assert upstate.holder(str(state)) is None  # the kernel dropped it: no stale pid trusted
    held = upstate.lock(str(state))
    assert upstate.holder(str(state)) == os.getpid()
    held.release()
    assert upstate.holder(str(state)) is None


def test_the_record_is_private_and_trusted_only_while_its_writer_holds_the_lock(
        tmp_path: Path, other: subprocess.Popen[str]) -> None:
    state = tmp_path / "state"
    path = Path(upstate.record(run(state, other.pid)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["token"] == "t"
    assert upstate.running(str(state)) == run(state, other.pid)
    upstate.record(run(state, other.pid + 1))  # someone else's record: not this holder's
    assert upstate.running(str(state)) is None
    upstate.record(run(state, other.pid))
    other.kill()
    other.wait(10)
    assert upstate.running(str(state)) is None  # left behind by a kill -9
    upstate.forget(str(state))
    assert not path.exists()
    assert upstate.running(str(tmp_path / "never")) is None


def test_a_state_keeps_its_mode(tmp_path: Path) -> None:
    state = str(tmp_path)
    upstate.check_mode(state, "fake")
    upstate.check_mode(state, "fake")
    with pytest.raises(Conflict, match="holds a vigil up of virtual hosts \\(the fake driver\\);"
                       " this one would run bare-metal hosts"):
        upstate.check_mode(state, "baremetal")
    assert (tmp_path / upstate.MODE_FILE).read_text() == "fake\n"


def test_an_older_state_is_judged_by_what_it_holds(tmp_path: Path) -> None:
    with pytest.raises(Conflict, match="holds a vigil up of bare-metal hosts"):
        upstate.check_mode(str(tmp_path), "fake", lambda: "baremetal")
    assert not (tmp_path / upstate.MODE_FILE).exists()
    upstate.check_mode(str(tmp_path), "process", lambda: "process")
    assert (tmp_path / upstate.MODE_FILE).read_text() == "process\n"
    (tmp_path / "new").mkdir()
    upstate.check_mode(str(tmp_path / "new"), "fake", lambda: None)  # a fresh state
    assert (tmp_path / "new" / upstate.MODE_FILE).read_text() == "fake\n"


def test_an_unusable_state_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=rf"^cannot use the state directory {tmp_path}/file/x: "):
        upstate.lock(str(tmp_path / "file" / "x"))
