"""``vigil config sample`` and ``vigil db sync|version``."""

from __future__ import annotations

import argparse
import sys

from oslo_config import cfg


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("config", help="configuration helpers")
    csub = c.add_subparsers(dest="config_cmd", required=True, metavar="COMMAND")
    s = csub.add_parser("sample", help="print a commented sample configuration "
                        "(oslo-config-generator's output for Vigil and its libraries)")
    s.set_defaults(func=config_sample, no_conf=True)

    d = sub.add_parser("db", help="database schema")
    dsub = d.add_subparsers(dest="db_cmd", required=True, metavar="COMMAND")
    dsub.add_parser("sync", help="create or upgrade the schema (idempotent)").set_defaults(
        func=db_sync)
    dsub.add_parser("version", help="print the schema revision").set_defaults(func=db_version)


def config_sample(args: argparse.Namespace, conf: cfg.ConfigOpts | None) -> int:
    from vigil.conf import sample

    sample.render(sys.stdout)
    return 0


def db_sync(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil import launch
    from vigil.db import migration

    before, after = migration.sync(launch.engine_from(conf))
    suffix = " (unchanged)" if before == after else f" (was {before or 'empty'})"
    print(f"database schema at {after}{suffix}")
    return 0


def db_version(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil import launch
    from vigil.db import migration

    print(migration.current(launch.engine_from(conf)) or "empty")
    return 0
