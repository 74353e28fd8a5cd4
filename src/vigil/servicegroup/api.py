"""The ServiceGroup facade: join, heartbeat, leave; the members of a group with their states.

Policy lives here, mechanism in the drivers (as in Nova's servicegroup):

    state = DOWN                                   if an operator forced it down
          = combine(RPC liveness, driver verdict)  otherwise

RPC liveness is the services row's heartbeat age on the database's clock, gated by the health of
the report path; the driver verdict is the configured backend's own answer (for ``db`` the two
are the same fact). Either saying DOWN makes it DOWN; a source that could not answer makes it
UNKNOWN, never DOWN. The RPC half is a pure rule of :mod:`vigil.objects.liveness`
(``record_state_list``; ``record_states`` by id), which the ``db`` driver applies too: the
facade takes it from the words, not from a driver module.

Readers ask :meth:`ServiceGroup.members` for a group (or any exact filter) and get every member
with both answers they may need, ``state`` (the policy's) and ``reporting`` (liveness ignoring
``forced_down``), from one snapshot and one backend round trip. Nova's one-service methods
(``state``, ``is_up``, ``get_all``) remain as one-line wrappers over it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from vigil.db import services as services_db
from vigil.errors import BackendUnavailable, DatabaseUnavailable
from vigil.objects import liveness
from vigil.objects.liveness import (
    LivenessTiming,
    LivenessView,
    SessionState,
    State,
    record_state_list,
)
from vigil.objects.services import ServiceRecord, Snapshot
from vigil.servicegroup.drivers.base import Driver
from vigil.servicegroup.membership import Member, Membership

LOG = logging.getLogger(__name__)


class ServiceGroup:
    """Membership and liveness of services in groups (a group is a topic, e.g. ``compute``).

    Agents use the join/heartbeat/leave side (no database needed); readers (API, CLI, scheduler,
    monitor) use the state side, which needs the database engine.
    """

    def __init__(self, driver: Driver, timing: LivenessTiming, *,
                 engine: Engine | None = None) -> None:
        self.driver = driver
        self.engine = engine
        self.timing = timing
        self.down_after = timing.down_after
        # The same tolerance the conductors use when they record their report path's beats.
        self.path_max_gap = timing.path_max_gap
        if self.path_max_gap <= dt.timedelta(0):
            raise ValueError(
                f"service_down_time {timing.service_down_time:g} leaves the report path no gap "
                f"tolerance at report_interval {timing.report_interval:g} and coalesce_interval "
                f"{timing.coalesce_interval:g}: no stale service could ever be proven down")

    # -- membership ---------------------------------------------------------------------------
    def join(self, member: str, group: str) -> None:
        self.driver.join(member, group)

    def heartbeat(self, member: str, group: str) -> None:
        self.driver.heartbeat(member, group)

    def leave(self, member: str, group: str) -> None:
        self.driver.leave(member, group)

    # -- liveness -----------------------------------------------------------------------------
    def session(self) -> SessionState:
        """This process's session with the liveness backend (what to do in each state:
        :class:`~vigil.objects.liveness.SessionState`)."""
        return self.driver.session()

    def members(self, topic: str | None = None, *, host: str | None = None,
                binary: str | None = None, ids: Sequence[int] | None = None) -> Membership:
        """The live services matching exact filters, each with its state, read now.

        One snapshot (three statements, any number of services) and one backend round trip.
        A database error propagates (:class:`~vigil.errors.DatabaseUnavailable`): the
        caller decides whether no answer is a 503, a skipped pass or an UNKNOWN.
        """
        snap = services_db.snapshot(self._engine(), topic=topic, host=host, binary=binary,
                                    ids=ids)
        return self.membership(snap)

    def membership(self, snap: Snapshot) -> Membership:
        """The members of a snapshot the caller already holds (see :meth:`members`)."""
        states, reporting = self.judge(snap)
        return Membership(tuple(map(Member, snap.services, states, reporting)))

    def member_states(self, topic: str | None = None, *, host: str | None = None,
                      binary: str | None = None, ids: Sequence[int] | None = None
                      ) -> tuple[list[ServiceRecord], list[State]]:
        """:meth:`members` as two aligned lists, the records and their states, with no
        :class:`Member` per service: for a reader that builds its own object per service
        anyway (the registry's views, once per service of a 10,000-service list)."""
        snap = services_db.snapshot(self._engine(), topic=topic, host=host, binary=binary,
                                    ids=ids)
        return snap.services, self.judge(snap)[0]

    def judge(self, snap: Snapshot) -> tuple[list[State], list[State]]:
        """Each service's ``state`` and ``reporting`` (:class:`Member`), in the snapshot's
        order: the policy, written once for :meth:`membership` and :meth:`member_states`."""
        view = self.view(snap)
        services = snap.services
        reporting = record_state_list(services, view)
        if self.driver.has_own_verdict:
            try:
                verdicts = self.driver.get_states(services, view)
            except BackendUnavailable as exc:
                LOG.warning("liveness backend %s unavailable, states unknown: %s",
                            self.driver.name, exc)
                verdicts = {}
            combine, unknown = liveness.combine, State.UNKNOWN
            reporting = [combine(rpc, verdicts.get(svc.id, unknown))
                         for svc, rpc in zip(services, reporting, strict=True)]
        # Comprehensions over aligned lists: this runs once per service of every list.
        down = State.DOWN
        states = [down if svc.forced_down else rep
                  for svc, rep in zip(services, reporting, strict=True)]
        return states, reporting

    def view(self, snap: Snapshot) -> LivenessView:
        """What a driver needs besides the rows: the database's now, the timing, the path."""
        beats = [liveness.PathBeat(last, since) for last, since in snap.path_beats]
        return LivenessView(
            now=snap.now,
            down_after=self.down_after,
            reports_healthy_since=liveness.reports_healthy_since(beats, snap.now,
                                                                 self.path_max_gap),
        )

    def states(self, snap: Snapshot, *, honour_forced_down: bool = True) -> dict[int, State]:
        """The state of every service of a snapshot, by id (:meth:`membership`, flattened).

        ``honour_forced_down=False`` answers whether each service really reports, whatever an
        operator (or the HA monitor) forced (:attr:`Member.reporting`).
        """
        return {m.record.id: m.state if honour_forced_down else m.reporting
                for m in self.membership(snap)}

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("this ServiceGroup has no database engine (agent side only)")
        return self.engine

    # -- Nova's shape, one line each over members() -------------------------------------------
    def state(self, service: ServiceRecord | int) -> State:
        """One service's state, read fresh. A database error is UNKNOWN, never DOWN."""
        service_id = service if isinstance(service, int) else service.id
        try:
            found = self.members(ids=[service_id])
        except DatabaseUnavailable as exc:
            LOG.warning("cannot read liveness of service %s: %s", service_id, exc)
            return State.UNKNOWN
        if not found:
            return State.DOWN if not isinstance(service, int) else State.UNKNOWN
        return found[0].state

    def is_up(self, service: ServiceRecord | int) -> bool:
        return self.state(service) is State.UP

    def get_all(self, group: str) -> list[str]:
        """Hosts of the members of ``group`` that are up."""
        return self.members(group).up_hosts()
