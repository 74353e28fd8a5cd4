"""False downs under a slow backend: 1,000 live members, 1 s of added latency, N minutes.

What it does, per driver (mc, zk, etcd, redis):
  * a TCP proxy (tests/tools/tcpproxy.py, in its own process) sits between every client and
    the server and holds every chunk 0.5 s in each direction: each request takes 1 s more
    (joins included: they are done before the measurement starts);
  * 1,000 members beat through it, each from its own thread every report_interval (as 1,000
    service processes would; they share --members-per-driver clients per driver instance, and
    since every request is in flight for a second, that needs that many sockets: etcd's HTTP
    pool is widened accordingly);
  * one reader asks get_states for all 1,000 every --read-every seconds, also through the proxy;
  * counted: members ever reported DOWN (the figure that must be 0), reads that were UNKNOWN
    (BackendUnavailable), heartbeats that failed, heartbeat latency, and the longest time any
    member went between two successful heartbeats (what the TTL/session must span).

Only the driver verdict is measured (no services table): the point is the backend path.

Defaults: report_interval 5 s, service_down_time 15 s (1,000 members = 200 beats/s). At 1 s /
3 s (1,000 beats/s, --report-interval 1 --down-time 3) one 2-core machine cannot run 1,000 etcd
HTTP clients in one Python process fast enough: the beats fall behind in the bench itself, so
those etcd figures measure the bench, not the driver.

Run the servers first (tests/servers/start.sh), then:
    .venv/bin/python bench/liveness_false_downs.py                 # 10 minutes per driver
    .venv/bin/python bench/liveness_false_downs.py --minutes 1     # quick mode
    .venv/bin/python bench/liveness_false_downs.py --drivers zk --zk-recv-timeout 6000
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vigil.conf  # noqa: E402
from vigil.errors import BackendUnavailable  # noqa: E402
from vigil.objects.liveness import LivenessView, State  # noqa: E402
from vigil.objects.services import ServiceRecord  # noqa: E402
from vigil.servicegroup import drivers  # noqa: E402
from vigil.servicegroup.drivers.base import Driver  # noqa: E402

PORTS = {"mc": 11211, "zk": 2181, "etcd": 2379, "redis": 6379}


def make_conf(name: str, port: int, args: argparse.Namespace) -> Any:
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", name)
    conf.set_override("report_interval", args.report_interval)
    conf.set_override("service_down_time", args.down_time)
    conf.set_override("memcached_servers", [f"127.0.0.1:{port}"])
    conf.set_override("socket_timeout", args.timeout, group="memcache")
    conf.set_override("address", f"127.0.0.1:{port}", group="zookeeper")
    conf.set_override("recv_timeout", args.zk_recv_timeout, group="zookeeper")
    conf.set_override("endpoint", f"http://127.0.0.1:{port}", group="etcd")
    conf.set_override("timeout", args.timeout, group="etcd")
    conf.set_override("url", f"redis://127.0.0.1:{port}/0", group="redis")
    conf.set_override("socket_timeout", args.timeout, group="redis")
    return conf


def widen(driver: Driver, size: int) -> None:
    """Give a shared driver one socket per concurrent member (each would be its own process)."""
    if driver.name == "etcd":
        from requests.adapters import HTTPAdapter

        for client in driver.clients:  # type: ignore[attr-defined]
            client.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=size))


def record(i: int, host: str, topic: str) -> ServiceRecord:
    now = dt.datetime(2024, 1, 1)
    return ServiceRecord(id=i, uuid=str(i), host=host, binary="vigil-compute", topic=topic,
                         report_count=0, disabled=False, disabled_reason=None,
                         forced_down=False, version=1, last_seen_up=now, left_at=None,
                         created_at=now, updated_at=None)


class ProxyProcess:
    """tests/tools/tcpproxy.py in its own process, so forwarding 1,000 clients' traffic does
    not compete with the measured clients for this process's GIL."""

    def __init__(self, port: int, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.tools.tcpproxy", "--target", f"127.0.0.1:{port}",
             "--delay", str(delay)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    # Join at full speed through a direct proxy-less path, then beat through the slow one.
    proxy = ProxyProcess(PORTS[name], args.latency / 2)
    topic = f"bench-fd-{uuid.uuid4().hex[:8]}"
    records = [record(i, f"host-{i:05d}", topic) for i in range(args.members)]
    per = args.members_per_driver
    agents: list[Driver] = []
    for _ in range(0, args.members, per):
        driver = drivers.load(make_conf(name, proxy.port, args))
        widen(driver, per)
        agents.append(driver)
    reader = drivers.load(make_conf(name, proxy.port, args))
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    gaps: list[float] = []

    joined = threading.Semaphore(0)

    def beat(i: int, rec: ServiceRecord) -> None:
        driver = agents[i // per]
        while not stop.is_set():  # as a service does at start: retry until it has joined
            try:
                driver.join(rec.host, rec.topic)
                break
            except BackendUnavailable:
                stop.wait(1.0)
        joined.release()
        last_ok = time.monotonic()
        due = time.monotonic() + args.report_interval * (i / args.members)  # spread the phase
        while not stop.wait(max(0.0, due - time.monotonic())):
            due += args.report_interval
            t0 = time.monotonic()
            try:
                driver.heartbeat(rec.host, rec.topic)
            except BackendUnavailable:
                with lock:
                    errors[0] += 1
                continue
            took = time.monotonic() - t0
            with lock:
                latencies.append(took)
                # Time between two heartbeats reaching the server, about: what a TTL must span.
                gaps.append(time.monotonic() - last_ok)
            last_ok = time.monotonic()
            due = max(due, time.monotonic())  # a late beat does not try to catch up

    threads = [threading.Thread(target=beat, args=(i, rec), daemon=True)
               for i, rec in enumerate(records)]
    for thread in threads:
        thread.start()
    view = LivenessView(now=dt.datetime(2024, 1, 1), down_after=dt.timedelta(
        seconds=args.down_time), reports_healthy_since=None)
    ever_down: set[int] = set()
    reads = unknown_reads = unknown_members = 0
    read_times: list[float] = []
    for _ in records:
        joined.acquire()
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            states = reader.get_states(records, view)
        except BackendUnavailable:
            unknown_reads += 1
            states = {}
        read_times.append(time.monotonic() - t0)
        reads += 1
        ever_down.update(k for k, v in states.items() if v is State.DOWN)
        unknown_members += sum(v is State.UNKNOWN for v in states.values())
        time.sleep(max(0.0, args.read_every - (time.monotonic() - t0)))
    stop.set()
    for thread in threads:
        thread.join(timeout=args.timeout + args.latency + 5)
    proxy.stop()
    for driver in [*agents, reader]:
        driver.close()
    lat = sorted(latencies)
    return {
        "driver": name, "members": args.members, "minutes": args.minutes,
        "ever_down": len(ever_down), "reads": reads, "unknown_reads": unknown_reads,
        "unknown_member_reads": unknown_members, "heartbeat_errors": errors[0],
        "beats": len(lat),
        "beat_p50": lat[len(lat) // 2] if lat else float("nan"),
        "beat_p99": lat[int(len(lat) * 0.99)] if lat else float("nan"),
        "read_p50": statistics.median(read_times) if read_times else float("nan"),
        "max_gap": max(gaps) if gaps else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", default="mc,zk,etcd,redis")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--members-per-driver", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=1.0,
                        help="seconds added to every request (half each way)")
    parser.add_argument("--report-interval", type=float, default=5.0)
    parser.add_argument("--down-time", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=2.5,
                        help="client timeouts ([memcache]/[redis] socket_timeout, [etcd] timeout)")
    parser.add_argument("--zk-recv-timeout", type=int, default=4000)
    parser.add_argument("--read-every", type=float, default=1.0)
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# {args.members} members, +{args.latency:g}s per request, report_interval "
          f"{args.report_interval:g}s, service_down_time {args.down_time:g}s, "
          f"zk recv_timeout {args.zk_recv_timeout} ms, {args.minutes:g} min per driver")
    print(f"{'driver':7} {'ever DOWN':>9} {'reads':>6} {'UNKNOWN reads':>13} "
          f"{'hb errors':>9} {'beats':>8} {'beat p50':>9} {'beat p99':>9} {'max gap':>8} "
          f"{'read p50':>9}")
    for name in args.drivers.split(","):
        r = run(name, args)
        print(f"{r['driver']:7} {r['ever_down']:>9} {r['reads']:>6} {r['unknown_reads']:>13} "
              f"{r['heartbeat_errors']:>9} {r['beats']:>8} {r['beat_p50']:>8.3f}s "
              f"{r['beat_p99']:>8.3f}s {r['max_gap']:>7.2f}s {r['read_p50']:>8.3f}s", flush=True)


if __name__ == "__main__":
    main()
