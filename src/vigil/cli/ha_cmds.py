"""``vigil recovery list/show``, ``vigil host evacuate`` and ``vigil monitor``'s siblings.

Thin: parsing and printing only. The views are :class:`vigil.ha.views.RecoveriesAPI` and
:class:`vigil.ha.hosts.HostsAPI`, which the REST API (``/v2.1/vigil/recoveries``,
``/v2.1/vigil/hosts``) uses too; through an API (:mod:`vigil.cli.target`) the commands call
their HTTP clients instead, behind the same Protocols (:mod:`vigil.cli.resources`).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

from oslo_config import cfg

from vigil.cli import resources
from vigil.cli.output import as_json, table
from vigil.cli.target import Target, add_api_options, resolve
from vigil.objects.ha import EvacuationStatus, Phase

LIST_COLUMNS = ("ID", "Host", "Trigger", "Phase", "Status", "Fence attempts", "Evacuations",
                "Note", "Created")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = sub.add_parser("recovery", help="host recoveries run by the HA monitor, and alerts")
    rsub = rec.add_subparsers(dest="recovery_cmd", required=True, metavar="COMMAND")
    ls = rsub.add_parser("list", help="recoveries (newest first) and open alerts")
    ls.add_argument("--open", dest="open_only", action="store_true",
                    help="only recoveries still in progress")
    ls.add_argument("--host", help="only recoveries of this host")
    ls.add_argument("--limit", type=int, default=50)
    sh = rsub.add_parser("show", help="one recovery with its timeline and evacuations")
    sh.add_argument("recovery", metavar="ID_OR_UUID")
    for p in (ls, sh):
        p.add_argument("--format", choices=("table", "json"), default="table")
        add_api_options(p)
    rec.set_defaults(func=run_recovery)

    host = sub.add_parser("host", help="host operations")
    hsub = host.add_subparsers(dest="host_cmd", required=True, metavar="COMMAND")
    ev = hsub.add_parser("evacuate", help="recover a dead host now: disable, fence, force "
                         "down, evacuate its instances (progress shown)")
    ev.add_argument("host")
    ev.add_argument("--timeout", type=float, default=600.0,
                    help="seconds to wait for the evacuations (default 600)")
    ev.add_argument("--no-wait", dest="wait", action="store_false",
                    help="request it and return at once")
    crash = hsub.add_parser("crash", help="vigil up's simulated hosts: pull the plug (the "
                            "host stops reporting and loses its instances; the HA monitor "
                            "recovers it)")
    crash.add_argument("host")
    kill_agent = hsub.add_parser("kill-agent", help="vigil up's simulated hosts: kill the "
                                 "host's compute agent alone (the host and its instances live "
                                 "on; its supervisor restarts the agent, nothing is fenced)")
    kill_agent.add_argument("host")
    revive = hsub.add_parser("revive", help="vigil up's simulated hosts: power a crashed or "
                             "fenced host on again (it reports again and is re-enabled)")
    revive.add_argument("host")
    hl = hsub.add_parser("list", help="compute hosts with their quarantine and maintenance")
    hs = hsub.add_parser("show", help="one compute host's quarantine and maintenance")
    hs.add_argument("host")
    mt = hsub.add_parser("maintenance", help="put a host in maintenance (the HA monitor does "
                         "not recover it) or take it out")
    mt.add_argument("host")
    onoff = mt.add_mutually_exclusive_group(required=True)
    onoff.add_argument("--on", dest="maintenance", action="store_true", default=None)
    onoff.add_argument("--off", dest="maintenance", action="store_false")
    mt.add_argument("--reason", help="why (recorded, with --on)")
    rl = hsub.add_parser("release", help="end a host's quarantine before the HA monitor does "
                         "(it may start instances again; nothing more is evacuated from it)")
    rl.add_argument("host")
    rl.add_argument("--reason", required=True, help="why (recorded in the recovery timeline)")
    for p in (hl, hs, mt, rl):
        p.add_argument("--format", choices=("table", "json"), default="table")
    for p in (ev, crash, kill_agent, revive, hl, hs, mt, rl):
        add_api_options(p)
    host.set_defaults(func=run_host)


HOST_COLUMNS = ("Host", "Quarantined", "Acknowledged", "Maintenance", "Reason", "Recovery")


def local_actor() -> str:
    """Who acts from this terminal, as recorded (no token: the local user)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (vigil CLI)"


def _host_row(h: dict[str, Any]) -> list[object]:
    reason = h["quarantine_reason"] if h["quarantined"] else h["maintenance_reason"]
    rec = (f"{h['open_recovery_id']} ({h['open_recovery_phase']})"
           if h["open_recovery_id"] is not None else "")
    return [h["host"], h["quarantined"], h["quarantine_acknowledged"], h["maintenance"],
            reason or "", rec]


def run_host_facts(args: argparse.Namespace, conf: cfg.ConfigOpts, target: Target) -> int:
    """``vigil host list|show|maintenance|release``."""
    with resources.hosts(target, conf) as api:
        return _host_facts(args, api)


def _host_facts(args: argparse.Namespace, api: resources.Hosts) -> int:
    if args.host_cmd == "list":
        hosts = api.list()
        print(as_json(hosts) if args.format == "json"
              else table(HOST_COLUMNS, [_host_row(h) for h in hosts]))
        return 0
    if args.host_cmd == "show":
        h = api.get(args.host)
    elif args.host_cmd == "maintenance":
        h = api.set_maintenance(args.host, args.maintenance, reason=args.reason,
                                actor=local_actor())
    else:
        h = api.release(args.host, reason=args.reason, actor=local_actor())
    print(as_json(h) if args.format == "json"
          else table(("Field", "Value"), [[k, v] for k, v in h.items()]))
    return 0


def _note(r: dict[str, Any]) -> str:
    text = r.get("last_error") or r.get("held_reason") or ""
    return text if len(text) <= 60 else text[:57] + "..."


def _evacs(r: dict[str, Any]) -> str:
    by = r["evacuations_by_status"]
    retry, failed = by.get(EvacuationStatus.RETRY), by.get(EvacuationStatus.FAILED)
    return f"{by.get(EvacuationStatus.DONE, 0)}/{r['evacuations_total']}" + (
        f" ({retry} retrying)" if retry else "") + (f" ({failed} failed)" if failed else "")


def run_recovery(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.ha.views import parse_recovery_ident

    ident = parse_recovery_ident(args.recovery) if args.recovery_cmd == "show" else None
    with resources.recoveries(resolve(args, conf), conf) as api:
        return _recovery(args, api, ident)


def _recovery(args: argparse.Namespace, api: resources.Recoveries, ident: int | str | None
              ) -> int:
    if args.recovery_cmd == "list":
        recs = api.list_recoveries(open_only=args.open_only, host=args.host, limit=args.limit)
        alerts = api.alerts()
        if args.format == "json":
            print(as_json({"recoveries": recs, "alerts": alerts, "leader": api.leader()}))
            return 0
        for a in alerts:
            print(f"ALERT [{a['kind']}] since {a['raised_at']}: {a['message']}")
        print(table(LIST_COLUMNS, [
            [r["id"], r["host"], r["trigger"], r["phase"], r["status"], r["fence_attempts"],
             _evacs(r), _note(r), r["created_at"]] for r in recs]))
        leader = api.leader()
        print(f"monitor leader: {leader['holder']} (epoch {leader['epoch']})" if leader
              else "monitor leader: none")
        return 0
    assert ident is not None
    data = api.get(ident)
    if args.format == "json":
        print(as_json(data))
        return 0
    skip = {"events", "evacuations", "evacuations_by_status"}
    print(table(("Field", "Value"), [[k, v] for k, v in data.items() if k not in skip]))
    print("Timeline:")
    print(table(("Time", "Event", "Instance", "Detail", "Epoch"), [
        [e["created_at"], e["kind"], e["instance_uuid"], e["detail"], e["epoch"]]
        for e in data["events"]]))
    if data["evacuations"]:
        print("Evacuations:")
        print(table(("Instance", "Status", "Attempts", "Target", "Detail"), [
            [e["instance_uuid"], e["status"], e["attempts"], e["target_host"], e["detail"]]
            for e in data["evacuations"]]))
    return 0


def progress_line(rec: dict[str, Any], width: int = 30) -> str:
    """``[#########.....] 3/10 evacuated  phase forced_down``: plain text, one line."""
    total = rec["evacuations_total"]
    by = rec["evacuations_by_status"]
    finished = sum(by.get(status, 0) for status in EvacuationStatus if status.finished)
    filled = int(width * finished / total) if total else (
        width if Phase(rec["phase"]).reached(Phase.EVACUATED) else 0)
    note = _note(rec)
    done = by.get(EvacuationStatus.DONE, 0)
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} evacuated"
            f"  phase {rec['phase']}" + (f"  ({note})" if note else ""))


def run_power(args: argparse.Namespace, conf: cfg.ConfigOpts, target: Target) -> int:
    """``vigil host crash|revive|kill-agent``: the simulated hosts' power and agent-kill marks
    (vigil up). Through an API, the API's ``vigil up`` writes them (its host actions); on the
    database, they are written here, in ``[ha] simulated_power_dir``, which the ``vigil up``
    of the same configuration watches."""
    from vigil.errors import NotFound
    from vigil.ha.fence.simulated import SIMULATIONS, simulate

    try:
        if target.api is not None:
            from vigil.api.ha_client import HostsClient

            with HostsClient(*target.api) as client:
                client.simulate(args.host, args.host_cmd)
            print(SIMULATIONS[args.host_cmd].format(host=args.host))
            return 0
        with resources.hosts(target, conf) as hosts:
            hosts.get(args.host)
    except NotFound:
        print(f"vigil: error: no compute service on host {args.host!r}", file=sys.stderr)
        return 2
    print(simulate(conf.ha.simulated_power_dir, args.host, args.host_cmd))
    return 0


def run_host(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    target = resolve(args, conf)
    if args.host_cmd in ("crash", "revive", "kill-agent"):
        return run_power(args, conf, target)
    if args.host_cmd in ("list", "show", "maintenance", "release"):
        return run_host_facts(args, conf, target)
    if target.api is not None:
        with resources.recoveries(target, conf) as remote:
            asked = remote.evacuate_host(args.host, actor=local_actor())
            print(f"recovery {asked['id']} ({asked['uuid']}) of {args.host}: "
                  f"{asked['phase']}", flush=True)
            if not args.wait:
                return 0
            if remote.leader() is None:
                print("no HA monitor leads: the recovery waits for one (vigil monitor)",
                      flush=True)
            return wait_recovery(remote, asked["id"], args.timeout)
    from vigil import launch
    from vigil.ha.election import lease_session_limits
    from vigil.ha.views import RecoveriesAPI
    from vigil.launch.monitor import monitor_from, scheduler_waker

    # This command may run a monitor (below): its sessions get the monitor's server-side
    # limits, so a cut-off command cannot hold the lease row (vigil.ha.election).
    engine = launch.engine_from(conf, limits=lease_session_limits(conf.ha.lease_ttl))
    group = launch.group_from(conf, engine)
    api = RecoveriesAPI(engine, group)
    rec = api.request_host_evacuation(args.host, actor=local_actor())
    print(f"recovery {rec.id} ({rec.uuid}) of {args.host}: {rec.phase}", flush=True)
    if not args.wait:
        group.driver.close()
        return 0
    stop = threading.Event()
    thread: threading.Thread | None = None
    close = None
    if api.leader() is None:
        # No monitor leads: run one here, for this host only, until its instances are moved.
        wake, close = scheduler_waker(conf)
        monitor = monitor_from(conf, engine, group, dry_run=False, wake_scheduler=wake,
                               only_hosts=frozenset({args.host}))
        thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
        thread.start()
        print("no HA monitor leads: running the recovery from this command", flush=True)
    try:
        return wait_recovery(api, rec.id, args.timeout)
    finally:
        stop.set()
        if thread is not None:
            thread.join(15)
        if close is not None:
            close()
        group.driver.close()


def wait_recovery(api: resources.Recoveries, rec_id: int, timeout: float) -> int:
    """Print the recovery's progress until its instances are moved (0), one failed (1), or
    ``timeout`` seconds passed (1: it goes on without us)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        data = api.get(rec_id)
        line = progress_line(data)
        if line != last:
            print(line, flush=True)
            last = line
        if Phase(data["phase"]).reached(Phase.EVACUATED) or not data["open"]:
            failed = data["evacuations_by_status"].get(EvacuationStatus.FAILED, 0)
            print(f"recovery {rec_id}: {data['status']} ({data['phase']})"
                  + (f", {failed} evacuation(s) failed" if failed else ""))
            return 1 if failed else 0
        if time.monotonic() > deadline:
            print(f"vigil: recovery {rec_id} still {data['phase']} after {timeout:g} "
                  "s; it goes on (vigil recovery show)", file=sys.stderr)
            return 1
        time.sleep(0.5)
