"""Entry point of the ``vigil`` command.

Each command module under ``vigil.cli`` adds its parsers with ``add_parsers(sub)`` and sets
``func(args, conf) -> int`` as the parser default; this module only parses, loads the
configuration and maps Vigil's error tree to one line on stderr and an exit code: 2 for bad
input or configuration, 1 for a missing object, a conflict or an unavailable backend.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from vigil import __version__, gcpause
from vigil.errors import ConfigError, InvalidInput, VigilError

if TYPE_CHECKING:
    from oslo_config import cfg

# Command modules, in help order. Each defines add_parsers(subparsers).
COMMAND_MODULES = (
    "vigil.cli.admin_cmds",
    "vigil.cli.daemon_cmds",
    "vigil.cli.status_cmds",
    "vigil.cli.service_cmds",
    "vigil.cli.compute_cmds",
    "vigil.cli.ha_cmds",
    "vigil.cli.node_cmds",
    "vigil.cli.ring_cmds",
)

# The long-running commands: they log through oslo.log (log_file, syslog, journal...) and take
# SIGHUP (reopen the log files, reload); the others log to stderr (vigil.logs).
DAEMON_COMMANDS = frozenset({"conductor", "compute", "scheduler", "api", "monitor", "up",
                             "metadata", "serialproxy"})


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
    p.add_argument("--state-path", metavar="DIR",
                   help="state directory ([DEFAULT] state_path): vigil up keeps its database, "
                   "tokens and lock there, and the other commands find a running vigil up "
                   "there (e.g. one state per demo)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return p


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    from vigil import conf as vconf

    argv: list[str] = []
    for f in args.config_file:
        argv += ["--config-file", f]
    for d in args.config_dir:
        argv += ["--config-dir", d]
    conf = vconf.load(argv)
    if args.state_path:
        # Everything under $state_path (the SQLite file, token_file, ...) follows: oslo.config
        # substitutes it when an option is read.
        conf.set_override("state_path", os.path.abspath(args.state_path))
    return conf


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, load the configuration, run the command.

    The imports (every command module, oslo.config, SQLAlchemy: most of a short command's
    0.5 s) happen with the collector paused, and a command that is not a daemon then runs with
    what they made frozen (:func:`vigil.gcpause.frozen`): otherwise each collection of the
    older generations walked the ~100,000 start-up objects again, 51 ms of ``vigil service
    list`` at 10,000 services against 12 ms now (docs/benchmarks.md, issue 12). Daemons run
    with the collector as usual.
    """
    with contextlib.ExitStack() as stack:
        with gcpause.paused():
            args = build_parser().parse_args(argv)
            daemon = args.cmd in DAEMON_COMMANDS
            if not daemon:
                # Frozen before the collector is back: its first young collection would
                # otherwise walk everything the imports made.
                stack.enter_context(gcpause.frozen())
        return _run(args, daemon)


def _run(args: argparse.Namespace, daemon: bool) -> int:
    from vigil import logs

    if daemon:
        from vigil import launch

        launch.defer_hangup()
    try:
        conf = None if getattr(args, "no_conf", False) else load_conf(args)
        if daemon and conf is not None:
            logs.setup_daemon(conf, args.verbose)
        else:
            logs.setup_cli(args.verbose)
        code: int = args.func(args, conf)
        return code
    except (ConfigError, InvalidInput) as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 2
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # ``vigil ... | head``: the reader left. Exit quietly, as Unix tools do; point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
