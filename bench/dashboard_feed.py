"""Benchmark: the cost of the dashboard's change feed (vigil.api.feed) at N services.

Seeds N compute services straight into a fresh SQLite database (as bench/api_services.py),
then measures, in this process:

* one poll (``FleetReader.read``), per section: what the shared poller pays every
  ``[api] feed_poll_interval`` while at least one dashboard is connected, whatever their number;
* the diff and its serialization when nothing changed and when one service changed (what a
  poll adds on top of the read, and what a change message weighs);
* the snapshot a new dashboard receives (serialization time and size).

Reproduce with::

    .venv/bin/python bench/dashboard_feed.py                 # 10,000 services, 20 polls
    .venv/bin/python bench/dashboard_feed.py --services 1000 --polls 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vigil import conf as vconf
from vigil import launch
from vigil.api.feed import FleetReader, Published, assemble, diff, dumps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_services import seed


def quantiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return (f"p50 {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"max {values[-1] * 1000:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vigil.conf"
        path.write_text(f"[DEFAULT]\nstate_path = {tmp}\nservice_down_time = 36000\n")
        conf = vconf.load(["--config-file", str(path)], default_files=[])
        engine = launch.engine_from(conf, sync=True)
        seed(conf.database.connection, args.services)
        registry = launch.registry_over(conf, engine, launch.group_from(conf, engine))
        reader = FleetReader(registry)
        state = reader.read()  # warm up
        reads: list[float] = []
        sections: dict[str, list[float]] = {}
        quiet: list[float] = []
        for _ in range(args.polls):
            t0 = time.perf_counter()
            new = reader.read()
            reads.append(time.perf_counter() - t0)
            for name, cost in reader.costs.items():
                sections.setdefault(name, []).append(cost)
            t0 = time.perf_counter()
            change = diff(state, new)
            {name: dumps(value) for name, value in change.items()}
            quiet.append(time.perf_counter() - t0)
            state = new
        # One service changes: the diff finds it among N and sends one row.
        one = dict(state["services"])
        first = next(iter(one))
        one[first] = (*one[first][:7], "down", *one[first][8:])
        changed = {**state, "services": one}
        t0 = time.perf_counter()
        change = diff(state, changed)
        fragments = {name: dumps(value) for name, value in change.items()}
        one_change = time.perf_counter() - t0
        pub = Published(1, "now", changed, fragments)
        message = assemble("change", pub, fragments, frozenset(changed))
        t0 = time.perf_counter()
        snap_fragments = pub.snapshot_fragments()
        snap_time = time.perf_counter() - t0
        snapshot = assemble("snapshot", pub, snap_fragments, frozenset(changed))
        assert message is not None and snapshot is not None
        print(f"services: {args.services}, polls: {args.polls}")
        print(f"poll (read everything)      {quantiles(reads)}")
        for name, values in sections.items():
            print(f"  {name:<26}{quantiles(values)}")
        print(f"diff + serialize, no change {quantiles(quiet)}")
        print(f"diff + serialize, 1 change  {one_change * 1000:7.1f} ms, message "
              f"{len(message)} bytes")
        print(f"snapshot for a new stream   {snap_time * 1000:7.1f} ms, {len(snapshot)} bytes")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
