#!/usr/bin/env python3
"""A ClusterLabs-style fence agent for the cluster harness: a host is a network namespace.

    fence_netns.py ACTION NAMESPACE      (ACTION: off, reboot, status, monitor, on)

``off``/``reboot``: SIGKILL to every process in the namespace (the machine's power goes; the
namespace, its "hardware", stays), repeated until none is left; exit 0. ``status``: exit 0 if
any process runs there (on), 2 if none (off) -- the fence-agents convention. ``on``: exit 1
(this agent cannot power a host on: the harness restarts its daemons). Standalone (standard
library only) so the HA monitor can run it by path. Vigil's ``command`` agent gives the
options on stdin as well; they are read and ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time


def pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                         timeout=10).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    action, ns = argv[1], argv[2]
    if not os.path.exists(f"/run/netns/{ns}"):
        print(f"no namespace {ns}", file=sys.stderr)
        return 1
    if action in ("status", "monitor"):
        return 0 if pids(ns) else 2
    if action in ("off", "reboot"):
        deadline = time.monotonic() + 10
        while (left := pids(ns)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        return 0 if not pids(ns) else 1
    print(f"action {action!r} not supported", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
