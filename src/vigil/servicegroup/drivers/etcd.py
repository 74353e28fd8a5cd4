"""The ``etcd`` driver: a member is alive while its key's lease has not expired in etcd.

Each member gets its own lease (TTL ``ceil(service_down_time)`` seconds) and a key
``{prefix}/{topic}/{host}`` attached to it; every heartbeat refreshes the lease (one
``LeaseKeepAlive``). etcd revokes an unrefreshed lease by itself, on the cluster's clock, and
the key goes with it -- death is proven by the server, not inferred by a reader. ``leave``
revokes the lease, so the key disappears at once.

A reader reads all groups of a batch in one round trip: a single transaction holding one
keys-only prefix range per distinct group (chunked at etcd's default ``--max-txn-ops`` of 128
groups). A present key is UP; any error is BackendUnavailable, i.e. UNKNOWN, never DOWN.

After etcd lost the lease (expiry during a partition, data loss), the next heartbeat's
keep-alive answers TTL <= 0 and the driver grants a new lease and re-creates the key by itself.

A reader also watches the store it reads: if the revision goes backwards or the cluster/member
id changes, etcd lost its data (a new cluster) and every lease with it; for one
``service_down_time`` after that a missing key reads UNKNOWN, not DOWN, while the agents notice
(their next keep-alive) and re-create their keys.

It talks to etcd's gRPC JSON gateway through etcd3gw (plain HTTP, no gRPC dependency).
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.lease import Lease

from vigil.errors import BackendUnavailable, ConfigError
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.options import EtcdOptions

LOG = logging.getLogger(__name__)

# etcd refuses a transaction with more operations than --max-txn-ops (default 128).
MAX_TXN_OPS = 128

_ERRORS = (Etcd3Exception, requests.RequestException, ValueError, KeyError, TypeError)


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _prefix_end(prefix: str) -> bytes:
    """The range end that covers every key starting with ``prefix``."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes here end with "/" so the last byte never overflows
    return bytes(raw)


class EtcdDriver(Driver):
    """Liveness as etcd keys bound to per-member leases."""

    name = "etcd"
    capabilities = Capabilities(proves_death=True, server_side_expiry=True,
                                external_server=True)

    def __init__(self, options: EtcdOptions, timing: LivenessTiming) -> None:
        super().__init__(options, timing)
        if len(options.endpoints) != 1:
            raise ConfigError("[etcd] endpoint: this driver talks to one endpoint (a member or "
                              "a load balancer in front of the cluster)")
        endpoint = options.endpoints[0]
        self.endpoint = str(endpoint)
        self.ttl = max(1, math.ceil(timing.service_down_time))
        self.prefix = options.prefix
        self.client = Etcd3Client(host=endpoint.host, port=endpoint.port,
                                  protocol=endpoint.protocol, timeout=options.timeout,
                                  api_path=options.api_path)
        self.round_trips = 0  # backend requests issued (counted for tests and benchmarks)
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._healthy = True
        self.down_time = timing.service_down_time
        self._store: tuple[str, str] | None = None  # (cluster_id, member_id) last read from
        self._revision = 0
        self._distrust_until = 0.0

    def _key(self, group: str, member: str) -> str:
        return f"{self.prefix}/{group}/{member}"

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        self.round_trips += 1
        return self.client.post(self.client.get_url(path), json=payload)

    def _fail(self, what: str, exc: Exception) -> BackendUnavailable:
        self._healthy = False
        detail = getattr(exc, "detail_text", None) or exc
        return BackendUnavailable(f"etcd {self.endpoint} {what} failed: {detail}")

    # -- agent side ---------------------------------------------------------------------------
    def _create(self, key: str) -> None:
        """Grant a fresh lease and attach the key to it (replacing any previous lease)."""
        granted = self._post("/lease/grant", {"TTL": self.ttl, "ID": 0})
        lease = Lease(int(granted["ID"]), client=self.client)
        self._post("/kv/put", {"key": _b64(key), "value": _b64(repr(time.time())),
                               "lease": lease.id})
        with self._lock:
            old = self._leases.get(key)
            self._leases[key] = lease
        if old is not None and old.id != lease.id:
            try:
                self._post("/kv/lease/revoke", {"ID": old.id})
            except _ERRORS:
                LOG.debug("revoking replaced lease %x failed (it will expire)", old.id)

    def join(self, member: str, group: str) -> None:
        key = self._key(group, member)
        try:
            self._create(key)
        except _ERRORS as exc:
            raise self._fail(f"join of {key}", exc) from exc
        self._healthy = True

    def heartbeat(self, member: str, group: str) -> None:
        """Refresh the lease; grant a new one and re-create the key if etcd lost it."""
        key = self._key(group, member)
        with self._lock:
            lease = self._leases.get(key)
        try:
            if lease is None:
                self._create(key)
            else:
                reply = self._post("/lease/keepalive", {"ID": lease.id})
                if int(reply.get("result", {}).get("TTL", -1)) <= 0:
                    LOG.info("etcd lost the lease of %s; re-creating the member", key)
                    self._create(key)
        except _ERRORS as exc:
            raise self._fail(f"heartbeat of {key}", exc) from exc
        self._healthy = True

    def leave(self, member: str, group: str) -> None:
        """Revoke the member's lease (its key goes with it) and delete the key in any case."""
        key = self._key(group, member)
        with self._lock:
            lease = self._leases.pop(key, None)
        try:
            if lease is not None:
                try:
                    self._post("/kv/lease/revoke", {"ID": lease.id})
                except Etcd3Exception as exc:  # an already expired lease is not an error
                    LOG.debug("revoking lease of %s: %s", key, exc)
            self._post("/kv/deleterange", {"key": _b64(key)})
        except _ERRORS as exc:
            raise self._fail(f"leave of {key}", exc) from exc
        self._healthy = True

    # -- reader side --------------------------------------------------------------------------
    def _members(self, groups: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {g: set() for g in groups}
        for start in range(0, len(groups), MAX_TXN_OPS):
            chunk = groups[start:start + MAX_TXN_OPS]
            ops = [
                {"request_range": {"key": _b64(self._key(g, "")),
                                   "range_end": _b64(_prefix_end(self._key(g, ""))),
                                   "keys_only": True}}
                for g in chunk
            ]
            reply = self._post("/kv/txn", {"compare": [], "success": ops, "failure": []})
            self._note_store(reply.get("header", {}))
            responses = reply.get("responses", [])
            if len(responses) != len(chunk):
                raise ValueError(f"etcd answered {len(responses)} ranges for {len(chunk)}")
            for group, resp in zip(chunk, responses, strict=True):
                prefix = self._key(group, "")
                for kv in resp.get("response_range", {}).get("kvs", []):
                    key = base64.b64decode(kv["key"]).decode()
                    out[group].add(key[len(prefix):])
        return out

    def _note_store(self, header: dict[str, Any]) -> None:
        store = (str(header.get("cluster_id", "")), str(header.get("member_id", "")))
        revision = int(header.get("revision", 0))
        if self._store is not None and (store != self._store or revision < self._revision):
            LOG.warning("etcd at %s is a new store (revision %d after %d): absent members are "
                        "unknown for %gs", self.endpoint, revision, self._revision,
                        self.down_time)
            self._distrust_until = time.monotonic() + self.down_time
        self._store = store
        self._revision = revision

    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """One transaction of per-group prefix ranges for the whole batch."""
        if not services:
            return {}
        groups = sorted({s.topic for s in services})
        try:
            members = self._members(groups)
        except _ERRORS as exc:
            raise self._fail(f"read of {len(groups)} groups", exc) from exc
        self._healthy = True
        absent = State.UNKNOWN if time.monotonic() < self._distrust_until else State.DOWN
        return {s.id: State.UP if s.host in members[s.topic] else absent for s in services}

    def session(self) -> SessionState:
        """SUSPENDED while the last request to etcd failed (etcd over HTTP keeps no session
        this process could lose: leases outlive a connection until their TTL)."""
        return SessionState.CONNECTED if self._healthy else SessionState.SUSPENDED

    def close(self) -> None:
        self.client.session.close()
