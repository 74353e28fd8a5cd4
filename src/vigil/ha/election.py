"""Leader election: a lease row in the database, with its epoch as the fencing token.

Why the database and not tooz: the workflow's writes go to the database, and a fencing token is
only worth something if the store that applies a write also checks the token, in the same
transaction. A lease in the same database gives exactly that (:mod:`vigil.db.ha.lease` guards
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
it and stop at once. It is set at the leader's own deadline even when the renewal is not
failing but *hanging* (a database behind a partition answers nothing and resets nothing): each
renewal runs in a worker thread, and the renewal loop waits only until the deadline.

A cut-off leader must also not keep the lease row locked. Its last transaction (a renewal, or
a guarded write) may have reached the server, taken the row lock and then lost its client: the
server keeps such a transaction until TCP gives up (hours), and a standby's takeover, an UPDATE
of the same row, would wait behind it. The monitor's database sessions therefore carry
server-side limits derived from the lease TTL (:func:`lease_session_limits`), so the server
itself ends that transaction well before the lease expires.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib

from sqlalchemy.engine import Engine

from vigil.clock import Clock, RealClock
from vigil.db.engine import KeepAlive, SessionLimits
from vigil.db.ha import lease as lease_db
from vigil.errors import LeadershipLost, Unavailable
from vigil.objects.ha import LeaderToken

LOG = logging.getLogger(__name__)

LEASE_NAME = "ha-monitor"


def lease_session_limits(ttl: float) -> SessionLimits:
    """The server-side limits of the monitor's database sessions, for a lease of ``ttl`` s.

    With T = ``ttl``: ``statement`` = ``lock_wait`` = ``idle_in_transaction`` = T/4, the
    PyMySQL client timeouts T/2, TCP keepalive after max(1, ⌊T/2⌋) s of silence, then every
    max(1, ⌊T/6⌋) s, 3 probes.

    Why: once a leader is cut off, its open transaction can still hold the lease row for at
    most one statement in progress (≤ T/4, lock waits included) plus one idle wait before the
    next statement that never comes (≤ T/4): the server ends it, and releases the row, at most
    T/2 after the cut. The lease itself, last renewed before the cut, expires in the database
    at most T after it. So the row is free before the lease can be taken, and the standby's
    takeover waits for the expiry only: takeover ≤ T + one ``poll_interval`` + one short
    transaction. A standby trying while the row is still held (a lease expired early,
    MariaDB's 1 s rounding) waits at most T/4 for the lock, fails, and tries again at its next
    poll. A live leader's statements take milliseconds, far inside these limits (a renewal
    queued behind the leader's own guarded write waits only for that short transaction).

    MariaDB counts its lock wait and idle limits in whole seconds (rounded down, at least
    1 s): with T < 4 s its idle bound is 1 s rather than T/4, and a cut-off leader's row is
    free at most T/4 + 1 s after the cut (still before the lease expires while T > 4/3 s).
    """
    quarter = ttl / 4
    return SessionLimits(statement=quarter, lock_wait=quarter, idle_in_transaction=quarter,
                         client_io=2 * quarter,
                         keepalive=KeepAlive(idle=max(1, int(ttl / 2)),
                                             interval=max(1, int(ttl / 6)), count=3))


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
        self._renewal: threading.Thread | None = None  # the renewal in flight, if any
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
            self.step_down("lease validity elapsed on this monitor's clock", token)
            raise LeadershipLost(f"{self.holder} is not the leader")
        return token

    def step_down(self, why: str, token: LeaderToken | None = None) -> None:
        """Stop leading now (sets ``lost``); with ``token``, only if that is still the term."""
        with self._lock:
            if token is not None and self._token != token:
                return
            token, self._token = self._token, None
        if token is not None:
            LOG.warning("monitor %s: leadership (epoch %d) lost: %s", self.holder, token.epoch,
                        why)
        self.lost.set()

    # -- campaign -----------------------------------------------------------------------------
    def try_acquire(self) -> LeaderToken | None:
        """One attempt to take the lease (if free or expired). Safe to call repeatedly.

        Any failure of the attempt means "not now", quietly: the next poll tries again. That
        includes a lock wait cut short by the session limits (:func:`lease_session_limits`)
        while a cut-off leader's transaction still holds the lease row.
        """
        if self.is_leader():
            return self.token
        sent = self.clock.monotonic()
        try:
            token = lease_db.lease_acquire(self.engine, self.name, self.holder, self.ttl)
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
        """Renew the lease, synchronously; False (and stepped down) once it is known lost.

        A renewal that answers after this monitor's own deadline does not bring leadership
        back: the monitor has stepped down (or is about to) and may have cancelled what it was
        doing. If the late renewal did extend the lease in the database, the lease is released
        so that a standby need not wait for it to expire.
        """
        token = self.token
        if token is None:
            return False
        sent = self.clock.monotonic()
        try:
            ok = lease_db.lease_renew(self.engine, token, self.ttl)
        except Unavailable as exc:
            # Not lost yet: the lease may still be ours. The validity clock decides.
            LOG.warning("monitor %s: lease renewal failed (%s)", self.holder, exc)
            self._expire_if_due()
            return self.is_leader()
        if not ok:
            self.step_down("the lease was no longer ours when renewing", token)
            return False
        with self._lock:
            extended = self._token == token and self.clock.monotonic() < self._valid_until
            if extended:
                self._valid_until = sent + self.ttl - self.margin
        if not extended:
            self.step_down("the lease renewal answered after the lease ran out on this "
                           "monitor's clock", token)
            self._release(token)
        return extended

    # -- the renewal loop ---------------------------------------------------------------------
    def renew_in_background(self) -> bool:
        """Start one renewal in a worker thread; False if the previous one is still running.

        The loop never blocks in the database: a renewal stuck on a dead connection (a
        partitioned database does not reset it) hangs only its worker, while the loop steps
        down at the deadline (:meth:`sleep`). At most one worker is in flight: while one
        hangs no other starts, so hung workers do not pile up; its late answer is for an old
        term and changes nothing.
        """
        with self._lock:
            worker = self._renewal
            if worker is not None and worker.is_alive():
                busy = True
            else:
                busy = False
                worker = threading.Thread(target=self.renew_once, name="ha-lease-renew",
                                          daemon=True)
                self._renewal = worker
        if busy:
            LOG.warning("monitor %s: the previous lease renewal has not answered yet",
                        self.holder)
            return False
        worker.start()
        return True

    def renewal_in_flight(self) -> bool:
        with self._lock:
            return self._renewal is not None and self._renewal.is_alive()

    def sleep(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event`` (True if it was set), but while leading never
        past the validity deadline: at the deadline this monitor steps down, which sets
        ``lost``, whether or not a renewal is still waiting for the database."""
        end = self.clock.monotonic() + seconds
        while True:
            if event.is_set():
                return True
            self._expire_if_due()
            now = self.clock.monotonic()
            if now >= end:
                return False
            with self._lock:
                until = min(end, self._valid_until) if self._token is not None else end
            if self.clock.wait(event, max(0.0, until - now)):
                return True

    def start(self) -> None:
        """Renew in the background every ttl/3 while leading."""
        self._thread = threading.Thread(target=self._run, name="ha-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.token is not None:
                self.renew_in_background()
            if self.sleep(self._stop, self.ttl / 3):
                return

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release`` give the lease up so a standby takes over now.

        The release is waited for at most one ttl (in a worker thread: a partitioned
        database would hold a stopping monitor forever); the lease expires by itself anyway.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        token = self.token
        self.step_down("stopping")
        if release and token is not None:
            worker = threading.Thread(target=self._release, args=(token,),
                                      name="ha-lease-release", daemon=True)
            worker.start()
            worker.join(timeout=self.ttl)

    def _expire_if_due(self) -> None:
        """Step down if the validity deadline has passed (on this monitor's clock)."""
        with self._lock:
            token = self._token
            due = token is not None and self.clock.monotonic() >= self._valid_until
        if due:
            self.step_down("the lease validity elapsed on this monitor's clock before a "
                           "renewal answered", token)

    def _release(self, token: LeaderToken) -> None:
        try:
            lease_db.lease_release(self.engine, token)
        except Unavailable as exc:
            LOG.warning("could not release the lease (it expires by itself): %s", exc)
