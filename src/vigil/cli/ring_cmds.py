"""``vigil ring show``: the bare-metal hash ring -- members, each one's node count, and
where a node maps. The operation is :mod:`vigil.baremetal.ring`, shared with
``/v2.1/vigil/ring`` (through an API, :mod:`vigil.cli.target`, the command asks that route
with :class:`vigil.api.baremetal_client.RingClient`)."""

from __future__ import annotations

import argparse

from oslo_config import cfg

from vigil.cli import resources
from vigil.cli.output import as_json, table
from vigil.cli.target import add_api_options, resolve

MEMBER_COLUMNS = ("Host", "State", "Member", "Nodes Owned", "Nodes Mapped")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rg = sub.add_parser("ring", help="the bare-metal hash ring")
    rsub = rg.add_subparsers(dest="ring_cmd", required=True, metavar="COMMAND")
    sh = rsub.add_parser("show", help="members and their nodes; where one node maps")
    sh.add_argument("--node", metavar="UUID_OR_NAME", help="also show where this node maps")
    sh.add_argument("--format", choices=("table", "json"), default="table")
    add_api_options(sh)
    rg.set_defaults(func=run_ring)


def run_ring(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.cli.compute_cmds import fields

    with resources.ring(resolve(args, conf), conf) as ring:
        report = ring.show(args.node)
    if args.format == "json":
        print(as_json(report.to_dict()))
        return 0
    print(table(MEMBER_COLUMNS, [[m["host"], m["state"], m["member"], m["nodes_owned"],
                                  m["nodes_mapped"]] for m in report.members]))
    print(f"{report.nodes} node(s), {report.unmanaged} without a live owner")
    if report.node is not None:
        print(fields(report.node))
    return 0
