"""Benchmark: the metadata API, one ``vigil metadata`` process (one uvicorn worker).

Seeds ``--instances`` instances (with user data and metadata) straight into a fresh SQLite
database, starts ``vigil metadata`` on a free 127.0.0.1 port, and drives it for ``--duration``
seconds with ``--connections`` keep-alive HTTP/1.1 connections from one asyncio loop in this
process (raw sockets: an HTTP client library would cost more CPU than the server being
measured). Each request is a signed GET of one of the paths an instance's boot reads
(``meta_data.json``, ``user_data``, EC2 keys) for a random instance, so most are served from
the cache after one read of the instance's stamp. Prints requests/s and latency percentiles;
every answer must be a 200, or the run fails. Only 127.0.0.1 is ever targeted. Reproduce::

    .venv/bin/python bench/metadata.py
    .venv/bin/python bench/metadata.py --instances 10000 --connections 8 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from vigil import conf as vconf
from vigil import launch
from vigil.metadata import identity

SECRET = "bench-secret"
PATHS = ("/openstack/latest/meta_data.json", "/openstack/latest/user_data",
         "/latest/meta-data/hostname", "/latest/meta-data/instance-id",
         "/openstack/latest/vendor_data2.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(conf_path: Path, n: int) -> list[str]:
    conf = vconf.load(["--config-file", str(conf_path)], default_files=[])
    engine = launch.engine_from(conf, sync=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    uuids = [str(uuid.uuid4()) for _ in range(n)]
    user_data = base64.b64encode(os.urandom(2048)).decode()
    rows = [{"uuid": u, "name": f"vm-{i}", "flavorid": "1", "flavor_name": "m1.tiny",
             "vcpus": 1, "memory_mb": 512, "root_gb": 1, "availability_zone": "nova",
             "host": "compute-1", "node": "compute-1", "vm_state": "active",
             "power_state": 1, "generation": 1, "evacuable": True, "created_at": now,
             "updated_at": now, "deleted": 0, "user_data": user_data,
             "meta": json.dumps({"role": "bench", "index": str(i)}), "project_id": "p1"}
            for i, u in enumerate(uuids)]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO instances (uuid, name, flavorid, flavor_name, vcpus, memory_mb, "
            "root_gb, availability_zone, host, node, vm_state, power_state, generation, "
            "evacuable, created_at, updated_at, deleted, user_data, meta, project_id) VALUES "
            "(:uuid, :name, :flavorid, :flavor_name, :vcpus, :memory_mb, :root_gb, "
            ":availability_zone, :host, :node, :vm_state, :power_state, :generation, "
            ":evacuable, :created_at, :updated_at, :deleted, :user_data, :meta, :project_id)"),
            rows)
    engine.dispose()
    return uuids


def request_bytes(port: int, uuid_: str, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Instance-ID: {uuid_}\r\n"
            f"X-Instance-ID-Signature: {identity.sign(SECRET, uuid_)}\r\n\r\n").encode()


async def connection(port: int, requests: list[bytes], until: float,
                     latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(random.choice(requests))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, uuids: list[str], connections: int, duration: float,
                warmup: float, mark: Callable[[], None]
                ) -> tuple[list[float], dict[int, int], float]:
    requests = [request_bytes(port, u, p) for u in uuids for p in PATHS]
    # Warm-up: every instance's documents built once (what a booted fleet looks like).
    await asyncio.gather(*(connection(port, requests, time.perf_counter() + warmup, [], {})
                           for _ in range(connections)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    mark()
    started = time.perf_counter()
    await asyncio.gather(*(connection(port, requests, started + duration, latencies, statuses)
                           for _ in range(connections)))
    elapsed = time.perf_counter() - started
    mark()
    return latencies, statuses, elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=3.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-metadata-") as tmp:
        port = free_port()
        conf_path = Path(tmp) / "vigil.conf"
        conf_path.write_text(
            f"[DEFAULT]\nstate_path = {tmp}\nmetadata_listen_port = {port}\n"
            f"[database]\nconnection = sqlite:///{tmp}/vigil.sqlite\n"
            f"[neutron]\nmetadata_proxy_shared_secret = {SECRET}\n")
        uuids = seed(conf_path, args.instances)
        log = open(Path(tmp) / "metadata.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                                 str(conf_path), "metadata"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        print((Path(tmp) / "metadata.log").read_text(), file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            cpu = [0.0]
            latencies, statuses, elapsed = asyncio.run(
                drive(port, uuids, args.connections, args.duration, args.warmup,
                      lambda: cpu.__setitem__(0, cpu_seconds(proc.pid) - cpu[0])))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()
    n = len(latencies)
    q = statistics.quantiles(latencies, n=100)
    # On a shared machine the wall-clock rate says how much CPU the server was given; the
    # rate per CPU second of the server says what one worker does with a core of its own.
    print(f"vigil metadata, 1 worker, {args.instances} instances, {args.connections} "
          f"connections, {elapsed:.1f} s: {n / elapsed:,.0f} requests/s, "
          f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms, statuses {statuses}; "
          f"server CPU {cpu[0]:.1f} s = {n / cpu[0]:,.0f} requests per CPU second")
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
