"""The ``mc`` driver: a member is alive while its memcached key has not expired.

As in Nova's memcache servicegroup driver, each heartbeat sets ``<topic>:<host>`` and a reader
asks for all keys of a batch at once (one ``get_many`` per memcached server); a present key means
UP. Expiry is the server's own clock, so no host's wall clock is ever compared with another's
(the value, the agent's wall-clock time of the beat, is for operators only).

Memcached counts whole seconds: a key set with expiry N lives between N-1 and N seconds (its
clock ticks once a second, and the set may land just before a tick). With Nova's expiry of
``ceil(service_down_time)`` a punctual service can therefore vanish up to a second early -- the
false-down benchmark showed it with report_interval 1 s, service_down_time 3 s and a slow link.
The expiry here is ``ceil(service_down_time) + 1``: a key lives at least service_down_time
and at most one second more, so a member is never declared dead before its time. The in-process
cache has an exact clock and uses ``service_down_time`` itself.

Without ``memcached_servers`` the driver keeps the keys in an :class:`InProcessCache` with the
same expiry semantics on a monotonic clock. That cache only exists inside one process: it works
for ``vigil up`` (every service and reader share the one driver instance it builds) and for
tests, never across processes.

A freshly (re)started memcached is empty: a missing key proves nothing until the server has
been up for a whole ``service_down_time`` (every live member has beaten into it since). So the
reader asks each server for its ``uptime`` right after reading the keys (a second request to the
same server), and a key missing from a server younger than that is UNKNOWN, not DOWN -- without
this, a memcached restart would make every service look dead until its next heartbeat. The
in-process cache applies the same rule to its own age.

Failure handling deliberately bypasses pymemcache's HashClient fail-over: HashClient answers
``{}`` for a server it has marked as failing, which would turn an unreachable server into every
member being DOWN. Here HashClient only picks the server of a key (rendezvous hashing over the
configured list); any server error raises :class:`BackendUnavailable`, so the facade says
UNKNOWN.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError

from vigil.clock import Clock, RealClock
from vigil.errors import BackendUnavailable
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver, member_key
from vigil.servicegroup.drivers.options import MemcachedOptions

LOG = logging.getLogger(__name__)


class InProcessCache:
    """A memcached stand-in for one process: keys with a TTL on an injectable monotonic clock.

    Expired keys are dropped lazily on access and by :meth:`purge`, so memory stays bounded by
    the live members (plus those that died since the last purge).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or RealClock()
        self._data: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._sets_since_purge = 0
        self._born = self.clock.monotonic()

    def uptime(self) -> float:
        """Seconds since this cache was created (the in-process analogue of a server's uptime)."""
        return self.clock.monotonic() - self._born

    def set(self, key: str, value: bytes, ttl: float) -> None:
        deadline = self.clock.monotonic() + ttl
        with self._lock:
            self._data[key] = (value, deadline)
            self._sets_since_purge += 1
            if self._sets_since_purge > max(1024, len(self._data)):
                self._purge_locked()

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        now = self.clock.monotonic()
        out: dict[str, bytes] = {}
        with self._lock:
            for key in keys:
                item = self._data.get(key)
                if item is None:
                    continue
                if item[1] <= now:
                    del self._data[key]
                    continue
                out[key] = item[0]
        return out

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def purge(self) -> None:
        with self._lock:
            self._purge_locked()

    def _purge_locked(self) -> None:
        now = self.clock.monotonic()
        for key in [k for k, (_, deadline) in self._data.items() if deadline <= now]:
            del self._data[key]
        self._sets_since_purge = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class MemcachedDriver(Driver):
    """Liveness in memcached (or an in-process cache when no server is configured)."""

    name = "mc"
    # A missing key proves only that beats stopped reaching memcached (or that memcached lost
    # it: a restart or an eviction), hence proves_death=False.
    capabilities = Capabilities(proves_death=False, server_side_expiry=True,
                                external_server=True)

    def __init__(
        self,
        options: MemcachedOptions,
        timing: LivenessTiming,
        *,
        cache: InProcessCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(options, timing)
        # Whole seconds on the server, never less than service_down_time (module docstring).
        self.expiry = math.ceil(timing.service_down_time) + 1
        self.local_ttl = timing.service_down_time
        self.trust_after = timing.trust_after
        servers = options.servers
        self.round_trips = 0  # backend requests issued (counted for tests and benchmarks)
        self._healthy = True
        self.local: InProcessCache | None = None
        self.client: HashClient | None = None
        if cache is not None or not servers:
            self.local = cache if cache is not None else InProcessCache(clock)
            return
        timeout = options.socket_timeout
        # retry_attempts/dead_timeout are irrelevant: HashClient's fail-over is never entered
        # (see the module docstring). Pooled per-server clients are thread-safe (vigil up beats
        # every service from its own thread through one driver) and a client whose request
        # failed is discarded, so the next call reconnects.
        self.client = HashClient(
            [(s.host, s.port) for s in servers], connect_timeout=timeout, timeout=timeout,
            default_noreply=False, no_delay=True, use_pooling=True,
        )

    # -- helpers ------------------------------------------------------------------------------
    def _server_of(self, key: str) -> Any:
        assert self.client is not None
        node = self.client.hasher.get_node(key)
        if node is None:  # pragma: no cover - static list, never emptied here
            raise BackendUnavailable("no memcached server configured")
        return self.client.clients[node]

    def _fail(self, what: str, exc: Exception) -> BackendUnavailable:
        self._healthy = False
        return BackendUnavailable(f"memcached {what} failed: {exc}")

    @staticmethod
    def _value() -> bytes:
        return repr(time.time()).encode()

    # -- agent side ---------------------------------------------------------------------------
    def join(self, member: str, group: str) -> None:
        self.heartbeat(member, group)

    def heartbeat(self, member: str, group: str) -> None:
        """Set the key again: this also re-creates it after a memcached restart or eviction."""
        key = member_key(group, member)
        self.round_trips += 1
        if self.local is not None:
            self.local.set(key, self._value(), self.local_ttl)
            return
        try:
            stored = self._server_of(key).set(key, self._value(), expire=self.expiry,
                                              noreply=False)
        except (MemcacheError, OSError) as exc:
            raise self._fail(f"heartbeat of {key}", exc) from exc
        if not stored:
            raise self._fail(f"heartbeat of {key}", RuntimeError("not stored"))
        self._healthy = True

    def leave(self, member: str, group: str) -> None:
        key = member_key(group, member)
        self.round_trips += 1
        if self.local is not None:
            self.local.delete(key)
            return
        try:
            self._server_of(key).delete(key, noreply=False)
        except (MemcacheError, OSError) as exc:
            raise self._fail(f"leave of {key}", exc) from exc
        self._healthy = True

    # -- reader side --------------------------------------------------------------------------
    def _present(self, keys: list[str]) -> tuple[set[str], set[str]]:
        """(keys found, keys whose server is too young for their absence to mean anything)."""
        if self.local is not None:
            self.round_trips += 1
            hits = set(self.local.get_many(keys))
            young = self.local.uptime() < self.trust_after
            return hits, set(keys) - hits if young else set()
        assert self.client is not None
        by_server: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_server[self.client.hasher.get_node(key)].append(key)
        found: set[str] = set()
        unproven: set[str] = set()
        for node, server_keys in by_server.items():
            client = self.client.clients[node]
            self.round_trips += 2
            try:
                got = client.get_many(server_keys)
                # After the read: a restart between the two requests then shows as young.
                uptime = int(client.stats().get(b"uptime", 0))
            except (MemcacheError, OSError) as exc:
                raise self._fail(f"read of {len(server_keys)} keys from {node}", exc) from exc
            found.update(got)
            if uptime < self.trust_after:
                unproven.update(k for k in server_keys if k not in got)
        self._healthy = True
        return found, unproven

    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """Two requests per memcached server (``get_many`` + ``stats``) for the whole batch."""
        if not services:
            return {}
        keys = {s.id: member_key(s.topic, s.host) for s in services}
        present, unproven = self._present(sorted(set(keys.values())))
        return {
            sid: State.UP if key in present else State.UNKNOWN if key in unproven else State.DOWN
            for sid, key in keys.items()
        }

    def session(self) -> SessionState:
        """SUSPENDED while the last request to memcached failed (memcached has no session to
        lose); the in-process cache is always CONNECTED."""
        healthy = self.local is not None or self._healthy
        return SessionState.CONNECTED if healthy else SessionState.SUSPENDED

    def close(self) -> None:
        if self.client is not None:
            for client in self.client.clients.values():
                try:
                    client.close()
                except Exception:  # best effort on shutdown
                    LOG.debug("closing memcached client failed", exc_info=True)
