"""The cyclic garbage collector paused while a list of many objects is built.

Listing 10,000 services allocates a few hundred thousand objects (rows, records, views, dicts)
that are all alive until the answer is sent. Every 700 allocations the collector runs, and
every so often a full collection walks the whole heap: with the API's 170,000 start-up objects,
that was more than half of a list's CPU time (docs/benchmarks.md, issue 12). None of these
objects forms a cycle that must be collected before the list returns, so the collector waits
until the list is built; reference counting still frees everything as usual.

The collector is one per process, so :func:`paused` counts its holders: with several requests
listing in several threads, it is enabled again only when the last of them is done, and never
by a holder if it was disabled when the first one came (a caller that turned it off itself
keeps it off). Overlapping lists (clients polling back to back) could keep it paused for good,
and cycles made meanwhile (exceptions with their tracebacks, mostly) would pile up: a holder
leaving a pause older than :data:`MAX_PAUSE` collects the young generations, whose cost is
that of the objects made since, not of the heap.

:func:`frozen` is for a short command's whole run (``vigil service list``): what start-up made
(modules, classes, parsers, the configuration: a few hundred thousand objects that live until
the process exits) is moved out of the collector's sight, so the collections the command still
triggers walk only what it allocated since.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["frozen", "paused"]

MAX_PAUSE = 1.0  # seconds

_lock = threading.Lock()


class _Pause:
    """Process-wide by nature, as the collector is: its holders, and what to restore."""

    holders = 0
    restore = False
    since = 0.0
    frozen = 0


_pause = _Pause()


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (nested and concurrent blocks allowed)."""
    with _lock:
        if _pause.holders == 0:
            _pause.restore = gc.isenabled()
            _pause.since = time.monotonic()
            gc.disable()
        _pause.holders += 1
    try:
        yield
    finally:
        with _lock:
            _pause.holders -= 1
            if _pause.holders == 0:
                if _pause.restore:
                    gc.enable()
            elif _pause.restore and time.monotonic() - _pause.since > MAX_PAUSE:
                gc.collect(1)
                _pause.since = time.monotonic()


@contextmanager
def frozen() -> Iterator[None]:
    """Every object alive now ignored by the collector until the block ends (``gc.freeze``).

    Why: after the imports, each collection of the older generations walks their ~100,000
    objects again, and a command listing 10,000 services triggers a score of them; with them
    frozen it walks only the command's own objects (the collector's share of ``vigil service
    list`` 51 → 12 ms, docs/benchmarks.md).
    Garbage frozen with them is collected once the last holder leaves (``gc.unfreeze`` gives
    it back to the oldest generation), so an in-process caller (the tests call the CLI's
    ``main``) keeps nothing frozen after the call.
    """
    with _lock:
        gc.freeze()
        _pause.frozen += 1
    try:
        yield
    finally:
        with _lock:
            _pause.frozen -= 1
            if _pause.frozen == 0:
                gc.unfreeze()
