"""Logging of Vigil's processes, and what a daemon does on SIGHUP.

Daemons (conductor, compute, scheduler, api, monitor, up) log through oslo.log, configured by
its options in Vigil's configuration (:mod:`vigil.conf.log`): ``log_file``, ``log_dir``,
``use_syslog``, ``use_journal``, ``use_json``, ``debug``... as in nova.conf. With none of them
set they log to stderr, as before. One-shot commands (``vigil service list``) get a plain
stderr setup instead: they read the same configuration file, and a daemon's ``log_file`` is
not where an operator's command should write (nor may the operator be allowed to). Their
start-up does not pay for oslo.log either way: oslo.messaging, which every command imports
with the configuration, already imports it.

Every time is UTC, its offset written out (``2026-05-09 07:35:25.123+0000``), so lines from
processes on machines in different zones sort and compare.

SIGHUP follows oslo.service's convention (:func:`on_hangup`, called by
:func:`vigil.signals.stop_on_signals`): it never kills a daemon. It reopens the log files
(logrotate moves the file, then sends HUP) and reloads what can change at run time: the
mutable options (``debug``, ``log_config_append``). A configuration file that became invalid
is logged as an error and the old values stay.
"""

from __future__ import annotations

import logging
import logging.handlers
import time

from oslo_config import cfg

import vigil
from vigil import conf as vconf
from vigil.errors import ConfigError

LOG = logging.getLogger(__name__)

# One-shot commands: the libraries that would drown a command's own lines (-v included).
NOISY = ("oslo_messaging", "oslo.messaging", "kazoo", "amqp", "urllib3", "httpx", "httpcore",
         "alembic", "oslo_service.backend")


def setup_cli(verbose: bool = False) -> None:
    """Plain stderr logging for a one-shot command (leaves an existing setup alone)."""
    root = logging.getLogger()
    had_handlers = bool(root.handlers)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d+0000 %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if not had_handlers:
        _utc(root)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_daemon(conf: cfg.ConfigOpts, verbose: bool = False) -> None:
    """oslo.log from ``conf``; ``verbose`` (``-v``) forces ``debug``, whatever the files say.

    Raises ConfigError for a logging option with a bad value (oslo.config reads lazily, so
    this is where ``debug = perhaps`` is found).
    """
    from oslo_log import log as oslo_log

    if verbose:
        conf.set_override("debug", True)
    try:
        oslo_log.setup(conf, "vigil", vigil.__version__, fix_eventlet=False)
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    _utc(logging.getLogger())


def _utc(logger: logging.Logger) -> None:
    """Make the logger's formatters write UTC (the format strings say ``+0000``)."""
    for handler in logger.handlers:
        if handler.formatter is not None:
            handler.formatter.converter = time.gmtime


def file_handlers() -> list[logging.FileHandler]:
    """The FileHandlers (WatchedFileHandler, the rotating ones...) of every logger, once each."""
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)]
    found: dict[int, logging.FileHandler] = {}
    for lg in loggers:
        for handler in list(lg.handlers):
            if isinstance(handler, logging.FileHandler):
                found.setdefault(id(handler), handler)
    return list(found.values())


def reopen(handler: logging.FileHandler) -> None:
    """Point ``handler`` at a fresh open of its path (after logrotate moved the file away).

    Under the handler's lock, so no record is half written to the old file; the new file is
    opened before the old one is closed, so a failure (OSError) leaves the handler as it was.
    Always in append mode: a handler opened with mode ``w`` must not truncate its file on HUP.
    """
    handler.acquire()
    try:
        if handler.stream is None:  # delay=True, nothing written yet: opens at its 1st record
            return
        new = open(handler.baseFilename, "a", encoding=handler.encoding,  # noqa: SIM115
                   errors=handler.errors)
        old = handler.setStream(new)
        if isinstance(handler, logging.handlers.WatchedFileHandler):
            handler._statstream()  # the new file's inode: no second reopen at the next record
        if old is not None:
            old.close()
    finally:
        handler.release()


def reopen_files() -> int:
    """Reopen every log file; a file that cannot be reopened is logged and keeps its stream.
    Returns how many were reopened."""
    reopened = 0
    for handler in file_handlers():
        error = None
        try:
            reopen(handler)
            reopened += 1
        except OSError as exc:
            error = str(exc)
        if error is not None:  # logged out of the except block (see reload)
            LOG.error("cannot reopen log file %s (still writing to the old one): %s",
                      handler.baseFilename, error)
    return reopened


def apply_level(conf: cfg.ConfigOpts) -> None:
    """The root logger's level from ``debug``, as oslo.log's setup sets it."""
    logging.getLogger().setLevel(logging.DEBUG if conf.debug else logging.INFO)


def reload(conf: cfg.ConfigOpts) -> bool:
    """Reload the mutable options from ``conf``'s files and re-apply the logging they drive.

    The files are first checked in full on a fresh ConfigOpts (:func:`vigil.conf.reread`): if
    they became invalid, the error is logged, ``conf`` is not touched, and False is returned.
    Immutable options that changed are only warned about (by oslo.config): they need a restart.
    """
    # The errors are logged after their except blocks: oslo.log's formatter appends the
    # exception being handled to an ERROR line, which would say it twice.
    error = None
    try:
        vconf.reread(conf)
        changed = conf.mutate_config_files()
    except ConfigError as exc:
        error = str(exc)
    except (cfg.Error, ValueError) as exc:  # the files changed again since the check
        error = f"invalid configuration: {exc}"
    if error is not None:
        LOG.error("configuration not reloaded, the previous values stay: %s", error)
        return False
    if conf.log_config_append:
        # The logging configuration file rules the handlers and levels; oslo.log re-reads it
        # if it changed (logging.config closes the handlers it replaces).
        from oslo_log import log as oslo_log

        oslo_log.setup(conf, "vigil", vigil.__version__, fix_eventlet=False)
    else:
        apply_level(conf)
    LOG.info("configuration reloaded from %s (log level %s)",
             ", ".join(conf.config_file or ()) or "no file",
             logging.getLevelName(logging.getLogger().level))
    LOG.debug("mutable options changed by the reload: %s",
              ", ".join(f"{g or 'DEFAULT'}.{n}" for g, n in changed) or "none")
    return True


def on_hangup(conf: cfg.ConfigOpts) -> None:
    """SIGHUP: reopen the log files, then reload the configuration. Logs, so never to be
    called from a signal handler (:func:`vigil.signals.stop_on_signals` calls it from a
    thread)."""
    reopened = reopen_files()
    LOG.info("received SIGHUP: %d log file(s) reopened", reopened)
    reload(conf)
