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

A reader also watches the store it reads (:func:`is_new_store`): if the cluster id changes or
the revision goes backwards, etcd lost its data (a new cluster) and every lease with it; for one
``service_down_time`` after that a missing key reads UNKNOWN, not DOWN, while the agents notice
(their next keep-alive) and re-create their keys. The member id is *not* part of the store's
identity: reads are linearizable, so whichever member answers, the revision never goes
backwards in a cluster that kept its data. (Comparing the member id too made every absent
service UNKNOWN forever behind a load balancer that sends successive requests to different
members, issue 14.)

``[etcd] endpoint`` may list several members. Requests go to one of them until it fails to
answer (a refused or broken connection, a timeout, an internal error such as "no leader"),
then to the next, in order, within the same call: a lost member costs at most one timeout per
call, and the failed call reaches the others before it gives up.

A read the cluster could not answer (an election under way: "leader changed", "no leader"; a
member that stopped answering) is asked again, with a short backoff, for up to
:data:`READ_RETRY_BUDGET` (at most a quarter of ``service_down_time``) before it fails and its
services read UNKNOWN. etcd elects a leader within about one election timeout (1 s by
default), and an answer a moment late is worth more than an UNKNOWN, which Nova's os-services
can only show as ``down``: in issue 14's partition scenario, the partitioned member's return
forced an election and one API answer showed nine live services down. Only reads are asked
again here; an agent's heartbeat is retried by the next heartbeat.

It talks to etcd's gRPC JSON gateway through etcd3gw (plain HTTP, no gRPC dependency).
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import (
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
)

from vigil.errors import BackendUnavailable, ConfigError
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.options import EtcdOptions

LOG = logging.getLogger(__name__)

# etcd refuses a transaction with more operations than --max-txn-ops (default 128).
MAX_TXN_OPS = 128

# Seconds a read goes on asking while the cluster cannot answer (see the module's docstring),
# and the first pause between two tries (doubled each time).
READ_RETRY_BUDGET = 1.5
READ_RETRY_FIRST_PAUSE = 0.1

_ERRORS = (Etcd3Exception, requests.RequestException, ValueError, KeyError, TypeError)


def _unreachable(exc: Exception) -> bool:
    """Whether the next endpoint may answer: this member cannot now (down, hung, or without a
    leader: etcd's gateway says 503 or 500). Any other error is the cluster's own answer, the
    same from every member."""
    if isinstance(exc, ConnectionFailedError | ConnectionTimeoutError | InternalServerError
                  | requests.RequestException):
        return True
    return isinstance(exc, Etcd3Exception) and exc.args[:1] == ("Service Unavailable",)


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class StoreMark:
    """Which store answered, from a reply's header."""

    cluster_id: str
    member_id: str
    revision: int


def is_new_store(previous: StoreMark | None, current: StoreMark) -> bool:
    """Whether ``current`` comes from another store than ``previous``: etcd lost its data.

    A different cluster id is another cluster. Within one cluster the revision never goes
    backwards, whichever member answers: a linearizable read (etcd's default, and this
    driver's) is served only once the member has applied everything committed before the read
    began, and the previous read saw nothing else. So a lower revision means the data went away
    (a cluster rebuilt from empty directories with the same member URLs and token keeps its
    ids). A new member id alone is another member of the same cluster: a load balancer that
    spreads requests, or this driver failing over.
    """
    if previous is None:
        return False
    return current.cluster_id != previous.cluster_id or current.revision < previous.revision


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
        if not options.endpoints:
            raise ConfigError("[etcd] endpoint is empty (e.g. http://127.0.0.1:2379)")
        self.endpoints = [str(e) for e in options.endpoints]
        self.ttl = max(1, math.ceil(timing.service_down_time))
        self.prefix = options.prefix
        self.clients = [Etcd3Client(host=e.host, port=e.port, protocol=e.protocol,
                                    timeout=options.timeout, api_path=options.api_path)
                        for e in options.endpoints]
        self._current = 0  # the endpoint that answered last: asked first
        self.round_trips = 0  # backend requests issued (counted for tests and benchmarks)
        self._leases: dict[str, int] = {}  # key -> lease id
        self._lock = threading.Lock()
        self._healthy = True
        self.down_time = timing.service_down_time
        self._mark: StoreMark | None = None  # the store last read, at its highest revision
        self.new_stores = 0  # how many times a new store was seen (for tests)
        self._distrust_until = 0.0
        self.read_retry_budget = min(READ_RETRY_BUDGET, timing.service_down_time / 4)
        self.read_retries = 0  # reads asked again after the cluster could not answer (tests)

    def _key(self, group: str, member: str) -> str:
        return f"{self.prefix}/{group}/{member}"

    @property
    def endpoint(self) -> str:
        """The endpoint asked first (the one that answered last)."""
        return self.endpoints[self._current]

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        """One request, to the current endpoint, or the next ones while they cannot answer."""
        start = self._current
        for step in range(len(self.clients)):
            index = (start + step) % len(self.clients)
            client = self.clients[index]
            self.round_trips += 1
            try:
                reply = client.post(client.get_url(path), json=payload)
            except _ERRORS as exc:
                if step == len(self.clients) - 1 or not _unreachable(exc):
                    raise
                LOG.warning("etcd %s did not answer (%s); trying %s", self.endpoints[index],
                            getattr(exc, "detail_text", None) or exc,
                            self.endpoints[(index + 1) % len(self.clients)])
                continue
            self._current = index
            return reply
        raise AssertionError("unreachable: at least one endpoint")  # pragma: no cover

    def _fail(self, what: str, exc: Exception) -> BackendUnavailable:
        self._healthy = False
        detail = getattr(exc, "detail_text", None) or exc
        where = ", ".join(self.endpoints)
        return BackendUnavailable(f"etcd {where} {what} failed: {detail}")

    # -- agent side ---------------------------------------------------------------------------
    def _create(self, key: str) -> None:
        """Grant a fresh lease and attach the key to it (replacing any previous lease)."""
        granted = self._post("/lease/grant", {"TTL": self.ttl, "ID": 0})
        lease = int(granted["ID"])
        self._post("/kv/put", {"key": _b64(key), "value": _b64(repr(time.time())),
                               "lease": lease})
        with self._lock:
            old = self._leases.get(key)
            self._leases[key] = lease
        if old is not None and old != lease:
            try:
                self._post("/kv/lease/revoke", {"ID": old})
            except _ERRORS:
                LOG.debug("revoking replaced lease %x failed (it will expire)", old)

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
                reply = self._post("/lease/keepalive", {"ID": lease})
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
                    self._post("/kv/lease/revoke", {"ID": lease})
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

    def _read_members(self, groups: list[str]) -> dict[str, set[str]]:
        """:meth:`_members`, asked again while the cluster cannot answer, within the budget.
        A read changes nothing, so asking again is always safe; an answer that is the
        cluster's own (a refused request) is not asked again."""
        deadline = time.monotonic() + self.read_retry_budget
        pause = READ_RETRY_FIRST_PAUSE
        while True:
            try:
                return self._members(groups)
            except _ERRORS as exc:
                remaining = deadline - time.monotonic()
                if not _unreachable(exc) or remaining <= 0:
                    raise
                pause = min(pause, remaining)  # the last try at the budget's end
                LOG.info("etcd could not answer a read (%s); asking again in %.2fs",
                         getattr(exc, "detail_text", None) or exc, pause)
            self.read_retries += 1
            time.sleep(pause)  # a backoff before the next try, not a synchronisation
            pause *= 2

    def _note_store(self, header: dict[str, Any]) -> None:
        mark = StoreMark(str(header.get("cluster_id", "")), str(header.get("member_id", "")),
                         int(header.get("revision", 0)))
        previous = self._mark
        if is_new_store(previous, mark):
            assert previous is not None
            self.new_stores += 1
            LOG.warning("etcd at %s is a new store (cluster %s revision %d, after cluster %s "
                        "revision %d from member %s): absent members are unknown for %gs",
                        self.endpoint, mark.cluster_id, mark.revision, previous.cluster_id,
                        previous.revision, previous.member_id, self.down_time)
            self._distrust_until = time.monotonic() + self.down_time
        self._mark = mark  # same store: its revision only went forward

    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """One transaction of per-group prefix ranges for the whole batch."""
        if not services:
            return {}
        groups = sorted({s.topic for s in services})
        try:
            members = self._read_members(groups)
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
        for client in self.clients:
            client.session.close()
