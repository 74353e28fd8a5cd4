"""Benchmark: `service list` and one heartbeat round with 10,000 services.

(a) `service list` end to end (snapshot + batch liveness + table rendering, in-process) and the
    number of SQL statements it issues; also the whole `vigil service list` command as a
    subprocess (Python start-up included).
(b) one full heartbeat round for every service through the conductor: each service's
    report_state RPC over the in-process fake:// transport, then the coalesced flush; SQL
    statements and wall time, next to Nova's way (one UPDATE per service) on the same database.

Run:  .venv/bin/python bench/services_bench.py [--services 10000] [--db URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from vigil import conf as vconf
from vigil import launch, rpc
from vigil.cli import service_cmds
from vigil.conductor.manager import Conductor
from vigil.db import migration
from vigil.db.engine import make_engine
from vigil.db.models import Service
from vigil.db.types import utcnow
from vigil.launch.settings import conductor_settings


class Counter:
    def __init__(self, engine: sa.engine.Engine) -> None:
        self.n = 0
        sa.event.listen(engine, "before_cursor_execute", self._hit)

    def _hit(self, *args: object) -> None:
        self.n += 1


def seed(engine: sa.engine.Engine, n: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [dict(uuid=str(uuid.uuid4()), host=f"compute-{i:05d}", binary="vigil-compute",
                 topic="compute", report_count=0, disabled=False, forced_down=False, version=1,
                 created_at=now, deleted=0) for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.delete(Service))
        conn.execute(sa.insert(Service), rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--db", help="SQLAlchemy URL (default: a fresh SQLite file)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    url = args.db or f"sqlite:///{tmp}/bench.sqlite"
    cfg_path = tmp / "bench.conf"
    cfg_path.write_text(f"[DEFAULT]\nstate_path = {tmp}\nhost = bench\n"
                        f"[database]\nconnection = {url}\n")
    conf = vconf.load(["--config-file", str(cfg_path)], default_files=[])
    engine = make_engine(url)
    migration.sync(engine)
    seed(engine, args.services)
    counter = Counter(engine)
    registry = launch.registry_from(conf)
    registry.engine = engine
    registry.group.engine = engine

    # (a) list, in-process. Wall time and this process's CPU time (the machine is shared; CPU
    # time is what the list itself costs), split into read, liveness and rendering.
    from vigil.db import services as services_db

    times, cpus, stmts = [], [], []
    split: dict[str, list[float]] = {"snapshot": [], "states": [], "render": []}
    for _ in range(args.repeat):
        before = counter.n
        t0, c0 = time.perf_counter(), time.process_time()
        snap = services_db.snapshot(engine)
        c1 = time.process_time()
        states = registry.group.states(snap)
        c2 = time.process_time()
        text = service_cmds.render(registry._views(snap), "table")
        c3 = time.process_time()
        times.append(time.perf_counter() - t0)
        cpus.append(c3 - c0)
        split["snapshot"].append(c1 - c0)
        split["states"].append(c2 - c1)
        split["render"].append(c3 - c2)
        stmts.append(counter.n - before)
    assert len(states) == args.services and text
    ms = lambda xs: f"{statistics.median(xs) * 1000:.0f}"  # noqa: E731
    print(f"(a) service list, {args.services} services on {engine.dialect.name}: "
          f"wall median {ms(times)} ms (min {min(times) * 1000:.0f}), CPU median {ms(cpus)} ms "
          f"(min {min(cpus) * 1000:.0f}) = read {ms(split['snapshot'])} + liveness "
          f"{ms(split['states'])} + table {ms(split['render'])}; {stmts[-1]} SQL statements")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vigil.cli.main", "--config-file", str(cfg_path),
                          "service", "list", "--format", "json"], capture_output=True, check=True)
    cmd_s = time.perf_counter() - t0
    print(f"    whole `vigil service list --format json` command (Python start-up included): "
          f"{cmd_s:.2f} s, {len(out.stdout) // 1024} KiB of output")

    # (b) one heartbeat round through the conductor (fake:// RPC + coalesced flush)
    ids = [r[0] for r in engine.connect().execute(sa.select(Service.id)).all()]
    transport = rpc.get_transport(conf)
    conductor = Conductor(conductor_settings(conf), engine, transport,
                          group_factory=lambda: launch.group_from(conf, engine))
    conductor._servers.start()  # the RPC server only: flushes are driven by hand below
    client = rpc.ConductorAPI(transport, timeout=30)
    before = counter.n
    t0 = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        verdicts = list(pool.map(client.report_state, ids))
    rpc_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    written = conductor.coalescer.flush()
    flush_s = time.perf_counter() - t1
    round_stmts = counter.n - before
    conductor._servers.stop()
    conductor._servers.wait()
    assert written == len(ids) and set(verdicts) == {"ok"}
    print(f"(b) one heartbeat round, {len(ids)} services through the conductor: "
          f"{rpc_s:.2f} s of RPC calls (fake:// transport, 32 threads), flush {flush_s * 1000:.0f}"
          f" ms, {round_stmts} SQL statements (batch_size {conf.conductor.batch_size})")

    # Nova's way on the same database, for the ratio: one UPDATE per service.
    before = counter.n
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for i in ids:
            conn.execute(sa.update(Service).where(Service.id == i).values(
                last_seen_up=utcnow(), report_count=Service.report_count + 1))
    per_row_s = time.perf_counter() - t0
    print(f"    Nova-style one UPDATE per service (single transaction, best case): "
          f"{per_row_s * 1000:.0f} ms, {counter.n - before} SQL statements; "
          f"coalesced flush is {per_row_s / flush_s:.1f}x faster")
    print(f"reproduce: .venv/bin/python bench/services_bench.py --services {args.services}"
          + (f" --db {args.db}" if args.db else ""))
    os.environ.pop("VIGIL_BENCH", None)


if __name__ == "__main__":
    main()
