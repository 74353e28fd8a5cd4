"""Returning-host benchmark: the exactly-once issue's scenario, repeated, with its figures.

A cluster of real processes (PostgreSQL, RabbitMQ, a conductor, a scheduler, ``process``-driver
computes sharing one instances_path, two monitors, a ``reboot`` fence agent of the ClusterLabs
convention). h1 runs N evacuable instances and one pinned one; its process group is killed; its
agent is started again when the recovery first shows each restart point (``fence_started``,
``fenced``, ``forced_down``, the first ``instance_evacuated``, ``evacuated``). Each instance
writes a heartbeat line every 0.2 s; a double writer is two copies whose writing intervals
overlap. The scenario and its judge are tests/functional/returning.py (the functional test
runs each point once).

Run:  .venv/bin/python bench/returning_host.py --runs 4 --instances 8
Prints one line per run and the totals: runs, restart points, double writers (must be 0),
instances lost, instances h1 ran before its release, crash-to-done time p50 / max.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import PG_ADMIN, RABBIT_URL, _create_database, _drop_database, private_vhost
from tests.functional import returning
from tests.functional.hacluster import HaCluster


def one_run(db_url: str, rabbit_url: str, point: str, moving: int) -> returning.Outcome:
    from tests.conftest import reset_schema

    from vigil.db.engine import make_engine

    engine = make_engine(db_url)
    reset_schema(engine)
    engine.dispose()
    with tempfile.TemporaryDirectory(prefix="vigil-returning-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "logs").mkdir()
        c = HaCluster(tmp, tmp / "logs")
        try:
            returning.configure(c, db_url=db_url, rabbit_url=rabbit_url,
                                exchange=f"vigil-bench-{uuid.uuid4().hex[:8]}", point=point)
            return returning.run(c, point=point, moving=moving)
        except BaseException:
            print(c.dump()[-6000:], file=sys.stderr)
            raise
        finally:
            c.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4, help="runs per restart point")
    p.add_argument("--instances", type=int, default=8, help="evacuable instances on h1")
    p.add_argument("--points", default=",".join(returning.RESTART_POINTS))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    points = args.points.split(",")
    name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
    db_url = _create_database(PG_ADMIN, name)
    outcomes: list[returning.Outcome] = []
    try:
        with private_vhost(RABBIT_URL, "vigil-bench") as rabbit:
            for run in range(1, args.runs + 1):
                for point in points:
                    out = one_run(db_url, rabbit, point, args.instances)
                    outcomes.append(out)
                    print(f"run {run} {point:20s} ok={out.ok} "
                          f"double_writers={sum(map(len, out.double_writers.values()))} "
                          f"lost={len(out.lost)} early_on_h1={len(out.ran_on_h1_before_release)} "
                          f"fences={out.fences} crash_to_done={out.crash_to_done:.1f}s",
                          flush=True)
    finally:
        _drop_database(PG_ADMIN, name)
    doubles = sum(sum(map(len, o.double_writers.values())) for o in outcomes)
    times = [o.crash_to_done for o in outcomes]
    print(f"\n{len(outcomes)} runs over {len(points)} restart points, {args.instances + 1} "
          f"instances each ({args.instances} evacuable): double writers {doubles}, "
          f"lost {sum(len(o.lost) for o in outcomes)}, started on h1 before its release "
          f"{sum(len(o.ran_on_h1_before_release) for o in outcomes)}, failed runs "
          f"{sum(1 for o in outcomes if not o.ok)}; crash to recovery done p50 "
          f"{statistics.median(times):.1f} s, max {max(times):.1f} s")
    print(f"reproduce: .venv/bin/python bench/returning_host.py --runs {args.runs} "
          f"--instances {args.instances}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
