"""Models of host high availability: the leader lease, recoveries and their timelines.

They share ``Base`` with the services so Alembic sees one metadata (:mod:`.schema` gathers
every model module).

Exactly-once is carried by the schema, not by the monitor's memory:

- ``ha_leases``: one row per election. ``epoch`` grows by one at every change of holder; it is
  the fencing token every workflow write is conditional on (see :mod:`vigil.db.ha.lease`).
- ``recoveries``: one row per failed host and incident. ``active_host`` is the host while the
  recovery is open and NULL once it ended; its UNIQUE constraint (NULLs never collide, on all
  three databases) allows one open recovery per host, however many monitors race to open it.
- ``recovery_events``: the timeline. An event that must happen at most once (``fence_started``
  of attempt 2, ``fenced``, ``re_enabled``) carries a ``dedup_key``; its UNIQUE constraint makes
  a second insert fail, so a resumed monitor cannot record (or do) a step twice.
- ``recovery_evacuations``: one row per (recovery, instance), UNIQUE: an instance is requested
  for evacuation once per recovery; retries after "no valid host" bump ``attempts`` on that row.
- ``hosts``: what the HA plane says about a compute host, apart from its services: its
  **quarantine** (set in the same guarded transaction that records a fence's intent, before
  the fence agent runs; while set, the host may start nothing: every instance start is
  conditional on its absence) and its **maintenance** (an operator's "do not recover this
  host"). One row per host, created on first use.
- ``ha_alerts``: conditions an operator must see (mass failure brake, unprovable death).
  ``active_kind`` is the kind while raised, NULL once cleared: one open alert per kind.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.db.models import Base
from vigil.db.types import Timestamp


class HaLease(Base):
    """A leader lease with a fencing token; times are the database's clock."""

    __tablename__ = "ha_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    acquired_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    # Touched by every guarded write: the UPDATE that takes the row lock
    # (see vigil.db.ha.lease.guard).
    guarded_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class Recovery(Base):
    """The recovery of one failed compute host."""

    __tablename__ = "recoveries"
    __table_args__ = (
        UniqueConstraint("active_host", name="uniq_recoveries0active_host"),
        Index("recoveries_host_idx", "host"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    active_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    service_id: Mapped[int] = mapped_column(Integer, nullable=False)
    trigger: Mapped[str] = mapped_column(String(32), nullable=False)  # monitor | manual
    phase: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # What the service looked like before we touched it: only what we changed is undone.
    was_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    was_forced_down: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    fence_agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fence_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    held_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)  # of the last writer
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class RecoveryEvent(Base):
    """One entry of a recovery's timeline."""

    __tablename__ = "recovery_events"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uniq_recovery_events0dedup_key"),
        Index("recovery_events_recovery_idx", "recovery_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recoveries.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    dedup_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)


class RecoveryEvacuation(Base):
    """The evacuation of one instance by one recovery."""

    __tablename__ = "recovery_evacuations"
    __table_args__ = (
        UniqueConstraint("recovery_id", "instance_uuid",
                         name="uniq_recovery_evacuations0recovery_id0instance_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recoveries.id"), nullable=False)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    target_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    requested_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class HaAlert(Base):
    """A condition the HA monitor wants an operator to see."""

    __tablename__ = "ha_alerts"
    __table_args__ = (UniqueConstraint("active_kind", name="uniq_ha_alerts0active_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    active_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    raised_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class Host(Base):
    """HA facts of one compute host: quarantine and maintenance.

    ``quarantined_at`` is set while the host is quarantined. ``quarantine_seq`` grows by one at
    every quarantine, so an agent's acknowledgement (``quarantine_acked_seq``: "I stopped
    everything") names the quarantine it answers and can never be mistaken for a later one.
    """

    __tablename__ = "hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    quarantine_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quarantined_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    quarantine_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    quarantine_recovery_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quarantine_acked_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quarantine_acked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    maintenance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    maintenance_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    maintenance_since: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    maintenance_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
