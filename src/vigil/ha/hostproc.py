"""Where a host's process group is recorded, for the ``process`` fence agent.

A ``vigil compute`` process is a "host": it runs in its own process group (``vigil up`` does
not use this: its simulated hosts share one process), and its process-driver instances run in
the same group. At start it writes ``<state_path>/hosts/<host>.json`` with its pid, its process
group and the kernel's start time of the group leader; the process agent reads it to kill the
whole group. The start time guards against a recycled pid: a group id is never reused while any
member of the group lives, so a leader with another start time means our group is gone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from vigil.compute.virt.process import proc_start_time


@dataclass(frozen=True)
class HostProcess:
    host: str
    pid: int
    pgid: int
    leader_start_time: str | None


def record_path(state_path: str, host: str) -> str:
    return os.path.join(os.path.abspath(state_path), "hosts", f"{host}.json")


def write_record(state_path: str, host: str) -> HostProcess:
    """Record this process's group as ``host`` (atomically: a reader never sees half)."""
    pgid = os.getpgrp()
    rec = HostProcess(host, os.getpid(), pgid, proc_start_time(pgid))
    path = record_path(state_path, host)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"host": host, "pid": rec.pid, "pgid": rec.pgid,
                   "leader_start_time": rec.leader_start_time}, f)
    os.replace(tmp, path)
    return rec


def read_record(state_path: str, host: str) -> HostProcess | None:
    try:
        with open(record_path(state_path, host)) as f:
            data = json.load(f)
        return HostProcess(str(data["host"]), int(data["pid"]), int(data["pgid"]),
                           data.get("leader_start_time"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, from /proc."""
    out: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(int(name))
    return out


def group_is_ours(rec: HostProcess) -> bool:
    """False if the recorded group id now belongs to another process's group (recycled)."""
    current = proc_start_time(rec.pgid)
    return current is None or rec.leader_start_time is None or current == rec.leader_start_time
