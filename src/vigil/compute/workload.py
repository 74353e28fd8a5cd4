"""The built-in workload of a process-driver instance: ``python -m vigil.compute.workload DIR``.

Appends ``<unix time> <host> <pid>`` to ``DIR/heartbeat`` every second, one ``write`` of one
line on an O_APPEND descriptor, so copies on two hosts sharing DIR (the failure an evacuation
must never cause) show up as interleaved lines instead of corrupting each other.

SIGINT is ignored: Ctrl-C on a terminal running ``vigil compute`` stops the agent, not its
instances (as restarting nova-compute leaves guests running). SIGTERM (destroy) and SIGKILL to
the agent's process group end it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence


def run(directory: str, host: str, interval: float, stop: threading.Event) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "heartbeat")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, f"{time.time():.3f} {host} {os.getpid()}\n".encode())
            if stop.wait(interval):
                return
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vigil.compute.workload")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--host", default=os.environ.get("VIGIL_HOST") or socket.gethostname())
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run(args.directory, args.host, args.interval, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
