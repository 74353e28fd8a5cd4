"""oslo.log's options ([DEFAULT] debug, log_file, log_dir, use_syslog, use_journal, use_json,
use_stderr, log_date_format...), registered as Vigil options with Vigil's defaults.

The daemons log through oslo.log (:mod:`vigil.logs`), so an operator's nova.conf logging
settings carry over under the same names. Vigil changes a few defaults so that a daemon with no
logging configuration behaves as it did before oslo.log: lines on stderr (``use_stderr``), the
chatty libraries at WARNING (``default_log_levels``), and times in UTC with their offset written
out (the format strings end the time with ``+0000``; :func:`vigil.logs.setup_daemon` makes the
formatters convert with ``time.gmtime``).

Why not ``oslo_log.log.register_options()``: it registers most of these as command-line options
(Vigil's own argparse owns the command line, so nothing is gained), and for a command-line
option oslo.config checks a value read from a file with argparse, which on a bad value prints to
stderr and calls ``sys.exit``: a SIGHUP with ``debug = perhaps`` in the file would end the
reload (or the daemon) instead of being refused with a logged reason. It also adds a stderr
handler to the root logger as a side effect. Registered here as plain options, a bad value is an
ordinary ``ConfigFileValueError`` (:func:`vigil.conf.reread`). ``debug`` and
``log_config_append`` stay ``mutable``, as oslo.log declares them.
"""

from __future__ import annotations

import copy
from typing import Any

from oslo_config import cfg

# The lists oslo.log's register_options() registers (the same module is its entry point for
# oslo-config-generator). Copied, so Vigil's defaults do not leak into another ConfigOpts user.
from oslo_log import _options

# One timestamp for every line: UTC (vigil.logs sets the formatters' converter to gmtime), to
# the millisecond, its offset written out so no reader has to guess the zone.
STAMP = "%(asctime)s.%(msecs)03d+0000"

VIGIL_DEFAULTS: dict[str, Any] = {
    # No logging configuration: lines on stderr, as before oslo.log (oslo.log's own fallback
    # is stdout). With log_file set they go to both; set use_stderr = false to stop that.
    "use_stderr": True,
    "logging_context_format_string": (
        f"{STAMP} %(process)d %(levelname)s %(name)s [%(global_request_id)s %(request_id)s "
        "%(user_identity)s] %(instance)s%(message)s"),
    "logging_default_format_string": (
        f"{STAMP} %(process)d %(levelname)s %(name)s [-] %(instance)s%(message)s"),
    "logging_exception_prefix": f"{STAMP} %(process)d ERROR %(name)s %(instance)s",
    # oslo.log's list, with the libraries Vigil kept at WARNING (oslo.messaging logs every
    # connection at INFO; kazoo, httpx/httpcore, urllib3 and alembic chatter at DEBUG;
    # oslo.service announces its eventlet backend at INFO when oslo.messaging first loads it,
    # which happens after logging is set up now that oslo.messaging is imported on first use).
    "default_log_levels": [
        *(level for level in _options.DEFAULT_LOG_LEVELS
          if level.partition("=")[0] not in ("oslo.messaging", "oslo_messaging")),
        "oslo.messaging=WARN", "oslo_messaging=WARN", "kazoo=WARN", "urllib3=WARN",
        "httpx=WARN", "httpcore=WARN", "alembic=WARN", "oslo_service.backend=WARN",
    ],
}


def _vigil_opts() -> list[cfg.Opt]:
    opts: list[cfg.Opt] = copy.deepcopy([
        *_options.common_cli_opts, *_options.logging_cli_opts, *_options.generic_log_opts,
        *_options.log_opts])
    for opt in opts:
        if opt.dest in VIGIL_DEFAULTS:
            opt.default = VIGIL_DEFAULTS[opt.dest]
        opt.help = _file_help(opt)
    return opts


def _file_help(opt: cfg.Opt) -> str:
    """The help, with argparse's escapes resolved: oslo.log wrote some of its help texts for the
    command line (``%%(asctime)s``, ``Default: %(default)s``), which a configuration file's
    sample would otherwise show raw."""
    text = opt.help or ""
    if "%(default)s" in text or "%%" in text:
        try:
            return text % {"default": opt.default}
        except (KeyError, ValueError, TypeError):
            return text
    return text


LOG_OPTS: list[cfg.Opt] = _vigil_opts()


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [(None, LOG_OPTS)]
