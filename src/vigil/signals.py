"""A daemon's signals: SIGTERM and SIGINT stop it, SIGHUP reloads it, and none is acted on
inside the handler.

Its own module (it was part of :mod:`vigil.launch`): the process's lifetime is one concept, the
composition root's factories another; the daemons (:mod:`vigil.daemons`, ``vigil up``) use both.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from oslo_config import cfg

from vigil import logs

LOG = logging.getLogger(__name__)


# Signals a daemon takes, queued by the handler and acted on by a thread (stop_on_signals).
_SIGNALS: queue.SimpleQueue[int | None] = queue.SimpleQueue()


def _queue_signal(signum: int, _frame: object) -> None:
    """The handler of every signal a daemon takes: it only queues the signal.

    A handler runs between two bytecodes of the main thread, which may be holding a lock the
    handler's work would need: a log handler's stream (logging from here can raise "reentrant
    call" or deadlock), an Event's condition (``stop.set()`` from here can deadlock on the very
    ``stop.wait()`` it interrupts). SimpleQueue.put is documented safe in a signal handler.
    """
    _SIGNALS.put(signum)


def defer_hangup() -> None:
    """Queue a SIGHUP that arrives while a daemon starts, instead of dying of it (the default
    action): :func:`stop_on_signals` acts on it once the daemon is up. Called first thing by
    the CLI for the daemon commands."""
    signal.signal(signal.SIGHUP, _queue_signal)


def _act_on_signals(conf: cfg.ConfigOpts, stop: threading.Event) -> None:
    while (signum := _SIGNALS.get()) is not None:
        name = signal.Signals(signum).name
        try:
            if signum == signal.SIGHUP:
                logs.on_hangup(conf)
            else:
                LOG.info("received %s, stopping", name)
                stop.set()
        except Exception:  # a failed reload must not end the daemon's signal handling
            LOG.exception("handling %s failed", name)


@contextmanager
def stop_on_signals(conf: cfg.ConfigOpts) -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (Ctrl-C), for a daemon's main thread to wait on.

    SIGHUP never stops the daemon (oslo.service's convention): it reopens the log files and
    reloads ``conf``'s mutable options (:func:`vigil.logs.on_hangup`). The handlers only queue
    the signal; a thread of this context does the work, logging included.
    """
    stop = threading.Event()
    old = {s: signal.signal(s, _queue_signal)
           for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    worker = threading.Thread(target=_act_on_signals, args=(conf, stop), name="signals",
                              daemon=True)
    worker.start()
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _SIGNALS.put(None)
        worker.join(timeout=10)
