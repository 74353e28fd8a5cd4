"""What a running ``vigil up`` leaves in its state directory, for itself and for the CLI.

Three files, each for one hazard:

- ``vigil-up.lock``: an ``flock`` held for the life of the ``vigil up`` that uses the directory,
  with its pid inside. A second ``vigil up`` on the same state would register the same hosts
  again, revive their rows and run a second HA monitor over the same SQLite file: it must stop
  before it touches anything (:func:`lock`). The kernel drops the lock when the process dies,
  however it dies, so a stale file never blocks a restart, and the CLI can ask whether the
  ``vigil up`` it finds is alive without trusting a pid that may have been reused
  (:func:`holder`).
- ``vigil-up.json`` (mode 0600: it holds an admin token): the API's endpoint and token, the
  database, the pid (:class:`UpRun`). The CLI uses that API by default while its writer holds
  the lock, so commands go through the same path as any other client (:func:`running`).
- ``vigil-up.mode``: which simulated hosts the state was made with (virtual or bare-metal). Its
  hosts, instances and hypervisors belong to that mode: the other one would find instances its
  driver never had (ERROR) and hypervisors nobody updates. Switching is refused with one line
  (:func:`check_mode`), never half-done. A state older than this file is judged by its hosts'
  hypervisor type in the database.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

from vigil.errors import ConfigError, Conflict

LOCK_FILE = "vigil-up.lock"
RUN_FILE = "vigil-up.json"
MODE_FILE = "vigil-up.mode"


class StateInUse(Conflict):
    """Another ``vigil up`` holds the state directory's lock."""


@dataclass(frozen=True)
class UpRun:
    """One running ``vigil up``, as recorded in ``vigil-up.json``."""

    pid: int
    endpoint: str
    token: str | None
    database: str  # the URL, password hidden
    state_path: str
    mode: str


class StateLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    return None


def lock(state_path: str) -> StateLock:
    """Take ``state_path``'s lock for this process, or raise :class:`StateInUse` naming the pid
    that holds it. Creates the directory (0700) if needed; nothing else is touched."""
    path = os.path.join(state_path, LOCK_FILE)
    try:
        os.makedirs(state_path, mode=0o700, exist_ok=True)
        # Not inherited (PEP 446): the process driver's instances must not keep it after we
        # die.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot use the state directory {state_path}: "
                          f"{exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        who = f"pid {pid}" if pid else "another process"
        raise StateInUse(f"vigil up is already running on {state_path} ({who}); "
                         "stop it first, or give this one another --state-path") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateLock(fd, path)


def holder(state_path: str) -> int | None:
    """The pid of the live ``vigil up`` holding ``state_path``'s lock, else None.

    Probes with a shared lock, which fails only while the exclusive one is held: the answer
    never rests on a pid that may be stale."""
    try:
        fd = os.open(os.path.join(state_path, LOCK_FILE), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def record(run: UpRun) -> str:
    """Write ``vigil-up.json`` (0600 from its creation: the token is never readable by
    others, not even for an instant) and return its path."""
    path = os.path.join(run.state_path, RUN_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(run), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def forget(state_path: str) -> None:
    """Remove ``vigil-up.json`` (a clean stop)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(state_path, RUN_FILE))


def running(state_path: str) -> UpRun | None:
    """The ``vigil up`` running on ``state_path`` with its API recorded, else None (none
    runs, it is still starting, or its record is not ours to read)."""
    pid = holder(state_path)
    if pid is None:
        return None
    try:
        with open(os.path.join(state_path, RUN_FILE)) as f:
            data = json.load(f)
        run = UpRun(**data)
    except (OSError, ValueError, TypeError):
        return None
    return run if run.pid == pid else None


def check_mode(state_path: str, mode: str,
               found: Callable[[], str | None] = lambda: None) -> None:
    """Refuse (:class:`Conflict`, one line) to run ``mode`` on a state made with another;
    record ``mode`` on a state that has none. ``found`` says what a state older than this
    file holds (its hosts' hypervisor type), asked only when the file is missing."""
    path = os.path.join(state_path, MODE_FILE)
    try:
        with open(path) as f:
            before = f.read().strip()
    except FileNotFoundError:
        before = found() or ""
    if before and before != mode:
        raise Conflict(f"{state_path} holds a vigil up of {describe(before)}; this one would "
                       f"run {describe(mode)} over its hosts and instances: start it as "
                       "before, or give it another --state-path (or delete that directory)")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(mode + "\n")


def describe(mode: str) -> str:
    """``baremetal`` -> ``bare-metal hosts (--baremetal-nodes N)``, for the refusal."""
    return {"baremetal": "bare-metal hosts (--baremetal-nodes N)",
            "fake": "virtual hosts (the fake driver)",
            "process": "virtual hosts (the process driver)"}.get(mode, mode)
