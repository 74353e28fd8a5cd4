"""Built documents per instance, never served stale.

Each request costs one indexed read of the instance's *stamp* (its ``updated_at`` and
ownership generation, :func:`vigil.db.compute.instances.instance_stamp`); the documents are
rebuilt only when the stamp changed (any write to the instance row changes it, a delete makes
it vanish) or the entry is older than ``[api] metadata_cache_expiration``. Nova trusts its
cache for the whole expiration instead: a deleted instance keeps being served for up to 15 s
there. One read per request is what "invalidated on change" costs across processes (the API
that changes an instance and the metadata API that serves it are separate daemons).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from vigil.errors import NotFound
from vigil.metadata.document import InstanceDocs
from vigil.objects.compute import InstanceDataRecord

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    stamp: str
    built: float
    docs: InstanceDocs


class DocumentCache:
    """``get(uuid)``: the instance's documents, or None if it does not exist (live).

    ``load`` reads the instance's data (NotFound if none), ``stamp`` its stamp (None if none).
    At most ``max_entries`` instances are kept, least recently used out first.
    """

    def __init__(self, load: Callable[[str], InstanceDataRecord],
                 stamp: Callable[[str], str | None], *, ttl: float, dhcp_domain: str,
                 clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._load = load
        self._stamp = stamp
        self.ttl = ttl
        self.dhcp_domain = dhcp_domain
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.builds = 0  # documents built (a test and the benchmark read it)

    def get(self, instance_uuid: str) -> InstanceDocs | None:
        stamp = self._stamp(instance_uuid)
        if stamp is None:
            self.invalidate(instance_uuid)
            return None
        now = self._clock()
        with self._lock:
            entry = self._entries.get(instance_uuid)
            if entry is not None and entry.stamp == stamp and now - entry.built < self.ttl:
                self._entries.move_to_end(instance_uuid)
                return entry.docs
        try:
            record = self._load(instance_uuid)
        except NotFound:
            self.invalidate(instance_uuid)
            return None
        docs = InstanceDocs(record, self.dhcp_domain)
        with self._lock:
            self.builds += 1
            if self.ttl > 0:
                self._entries[instance_uuid] = _Entry(record.stamp, now, docs)
                self._entries.move_to_end(instance_uuid)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return docs

    def invalidate(self, instance_uuid: str) -> None:
        with self._lock:
            self._entries.pop(instance_uuid, None)
