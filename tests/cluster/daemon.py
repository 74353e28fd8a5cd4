"""A server process inside a network namespace, in its own process group, logging to a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(pred: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.2) -> T:
    """Call ``pred`` until it returns something truthy; AssertionError after ``timeout`` s.
    An exception from ``pred`` counts as "not yet" (the last one is in the message)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except Exception as exc:  # a server that is still starting
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


class Daemon:
    """``ip netns exec NS argv...`` (``ip`` execs the command, so the pid is the server's)."""

    def __init__(self, name: str, ns: str, argv: Sequence[str], log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.ns = ns
        self.argv = list(argv)
        self.log_path = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *extra: str) -> Daemon:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {self.starts} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.argv + list(extra))}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *self.argv, *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the process group (the server and its children), and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s. Returns the exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Children left in the group (a shell's, a server's helpers) go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def reap(self) -> None:
        """Collect the exit status after something else killed it (no zombie left)."""
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)

    def log(self, tail: int = 0) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail:] if tail else text


def time_events(probes: Mapping[str, Callable[[], object]], since: float, timeout: float,
                interval: float = 0.1) -> dict[str, float]:
    """When each probe first came true, in seconds after ``since`` (a ``time.monotonic()``).

    Every probe polls in its own thread, so a slow one (a CLI that takes a second) does not
    delay the others; the time noted is when the successful call returned (an upper bound,
    late by at most one call plus ``interval``). An exception counts as "not yet". Raises
    AssertionError naming the probes still false after ``timeout``.
    """
    out: dict[str, float] = {}
    deadline = time.monotonic() + timeout

    def run(name: str, probe: Callable[[], object]) -> None:
        while time.monotonic() < deadline:
            try:
                if probe():
                    out[name] = time.monotonic() - since
                    return
            except Exception:  # a server that is changing state
                pass
            time.sleep(interval)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in probes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    missing = sorted(set(probes) - set(out))
    if missing:
        raise AssertionError(f"after {timeout:g} s still waiting for {missing} (seen: {out})")
    return dict(sorted(out.items(), key=lambda kv: kv[1]))
