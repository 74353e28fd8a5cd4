"""Built documents per instance, invalidated when the instance changes.

Boot scripts read dozens of paths in a burst, and a fleet reads them all at once after a
restart, so a request must not cost a database read. The cache learns what changed with one
statement for the whole fleet (:func:`vigil.db.compute.instances.instances_changed`: the rows
written since the last poll, on the database's clock; every write to an instance, its deletion
included, stamps ``updated_at``), run at most every ``poll`` seconds by whichever request
finds it due. Changed instances are dropped and rebuilt on their next request. So:

- a change (or a deletion) is served within ``poll`` seconds (0.5 by default), whichever
  process made it; Nova instead trusts its cache for the whole ``metadata_cache_expiration``;
- a request for a cached instance between polls costs no I/O at all (:meth:`peek`, answered on
  the event loop);
- ``[api] metadata_cache_expiration`` still bounds an entry's age (and so memory and the
  random seed's age).

The poll looks back ``MARGIN`` seconds before its previous reading of the clock: a write is
stamped when its statement runs but seen only once its transaction commits, and a commit that
takes less than the margin is not missed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vigil.errors import NotFound
from vigil.metadata.document import InstanceDocs
from vigil.objects.compute import InstanceDataRecord

MAX_ENTRIES = 10_000
POLL = 0.5
MARGIN = dt.timedelta(seconds=2)

Changes = Callable[[dt.datetime | None], tuple[dt.datetime, Iterable[str]]]


@dataclass(frozen=True)
class _Entry:
    built: float
    docs: InstanceDocs


class DocumentCache:
    """``get(uuid)``: the instance's documents, or None if it does not exist (live).

    ``load`` reads an instance's data (NotFound if none); ``changes(since)`` returns the
    database's clock and the instances written since ``since``. At most ``max_entries``
    instances are kept, least recently used out first. ``ttl`` 0 keeps nothing.
    """

    def __init__(self, load: Callable[[str], InstanceDataRecord], changes: Changes, *,
                 ttl: float, dhcp_domain: str, poll: float = POLL,
                 clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._load = load
        self._changes = changes
        self.ttl = ttl
        self.poll = poll
        self.dhcp_domain = dhcp_domain
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._polled_at: float | None = None  # our clock
        self._db_now: dt.datetime | None = None  # the database's, at that poll
        self.builds = 0  # documents built (a test and the benchmark read it)

    def _poll_due(self, now: float) -> bool:
        return self._polled_at is None or now - self._polled_at >= self.poll

    def peek(self, instance_uuid: str) -> InstanceDocs | None:
        """The cached documents if they can be served without any I/O (fresh, and no poll
        for changes due); else None: call :meth:`get` (off the event loop)."""
        now = self._clock()
        if self._poll_due(now):
            return None
        with self._lock:
            entry = self._entries.get(instance_uuid)
            if entry is None or now - entry.built >= self.ttl:
                return None
            self._entries.move_to_end(instance_uuid)
            return entry.docs

    def get(self, instance_uuid: str) -> InstanceDocs | None:
        self._refresh()
        docs = self.peek(instance_uuid)
        if docs is not None:
            return docs
        now = self._clock()
        try:
            record = self._load(instance_uuid)
        except NotFound:
            self.invalidate(instance_uuid)
            return None
        docs = InstanceDocs(record, self.dhcp_domain)
        with self._lock:
            self.builds += 1
            if self.ttl > 0:
                self._entries[instance_uuid] = _Entry(now, docs)
                self._entries.move_to_end(instance_uuid)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return docs

    def _refresh(self) -> None:
        """Drop the instances written since the last poll, if a poll is due (one caller
        polls; the others go on with what is cached, at most one poll late)."""
        if not self._poll_due(self._clock()) or not self._poll_lock.acquire(blocking=False):
            return
        try:
            started = self._clock()
            since = self._db_now - MARGIN if self._db_now is not None else None
            db_now, changed = self._changes(since)
            with self._lock:
                if since is None:
                    self._entries.clear()  # nothing known about what happened before
                for uuid in changed:
                    self._entries.pop(uuid, None)
            self._db_now = db_now
            self._polled_at = started
        finally:
            self._poll_lock.release()

    def invalidate(self, instance_uuid: str) -> None:
        with self._lock:
            self._entries.pop(instance_uuid, None)
