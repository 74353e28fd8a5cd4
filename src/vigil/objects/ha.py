"""Host high availability's words: a recovery's phases and statuses, an evacuation's status, the
leader's token, and the records of recoveries, their timeline, evacuations, alerts and hosts.

The enums' values are the strings the database has always held.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from vigil.objects.primitive import Primitive

# Prefix of the disabled_reason the monitor writes: it re-enables only what it disabled.
REASON_PREFIX = "vigil-ha:"


class Phase(enum.StrEnum):
    """How far a recovery got, in order. A recovery only ever moves forward through them, and
    the leader's next step follows from the phase (:func:`vigil.ha.policy.next_step`).

    DETECTED: opened (the host was DOWN past its grace, or an operator asked): disable its
        compute service next, or cancel if it reports again.
    DISABLED: no new work goes to it; fence it next (under the brakes), or cancel if it
        reports again. Nothing may be evacuated yet.
    FENCED: powered off (verified where the agent can read the power), and quarantined: force
        its service down next. From here on the recovery runs to its end.
    FORCED_DOWN: evacuate its instances (only while this recovery holds the quarantine).
    EVACUATED: every evacuation is over and the quarantine released; re-enable the host once it
        reports again.
    COMPLETED: the host is back and re-enabled; nothing left to do.
    """

    DETECTED = "detected"
    DISABLED = "disabled"
    FENCED = "fenced"
    FORCED_DOWN = "forced_down"
    EVACUATED = "evacuated"
    COMPLETED = "completed"

    @property
    def rank(self) -> int:
        """The phase's place in the order (DETECTED is 0)."""
        return _PHASE_RANK[self]

    def reached(self, phase: Phase) -> bool:
        """This phase is ``phase`` or a later one."""
        return self.rank >= phase.rank


_PHASE_RANK = {phase: i for i, phase in enumerate(Phase)}


class RecoveryStatus(enum.StrEnum):
    """Whether a recovery is still someone's work (ACTIVE and WAITING are open: the recovery
    row holds ``active_host``, so a host has at most one open recovery).

    ACTIVE: being worked on by the leader.
    WAITING: evacuated; waiting for the host to come back (then re-enabled).
    DONE: the host is back and re-enabled.
    CANCELLED: the host came back (or was taken out of the monitor's care) before any fence.
    """

    ACTIVE = "active"
    WAITING = "waiting"
    DONE = "done"
    CANCELLED = "cancelled"


class Trigger(enum.StrEnum):
    """Who opened a recovery.

    MONITOR: the leader, for a host DOWN past its grace: every brake applies, and maintenance
        or a clean leave cancels it before its fence.
    MANUAL: an operator (``vigil host evacuate``): the judgement brakes (mass failure, unproven
        death) do not hold it; the view brakes still do.
    """

    MONITOR = "monitor"
    MANUAL = "manual"


class EvacuationStatus(enum.StrEnum):
    """One instance's evacuation within a recovery.

    REQUESTED: handed to the scheduler (the instance is ``rebuilding``): watch it.
    RETRY: no valid host was found (or it was cancelled): ask again after a backoff, never drop.
    DONE: active on another host. Finished.
    FAILED: it left the host but its rebuild failed: the operator's turn. Finished.
    GONE: deleted meanwhile. Finished.
    """

    REQUESTED = "requested"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"
    GONE = "gone"

    @property
    def finished(self) -> bool:
        """Nothing more will happen to this evacuation."""
        return self in (EvacuationStatus.DONE, EvacuationStatus.FAILED, EvacuationStatus.GONE)


@dataclass(frozen=True)
class LeaderToken:
    """Proof of leadership, checked by the database on every guarded write."""

    name: str
    holder: str
    epoch: int


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str | None
    epoch: int
    acquired_at: dt.datetime | None
    expires_at: dt.datetime
    now: dt.datetime  # the database's clock when read

    @property
    def held(self) -> bool:
        return self.holder is not None and self.expires_at > self.now


@dataclass(frozen=True)
class RecoveryRecord:
    id: int
    uuid: str
    host: str
    active_host: str | None
    service_id: int
    trigger: Trigger
    phase: Phase
    status: RecoveryStatus
    was_disabled: bool
    was_forced_down: bool
    fence_agent: str | None
    fence_attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    held_reason: str | None
    epoch: int
    created_at: dt.datetime
    updated_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def open(self) -> bool:
        return self.active_host is not None

    def reached(self, phase: Phase) -> bool:
        return self.phase.reached(phase)


@dataclass(frozen=True)
class EventRecord:
    id: int
    recovery_id: int
    kind: str
    instance_uuid: str | None
    detail: str | None
    dedup_key: str | None
    epoch: int
    created_at: dt.datetime


@dataclass(frozen=True)
class EvacuationRecord:
    id: int
    recovery_id: int
    instance_uuid: str
    status: EvacuationStatus
    attempts: int
    target_host: str | None
    detail: str | None
    next_attempt_at: dt.datetime | None
    requested_at: dt.datetime | None
    finished_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class AlertRecord:
    id: int
    kind: str
    active: bool
    message: str
    raised_at: dt.datetime
    last_seen_at: dt.datetime
    cleared_at: dt.datetime | None


@dataclass(frozen=True)
class HostRecord(Primitive):
    """A compute host's HA facts (:mod:`vigil.db.ha.hosts` says how they are kept).

    ``quarantined``: a fence was decided; the host may start no instance until it is released.
    ``maintenance``: an operator is working on it; the HA monitor opens no recovery for it.
    """

    host: str
    quarantine_seq: int = 0
    quarantined_at: dt.datetime | None = None
    quarantine_reason: str | None = None
    quarantine_recovery_id: int | None = None
    quarantine_acked_seq: int | None = None
    quarantine_acked_at: dt.datetime | None = None
    released_at: dt.datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None
    maintenance: bool = False
    maintenance_reason: str | None = None
    maintenance_since: dt.datetime | None = None
    maintenance_by: str | None = None
    updated_at: dt.datetime | None = None

    @property
    def quarantined(self) -> bool:
        return self.quarantined_at is not None

    @property
    def quarantine_acked(self) -> bool:
        """The host's agent confirmed it runs nothing since this quarantine began."""
        return self.quarantined and self.quarantine_acked_seq == self.quarantine_seq
