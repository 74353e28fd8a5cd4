"""``vigil server``, ``vigil flavor``, ``vigil hypervisor`` and ``vigil scheduler``.

Thin: parsing and printing only. The operations are :mod:`vigil.compute.servers`,
:mod:`vigil.compute.flavors` and :mod:`vigil.compute.hypervisors`, which the REST API calls too.

As ``vigil service``: through a Vigil API or against the database directly, as
:mod:`vigil.cli.target` decides (an explicit endpoint, a Keystone login, the running ``vigil
up``'s API, else the database; ``--direct`` forces the database). The clients of
:mod:`vigil.api.compute_client` have the same methods and return views that print the same.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from vigil.cli.output import as_json, table
from vigil.cli.service_cmds import api_target
from vigil.cli.target import add_api_options
from vigil.errors import InvalidInput

if TYPE_CHECKING:
    from vigil.api.compute_client import (
        FlavorsClient,
        HypervisorsClient,
        RemoteFlavor,
        ServersClient,
    )
    from vigil.compute.flavors import FlavorsAPI, FlavorView
    from vigil.compute.hypervisors import HypervisorsAPI
    from vigil.compute.servers import ServersAPI

SERVER_COLUMNS = ("ID", "Name", "Status", "Task State", "Power State", "Host", "Flavor")
FLAVOR_COLUMNS = ("ID", "Name", "RAM", "Disk", "VCPUs")
HYPERVISOR_COLUMNS = ("ID", "Hypervisor Hostname", "Hypervisor Type", "Host IP", "State",
                      "Status", "Host State", "Host Liveness")
HYPERVISOR_LONG = ("vCPUs Used", "vCPUs", "Memory MB Used", "Memory MB", "Running VMs")


def _fmt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_api_options(p)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    srv = sub.add_parser("server", help="boot, list, show, delete and evacuate instances")
    ssub = srv.add_subparsers(dest="server_cmd", required=True, metavar="COMMAND")
    cr = ssub.add_parser("create", help="boot an instance (the scheduler picks the host)")
    cr.add_argument("--flavor", required=True, help="flavor name or id")
    cr.add_argument("--name", required=True)
    cr.add_argument("--host", help="boot on this compute host (still filtered: up, enabled, "
                    "room)")
    cr.add_argument("--availability-zone", dest="zone", metavar="ZONE")
    cr.add_argument("--user-data", dest="user_data", metavar="FILE",
                    help="a file the instance reads back from the metadata API, byte for byte "
                    "(at most 49,149 bytes: 65,535 characters of base64)")
    cr.add_argument("--property", dest="properties", action="append", default=[],
                    metavar="KEY=VALUE", help="server metadata (repeatable)")
    cr.add_argument("--not-evacuable", dest="evacuable", action="store_false",
                    help="the HA monitor must not evacuate this instance")
    ls = ssub.add_parser("list", help="list instances")
    ls.add_argument("--host", help="only instances on this host")
    ls.add_argument("--name", help="only instances with this name")
    sh = ssub.add_parser("show", help="show one instance")
    sh.add_argument("server", metavar="ID_OR_NAME")
    rm = ssub.add_parser("delete", help="delete an instance")
    rm.add_argument("server", metavar="ID_OR_NAME")
    ev = ssub.add_parser("evacuate", help="rebuild an instance of a DOWN host on another host "
                         "(admin)")
    ev.add_argument("server", metavar="ID_OR_NAME")
    ev.add_argument("--host", help="target host (default: the scheduler's choice)")
    for p in (cr, ev):
        p.add_argument("--wait", action="store_true",
                       help="wait until the instance is ACTIVE or ERROR")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")
    for p in (cr, ls, sh, rm, ev):
        _fmt(p)
    srv.set_defaults(func=run_server)

    fl = sub.add_parser("flavor", help="instance sizes")
    fsub = fl.add_subparsers(dest="flavor_cmd", required=True, metavar="COMMAND")
    fc = fsub.add_parser("create", help="create a flavor")
    fc.add_argument("name")
    fc.add_argument("--vcpus", type=int, required=True)
    fc.add_argument("--ram", type=int, required=True, help="MB")
    fc.add_argument("--disk", type=int, default=0, help="GB (default 0)")
    fc.add_argument("--id", dest="flavorid", help="flavor id (default: a UUID)")
    fc.add_argument("--description")
    fls = fsub.add_parser("list", help="list flavors")
    fsh = fsub.add_parser("show", help="show a flavor")
    fsh.add_argument("flavor", metavar="ID_OR_NAME")
    frm = fsub.add_parser("delete", help="delete a flavor (instances keep their sizes)")
    frm.add_argument("flavor", metavar="ID_OR_NAME")
    for p in (fc, fls, fsh, frm):
        _fmt(p)
    fl.set_defaults(func=run_flavor)

    hv = sub.add_parser("hypervisor", help="compute nodes: inventory, usage and state")
    hsub = hv.add_subparsers(dest="hypervisor_cmd", required=True, metavar="COMMAND")
    hls = hsub.add_parser("list", help="list hypervisors")
    hls.add_argument("--matching", metavar="HOSTNAME",
                     help="only hypervisors whose hostname contains this")
    hls.add_argument("--long", action="store_true", help="add usage columns")
    hsh = hsub.add_parser("show", help="show a hypervisor")
    hsh.add_argument("hypervisor", metavar="ID_OR_HOSTNAME")
    hst = hsub.add_parser("stats", help="totals over the enabled services' hypervisors")
    for p in (hls, hsh, hst):
        _fmt(p)
    hv.set_defaults(func=run_hypervisor)

    sub.add_parser("scheduler", help="run the scheduler (places instances on hosts)"
                   ).set_defaults(func=run_scheduler)


def fields(data: dict[str, Any]) -> str:
    """A Field/Value table; nested values as JSON."""
    rows = [[k, json.dumps(v) if isinstance(v, dict | list) else v] for k, v in data.items()]
    return table(("Field", "Value"), rows)


def _boot_data(path: str | None, properties: list[str]
               ) -> tuple[str | None, dict[str, str] | None]:
    """``--user-data FILE`` as Nova's base64 text, ``--property K=V`` as metadata."""
    user_data = None
    if path is not None:
        try:
            with open(path, "rb") as f:
                user_data = base64.b64encode(f.read()).decode("ascii")
        except OSError as exc:
            raise InvalidInput(f"--user-data {path}: {exc.strerror}") from exc
    metadata: dict[str, str] = {}
    for item in properties:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--property {item!r}: expected KEY=VALUE")
        metadata[key] = value
    return user_data, metadata or None


def _print(fmt: str, data: list[dict[str, Any]] | dict[str, Any],
           columns: Sequence[str] = (), rows: list[list[Any]] | None = None) -> None:
    if fmt == "json":
        print(as_json(data))
    elif isinstance(data, dict):
        print(fields(data))
    else:
        print(table(columns, rows or []))


def run_server(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.compute.servers import POWER_STATES, Server, settled
    from vigil.launch import servers_from

    target = api_target(args, conf)
    api: ServersAPI | ServersClient
    if target is None:
        api = servers_from(conf)
    else:
        from vigil.api.compute_client import ServersClient

        api = ServersClient(*target)
    try:
        cmd = args.server_cmd
        view: Server
        if cmd == "list":
            dicts = [v.to_dict() for v in api.list(host=args.host, name=args.name)]
            _print(args.format, dicts, SERVER_COLUMNS, [
                [d["id"], d["name"], d["status"], d["OS-EXT-STS:task_state"],
                 POWER_STATES.get(d["OS-EXT-STS:power_state"], d["OS-EXT-STS:power_state"]),
                 d["OS-EXT-SRV-ATTR:host"], d["flavor"]["original_name"]]
                for d in dicts])
            return 0
        if cmd == "create":
            user_data, metadata = _boot_data(args.user_data, args.properties)
            view = api.create(name=args.name, flavor=args.flavor, host=args.host,
                              availability_zone=args.zone, evacuable=args.evacuable,
                              user_data=user_data, metadata=metadata)
        elif cmd == "show":
            view = api.get(args.server)
        elif cmd == "delete":
            view = api.delete(args.server)
        elif cmd == "evacuate":
            view = api.evacuate(args.server, host=args.host)
        else:
            raise AssertionError(cmd)
        if getattr(args, "wait", False):
            view = api.wait(view.uuid, settled, timeout=args.timeout)
        _print(args.format, view.to_dict())
        if getattr(args, "wait", False) and not settled(view):
            print(f"vigil: still {view.status} after {args.timeout:g} s")
            return 1
        return 1 if getattr(args, "wait", False) and view.status == "ERROR" else 0
    finally:
        api.close()


def run_flavor(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    target = api_target(args, conf)
    if target is None:
        from vigil import launch
        from vigil.compute.flavors import FlavorsAPI

        return _flavor(args, FlavorsAPI(launch.engine_from(conf)))
    from vigil.api.compute_client import FlavorsClient

    with FlavorsClient(*target) as client:
        return _flavor(args, client)


def _flavor(args: argparse.Namespace, api: FlavorsAPI | FlavorsClient) -> int:
    cmd = args.flavor_cmd
    view: FlavorView | RemoteFlavor
    if cmd == "list":
        dicts = [v.to_dict() for v in api.list()]
        _print(args.format, dicts, FLAVOR_COLUMNS, [
            [d["id"], d["name"], d["ram"], d["disk"], d["vcpus"]] for d in dicts])
        return 0
    if cmd == "create":
        view = api.create(name=args.name, vcpus=args.vcpus, ram=args.ram, disk=args.disk,
                          flavorid=args.flavorid, description=args.description)
    elif cmd == "show":
        view = api.get(args.flavor)
    elif cmd == "delete":
        view = api.delete(args.flavor)
    else:
        raise AssertionError(cmd)
    _print(args.format, view.to_dict())
    return 0


def host_state(d: dict[str, Any]) -> str:
    """``quarantined`` / ``maintenance`` (both, comma-separated) or empty."""
    return ", ".join(n for n in ("quarantined", "maintenance") if d.get(f"vigil:{n}"))


def run_hypervisor(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    target = api_target(args, conf)
    if target is None:
        from vigil import launch
        from vigil.compute.hypervisors import HypervisorsAPI

        engine = launch.engine_from(conf)
        return _hypervisor(args, HypervisorsAPI(engine, launch.group_from(conf, engine)))
    from vigil.api.compute_client import HypervisorsClient

    with HypervisorsClient(*target) as client:
        return _hypervisor(args, client)


def _hypervisor(args: argparse.Namespace, api: HypervisorsAPI | HypervisorsClient) -> int:
    if args.hypervisor_cmd == "list":
        dicts = [v.to_dict() for v in api.list(hostname=args.matching)]
        columns = HYPERVISOR_COLUMNS + (HYPERVISOR_LONG if args.long else ())
        rows = [[d["id"], d["hypervisor_hostname"], d["hypervisor_type"], d["host_ip"],
                 d["state"], d["status"], host_state(d), d.get("vigil:host_liveness") or ""]
                + ([d["vcpus_used"], d["vcpus"], d["memory_mb_used"], d["memory_mb"],
                    d["running_vms"]] if args.long else [])
                for d in dicts]
        _print(args.format, dicts, columns, rows)
        return 0
    if args.hypervisor_cmd == "stats":
        _print(args.format, api.statistics())
        return 0
    _print(args.format, api.get(args.hypervisor).to_dict())
    return 0


def run_scheduler(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.control import run_scheduler as run

    return run(conf)
