"""The ``command`` fence agent: an operator's script powers the host off.

``[ha] fence_command`` runs with ``{host}`` substituted (or the host appended as the last
argument); exit 0 means fenced. The optional ``fence_status_command`` tells the power state:
exit 0 = off, 1 = on, anything else = cannot tell.

The command runs in a session of its own so that a timeout or a lost leadership can kill its
whole process tree at once. A command still running when the monitor process itself dies is
not killed (nobody is left to): it may complete, and a new leader resolves that attempt with
the status command, or, without one, issues the fence again (a power-off is idempotent).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from vigil.errors import ConfigError
from vigil.ha.fence.base import FenceAgent, FenceFailed, PowerState

OUTPUT_LIMIT = 2000


def build_argv(template: str, host: str) -> list[str]:
    """The command line for ``host``: ``{host}`` substituted in each word, else appended."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"[ha] fence command {template!r} does not parse: {exc}") from exc
    if not words:
        raise ConfigError("[ha] fence command is empty")
    if any("{host}" in w for w in words):
        return [w.replace("{host}", host) for w in words]
    return [*words, host]


class CommandFence(FenceAgent):
    name = "command"

    def __init__(self, command: str, status_command: str = "") -> None:
        build_argv(command, "check")  # refuse a bad template at start-up, not at the first fence
        if status_command:
            build_argv(status_command, "check")
        self.command = command
        self.status_command = status_command

    @classmethod
    def from_conf(cls, conf: Any) -> CommandFence:
        return cls(conf.ha.fence_command, conf.ha.fence_status_command)

    def _run(self, argv: list[str], timeout: float,
             cancel: threading.Event | None) -> tuple[int, str]:
        # Output to a file, not a pipe: a chatty script must not block on a full pipe.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise FenceFailed(f"cannot run {argv[0]}: {exc}") from exc
            deadline = time.monotonic() + timeout
            try:
                while proc.poll() is None:
                    if cancel is not None and cancel.is_set():
                        raise FenceFailed(f"{argv[0]} cancelled: leadership lost")
                    if time.monotonic() > deadline:
                        raise FenceFailed(f"{argv[0]} did not finish within {timeout:g} s")
                    time.sleep(0.02)
            except FenceFailed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
        return proc.returncode, text[-OUTPUT_LIMIT:]

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        argv = build_argv(self.command, host)
        code, out = self._run(argv, timeout, cancel)
        if code != 0:
            raise FenceFailed(f"{shlex.join(argv)} exited with status {code}: {out}")
        return f"{shlex.join(argv)} exited 0" + (f": {out}" if out else "")

    def status(self, host: str, *, timeout: float) -> PowerState:
        if not self.status_command:
            return PowerState.UNKNOWN
        try:
            code, _ = self._run(build_argv(self.status_command, host), timeout, None)
        except FenceFailed:
            return PowerState.UNKNOWN
        return {0: PowerState.OFF, 1: PowerState.ON}.get(code, PowerState.UNKNOWN)
