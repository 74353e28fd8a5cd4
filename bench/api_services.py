"""Benchmark: GET /v2.1/os-services with 10,000 services, through a real ``vigil api`` process.

Seeds the services straight into a fresh SQLite database (one ``INSERT ... executemany``),
starts ``vigil api`` (uvicorn, one process) on a free 127.0.0.1 port with token-file auth, then
drives it with a bounded load generator and prints requests/s and latency percentiles:

* ``--tool python`` (default): N threads, each with its own httpx client, until ``--requests``
  are done or ``--duration`` seconds have passed, whichever comes first;
* ``--tool wrk``: wrk with ``--latency`` for ``--duration`` seconds (``apt-get install -y wrk``).

``--src`` starts the server from another source tree (``--src /other/checkout/src``); give it
twice to compare two versions in one run, on the same database and the same machine load (the
figures to compare are those of one run). Only 127.0.0.1 is ever targeted. Reproduce with::

    .venv/bin/python bench/api_services.py                      # python load generator
    .venv/bin/python bench/api_services.py --tool wrk           # wrk
    .venv/bin/python bench/api_services.py --services 1000 --version 2.53
    .venv/bin/python bench/api_services.py --threads 1 --src /work/main/src --src src
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

from vigil import conf as vconf
from vigil import launch

TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, n: int) -> None:
    """n compute services that reported just now, in one executemany INSERT."""
    engine = sa.create_engine(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [{"uuid": str(uuid.uuid4()), "host": f"compute-{i:05d}", "binary": "vigil-compute",
             "topic": "compute", "report_count": 1, "disabled": i % 10 == 0,
             "disabled_reason": "maintenance" if i % 10 == 0 else None,
             "forced_down": False, "version": 1, "last_seen_up": now, "created_at": now,
             "updated_at": now, "deleted": 0} for i in range(n)]
    cols = list(rows[0])
    stmt = sa.text(f"INSERT INTO services ({', '.join(cols)}) VALUES "
                   f"({', '.join(':' + c for c in cols)})")
    with engine.begin() as conn:
        conn.execute(stmt, rows)
    engine.dispose()


def refresh(url: str, batch: int = 500) -> None:
    """Every heartbeat stamped again, as the conductor stamps them: one clock reading per batch
    of ``batch`` services (its coalesced UPDATE), so a list holds len/batch distinct times. Run
    before each server of a comparison, so each lists the same states (a service seeded a
    minute earlier would read ``down`` and print two more bytes)."""
    engine = sa.create_engine(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        top = conn.execute(sa.text("SELECT MAX(id) FROM services")).scalar() or 0
        conn.execute(sa.text("UPDATE services SET last_seen_up = :at, updated_at = :at "
                             "WHERE id > :low AND id <= :high"),
                     [{"at": now - dt.timedelta(milliseconds=k), "low": low, "high": low + batch}
                      for k, low in enumerate(range(0, top, batch))])
    engine.dispose()


def python_load(url: str, headers: dict[str, str], threads: int, requests: int,
                duration: float) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    remaining = [requests]
    errors = [0]

    def worker() -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            while time.monotonic() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                r = client.get(url)
                elapsed = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 \
        else latencies * 99
    return {"requests": len(latencies), "errors": errors[0], "seconds": wall,
            "rps": len(latencies) / wall, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
            "max_ms": latencies[-1] * 1000}


def wrk_load(url: str, headers: dict[str, str], threads: int, duration: float
             ) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or use --tool python)")
    cmd = [wrk, "--latency", "-t", str(threads), "-c", str(threads), "-d", f"{int(duration)}s",
           "--timeout", "60s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    print(out)

    def ms(text: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
        assert m, text
        value = float(m.group(1))
        return {"us": value / 1000, "ms": value, "s": value * 1000,
                "m": value * 60_000}[m.group(2)]

    def percentile(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+(\S+)\s*$", out, re.M)
        assert m, label
        return ms(m.group(1))

    # "    Latency   Avg   Stdev   Max   +/- Stdev" (the thread stats table)
    stats = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    assert stats

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps and done
    return {"requests": float(done.group(1)), "errors": float(non2xx.group(1)) if non2xx else 0,
            "seconds": duration, "rps": float(rps.group(1)), "p50_ms": percentile("50%"),
            "p99_ms": percentile("99%"), "max_ms": ms(stats.group(3))}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc): what the server spent,
    whatever else the machine runs at the same time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_server(args: argparse.Namespace, conf_path: Path, port: int, src: str | None,
               seeded: float, url: str) -> None:
    """Start ``vigil api`` (from ``src`` if given), load it, print its figures, stop it."""
    refresh(url)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.path.abspath(src)
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                             str(conf_path), "api"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{root}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("vigil api did not start")
            time.sleep(0.1)
        headers = {"X-Auth-Token": TOKEN, "OpenStack-API-Version": f"compute {args.version}"}
        url = f"{root}/v2.1/os-services"
        first = httpx.get(url, headers=headers, timeout=120)
        assert first.status_code == 200, first.text
        count = len(first.json()["services"])
        assert count == args.services, count
        cpu0 = cpu_seconds(proc.pid)
        if args.tool == "wrk":
            result = wrk_load(url, headers, args.threads, args.duration)
        else:
            result = python_load(url, headers, args.threads, args.requests, args.duration)
        cpu_ms = (cpu_seconds(proc.pid) - cpu0) * 1000 / max(1, result["requests"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    print(f"[{src or 'vigil'}] GET /v2.1/os-services (microversion {args.version}), {count} "
          f"services, {len(first.content) / 1e6:.2f} MB per response; seeded in {seeded:.2f}s")
    print(f"load: {args.tool}, {args.threads} concurrent clients, {int(result['requests'])} "
          f"requests in {result['seconds']:.1f}s, errors {int(result['errors'])}")
    print(f"requests/s: {result['rps']:.1f}   p50: {result['p50_ms']:.1f} ms   "
          f"p99: {result['p99_ms']:.1f} ms   max: {result['max_ms']:.1f} ms   "
          f"server CPU per request: {cpu_ms:.1f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--tool", choices=("python", "wrk"), default="python")
    p.add_argument("--threads", type=int, default=4, help="client threads (wrk: connections)")
    p.add_argument("--requests", type=int, default=400, help="python: stop after this many")
    p.add_argument("--duration", type=float, default=20.0, help="stop after this many seconds")
    p.add_argument("--version", default="2.1", help="microversion to request (2.1 or 2.53...)")
    p.add_argument("--src", action="append", default=[],
                   help="source tree to run the server from (repeat to compare in one run)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-api-"))
    port = free_port()
    (tmp / "tokens.json").write_text(json.dumps(
        {TOKEN: {"user_id": "admin", "project_id": "admin", "roles": ["admin"]}}))
    conf_path = tmp / "vigil.conf"
    conf_path.write_text(f"[DEFAULT]\nstate_path = {tmp}\n"
                         f"[api]\nport = {port}\ntoken_file = {tmp / 'tokens.json'}\n")
    conf = vconf.load(["--config-file", str(conf_path)], default_files=[])
    engine = launch.engine_from(conf, sync=True)
    engine.dispose()
    t0 = time.perf_counter()
    seed(conf.database.connection, args.services)
    seeded = time.perf_counter() - t0

    try:
        for src in args.src or [None]:
            run_server(args, conf_path, port, src, seeded, conf.database.connection)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("reproduce: .venv/bin/python bench/api_services.py " + " ".join(
        a for a in sys.argv[1:]) + f"  (cpus: {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
