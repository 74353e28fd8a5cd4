"""vigil.logs on real files: reopening after logrotate's move, oslo.log set up from the
configuration (UTC lines, Vigil's defaults), the SIGHUP reload (debug on and off, broken files
refused), and the signal plumbing of vigil.signals.stop_on_signals in this process."""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config
from tests.tools.wait import wait_for
from vigil import logs, signals
from vigil.cli.main import main

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d{3}\+0000 ")


@pytest.fixture
def saved_logging() -> Iterator[None]:
    """oslo.log's setup replaces the root logger's handlers (pytest's included) and sets
    levels and sys.excepthook: put all of it back."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    levels = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            lg.setLevel(levels.get(name, logging.NOTSET))
    sys.excepthook = hook


@pytest.fixture
def named_logger() -> Iterator[logging.Logger]:
    """A logger of this test alone, not propagating (pytest's handlers stay out of it)."""
    lg = logging.getLogger(f"vigil.test.logs.{os.urandom(4).hex()}")
    lg.propagate = False
    lg.setLevel(logging.INFO)
    yield lg
    for h in list(lg.handlers):
        lg.removeHandler(h)
        h.close()


@pytest.mark.parametrize("kind", ["plain", "watched", "size-rotating"])
def test_reopen_after_a_move_writes_a_new_file(tmp_path: Path, named_logger: logging.Logger,
                                               kind: str) -> None:
    path = tmp_path / "vigil.log"
    handler: logging.FileHandler
    if kind == "plain":
        handler = logging.FileHandler(path)
    elif kind == "watched":
        handler = logging.handlers.WatchedFileHandler(path)
    else:  # what oslo.log installs for log_rotation_type = size: not watched
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 30)
    named_logger.addHandler(handler)
    named_logger.info("before the move")
    moved = tmp_path / "vigil.log.1"
    path.rename(moved)  # logrotate: move, then HUP
    assert handler in logs.file_handlers()
    assert logs.reopen_files() >= 1
    named_logger.info("after the reopen")
    handler.flush()
    assert moved.read_text() == "before the move\n"
    assert path.read_text() == "after the reopen\n"
    if kind == "watched":  # the new inode is recorded: the next record does not reopen again
        stream = handler.stream
        named_logger.info("once more")
        assert handler.stream is stream


def test_reopen_failure_keeps_the_old_stream(tmp_path: Path,
                                             named_logger: logging.Logger) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    handler = logging.FileHandler(logdir / "vigil.log")
    named_logger.addHandler(handler)
    logdir.rename(tmp_path / "gone")  # the path cannot be opened any more
    with pytest.raises(OSError):
        logs.reopen(handler)
    named_logger.info("still written")
    handler.flush()
    assert (tmp_path / "gone" / "vigil.log").read_text() == "still written\n"


def test_reopen_appends_even_for_a_mode_w_handler(tmp_path: Path,
                                                  named_logger: logging.Logger) -> None:
    path = tmp_path / "vigil.log"
    handler = logging.FileHandler(path, mode="w")
    named_logger.addHandler(handler)
    named_logger.info("one")
    logs.reopen(handler)
    named_logger.info("two")
    handler.flush()
    assert path.read_text() == "one\ntwo\n"


def test_reopen_leaves_a_delayed_handler_unopened(tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "vigil.log", delay=True)
    try:
        logs.reopen(handler)
        assert handler.stream is None and not (tmp_path / "vigil.log").exists()
    finally:
        handler.close()


def daemon_conf(make_conf: Any, tmp_path: Path, **default: Any) -> tuple[Any, Path]:
    return make_conf({"DEFAULT": {"log_file": str(tmp_path / "daemon.log"),
                                  "use_stderr": False, **default}})


def test_setup_daemon_writes_utc_lines_with_the_offset(
        make_conf: Any, tmp_path: Path, saved_logging: None) -> None:
    conf, _ = daemon_conf(make_conf, tmp_path)
    logs.setup_daemon(conf)
    logging.getLogger("vigil.test").info("hello")
    logging.getLogger("vigil.test").debug("not at INFO")
    logging.getLogger("kazoo.client").info("chatter")
    logs.file_handlers()[0].flush()
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith(" INFO vigil.test [-] hello"), lines
    m = STAMP.match(lines[0])
    assert m, lines[0]
    stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60
    for noisy in ("oslo_messaging", "oslo.messaging", "kazoo", "amqp", "urllib3", "httpx",
                  "alembic", "oslo_service.backend"):
        assert logging.getLogger(noisy).level == logging.WARNING, noisy


def test_verbose_means_debug_and_survives_a_reload(
        make_conf: Any, tmp_path: Path, saved_logging: None) -> None:
    conf, _ = daemon_conf(make_conf, tmp_path)
    logs.setup_daemon(conf, verbose=True)
    assert logging.getLogger().level == logging.DEBUG
    assert logs.reload(conf)  # the file says debug = false: -v still wins
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("amqp").level == logging.WARNING


def test_no_logging_configuration_logs_to_stderr(make_conf: Any,
                                                 saved_logging: None) -> None:
    conf, _ = make_conf({})
    logs.setup_daemon(conf)
    [handler] = logging.getLogger().handlers
    assert type(handler) is logging.StreamHandler and handler.stream is sys.stderr


def test_reload_applies_debug_and_refuses_broken_files(
        make_conf: Any, tmp_path: Path, saved_logging: None) -> None:
    conf, path = daemon_conf(make_conf, tmp_path)
    logs.setup_daemon(conf)
    good = path.read_text()
    root = logging.getLogger()
    assert root.level == logging.INFO

    path.write_text(good + "debug = true\n")
    assert logs.reload(conf)
    assert conf.debug is True and root.level == logging.DEBUG

    broken = {
        "a bad value": good + "debug = perhaps\n",
        "not INI": good + "debug = true\nthis is not an option line\n",
        "a Vigil rule": good + "debug = false\nreport_interval = 10\nservice_down_time = 5\n",
        "a bad value elsewhere": good + "debug = false\n[conductor]\nbatch_size = many\n",
    }
    for what, text in broken.items():
        path.write_text(text)
        assert not logs.reload(conf), what
        assert conf.debug is True and root.level == logging.DEBUG, what  # the old values stay
    logs.file_handlers()[0].flush()
    errors = [line for line in (tmp_path / "daemon.log").read_text().splitlines()
              if " ERROR vigil.logs " in line]
    assert len(errors) == len(broken), errors
    assert all("configuration not reloaded, the previous values stay" in e for e in errors)
    assert "perhaps" in errors[0] and "batch_size" in errors[3]
    assert all(e.count("ConfigError") == 0 for e in errors)  # no exception summary twice

    path.write_text(good)
    assert logs.reload(conf)
    assert conf.debug is False and root.level == logging.INFO


def test_hangup_reopens_and_reloads_and_term_stops(
        make_conf: Any, tmp_path: Path, saved_logging: None) -> None:
    """Real signals to this process: SIGHUP does the work in the context's thread and never
    sets ``stop``; SIGTERM sets it; the previous handlers come back afterwards."""
    conf, path = daemon_conf(make_conf, tmp_path)
    logs.setup_daemon(conf)
    log = tmp_path / "daemon.log"
    before = signal.getsignal(signal.SIGHUP)
    with signals.stop_on_signals(conf) as stop:
        logging.getLogger("vigil.test").info("first file")
        log.rename(tmp_path / "daemon.log.1")
        path.write_text(path.read_text() + "debug = true\n")
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: log.exists() and "log level DEBUG" in log.read_text(), 10,
                 "the reopen and the reload")
        assert not stop.is_set()
        assert "received SIGHUP: 1 log file(s) reopened" in log.read_text()
        assert "SIGHUP" not in (tmp_path / "daemon.log.1").read_text()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(10)
    assert signal.getsignal(signal.SIGHUP) == before
    assert "received SIGTERM, stopping" in log.read_text()


def test_one_shot_commands_do_not_write_the_daemon_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "v.conf", {"DEFAULT": {
        "state_path": str(tmp_path), "log_file": str(tmp_path / "daemon.log")}})
    assert main(["--config-file", str(cfg), "db", "sync"]) == 0
    assert "database schema at" in capsys.readouterr().out
    assert not (tmp_path / "daemon.log").exists()


def test_sample_has_the_logging_options_with_vigil_defaults(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "sample"]) == 0
    sample = capsys.readouterr().out
    for line in ("#debug = false", "#log_file = <None>", "#log_dir = <None>",
                 "#use_syslog = false", "#use_journal = false", "#use_json = false",
                 "#use_stderr = true", "#log_date_format = %Y-%m-%d %H:%M:%S"):
        assert line in sample.splitlines(), line
    assert "#logging_default_format_string = %(asctime)s.%(msecs)03d+0000 " in sample
    assert "kazoo=WARN" in sample and "%(default)s" not in sample
