"""The ``redis`` driver: a member is alive while its Redis key has not expired.

Each heartbeat is ``SET {key_prefix}<topic>:<host> <time> PX <service_down_time in ms>``: Redis
expires the key by its own clock with millisecond precision (unlike memcached's whole seconds),
and setting it again re-creates a key lost in a Redis restart. A reader sends one pipelined
batch of MGETs for all members (one round trip whatever the batch size); a present key is UP.

A freshly (re)started Redis without persistence is empty, so a missing key proves nothing until
the server has been up for a whole ``service_down_time``: the same pipelined request ends with
``INFO server``, and a key missing from a younger server is UNKNOWN, not DOWN.

Redis is a single server (or a failover pair behind one URL): a restart without persistence
loses every key, and members reappear at their next heartbeat. A key's absence proves only that
beats stopped arriving, hence ``proves_death=False``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from vigil.errors import BackendUnavailable, ConfigError
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver, member_key
from vigil.servicegroup.drivers.options import RedisOptions

# Keys per MGET inside the one pipelined request: bounds a single reply's size while the batch
# still costs one round trip.
MGET_CHUNK = 5000


class RedisDriver(Driver):
    """Liveness in Redis keys with a TTL."""

    name = "redis"
    capabilities = Capabilities(proves_death=False, server_side_expiry=True,
                                external_server=True)

    def __init__(self, options: RedisOptions, timing: LivenessTiming) -> None:
        super().__init__(options, timing)
        self.ttl_ms = max(1, math.ceil(timing.service_down_time * 1000))
        self.prefix = options.key_prefix
        self.trust_after = timing.trust_after
        url = options.url
        timeout = options.socket_timeout
        try:
            # The pool is thread-safe: vigil up beats every service from its own thread. One
            # immediate retry on a broken connection (a pooled socket from before a Redis
            # restart) but none on a timeout: a hung Redis must cost one timeout, not several.
            self.client: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                health_check_interval=0,
            )
        except (ValueError, RedisError) as exc:
            raise ConfigError(f"[redis] url {_safe(url)!r} is invalid: {exc}") from exc
        self.url = _safe(url)
        self.round_trips = 0  # backend requests issued (counted for tests and benchmarks)
        self._healthy = True

    def _key(self, group: str, member: str) -> str:
        return self.prefix + member_key(group, member)

    def _fail(self, what: str, exc: Exception) -> BackendUnavailable:
        self._healthy = False
        return BackendUnavailable(f"redis {self.url} {what} failed: {exc}")

    # -- agent side ---------------------------------------------------------------------------
    def join(self, member: str, group: str) -> None:
        self.heartbeat(member, group)

    def heartbeat(self, member: str, group: str) -> None:
        key = self._key(group, member)
        self.round_trips += 1
        try:
            self.client.set(key, repr(time.time()), px=self.ttl_ms)
        except RedisError as exc:
            raise self._fail(f"heartbeat of {key}", exc) from exc
        self._healthy = True

    def leave(self, member: str, group: str) -> None:
        key = self._key(group, member)
        self.round_trips += 1
        try:
            self.client.delete(key)
        except RedisError as exc:
            raise self._fail(f"leave of {key}", exc) from exc
        self._healthy = True

    # -- reader side --------------------------------------------------------------------------
    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """One pipelined round trip of MGETs for the whole batch."""
        if not services:
            return {}
        keys = {s.id: self._key(s.topic, s.host) for s in services}
        unique = sorted(set(keys.values()))
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(unique), MGET_CHUNK):
            pipe.mget(unique[start:start + MGET_CHUNK])
        pipe.info("server")  # after the reads: a restart in between then shows as young
        self.round_trips += 1
        try:
            *replies, info = pipe.execute()
            uptime = float(info.get("uptime_in_seconds", 0))
        except (RedisError, AttributeError, ValueError) as exc:
            raise self._fail(f"read of {len(unique)} keys", exc) from exc
        self._healthy = True
        absent = State.UNKNOWN if uptime < self.trust_after else State.DOWN
        present: set[str] = set()
        for start, values in zip(range(0, len(unique), MGET_CHUNK), replies, strict=True):
            chunk = unique[start:start + MGET_CHUNK]
            present.update(k for k, v in zip(chunk, values, strict=True) if v is not None)
        return {sid: State.UP if key in present else absent for sid, key in keys.items()}

    def session(self) -> SessionState:
        """SUSPENDED while the last command to Redis failed (Redis has no session to lose)."""
        return SessionState.CONNECTED if self._healthy else SessionState.SUSPENDED

    def close(self) -> None:
        self.client.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
