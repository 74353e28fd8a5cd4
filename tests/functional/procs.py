"""Helpers to run real ``vigil`` processes, each in its own process group (a "host")."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.tools import wait

T = TypeVar("T")

VIGIL = [sys.executable, "-m", "vigil.cli.main"]


class Proc:
    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [*VIGIL, *args], stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 of the "host"
        )

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self._log.close()


def db_sync(config: Path, timeout: float = 120) -> None:
    """``vigil db sync``: the daemons refuse a schema behind theirs, and only this migrates."""
    result = subprocess.run([*VIGIL, "--config-file", str(config), "db", "sync"],
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr


def poll(fn: Callable[[], T | None], timeout: float, interval: float = 0.05,
         what: str = "condition") -> T:
    """:func:`tests.tools.wait.wait_for` with the description last."""
    return wait.wait_for(fn, timeout, what, interval=interval)


def wait_for(pred: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """:func:`tests.tools.wait.wait_for` at the functional tests' pace (their predicates
    read databases and files of real processes)."""
    return wait.wait_for(pred, timeout, what, interval=interval)


def heartbeats(instances_path: Path, uuid: str, since: float) -> list[tuple[float, str, int]]:
    """Lines of an instance's heartbeat file written after ``since`` (unix time).

    Instances of the ``process`` virt driver append "<unix time> <host> <pid>" to
    ``<instances_path>/<uuid>/heartbeat``: which host's process really writes.
    """
    path = instances_path / uuid / "heartbeat"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and float(parts[0]) > since:
            out.append((float(parts[0]), parts[1], int(parts[2])))
    return out


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie or a dead one is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
