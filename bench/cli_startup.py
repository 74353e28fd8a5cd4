"""Benchmark: the whole ``vigil service list`` process with 10,000 services (issue 12).

Seeds a fresh SQLite database (or ``--db URL``) with N services in one executemany INSERT, then
runs the real command as a child process ``--runs`` times (after one warm-up run) and prints the
wall time's p50/min/max, the way hyperfine would. Start-up dominates at this size, so the figure
is mostly imports: ``--importtime`` also prints the ten costliest top-level imports of one run
(``python -X importtime``).

Byte-code is cached under a temporary ``PYTHONPYCACHEPREFIX`` (and ``PYTHONDONTWRITEBYTECODE``
is cleared for the children): an installed Vigil has its ``.pyc`` files, and a run that compiles
every module each time measures the compiler, not the command.

``--src`` runs the command from another source tree (``--src /work/main/src``), so two
versions are compared in one run on the same database and the same load (their runs take
turns). Reproduce with::

    .venv/bin/python bench/cli_startup.py                          # table, 10,000 services
    .venv/bin/python bench/cli_startup.py --format json --runs 20
    .venv/bin/python bench/cli_startup.py --src /other/checkout/src --src src
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from api_services import seed  # noqa: E402  (one seeding for the API and CLI benchmarks)
from vigil import conf as vconf  # noqa: E402
from vigil import launch  # noqa: E402


def command(conf_path: Path, fmt: str) -> list[str]:
    return [sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf_path),
            "service", "list", "--format", fmt]


def child_env(src: str | None, pycache: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if src:
        env["PYTHONPATH"] = os.path.abspath(src)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs(cmd: list[str], envs: list[dict[str, str]], runs: int
              ) -> list[tuple[list[float], list[float]]]:
    """Wall and CPU (user + system) seconds of each run, per environment: on a shared machine
    the CPU time is the steadier figure, the wall time the one a user sees. The environments
    (one per ``--src``) take turns, run by run, so a change of the machine's load during the
    measurement falls on every version alike instead of on whichever ran then."""
    for env in envs:  # warm-up: .pyc files
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in envs]
    for _ in range(runs):
        for env, (walls, cpus) in zip(envs, out, strict=True):
            t0, c0 = time.perf_counter(), children_cpu()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            cpus.append(children_cpu() - c0)
    return out


def top_imports(cmd: list[str], env: dict[str, str], n: int = 10) -> list[tuple[float, str]]:
    """The ``n`` costliest top-level imports of one run, in ms (cumulative)."""
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    tops = [(int(m.group(1)) / 1000, m.group(2)) for m in
            re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S+)$", err, re.M)]
    return sorted(tops, reverse=True)[:n]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--format", default="table", choices=("table", "json", "value"))
    p.add_argument("--db", help="SQLAlchemy URL of an empty database (default: SQLite)")
    p.add_argument("--src", action="append", default=[],
                   help="source tree to run the command from (repeat to compare; default: "
                   "this interpreter's vigil)")
    p.add_argument("--importtime", action="store_true", help="also the costliest imports")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-cli-"))
    try:
        conf_path = tmp / "vigil.conf"
        text = f"[DEFAULT]\nstate_path = {tmp}\n"
        if args.db:
            text += f"[database]\nconnection = {args.db}\n"
        conf_path.write_text(text)
        conf = vconf.load(["--config-file", str(conf_path)], default_files=[])
        launch.engine_from(conf, sync=True).dispose()
        seed(conf.database.connection, args.services)
        cmd = command(conf_path, args.format)
        srcs: list[str | None] = list(args.src) or [None]
        envs = [child_env(src, tmp / "pycache") for src in srcs]
        for src, env, (wall_runs, cpu_runs) in zip(srcs, envs, time_runs(cmd, envs, args.runs),
                                                   strict=True):
            walls, cpus = sorted(wall_runs), sorted(cpu_runs)
            label = src or "vigil"
            print(f"{label}: `vigil service list --format {args.format}`, {args.services} "
                  f"services, {args.runs} runs: wall p50 {statistics.median(walls) * 1000:.0f} "
                  f"ms (min {walls[0] * 1000:.0f}, max {walls[-1] * 1000:.0f}); CPU p50 "
                  f"{statistics.median(cpus) * 1000:.0f} ms (min {cpus[0] * 1000:.0f})")
            if args.importtime:
                for ms, name in top_imports(cmd, env):
                    print(f"    {ms:7.1f} ms  import {name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("reproduce: .venv/bin/python bench/cli_startup.py " + " ".join(sys.argv[1:])
          + f"  (cpus: {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
