"""Leader election: a lease row in the database, with its epoch as the fencing token.

Why the database and not tooz: the workflow's writes go to the database, and a fencing token is
only worth something if the store that applies a write also checks the token, in the same
transaction. A lease in the same database gives exactly that (:mod:`vigil.db.ha_api` guards
every write with it); a tooz lock in ZooKeeper or Redis gives no token the database could
check, so a deposed leader that has not noticed yet could still write. It also adds no
dependency: the monitor needs the database anyway, and with the database gone nothing may be
done at all.

Two clocks, each used for what it can prove:

- the **database clock** decides who holds the lease (expiry written and compared by the
  database): a standby takes over only after the lease expired there;
- the leader's **monotonic clock** decides when it must stop by itself: it counts its lease
  from *before* it sent the renewal (so the database's lease always outlives its own estimate)
  and stops ``margin`` earlier still. So a leader cut off from the database stops acting before
  anyone else can start.

``lost`` is an Event set the moment leadership ends; in-flight actions (a fence command) watch
it and stop at once.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib

from sqlalchemy.engine import Engine

from vigil.clock import Clock, RealClock
from vigil.db import ha_api
from vigil.db.ha_api import LeadershipLost, LeaderToken
from vigil.errors import Unavailable

LOG = logging.getLogger(__name__)

LEASE_NAME = "ha-monitor"


def make_holder(host: str, pid: int) -> str:
    """A holder id unique to this process start: host, pid and a random suffix."""
    return f"{host}:{pid}:{uuidlib.uuid4().hex[:8]}"


class Election:
    """Campaign for the lease, keep it renewed, and say at every instant whether we lead."""

    def __init__(self, engine: Engine, holder: str, *, ttl: float,
                 name: str = LEASE_NAME, clock: Clock | None = None) -> None:
        self.engine = engine
        self.holder = holder
        self.name = name
        self.ttl = ttl
        self.margin = max(0.1 * ttl, 0.05)
        self.clock = clock or RealClock()
        self._lock = threading.Lock()
        self._token: LeaderToken | None = None
        self._valid_until = 0.0
        self.lost = threading.Event()
        self.lost.set()  # not leading until elected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.terms = 0  # how many times this process became leader

    # -- state --------------------------------------------------------------------------------
    @property
    def token(self) -> LeaderToken | None:
        with self._lock:
            return self._token

    def is_leader(self) -> bool:
        with self._lock:
            return self._token is not None and self.clock.monotonic() < self._valid_until

    def check(self) -> LeaderToken:
        """The token if we still lead (by our own conservative clock); else LeadershipLost.

        Called before every side-effecting step, in addition to the database's own check of
        the token on every write.
        """
        with self._lock:
            token = self._token
            valid = token is not None and self.clock.monotonic() < self._valid_until
        if token is None or not valid:
            self.step_down("lease validity elapsed on this monitor's clock")
            raise LeadershipLost(f"{self.holder} is not the leader")
        return token

    def step_down(self, why: str) -> None:
        with self._lock:
            token, self._token = self._token, None
        if token is not None:
            LOG.warning("monitor %s: leadership (epoch %d) lost: %s", self.holder, token.epoch,
                        why)
        self.lost.set()

    # -- campaign -----------------------------------------------------------------------------
    def try_acquire(self) -> LeaderToken | None:
        """One attempt to take the lease (if free or expired). Safe to call repeatedly."""
        if self.is_leader():
            return self.token
        sent = self.clock.monotonic()
        try:
            token = ha_api.lease_acquire(self.engine, self.name, self.holder, self.ttl)
        except Unavailable as exc:
            LOG.debug("lease acquisition failed: %s", exc)
            return None
        if token is None:
            return None
        with self._lock:
            self._token = token
            self._valid_until = sent + self.ttl - self.margin
        self.terms += 1
        self.lost.clear()
        LOG.info("monitor %s is the leader (epoch %d)", self.holder, token.epoch)
        return token

    def renew_once(self) -> bool:
        """Renew the lease; False (and stepped down) once it is known lost."""
        token = self.token
        if token is None:
            return False
        sent = self.clock.monotonic()
        try:
            ok = ha_api.lease_renew(self.engine, token, self.ttl)
        except Unavailable as exc:
            # Not lost yet: the lease may still be ours. The validity clock decides.
            LOG.warning("monitor %s: lease renewal failed (%s)", self.holder, exc)
            if not self.is_leader():
                self.step_down("could not renew before the lease ran out")
            return self.is_leader()
        if not ok:
            self.step_down("the lease was no longer ours when renewing")
            return False
        with self._lock:
            if self._token == token:
                self._valid_until = sent + self.ttl - self.margin
        return True

    def start(self) -> None:
        """Renew in the background every ttl/3 while leading."""
        self._thread = threading.Thread(target=self._run, name="ha-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.clock.wait(self._stop, self.ttl / 3):
            if self.token is not None:
                self.renew_once()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release`` give the lease up so a standby takes over now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        token = self.token
        self.step_down("stopping")
        if release and token is not None:
            try:
                ha_api.lease_release(self.engine, token)
            except Unavailable as exc:
                LOG.warning("could not release the lease (it expires by itself): %s", exc)
