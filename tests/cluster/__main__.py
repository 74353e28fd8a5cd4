"""``python -m tests.cluster up [--computes N] [--vigil]`` | ``cleanup``.

``up`` builds a cluster, prints where everything is and how long it took, and keeps it until
Ctrl-C (or SIGTERM); then removes all of it. ``cleanup`` removes what dead runs left.
Run from the repository root, as root.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType

from tests.cluster.harness import Cluster
from tests.cluster.net import cleanup_leftovers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a cluster and keep it until Ctrl-C")
    up.add_argument("--computes", type=int, default=3)
    up.add_argument("--vigil", action="store_true", help="also start Vigil's daemons")
    up.add_argument("--keep", action="store_true", help="keep logs and data (<run dir>.kept)")
    sub.add_parser("cleanup", help="remove leftovers of dead runs")
    args = parser.parse_args(argv)

    if args.cmd == "cleanup":
        for line in cleanup_leftovers():
            print(f"removed {line}")
        return 0

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with Cluster.up(computes=args.computes, keep=args.keep) as c:
            print(json.dumps({"run_dir": str(c.net.run_dir), "hosts": c.net.hosts,
                              "namespaces": {h: c.net.ns(h) for h in c.net.hosts},
                              "database": c.db_url(), "transport_url": c.transport_url(),
                              "etcd": c.etcd.endpoints(), "timings": c.timings}, indent=1),
                  flush=True)
            if args.vigil:
                print(json.dumps({"vigil": c.start_vigil(), "api": c.api_url,
                                  "token": c.token}, indent=1), flush=True)
            print("up; Ctrl-C to remove it", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("removed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
