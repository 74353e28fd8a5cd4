"""Where a host's process group is recorded, for the ``process`` fence agent.

A ``vigil compute`` process is a "host": it runs in its own process group (``vigil up`` does
not use this: its simulated hosts share one process), and its process-driver instances run in
the same group. At start it writes ``<state_path>/hosts/<host>.json`` with its pid, its process
group and the kernel's start time of the group leader; the process agent reads it to kill the
whole group. The start time guards against a recycled pid: a group id is never reused while any
member of the group lives, so a leader with another start time means our group is gone.

Under ``vigil supervisor`` the supervisor leads the group and its agent writes the same group.
A supervisor killed alone and started again leads a *new* group, while the agent it adopts and
that agent's instances still live in the old one: a record keeps every older group of the host
that still has live members (``older``), and the process agent kills them all. Otherwise a fence
would miss the very processes it must stop.
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
    older: tuple[tuple[int, str | None], ...] = ()  # earlier groups with live members

    def groups(self) -> list[HostProcess]:
        """This group and every older one, each as a record of its own."""
        return [self, *(HostProcess(self.host, self.pid, g, t) for g, t in self.older)]


def record_path(state_path: str, host: str) -> str:
    return os.path.join(os.path.abspath(state_path), "hosts", f"{host}.json")


def write_record(state_path: str, host: str) -> HostProcess:
    """Record this process's group as ``host`` (atomically: a reader never sees half)."""
    pgid = os.getpgrp()
    older: list[tuple[int, str | None]] = []
    previous = read_record(state_path, host)
    if previous is not None:
        for g in previous.groups():
            if (g.pgid != pgid and (g.pgid, g.leader_start_time) not in older
                    and group_is_ours(g) and group_members(g.pgid)):
                older.append((g.pgid, g.leader_start_time))
    rec = HostProcess(host, os.getpid(), pgid, proc_start_time(pgid), tuple(older))
    path = record_path(state_path, host)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"host": host, "pid": rec.pid, "pgid": rec.pgid,
                   "leader_start_time": rec.leader_start_time,
                   "older": [list(g) for g in rec.older]}, f)
    os.replace(tmp, path)
    return rec


def read_record(state_path: str, host: str) -> HostProcess | None:
    try:
        with open(record_path(state_path, host)) as f:
            data = json.load(f)
        older = tuple((int(g), t) for g, t in data.get("older", []))
        return HostProcess(str(data["host"]), int(data["pid"]), int(data["pgid"]),
                           data.get("leader_start_time"), older)
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
