"""``vigil status``: what the CLI talks to, and what it finds there.

Which API or database the other commands of this configuration use and why
(:mod:`vigil.cli.target`), whether a ``vigil up`` runs on its state directory (and its pid),
and the services summary read through that same target: the first command to run when the CLI
and the running system seem not to agree. An unreachable target is shown, not raised: the
status is still worth printing then, and the exit status (1) says the services could not be
read.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from oslo_config import cfg

from vigil import upstate
from vigil.cli.output import as_json, table
from vigil.cli.target import Target, add_api_options, database_url, resolve
from vigil.errors import VigilError


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("status", help="which API or database the CLI uses, whether vigil up "
                        "runs (its pid), and the services summary")
    st.add_argument("--format", choices=("table", "json"), default="table")
    add_api_options(st)
    st.set_defaults(func=run_status)


def up_line(state_path: str) -> dict[str, Any]:
    """The ``vigil up`` on ``state_path``: running (pid, endpoint) or not."""
    pid = upstate.holder(state_path)
    if pid is None:
        return {"running": False, "pid": None, "endpoint": None}
    run = upstate.running(state_path)
    return {"running": True, "pid": pid if pid > 0 else None,
            "endpoint": run.endpoint if run is not None else None,
            "mode": upstate.describe(run.mode) if run is not None else None}


def summary(target: Target, conf: cfg.ConfigOpts) -> dict[str, dict[str, int]]:
    """Services per binary, counted by state (up, down, unknown), through ``target``."""
    from vigil.registry import ServiceView

    views: list[ServiceView]
    if target.api is None:
        from vigil import launch

        registry = launch.registry_from(conf)
        try:
            views = registry.list()
        finally:
            registry.group.driver.close()
    else:
        from vigil.api.client import RegistryClient

        with RegistryClient(*target.api) as client:
            views = client.list()
    counts: dict[str, Counter[str]] = {}
    for v in views:
        counts.setdefault(v.record.binary, Counter())[v.state.value] += 1
    return {binary: dict(sorted(c.items())) for binary, c in sorted(counts.items())}


def run_status(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    target = resolve(args, conf)
    up = up_line(conf.state_path)
    error = None
    services: dict[str, dict[str, int]] = {}
    try:
        services = summary(target, conf)
    except VigilError as exc:
        error = str(exc)
    data: dict[str, Any] = {
        "target": "api" if target.api is not None else "database",
        "endpoint": target.endpoint, "why": target.why,
        "database": database_url(conf), "state_path": conf.state_path,
        "vigil_up": up, "services": services, "error": error,
    }
    if args.format == "json":
        print(as_json(data))
        return 1 if error else 0
    if up["running"]:
        up_text = f"running, pid {up['pid']}" + (
            f", API {up['endpoint']}" if up["endpoint"] else ", API not recorded yet") + (
            f", {up['mode']}" if up.get("mode") else "")
    else:
        up_text = "not running"
    rows: list[list[object]] = [
        ["Using", target.describe(conf)],
        ["Database (configured)", data["database"]],
        ["State path", conf.state_path],
        ["vigil up", up_text],
    ]
    if error:
        rows.append(["Services", f"unavailable: {error}"])
    else:
        rows += [[f"Services: {binary}", ", ".join(f"{n} {state}" for state, n in c.items())]
                 for binary, c in services.items()] or [["Services", "none registered"]]
    print(table(("Field", "Value"), rows))
    return 1 if error else 0
