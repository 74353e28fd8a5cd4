"""The ``process`` fence agent: a host is a process group on this machine; fencing kills it.

Used by the functional tests and single-machine demos, where each ``vigil compute`` runs in its
own process group with its process-driver instances (see :mod:`vigil.ha.hostproc`). SIGKILL
to the group is the power-off; "verified off" means no live process is left in the group.
It only works when the monitor runs on the same machine as the hosts: on a real fleet use
ipmi, redfish or command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

from vigil.errors import FenceFailed
from vigil.ha import hostproc
from vigil.ha.fence.base import FenceAgent, PowerState


class ProcessFence(FenceAgent):
    name = "process"

    def __init__(self, state_path: str) -> None:
        self.state_path = state_path

    @classmethod
    def from_conf(cls, conf: Any) -> ProcessFence:
        return cls(conf.state_path)

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        rec = hostproc.read_record(self.state_path, host)
        if rec is None:
            raise FenceFailed(f"no process record of host {host} in "
                              f"{hostproc.record_path(self.state_path, host)}: cannot fence it")
        if rec.pgid == os.getpgrp():
            raise FenceFailed(f"host {host} is this monitor's own process group: refusing to "
                              "fence it (a simulated host? use the simulated agent)")
        # Every group of the host: a restarted supervisor leads a new one while what it adopted
        # lives in the old one (vigil.ha.hostproc).
        groups = [g for g in rec.groups() if hostproc.group_is_ours(g)]
        if not groups:
            return f"process group {rec.pgid} of {host} is gone (its id was reused)"
        before = sum(len(hostproc.group_members(g.pgid)) for g in groups)
        for g in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(g.pgid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while any(hostproc.group_members(g.pgid) for g in groups):
            if cancel.is_set():
                raise FenceFailed("cancelled: leadership lost")
            if time.monotonic() > deadline:
                raise FenceFailed(f"process group(s) {[g.pgid for g in groups]} of {host} "
                                  f"still have live members after SIGKILL and {timeout:g} s")
            time.sleep(0.02)
        ids = ", ".join(str(g.pgid) for g in groups)
        return f"SIGKILL to process group {ids} ({before} live process(es))"

    def status(self, host: str, *, timeout: float) -> PowerState:
        rec = hostproc.read_record(self.state_path, host)
        if rec is None:
            return PowerState.UNKNOWN
        if any(hostproc.group_is_ours(g) and hostproc.group_members(g.pgid)
               for g in rec.groups()):
            return PowerState.ON
        return PowerState.OFF
