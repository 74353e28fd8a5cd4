"""Entry point of the ``vigil`` command.

Errors from Vigil's error tree become one line on stderr and a non-zero exit: 2 for bad input
or configuration, 1 for a missing object or an unavailable backend.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from oslo_config import cfg

from vigil import conf as vconf
from vigil.cli import service_cmds
from vigil.errors import ConfigError, Conflict, InvalidInput, NotFound, Unavailable, VigilError

LOG = logging.getLogger("vigil")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"vigil: error: {message}\n")


def build_parser() -> Parser:
    p = Parser(prog="vigil", description="Vigil: service liveness and host HA for a fleet.")
    p.add_argument("--config-file", action="append", default=[], metavar="PATH",
                   help="configuration file (may repeat; later files override)")
    p.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                   help="directory of *.conf files")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           parser_class=Parser)

    c = sub.add_parser("config", help="configuration helpers")
    csub = c.add_subparsers(dest="config_cmd", required=True, metavar="COMMAND")
    csub.add_parser("sample", help="print a commented sample configuration")

    d = sub.add_parser("db", help="database schema")
    dsub = d.add_subparsers(dest="db_cmd", required=True, metavar="COMMAND")
    dsub.add_parser("sync", help="create or upgrade the schema (idempotent)")
    dsub.add_parser("version", help="print the schema revision")

    sub.add_parser("conductor", help="run the conductor (writes agents' reports)")
    comp = sub.add_parser("compute", help="run a compute agent")
    comp.add_argument("--host", help="host name to register (default: [DEFAULT] host)")

    up = sub.add_parser("up", help="run everything in one process on the embedded defaults")
    up.add_argument("--computes", type=int, default=3, metavar="N",
                    help="number of simulated compute hosts (default 3)")

    service_cmds.add_parsers(sub)
    return p


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    argv: list[str] = []
    for f in args.config_file:
        argv += ["--config-file", f]
    for d in args.config_dir:
        argv += ["--config-dir", d]
    return vconf.load(argv)


def dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "config":
        from vigil.conf import sample

        print(sample.render())
        return 0
    conf = load_conf(args)
    from vigil import launch

    launch.setup_logging(args.verbose)
    if args.cmd == "db":
        from vigil.db import migration

        engine = launch.engine_from(conf)
        if args.db_cmd == "sync":
            before, after = migration.sync(engine)
            print(f"database schema at {after}" + (" (unchanged)" if before == after else
                                                   f" (was {before or 'empty'})"))
        else:
            print(migration.current(engine) or "empty")
        return 0
    if args.cmd == "conductor":
        from vigil.daemons import run_conductor

        return run_conductor(conf)
    if args.cmd == "compute":
        from vigil.daemons import run_compute

        return run_compute(conf, args.host or conf.host)
    if args.cmd == "up":
        from vigil.up import run_up

        if args.computes < 0:
            raise InvalidInput("--computes must be 0 or more")
        return run_up(conf, computes=args.computes)
    if args.cmd == "service":
        from vigil.registry import Registry

        engine = launch.engine_from(conf)
        registry = Registry(engine, launch.group_from(conf, engine),
                            default_zone=conf.default_availability_zone)
        return service_cmds.run(args, registry)
    raise AssertionError(args.cmd)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except (ConfigError, InvalidInput) as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 2
    except (NotFound, Conflict) as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 1
    except Unavailable as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 1
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
