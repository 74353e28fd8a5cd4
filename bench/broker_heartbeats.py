"""Heartbeats through RabbitMQ to conductor processes: how many reports a second they take.

The question (issue 14): can 100,000 services at report_interval 10 s -- 10,000 reports a
second -- go through the broker and the conductors into PostgreSQL on this machine, and how
does it grow with 2 and 3 conductors?

How it measures, for each number of conductors N:
  1. N ``vigil conductor`` processes on a private RabbitMQ vhost and a fresh PostgreSQL
     database holding --services service rows; wait until the topic queue has N consumers.
  2. SIGSTOP them, and publish --reports ``report_state`` calls onto the conductor topic, in
     oslo.messaging's own wire format (call messages, with a reply queue, as agents send
     them), one per service: one report_interval of the whole fleet, queued. Publishing is
     done while the conductors are stopped so that the load generator does not share the two
     cores with them while they are timed.
  3. SIGCONT them all and time until every report is *written*: the services' summed
     ``report_count`` (one per report: the reports carry distinct ids, so the coalescer
     merges none) reaches the number published. Reports/second = reports / that time.
     With --reports equal to --services, "drain time < report_interval" is the target met.
  --profile: py-spy records the first conductor while it drains (top functions printed).

The consumption lease (vigil.conductor.consumption) would stop a conductor frozen by SIGSTOP
for longer than ``stop_consuming_after``: the bench sets service_down_time high enough that
the lease (stop_consuming_after = 60 s) outlasts the publishing.

    .venv/bin/python bench/broker_heartbeats.py                          # 1, 2, 3 conductors
    .venv/bin/python bench/broker_heartbeats.py --conductors 1 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import kombu  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from oslo_messaging._drivers import common as rpc_common  # noqa: E402
from tests.conftest import (  # noqa: E402
    PG_ADMIN,
    RABBIT_URL,
    _create_database,
    _drop_database,
    private_vhost,
    write_config,
)

from vigil.db import migration  # noqa: E402
from vigil.db.engine import make_engine  # noqa: E402
from vigil.rpc import CONDUCTOR_TOPIC  # noqa: E402

VIGIL = [sys.executable, "-m", "vigil.cli.main"]
PY_SPY = os.environ.get("PY_SPY", "/tmp/pyspy-venv/bin/py-spy")


def populate(engine: sa.engine.Engine, n: int) -> None:
    """n service rows, bulk-inserted (registration is not what is measured)."""
    services = sa.table("services", *(sa.column(c) for c in (
        "uuid", "host", "binary", "topic", "report_count", "disabled", "forced_down",
        "version", "created_at", "deleted")))
    with engine.begin() as conn:
        now = conn.execute(sa.text("SELECT now() at time zone 'utc'")).scalar_one()
        for start in range(0, n, 10_000):
            conn.execute(services.insert(), [
                dict(uuid=str(uuid.uuid4()), host=f"h{i}", binary="vigil-compute",
                     topic="compute", report_count=0, disabled=False, forced_down=False,
                     version=1, created_at=now, deleted=0)
                for i in range(start, min(n, start + 10_000))])


def written(engine: sa.engine.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT coalesce(sum(report_count), 0) FROM services WHERE \"binary\" = "
            "'vigil-compute'")).scalar_one())


class Publisher:
    """report_state calls in oslo.messaging's wire format, published with kombu directly
    (oslo's client would spend ~10x the CPU per message: connection pool, reply waiter)."""

    def __init__(self, url: str, exchange: str) -> None:
        self.conn = kombu.Connection(url.replace("rabbit://", "amqp://"))
        self.channel = self.conn.channel()
        # The reply queue the conductors answer to: bounded to one message, so that answers
        # are accepted by the broker (a missing reply queue makes oslo retry for a minute)
        # and dropped at once.
        self.reply_q = f"reply_bench_{uuid.uuid4().hex[:8]}"
        kombu.Queue(self.reply_q, exchange=kombu.Exchange("", type="direct"),
                    routing_key=self.reply_q, auto_delete=True,
                    queue_arguments={"x-max-length": 1})(self.channel).declare()
        self.exchange = kombu.Exchange(exchange, type="topic", durable=False,
                                       auto_delete=False)
        self.producer = kombu.Producer(self.channel, exchange=self.exchange,
                                       routing_key=CONDUCTOR_TOPIC)

    def publish(self, service_ids: range, mode: str, spread: float = 0.0) -> float:
        """Publish one report per id: ``call`` as agents send them (the conductor answers
        each), or ``cast`` (no answer: what one round trip less would cost). ``spread``:
        pace them evenly over that many seconds (a fleet's reports over one interval)."""
        started = time.perf_counter()
        step = spread / max(len(service_ids), 1)
        for k, sid in enumerate(service_ids):
            if spread and k % 50 == 0:
                ahead = started + k * step - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            msg_id = uuid.uuid4().hex
            msg: dict[str, Any] = {"method": "report_state", "namespace": None,
                                   "version": "1.0", "args": {"service_id": sid},
                                   "_unique_id": msg_id}
            if mode == "call":
                msg.update(_msg_id=msg_id, _reply_q=self.reply_q, _timeout=None)
            self.producer.publish(rpc_common.serialize_msg(msg), serializer="json")
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.release()


def consumers(url: str, queue: str) -> int:
    with kombu.Connection(url.replace("rabbit://", "amqp://")) as conn:
        try:
            _, _, count = conn.default_channel.queue_declare(queue, passive=True)
        except Exception:  # not declared yet
            return 0
        return int(count)


def start_conductors(n: int, conf_path: Path, logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = (logs / f"conductor-{n}-{i}.log").open("ab")
        procs.append(subprocess.Popen(
            [*VIGIL, "--config-file", str(conf_path), "conductor"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=log, stderr=subprocess.STDOUT))
    return procs


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone (a short-lived PostgreSQL backend)
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pids_of(user: str, name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-u", user, name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def profile_top(path: Path, limit: int = 25) -> list[tuple[str, float]]:
    """Inclusive share of the samples (GIL held) of the hottest functions, from py-spy's raw
    (collapsed stacks) output: where the conductor's CPU goes, stage by stage."""
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        for frame in set(stack.split(";")):
            if "threading.py" not in frame and "(<frozen" not in frame:
                incl[frame] += int(count)
        total += int(count)
    return [(f, 100.0 * c / max(total, 1)) for f, c in incl.most_common(limit)]


def conductor_confs(n: int, args: argparse.Namespace, url: str, exchange: str, db_url: str,
                    workdir: Path, *, down_time: float, stop_after: float | None) -> list[Path]:
    confs = []
    for i in range(n):
        conductor: dict[str, Any] = {"batch_size": args.batch_size,
                                     "coalesce_interval": args.coalesce_interval}
        if stop_after is not None:
            conductor["stop_consuming_after"] = stop_after
        confs.append(write_config(workdir / f"c{n}-{i}-{uuid.uuid4().hex[:4]}.conf", {
            "DEFAULT": {"transport_url": url, "control_exchange": exchange, "host": f"c{i}",
                        "report_interval": 10, "service_down_time": down_time,
                        "state_path": str(workdir)},
            "database": {"connection": db_url},
            "conductor": conductor,
            "oslo_messaging_rabbit": dict(o.split("=", 1) for o in args.rabbit_opt),
        }))
    return confs


def sustain(n: int, args: argparse.Namespace, url: str, db_url: str,
            workdir: Path) -> dict[str, Any]:
    """--sustain: the fleet reports at its real pace (every service once per 10 s, calls) for
    that many seconds while a reader takes the services' states every 2 s, as the API and
    the HA monitor do; every state but UP is counted (a false down, or an unknown)."""
    from vigil.objects.liveness import LivenessTiming, State
    from vigil.servicegroup.api import ServiceGroup
    from vigil.servicegroup.drivers.db import DbDriver

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM report_paths"))
    exchange = f"bench-{uuid.uuid4().hex[:8]}"
    confs = conductor_confs(n, args, url, exchange, db_url, workdir,
                            down_time=args.down_time, stop_after=None)
    procs = [start_conductors(1, c, workdir)[0] for c in confs]
    timing = LivenessTiming(report_interval=10, service_down_time=args.down_time,
                            coalesce_interval=args.coalesce_interval)
    group = ServiceGroup(DbDriver(timing), timing, engine=engine)
    worst: Counter[str] = Counter()
    reads: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while consumers(url, CONDUCTOR_TOPIC) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{n} conductors did not all consume in time")
            time.sleep(0.2)
        with engine.begin() as conn:  # every service just reported: from now, on its own
            conn.execute(sa.text("UPDATE services SET report_count = 0, "
                                 "last_seen_up = now() at time zone 'utc'"))
        pub = Publisher(url, exchange)
        ids = range(1, args.services + 1)
        started = time.monotonic()
        stop_at = started + args.sustain
        done = threading.Event()

        def read_loop() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                counts = Counter(m.state for m in group.members("compute"))
                reads.append(time.perf_counter() - t0)
                for state in (State.DOWN, State.UNKNOWN):
                    worst[state.value] = max(worst[state.value], counts.get(state, 0))
                done.wait(2.0)

        reader = threading.Thread(target=read_loop, daemon=True)
        reader.start()
        cpu_pids = [p.pid for p in procs]
        cpu0 = cpu_seconds(cpu_pids)
        while time.monotonic() < stop_at:
            pub.publish(ids, "call", spread=10.0)
        done.set()
        reader.join(30)
        cpu = cpu_seconds(cpu_pids) - cpu0
        elapsed = time.monotonic() - started
        backlog = queue_depth(url, CONDUCTOR_TOPIC)
        pub.close()
        return {"conductors": n, "services": args.services, "interval_s": 10,
                "reports_per_s": round(args.services / 10), "seconds": round(elapsed),
                "down_time_s": args.down_time, "max_down": worst["down"],
                "max_unknown": worst["unknown"], "backlog_at_end": backlog,
                "conductor_cpu_share": round(cpu / elapsed, 2),
                "read_s_median": round(sorted(reads)[len(reads) // 2], 3) if reads else None,
                "load_avg_1m": round(os.getloadavg()[0], 1)}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()


def queue_depth(url: str, queue: str) -> int:
    """Messages ready in the queue (not those already pushed to a consumer)."""
    with kombu.Connection(url.replace("rabbit://", "amqp://")) as conn:
        _, count, _ = conn.default_channel.queue_declare(queue, passive=True)
        return int(count)


def run(n: int, mode: str, args: argparse.Namespace, url: str, db_url: str,
        workdir: Path) -> dict[str, Any]:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE services SET report_count = 0, last_seen_up = NULL"))
        conn.execute(sa.text("DELETE FROM report_paths"))
    exchange = f"bench-{uuid.uuid4().hex[:8]}"
    confs = conductor_confs(n, args, url, exchange, db_url, workdir, down_time=200,
                            stop_after=60)
    procs = [start_conductors(1, c, workdir)[0] for c in confs]
    try:
        deadline = time.monotonic() + 120
        while consumers(url, CONDUCTOR_TOPIC) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{n} conductors did not all consume in time")
            time.sleep(0.2)
        for p in procs:
            os.kill(p.pid, signal.SIGSTOP)
        pub = Publisher(url, exchange)
        base = written(engine)
        ids = range(1, args.reports + 1)
        pub_seconds = pub.publish(ids, mode)
        spy = None
        if args.profile:
            raw = workdir / f"profile-{n}.txt"
            spy = subprocess.Popen([PY_SPY, "record", "--pid", str(procs[0].pid), "--format",
                                    "raw", "--rate", "200", "--output", str(raw),
                                    "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        # CPU used while draining, by the conductors, the broker and the database: the machine
        # is shared, so wall time alone says little; reports per CPU-second does not depend
        # on what else runs.
        groups = {"conductors": [p.pid for p in procs],
                  "rabbitmq": pids_of("rabbitmq", "beam.smp"),
                  "postgres": pids_of("postgres", "postgres")}
        cpu_before = {k: cpu_seconds(v) for k, v in groups.items()}
        started = time.perf_counter()
        for p in procs:
            os.kill(p.pid, signal.SIGCONT)
        deadline = time.monotonic() + args.timeout
        done = written(engine) - base
        while done < args.reports and time.monotonic() < deadline:
            time.sleep(0.05)
            done = written(engine) - base
        elapsed = time.perf_counter() - started
        cpu = {k: cpu_seconds(groups[k]) - cpu_before[k] for k in groups}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        pub.close()
        result = {"conductors": n, "mode": mode, "reports": args.reports, "written": done,
                  "seconds": round(elapsed, 2), "reports_per_s": round(done / elapsed),
                  "publish_per_s": round(args.reports / pub_seconds),
                  "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
                  # What one CPU-second of each buys: the capacity on dedicated cores.
                  "reports_per_cpu_s": {k: round(done / v) if v > 0.05 else None
                                        for k, v in cpu.items()},
                  "load_avg_1m": round(os.getloadavg()[0], 1)}
        if spy is not None:
            result["profile"] = profile_top(workdir / f"profile-{n}.txt")
        return result
    finally:
        for p in procs:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conductors", default="1,2,3")
    ap.add_argument("--services", type=int, default=100_000)
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--coalesce-interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--mode", default="call",
                    help="call (as agents report), cast (no answer), or both: call,cast")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sustain", type=float, default=0.0, metavar="SECONDS",
                    help="instead of the drain: --services report every 10 s for SECONDS, "
                    "states read every 2 s; counts every state but up")
    ap.add_argument("--down-time", type=float, default=30.0,
                    help="service_down_time of the --sustain run")
    ap.add_argument("--rabbit-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="an [oslo_messaging_rabbit] option of the conductors (repeatable)")
    args = ap.parse_args()
    if not args.sustain and args.reports > args.services:
        raise SystemExit("--reports must not exceed --services (one report per service)")
    print("command: .venv/bin/python bench/broker_heartbeats.py " + " ".join(sys.argv[1:]))
    print(f"cores: {os.cpu_count()}; services: {args.services:,}; reports per run: "
          f"{args.reports:,} (one per service); target 10,000 reports/s")
    name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
    db_url = _create_database(PG_ADMIN, name)
    try:
        engine = make_engine(db_url)
        migration.sync(engine)
        populate(engine, args.services)
        engine.dispose()
        with private_vhost(RABBIT_URL, prefix="vigil-bench") as url, \
                tempfile.TemporaryDirectory() as tmp:
            if args.sustain:
                for n in (int(x) for x in args.conductors.split(",")):
                    print(json.dumps(sustain(n, args, url, db_url, Path(tmp))), flush=True)
                return
            for mode in args.mode.split(","):
                for n in (int(x) for x in args.conductors.split(",")):
                    result = run(n, mode, args, url, db_url, Path(tmp))
                    profile = result.pop("profile", None)
                    print(json.dumps(result), flush=True)
                    if profile:
                        print("    conductor CPU (py-spy --gil), inclusive share by function:")
                    for fn, share in profile or []:
                        print(f"    {share:5.1f}%  {fn}")
    finally:
        _drop_database(PG_ADMIN, name)


if __name__ == "__main__":
    main()
