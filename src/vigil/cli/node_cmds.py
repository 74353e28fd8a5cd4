"""``vigil node``: the bare-metal inventory (create, list, show, delete).

Thin: parsing and printing only; the operations are :mod:`vigil.baremetal.nodes`, which the
REST API (``/v2.1/vigil/nodes``) calls too; through an API (:mod:`vigil.cli.target`) the
command calls :class:`vigil.api.baremetal_client.NodesClient` instead, behind the same
Protocol (:class:`vigil.cli.resources.Nodes`). Bad input is one line on stderr, exit status 2,
and nothing changed.
"""

from __future__ import annotations

import argparse

from oslo_config import cfg

from vigil.cli import resources
from vigil.cli.output import as_json, table
from vigil.cli.target import add_api_options, resolve
from vigil.objects.baremetal import NodePower

NODE_COLUMNS = ("UUID", "Name", "Resource Class", "CPUs", "Memory MB", "Disk GB",
                "Power State", "Maintenance", "Instance", "Owner")
POWER = {"on": NodePower.ON, "off": NodePower.OFF}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nd = sub.add_parser("node", help="bare-metal nodes (the baremetal driver's inventory)")
    nsub = nd.add_subparsers(dest="node_cmd", required=True, metavar="COMMAND")
    cr = nsub.add_parser("create", help="register a node")
    cr.add_argument("--name", help="a unique name (not a UUID)")
    cr.add_argument("--uuid", help="the node's UUID (default: a new one)")
    cr.add_argument("--cpus", type=int, required=True)
    cr.add_argument("--memory-mb", dest="memory_mb", type=int, required=True)
    cr.add_argument("--local-gb", dest="local_gb", type=int, required=True)
    cr.add_argument("--resource-class", dest="resource_class", default="baremetal")
    cr.add_argument("--power-state", dest="power_state", choices=sorted(POWER), default="off")
    cr.add_argument("--maintenance", action="store_true",
                    help="registered but not schedulable")
    ls = nsub.add_parser("list", help="list nodes with the compute host managing each")
    sh = nsub.add_parser("show", help="show a node")
    sh.add_argument("node", metavar="UUID_OR_NAME")
    rm = nsub.add_parser("delete", help="delete a node that holds no instance")
    rm.add_argument("node", metavar="UUID_OR_NAME")
    for p in (cr, ls, sh, rm):
        p.add_argument("--format", choices=("table", "json"), default="table")
        add_api_options(p)
    nd.set_defaults(func=run_node)


def run_node(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    with resources.nodes(resolve(args, conf), conf) as api:
        return _node(args, api)


def _node(args: argparse.Namespace, api: resources.Nodes) -> int:
    from vigil.cli.compute_cmds import fields

    cmd = args.node_cmd
    view: resources.Node
    if cmd == "list":
        dicts = [v.to_dict() for v in api.list()]
        if args.format == "json":
            print(as_json(dicts))
        else:
            print(table(NODE_COLUMNS, [
                [d["uuid"], d["name"], d["resource_class"], d["properties"]["cpus"],
                 d["properties"]["memory_mb"], d["properties"]["local_gb"], d["power_state"],
                 d["maintenance"], d["instance_uuid"], d["owner"]] for d in dicts]))
        return 0
    if cmd == "create":
        view = api.create(name=args.name, uuid=args.uuid, cpus=args.cpus,
                          memory_mb=args.memory_mb, local_gb=args.local_gb,
                          resource_class=args.resource_class,
                          power_state=POWER[args.power_state], maintenance=args.maintenance)
    elif cmd == "show":
        view = api.get(args.node)
    elif cmd == "delete":
        view = api.delete(args.node)
    else:
        raise AssertionError(cmd)
    print(as_json(view.to_dict()) if args.format == "json" else fields(view.to_dict()))
    return 0
