"""Detection time: kill -9 a real agent process, measure until readers see it DOWN.

Per driver, --runs times (default 50), one agent at a time:
  1. an agent process starts (this file with --agent): it joins its member through the driver
     and then, every report_interval, heartbeats the driver *and* writes its row heartbeat
     with ``vigil.db.services.record_reports`` into the shared SQLite database (the write the
     conductor makes for an RPC state report; there is no conductor or broker in this bench);
  2. once a reader sees it UP, the bench waits a random fraction of report_interval (so the
     kill lands anywhere in the beat cycle) and sends SIGKILL;
  3. a reader polls every --poll seconds through the reader path: one services snapshot, then
     (a) the driver's own verdict ``get_states`` and (b) the ServiceGroup facade's state
     (row heartbeat combined with the driver; a conductor thread here keeps the report path
     beating, so a stale row is DOWN rather than UNKNOWN). The time from the kill to the first
     DOWN of each is recorded.

Defaults: report_interval 1 s, service_down_time 3 s, zk recv_timeout 3000 ms (= down time;
Nova's default is 4000). Expected: db ~ down_time after the last beat; mc (2, 3] s after the
last set (memcached counts whole seconds); redis/etcd ~ TTL after the last beat (etcd checks
expiry every 500 ms); zk ~ session timeout after the last ping.

Run the servers first (tests/servers/start.sh), then:
    .venv/bin/python bench/liveness_detection.py                 # 50 runs per driver
    .venv/bin/python bench/liveness_detection.py --runs 10       # quick mode
    .venv/bin/python bench/liveness_detection.py --drivers zk --zk-recv-timeout 4000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The bench writes reports at once (no coalescing tick) and beats the report path this often.
PATH_BEAT = 0.2
sys.path.insert(0, str(ROOT / "src"))

import vigil.conf  # noqa: E402
from vigil.db import migration  # noqa: E402
from vigil.db import services as services_db  # noqa: E402
from vigil.db.engine import make_engine  # noqa: E402
from vigil.errors import BackendUnavailable  # noqa: E402
from vigil.objects.liveness import LivenessTiming, State  # noqa: E402
from vigil.objects.services import ServiceRecord  # noqa: E402
from vigil.servicegroup import drivers  # noqa: E402
from vigil.servicegroup.api import ServiceGroup  # noqa: E402


def make_conf(opts: dict[str, Any]) -> Any:
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", opts["driver"])
    conf.set_override("report_interval", opts["report_interval"])
    conf.set_override("service_down_time", opts["down_time"])
    conf.set_override("memcached_servers", ["127.0.0.1:11211"])
    conf.set_override("recv_timeout", opts["zk_recv_timeout"], group="zookeeper")
    return conf


def agent_main(opts: dict[str, Any]) -> None:
    """The agent process: join, then beat until killed."""
    driver = drivers.load(make_conf(opts))
    engine = make_engine(opts["db"])
    driver.join(opts["host"], opts["topic"])
    services_db.record_reports(engine, [opts["service_id"]], 500)
    print("ready", flush=True)
    interval = float(opts["report_interval"])
    parent = os.getppid()
    due = time.monotonic()
    while os.getppid() == parent:  # never outlive the bench
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            driver.heartbeat(opts["host"], opts["topic"])
        except BackendUnavailable as exc:
            print(f"heartbeat failed: {exc}", file=sys.stderr, flush=True)
        services_db.record_reports(engine, [opts["service_id"]], 500)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, driver: str, args: argparse.Namespace, db_url: str) -> None:
        self.opts = {"driver": driver, "report_interval": args.report_interval,
                     "down_time": args.down_time, "zk_recv_timeout": args.zk_recv_timeout,
                     "db": db_url, "topic": f"bench-detect-{uuid.uuid4().hex[:6]}"}
        self.args = args
        self.engine = make_engine(db_url)
        self.reader = drivers.load(make_conf(self.opts))
        timing = LivenessTiming(report_interval=args.report_interval,
                                service_down_time=args.down_time, coalesce_interval=PATH_BEAT)
        self.group = ServiceGroup(self.reader, timing, engine=self.engine)
        self._stop = threading.Event()
        self._path = threading.Thread(target=self._beat_path, daemon=True)
        self._path.start()

    def _beat_path(self) -> None:
        while not self._stop.wait(PATH_BEAT):
            services_db.beat_report_path(self.engine, "bench-conductor", self.group.path_max_gap)

    def spawn(self, n: int) -> tuple[subprocess.Popen[str], ServiceRecord]:
        host = f"detect-{n}-{uuid.uuid4().hex[:4]}"
        rec, _ = services_db.service_get_or_create(self.engine, host, "vigil-compute",
                                                   self.opts["topic"])
        opts = {**self.opts, "host": host, "service_id": rec.id}
        proc = subprocess.Popen([sys.executable, __file__, "--agent", json.dumps(opts)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        return proc, rec

    def read(self, rec: ServiceRecord) -> tuple[State, State]:
        snap = services_db.snapshot(self.engine, ids=[rec.id])
        try:
            verdict = self.reader.get_states(snap.services, self.group.view(snap))[rec.id]
        except BackendUnavailable:
            verdict = State.UNKNOWN
        return verdict, self.group.states(snap)[rec.id]

    def run_once(self, proc: subprocess.Popen[str], rec: ServiceRecord) -> tuple[float,
                                                                                 float]:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"agent for {rec.host} did not start")
        deadline = time.monotonic() + 30
        while self.read(rec) != (State.UP, State.UP):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{rec.host} never read UP: {self.read(rec)}")
            time.sleep(0.05)
        time.sleep(random.uniform(0, self.args.report_interval))
        os.killpg(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait()
        driver_at = facade_at = None
        while driver_at is None or facade_at is None:
            verdict, state = self.read(rec)
            now = time.monotonic() - killed
            if driver_at is None and verdict is State.DOWN:
                driver_at = now
            if facade_at is None and state is State.DOWN:
                facade_at = now
            if now > 60:
                raise RuntimeError(f"{rec.host} not DOWN 60 s after the kill: {verdict}/{state}")
            time.sleep(self.args.poll)
        return driver_at, facade_at

    def close(self) -> None:
        self._stop.set()
        self.reader.close()
        self.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--drivers", default="db,mc,zk,etcd,redis")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--report-interval", type=float, default=1.0)
    parser.add_argument("--down-time", type=float, default=3.0)
    parser.add_argument("--zk-recv-timeout", type=int, default=None,
                        help="ms (default: service_down_time)")
    parser.add_argument("--poll", type=float, default=0.02, help="reader poll period, s")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a SQLite file)")
    args = parser.parse_args()
    if args.agent:
        agent_main(json.loads(args.agent))
        return
    if args.zk_recv_timeout is None:
        args.zk_recv_timeout = int(args.down_time * 1000)
    db_url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='vigil-detect-')}/vigil.sqlite"
    migration.sync(make_engine(db_url))
    print(f"# {' '.join(sys.argv)}")
    print(f"# report_interval {args.report_interval:g}s, service_down_time {args.down_time:g}s, "
          f"zk recv_timeout {args.zk_recv_timeout} ms, {args.runs} kills per driver, "
          f"poll {args.poll * 1000:g} ms")
    print(f"{'driver':6} {'runs':>4}  {'driver verdict p50/p99/max':>28}  "
          f"{'facade (row+driver) p50/p99/max':>32}")
    for name in args.drivers.split(","):
        bench = Bench(name, args, db_url)
        driver_times: list[float] = []
        facade_times: list[float] = []
        nxt = bench.spawn(0)
        try:
            for i in range(args.runs):
                proc, rec = nxt
                if i + 1 < args.runs:
                    nxt = bench.spawn(i + 1)  # warms up while this one is measured
                d, f = bench.run_once(proc, rec)
                driver_times.append(d)
                facade_times.append(f)
        finally:
            for p in (nxt[0], proc):
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            bench.close()

        def fmt(v: list[float]) -> str:
            return (f"{percentile(v, 0.5):.2f}s / {percentile(v, 0.99):.2f}s / "
                    f"{max(v):.2f}s")

        print(f"{name:6} {len(driver_times):>4}  {fmt(driver_times):>28}  "
              f"{fmt(facade_times):>32}", flush=True)


if __name__ == "__main__":
    main()
