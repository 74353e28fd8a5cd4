"""A supervised service, as the supervisor sees it: something it can start, ask to stop, and
check (is it alive? are its own state reports getting out?).

The report check is local and cheap: a service run under a supervisor touches a file after
every state report that got through (:data:`vigil.service.REPORT_FILE_ENV`), and the
supervisor watches the file change. The supervisor never reads the database (an agent-side
process: it speaks to the conductor only, like every agent).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

from vigil.compute.virt.process import proc_start_time
from vigil.service import REPORT_FILE_ENV

LOG = logging.getLogger(__name__)


class Unit(Protocol):
    """One service under supervision. Calls come from the supervisor's one loop thread."""

    name: str

    def start(self) -> None:
        """Start it (it is not running). Raises OSError if it cannot be started."""

    def adopt(self) -> bool:
        """Take over a copy a previous supervisor of this host started and left running (it
        was killed alone); True if there is one. Starting a second would run two agents for
        one host."""

    def alive(self) -> bool:
        """Whether the started service still runs (reaps it if it exited)."""

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM for a process). Never kills: see ``stop_timeout``."""

    def report_mark(self) -> int | None:
        """A value that changes every time the service's own report got out (None before
        the first)."""

    def pid(self) -> int | None:
        """Its process id while it runs, for logs and tests."""


class ChildProcess:
    """A ``vigil <command>`` child in the supervisor's own process group.

    The same group on purpose: the group is the host (:mod:`vigil.ha.hostproc`). A fence of the
    host kills the supervisor, its services and their process-driver instances together, and a
    kill -9 of the agent alone leaves its instances running (they are its children, not its
    group's leader).

    Its pid and the kernel's start time are recorded beside the report file, so a supervisor
    started again finds (adopts) the child its predecessor left; the start time guards
    against a recycled pid.
    """

    def __init__(self, name: str, argv: Sequence[str], report_file: str,
                 config_args: Sequence[str] = ()) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "vigil.cli.main", *config_args, *argv]
        self.report_file = report_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted: tuple[int, str] | None = None  # (pid, start time), not our child
        self.pid_file = os.path.splitext(report_file)[0] + ".pid"

    def start(self) -> None:
        os.makedirs(os.path.dirname(self.report_file), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.report_file)  # a mark of the previous run is no proof of this one
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, close_fds=True,
                                      env={**os.environ, REPORT_FILE_ENV: self.report_file})
        self._adopted = None
        tmp = f"{self.pid_file}.tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": self._proc.pid, "start_time": proc_start_time(self._proc.pid)}, f)
        os.replace(tmp, self.pid_file)
        LOG.info("started %s (pid %d): %s", self.name, self._proc.pid, " ".join(self.argv[3:]))

    def adopt(self) -> bool:
        try:
            with open(self.pid_file) as f:
                data = json.load(f)
            pid, start = int(data["pid"]), str(data["start_time"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if proc_start_time(pid) != start:
            return False
        self._adopted = (pid, start)
        LOG.warning("adopted %s (pid %d), left running by a previous supervisor", self.name,
                    pid)
        return True

    def alive(self) -> bool:
        if self._adopted is not None:
            return proc_start_time(self._adopted[0]) == self._adopted[1]
        return self._proc is not None and self._proc.poll() is None

    def terminate(self) -> None:
        if self._adopted is not None:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._adopted[0], signal.SIGTERM)
            return
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)

    def report_mark(self) -> int | None:
        try:
            return os.stat(self.report_file).st_mtime_ns
        except OSError:
            return None

    def pid(self) -> int | None:
        if not self.alive():
            return None
        if self._adopted is not None:
            return self._adopted[0]
        return self._proc.pid if self._proc is not None else None
