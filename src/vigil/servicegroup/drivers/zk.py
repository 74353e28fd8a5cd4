"""The ``zk`` driver: a member is alive while its ephemeral znode exists.

Each member is an ephemeral znode ``{sg_prefix}/{topic}/{host}`` owned by this process's
ZooKeeper session (as in Nova's zk servicegroup driver). Kazoo pings the server on its own
thread; when the process dies the pings stop and ZooKeeper itself expires the session after
``recv_timeout`` and deletes the znode -- death is proven by the ensemble, not inferred from a
reader's clock (``proves_death=True``). Detection time is therefore ``recv_timeout``, not
``service_down_time``.

Recovery is the driver's job, not the operator's: a state listener notices a lost (expired)
session and re-creates every member of this process as soon as the new session is connected,
retrying every ``sg_retry_interval`` seconds; every heartbeat also checks its znode and
re-creates it if missing (covering whatever the listener missed).

After this process's session was lost or replaced, every member's may have been too (a
ZooKeeper that lost its data, an outage longer than the sessions): for two session timeouts plus
``sg_retry_interval`` after the new session connects, a missing znode reads UNKNOWN, not DOWN,
while the agents re-create theirs.

A reader lists the children of each distinct group with pipelined asynchronous requests: one
request per group, all in flight at once. While this process's session is not connected the
answer is BackendUnavailable (UNKNOWN), never DOWN.

Unlike the TTL backends, closing the driver ends the session, and ZooKeeper then removes this
process's znodes at once: ephemeral nodes cannot outlive their session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from vigil.errors import BackendUnavailable
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.options import ZooKeeperOptions

LOG = logging.getLogger(__name__)

_ERRORS = (KazooException, KazooTimeoutError, OSError)

_SESSION = {KazooState.CONNECTED: SessionState.CONNECTED,
            KazooState.SUSPENDED: SessionState.SUSPENDED,
            KazooState.LOST: SessionState.LOST}


class ZooKeeperDriver(Driver):
    """Liveness as ephemeral znodes of this process's ZooKeeper session."""

    name = "zk"
    capabilities = Capabilities(proves_death=True, server_side_expiry=True,
                                external_server=True)

    def __init__(self, options: ZooKeeperOptions, timing: LivenessTiming) -> None:
        super().__init__(options, timing)
        self.address = options.address
        self.prefix = options.prefix
        self.session_timeout = options.session_timeout
        self.retry_interval = options.retry_interval
        # A request still unanswered after a whole session timeout will not be answered by this
        # session; the caller hears BackendUnavailable instead of waiting for kazoo.
        self.op_timeout = max(1.0, self.session_timeout)
        self.round_trips = 0  # backend requests issued (counted for tests and benchmarks)
        self._members: set[tuple[str, str]] = set()  # (group, member) this process keeps alive
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._session_lost = False
        self._ever_connected = False
        self._give_up_after = 2 * self.session_timeout + self.retry_interval
        self._distrust_until = 0.0
        self._recreator: threading.Thread | None = None
        self.client = self._new_client()
        self._live = self.client.start_async()
        self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                          name="vigil-zk-watchdog")
        self._watchdog.start()

    def _new_client(self) -> KazooClient:
        client = KazooClient(
            hosts=self.address,
            timeout=self.session_timeout,
            # Reconnect forever, quickly: the session (and the members) survive a server restart
            # only if the client is back within the session timeout.
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 1.0},
            command_retry=None,
        )
        client.add_listener(self._on_state)
        return client

    def _watch(self) -> None:
        """Start a new session when the old one cannot come back.

        A ZooKeeper that lost its data (a new ensemble, a container without a volume) refuses
        a client that has seen a newer transaction than it has, and kazoo would retry that
        forever. Once no connection came back for two session timeouts (so the old session is
        dead anyway) plus ``sg_retry_interval``, a fresh client with a fresh session replaces
        it, and the members are re-created once it connects.
        """
        give_up_after = self._give_up_after
        down_since: float | None = None
        while not self._closed.wait(0.25):
            if self.client.connected:
                down_since = None
                continue
            now = time.monotonic()
            if down_since is None:
                down_since = now
            elif now - down_since > give_up_after:
                LOG.warning("no ZooKeeper session for %.1fs; starting a new session",
                            now - down_since)
                self._replace_client()
                down_since = time.monotonic()

    def _replace_client(self) -> None:
        old = self.client
        self._session_lost = True  # re-create the members once the new session is connected
        self.client = self._new_client()
        self._live = self.client.start_async()
        old.remove_listener(self._on_state)

        def stop_old() -> None:
            try:
                old.stop()
                old.close()
            except Exception:  # the old client is being abandoned; nothing to do about it
                LOG.debug("stopping the abandoned ZooKeeper client failed", exc_info=True)

        threading.Thread(target=stop_old, daemon=True, name="vigil-zk-stop-old").start()

    def _path(self, group: str, member: str = "") -> str:
        return f"{self.prefix}/{group}/{member}" if member else f"{self.prefix}/{group}"

    def _unavailable(self, what: str, exc: BaseException | None = None) -> BackendUnavailable:
        detail = f": {type(exc).__name__} {exc}" if exc is not None else ""
        return BackendUnavailable(f"ZooKeeper {self.address} {what}{detail}")

    # -- session ------------------------------------------------------------------------------
    def _on_state(self, state: str) -> None:
        """Kazoo's listener (runs on its connection thread: must not block)."""
        if self._closed.is_set():
            return
        if state == KazooState.CONNECTED:
            self._ever_connected = True
        if state == KazooState.LOST:
            LOG.warning("ZooKeeper session lost; members of this process will be re-created")
            self._session_lost = True
        elif state == KazooState.SUSPENDED:
            LOG.warning("ZooKeeper connection suspended")
        elif state == KazooState.CONNECTED and self._session_lost:
            self._session_lost = False
            # This session is new: so may everybody's be (ZooKeeper lost its data, or was away
            # longer than the sessions). Until the other agents had time to notice and re-create
            # their znodes, a missing znode proves nothing.
            self._distrust_until = time.monotonic() + self._give_up_after + self.session_timeout
            self._recreator = threading.Thread(target=self._recreate_all, daemon=True,
                                               name="vigil-zk-recreate")
            self._recreator.start()

    def _recreate_all(self) -> None:
        """Re-create every member after a new session, retrying until done or closed."""
        while not self._closed.is_set():
            with self._lock:
                members = sorted(self._members)
            try:
                for group, member in members:
                    self._ensure(group, member)
                LOG.info("re-created %d member(s) in ZooKeeper", len(members))
                return
            except (BackendUnavailable, *_ERRORS) as exc:
                LOG.warning("re-creating members in ZooKeeper failed (%r); retrying in %gs",
                            exc, self.retry_interval)
            self._closed.wait(self.retry_interval)

    def _wait_connected(self, timeout: float) -> None:
        if not self._live.wait(timeout):
            raise self._unavailable(f"not reachable within {timeout:g}s")

    def _ensure(self, group: str, member: str) -> None:
        """Make the member's znode exist and belong to this session (one round trip if so)."""
        path = self._path(group, member)
        session_id = self.client.client_id[0] if self.client.client_id else None
        self.round_trips += 1
        stat = self.client.exists_async(path).get(timeout=self.op_timeout)
        if stat is not None and stat.ephemeralOwner == session_id:
            return
        if stat is not None:
            # Left by this host's previous session (a restart faster than the session timeout):
            # the member is ours now, so take it over instead of waiting for that expiry.
            try:
                self.round_trips += 1
                self.client.delete_async(path, version=stat.version).get(timeout=self.op_timeout)
            except NoNodeError:
                pass
        try:
            self.round_trips += 1
            self.client.create_async(path, repr(time.time()).encode(), ephemeral=True,
                                     makepath=True).get(timeout=self.op_timeout)
        except NodeExistsError:
            pass  # a concurrent _ensure of the same member created it

    # -- agent side ---------------------------------------------------------------------------
    def join(self, member: str, group: str) -> None:
        with self._lock:
            self._members.add((group, member))
        self._wait_connected(self.op_timeout)
        try:
            self._ensure(group, member)
        except _ERRORS as exc:
            raise self._unavailable(f"join of {self._path(group, member)} failed", exc) from exc

    def heartbeat(self, member: str, group: str) -> None:
        """Kazoo keeps the session alive by itself; this re-creates the znode if it is gone."""
        with self._lock:
            self._members.add((group, member))
        if not self.client.connected:
            raise self._unavailable("not connected")
        try:
            self._ensure(group, member)
        except _ERRORS as exc:
            raise self._unavailable(f"heartbeat of {self._path(group, member)} failed",
                                    exc) from exc

    def leave(self, member: str, group: str) -> None:
        with self._lock:
            self._members.discard((group, member))
        if not self.client.connected:
            raise self._unavailable("not connected")
        try:
            self.round_trips += 1
            self.client.delete_async(self._path(group, member)).get(timeout=self.op_timeout)
        except NoNodeError:
            pass
        except _ERRORS as exc:
            raise self._unavailable(f"leave of {self._path(group, member)} failed",
                                    exc) from exc

    # -- reader side --------------------------------------------------------------------------
    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """One get_children per distinct group, all in flight at once."""
        if not services:
            return {}
        if not self.client.connected:
            if self._ever_connected:
                raise self._unavailable("not connected")
            # A reader that just started is still connecting: give it one timeout to succeed.
            self._wait_connected(self.op_timeout)
        groups = sorted({s.topic for s in services})
        members: dict[str, set[str]] = {}
        try:
            pending = []
            for group in groups:
                self.round_trips += 1
                pending.append((group, self.client.get_children_async(self._path(group))))
            for group, result in pending:
                try:
                    members[group] = set(result.get(timeout=self.op_timeout))
                except NoNodeError:
                    members[group] = set()  # nobody ever joined this group
        except _ERRORS as exc:
            raise self._unavailable(f"read of {len(groups)} groups failed", exc) from exc
        absent = State.UNKNOWN if time.monotonic() < self._distrust_until else State.DOWN
        return {s.id: State.UP if s.host in members[s.topic] else absent for s in services}

    def session(self) -> SessionState:
        """Kazoo's own state of this process's session, as a :class:`SessionState`.

        Kazoo starts LOST (no session yet), is SUSPENDED while a connection is down and the
        session may still be resumed, and LOST again when ZooKeeper expired it.
        """
        return _SESSION.get(self.client.state, SessionState.LOST)

    def close(self) -> None:
        self._closed.set()
        try:
            self.client.stop()
            self.client.close()
        except _ERRORS:
            LOG.debug("closing the ZooKeeper client failed", exc_info=True)
