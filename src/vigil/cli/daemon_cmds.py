"""``vigil conductor``, ``vigil compute``, ``vigil api``, ``vigil metadata``, ``vigil serialproxy``
and ``vigil up``."""

from __future__ import annotations

import argparse

from oslo_config import cfg

from vigil.errors import InvalidInput


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("conductor", help="run the conductor (writes agents' reports)").set_defaults(
        func=conductor)
    comp = sub.add_parser("compute", help="run a compute agent")
    comp.add_argument("--host", help="host name to register (default: [DEFAULT] host)")
    comp.set_defaults(func=compute)
    sup = sub.add_parser("supervisor", help="run a host's supervisor: starts and watches its "
                         "services ([supervisor] services), vouches for the host (group host)")
    sup.add_argument("--host", help="host name to supervise (default: [DEFAULT] host)")
    sup.set_defaults(func=supervisor)
    api_p = sub.add_parser("api", help="run the REST API ([api] listen, port; with "
                           "enabled_apis containing metadata, the metadata API too)")
    api_p.add_argument("--workers", type=int, default=None, metavar="N",
                       help="serve with N processes ([api] workers; docs/operations.md)")
    api_p.set_defaults(func=api)
    sub.add_parser("metadata", help="run the metadata API ([DEFAULT] metadata_listen, "
                   "metadata_listen_port)").set_defaults(func=metadata)
    sub.add_parser("serialproxy", help="run the serial console proxy ([serial_console] "
                   "serialproxy_host, serialproxy_port)").set_defaults(func=serialproxy)
    mon = sub.add_parser("monitor", help="run the HA monitor (detect, fence, evacuate)")
    mon.add_argument("--dry-run", action="store_true", default=None,
                     help="log what it would do, change nothing ([ha] dry_run)")
    mon.set_defaults(func=monitor)
    up_p = sub.add_parser("up", help="run everything in one process on the embedded defaults")
    up_p.add_argument("--computes", type=int, default=3, metavar="N",
                      help="number of simulated compute hosts (default 3)")
    up_p.add_argument("--baremetal-nodes", dest="baremetal_nodes", type=int, default=0,
                      metavar="N", help="register N bare-metal nodes and run the simulated "
                      "hosts with the baremetal driver: the hash ring shares the nodes among "
                      "them (vigil ring show)")
    up_p.set_defaults(func=up)


def conductor(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.control import run_conductor

    return run_conductor(conf)


def compute(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.control import run_compute

    return run_compute(conf, args.host or conf.host)


def supervisor(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.supervisor import run_supervisor

    return run_supervisor(conf, args.host or conf.host)


def api(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.http import run_api

    workers = conf.api.workers if args.workers is None else args.workers
    if workers < 1:
        raise InvalidInput("--workers must be 1 or more")
    if workers > 1:
        from vigil.api.wsgi import serve_workers

        print(f"Vigil API on {conf.api.listen}:{conf.api.port} ({workers} workers)", flush=True)
        return serve_workers(list(conf.config_file or ()), list(conf.config_dir or ()),
                             conf.api.listen, conf.api.port, workers)
    return run_api(conf)


def metadata(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.http import run_metadata

    return run_metadata(conf)


def serialproxy(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.http import run_serialproxy

    return run_serialproxy(conf)


def monitor(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.daemons.monitor import run_monitor

    return run_monitor(conf, dry_run=args.dry_run)


def up(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil.up import run_up

    if args.computes < 0:
        raise InvalidInput("--computes must be 0 or more")
    if args.baremetal_nodes < 0:
        raise InvalidInput("--baremetal-nodes must be 0 or more")
    return run_up(conf, computes=args.computes, baremetal_nodes=args.baremetal_nodes)
