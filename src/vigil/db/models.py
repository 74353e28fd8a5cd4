"""SQLAlchemy models.

Soft delete follows Nova: ``deleted`` is 0 for a live row and the row's own id once deleted, so
the unique constraint on (host, binary, deleted) holds among live rows while any number of
deleted rows may share a (host, binary).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vigil.db.types import Timestamp


class Base(DeclarativeBase):
    pass


class Service(Base):
    """One running (or once-running) service: a (host, binary) pair."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
        Index("services_topic_idx", "topic"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    report_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    forced_down: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Written only with the database clock (vigil.db.types.utcnow).
    last_seen_up: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    # Set when the service leaves its group cleanly (graceful stop); cleared by its next report.
    left_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ReportPath(Base):
    """One row per conductor: when its report path (messaging -> conductor -> database) last
    worked, and since when it has worked without a gap.

    Readers use it to tell "this service stopped reporting" (down) from "nobody could report"
    (unknown): a stale heartbeat is only evidence of death if reports were getting through.
    """

    __tablename__ = "report_paths"

    conductor: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_beat: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    healthy_since: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
