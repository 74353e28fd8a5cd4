"""The ``command`` fence agent: runs a fence agent that speaks the ClusterLabs convention.

``[ha] fence_command`` names the program, e.g. ``/usr/sbin/fence_ipmilan``, unmodified: each
call writes its options on the program's stdin (:mod:`vigil.ha.fence.fenceapi`)::

    action=off                 # [ha] fence_action (off or reboot), or status
    nodename=h1                # the host being fenced
    plug=h1                    # [ha] fence_host_argument = [ha] fence_host_map's plug
    ip=10.0.0.5                # the host's fence_hosts_file entry over "*": device options
    username=admin
    password=...               # on stdin only: never in argv, logs or errors

and reads its exit code by the same convention. The command line is a template: ``{host}``,
``{plug}`` and ``{action}`` are substituted in its words, and nothing is appended (the host is
on stdin), so a script of one's own may take its arguments either way. (fence-agents' own
agents read stdin only when they have no argument at all: they are given as a bare path.)
``[ha] fence_host_argument = none`` leaves the plug line out, for agents with one device per
host that take no plug.

A host with several plugs (two power supplies, ``h1:1,2``) is off only when every plug is:
``off`` powers each off in turn and fails at the first that fails; ``status`` is OFF only if
every plug reads off, ON if any reads on; ``reboot`` is every plug off, then every plug on (a
reboot per plug would power the first plug back on while the second is still on).

Power state comes from ``[ha] fence_status_command`` when set, else from ``fence_command``
with ``action=status``: exit 0 = on, 2 = off, 1 (or anything else) = cannot tell.

Each call runs in a session of its own so that a timeout or a lost leadership kills its whole
process tree at once. A call still running when the monitor process itself dies is not killed
(nobody is left to): it may complete, and a new leader resolves that attempt by reading the
power state.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from vigil.errors import ConfigError, FenceFailed
from vigil.ha.fence import fenceapi
from vigil.ha.fence.base import FenceAgent, PowerState
from vigil.ha.fence.bmc import read_hosts_file

OUTPUT_LIMIT = 2000
PLACEHOLDERS = ("host", "plug", "action")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PASSWORD_FLAG = re.compile(r"--(password|passwd)(=|\Z)")


def check_template(template: str, option: str = "fence command") -> list[str]:
    """The template's words; refuses what cannot work (or would leak a password into argv,
    which every user of the machine can read in ``ps``)."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"[ha] {option} {template!r} does not parse: {exc}") from exc
    if not words:
        raise ConfigError(f"[ha] {option} is empty")
    for word in words:
        for name in _PLACEHOLDER.findall(word):
            if name not in PLACEHOLDERS:
                raise ConfigError(f"[ha] {option}: unknown placeholder {{{name}}} (known: "
                                  + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + ")")
        if _PASSWORD_FLAG.match(word):
            raise ConfigError(f"[ha] {option}: no password in the command line (anyone can "
                              "read it in ps); put it in fence_hosts_file, sent on stdin")
    return words


def build_argv(template: str, host: str, plug: str | None = None,
               action: str = "off") -> list[str]:
    """The command line: ``{host}``, ``{plug}`` and ``{action}`` substituted in each word.
    Nothing is appended: the fence agent reads the host and plug on stdin."""
    values = {"host": host, "plug": host if plug is None else plug, "action": action}
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], w)
            for w in check_template(template)]


class CommandFence(FenceAgent):
    name = "command"

    def __init__(self, command: str, status_command: str = "", *, action: str = "off",
                 host_map: str = "", host_argument: str = "plug",
                 hosts: Any = None, hosts_source: str = "fence_hosts_file") -> None:
        # Everything is checked here, at start-up, not at the first fence.
        check_template(command, "fence_command")
        if status_command:
            check_template(status_command, "fence_status_command")
        if action not in fenceapi.FENCE_ACTIONS:
            raise ConfigError(f"[ha] fence_action {action!r}: choose one of "
                              + ", ".join(fenceapi.FENCE_ACTIONS))
        fenceapi.check_name(host_argument, "[ha] fence_host_argument")
        if host_argument in fenceapi.RESERVED:
            raise ConfigError(f"[ha] fence_host_argument cannot be {host_argument!r}: Vigil "
                              "sends that line itself")
        self.command = command
        self.status_command = status_command
        self.action = action
        self.host_map = fenceapi.parse_host_map(host_map)
        self.host_argument = host_argument
        self.sends_plug = host_argument != fenceapi.NO_HOST_ARGUMENT
        if self.host_map and not self.sends_plug:
            raise ConfigError("[ha] fence_host_map needs a fence_host_argument to send the "
                              "plug in (it is none)")
        self.hosts: Mapping[str, Mapping[str, str]] = fenceapi.parse_device_options(
            hosts if hosts is not None else {}, hosts_source,
            host_argument if self.sends_plug else "")

    @classmethod
    def from_conf(cls, conf: Any) -> CommandFence:
        ha = conf.ha
        path = ha.fence_hosts_file
        return cls(ha.fence_command, ha.fence_status_command, action=ha.fence_action,
                   host_map=ha.fence_host_map, host_argument=ha.fence_host_argument,
                   hosts=read_hosts_file(path) if path else None,
                   hosts_source=f"fence_hosts_file {path}")

    def plugs(self, host: str) -> tuple[str, ...]:
        return fenceapi.plugs_for(self.host_map, host)

    def stdin(self, action: str, host: str, plug: str) -> str:
        """Exactly what the fence agent reads for one call."""
        return fenceapi.stdin_text(action, host, self.host_argument, plug,
                                   fenceapi.device_options(self.hosts, host))

    def _what(self, action: str, plug: str) -> str:
        """``action=off, plug=3``: one call, for messages."""
        return f"action={action}" + (f", {self.host_argument}={plug}" if self.sends_plug else "")

    # -- one call -----------------------------------------------------------------------------
    def _run(self, argv: list[str], stdin: str, deadline: float,
             cancel: threading.Event | None) -> tuple[int, str]:
        """Run one call; (exit status, its output's tail). Raises FenceFailed when it cannot
        run, or is killed at the deadline or on cancel."""
        data = stdin.encode()
        # Output to a file, not a pipe: a chatty agent must not block on a full pipe.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise FenceFailed(f"cannot run {argv[0]}: {exc}") from exc
            assert proc.stdin is not None
            # Fed without blocking, from the same loop that watches the deadline: an agent
            # that does not read its stdin cannot wedge the monitor.
            os.set_blocking(proc.stdin.fileno(), False)
            try:
                while proc.poll() is None:
                    data = self._feed(proc, data)
                    if cancel is not None and cancel.is_set():
                        raise FenceFailed(f"{argv[0]} cancelled: leadership lost")
                    if time.monotonic() > deadline:
                        raise FenceFailed(f"{argv[0]} did not finish before the fence_timeout "
                                          "deadline")
                    time.sleep(0.02)
            except FenceFailed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
        return proc.returncode, text[-OUTPUT_LIMIT:]

    @staticmethod
    def _feed(proc: subprocess.Popen[bytes], data: bytes) -> bytes:
        """Write what the pipe takes now; close stdin once all is written (the agent reads
        to end of file)."""
        assert proc.stdin is not None
        if proc.stdin.closed:
            return b""
        try:
            while data:
                data = data[os.write(proc.stdin.fileno(), data):]
        except BlockingIOError:
            return data
        except BrokenPipeError:  # it exited or closed its stdin without reading it all
            data = b""
        proc.stdin.close()
        return data

    def _call(self, action: str, host: str, plug: str, deadline: float,
              cancel: threading.Event | None, *, status: bool = False) -> tuple[int, str]:
        """(exit status, a redacted line describing the call and its output)."""
        template = self.status_command if status and self.status_command else self.command
        argv = build_argv(template, host, plug, action)
        code, out = self._run(argv, self.stdin(action, host, plug), deadline, cancel)
        secrets = fenceapi.secrets_of(fenceapi.device_options(self.hosts, host))
        what = f"{shlex.join(argv)} ({self._what(action, plug)})"
        line = f"{what} exited {code}" + (f": {out}" if out else "")
        return code, fenceapi.redact(line, secrets)

    def _must(self, action: str, host: str, plug: str, deadline: float,
              cancel: threading.Event) -> str:
        try:
            code, line = self._call(action, host, plug, deadline, cancel)
        except FenceFailed as exc:
            secrets = fenceapi.secrets_of(fenceapi.device_options(self.hosts, host))
            raise FenceFailed(fenceapi.redact(f"{self._what(action, plug)}: {exc}",
                                              secrets)) from None
        if code != 0:
            raise FenceFailed(line)
        return line

    # -- the agent ----------------------------------------------------------------------------
    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        deadline = time.monotonic() + timeout
        plugs = self.plugs(host)
        if self.action == "reboot" and len(plugs) > 1:
            done = [self._must("off", host, p, deadline, cancel) for p in plugs]
            for p in plugs:
                # The reboot's verdict is its off part (FenceAgentAPI); a plug that does not
                # come back on leaves the host off, which is safe, and is said.
                try:
                    code, line = self._call("on", host, p, deadline, cancel)
                except FenceFailed as exc:
                    code, line = -1, f"{self._what('on', p)}: {exc}"
                done.append(line if code == 0 else f"{line} (power on failed: the host may "
                            "stay off)")
            return "; ".join(done)
        return "; ".join(self._must(self.action, host, p, deadline, cancel) for p in plugs)

    def status(self, host: str, *, timeout: float) -> PowerState:
        deadline = time.monotonic() + timeout
        states = []
        for plug in self.plugs(host):
            try:
                code, _ = self._call("status", host, plug, deadline, None, status=True)
            except FenceFailed:  # could not run, or no answer in time: cannot tell
                code = 1
            state = fenceapi.status_from_exit(code)
            if state is PowerState.ON:
                return state  # one plug on powers the host
            states.append(state)
        return PowerState.OFF if all(s is PowerState.OFF for s in states) else PowerState.UNKNOWN
