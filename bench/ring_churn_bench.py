"""Bare-metal ownership under churn: real agents killed and restarted, the database sampled.

Runs the harness of tests/functional/test_ring_churn.py (a conductor and N ``vigil compute``
processes with the ``baremetal`` driver over RabbitMQ, one SQLite database) with the sizes
given here, and prints what its checker measured:

* invariant violations (two owners, capacity differing from the owned inventory or above
  the inventory, an instance away from its node's owner, a node without a live owner for
  longer than service_down_time + tick + debounce + 2 s of slack);
* nodes moved per membership change against the ideal (a kill: the nodes the dead agent
  owned; a restart: its fair share, nodes / live agents);
* re-coverage after a kill: from the SIGKILL until every node has a live owner again.

Run from the repository root, with RabbitMQ on 127.0.0.1:5672 (VIGIL_TEST_RABBIT)::

    .venv/bin/python bench/ring_churn_bench.py                       # 500 nodes, 5 agents, 180 s
    .venv/bin/python bench/ring_churn_bench.py --seconds 30 --seed 7 # a shorter, fixed run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives with the tests

from tests.conftest import RABBIT_URL, private_vhost, write_config  # noqa: E402
from tests.functional.test_ring_churn import Settings, run_churn  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--computes", type=int, default=5)
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1, 1 << 31))
    p.add_argument("--tick", type=float, default=1.0, help="update_resources_interval")
    p.add_argument("--debounce", type=float, default=1.0, help="membership_debounce")
    p.add_argument("--service-down-time", type=float, default=2.0)
    p.add_argument("--report-interval", type=float, default=0.5)
    p.add_argument("--logs", type=Path, help="keep the processes' logs here")
    args = p.parse_args()
    settings = Settings(seconds=args.seconds, seed=args.seed, nodes=args.nodes,
                        computes=args.computes, instances=args.instances,
                        report_interval=args.report_interval,
                        service_down_time=args.service_down_time, tick=args.tick,
                        debounce=args.debounce)
    work = Path(tempfile.mkdtemp(prefix="vigil-churn-"))
    logs = args.logs or work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work}/churn.sqlite"
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; logs in {logs}")
    with private_vhost(os.environ.get("VIGIL_TEST_RABBIT", RABBIT_URL), "vigil-churn") as url:
        sections = settings.sections(url, f"vigil-bench-{uuid.uuid4().hex[:10]}", db_url)
        sections["DEFAULT"]["state_path"] = str(work / "state")
        config = write_config(work / "vigil.conf", sections)
        report = run_churn(settings, config, db_url, logs)
    print(f"# reproduce: .venv/bin/python bench/ring_churn_bench.py --seconds {args.seconds:g} "
          f"--nodes {args.nodes} --computes {args.computes} --seed {args.seed} "
          f"--tick {args.tick:g} --debounce {args.debounce:g} "
          f"--service-down-time {args.service_down_time:g}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
