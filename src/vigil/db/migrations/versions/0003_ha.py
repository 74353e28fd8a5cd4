"""host high availability: leader lease, recoveries, timelines, evacuations, alerts

Revision ID: 0003_ha
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.db.types import Timestamp

revision = "0003_ha"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ha_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("acquired_at", Timestamp, nullable=True),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("guarded_at", Timestamp, nullable=True),
    )
    op.create_table(
        "recoveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("active_host", sa.String(255), nullable=True),
        sa.Column("service_id", sa.Integer, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("was_disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("was_forced_down", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("fence_agent", sa.String(64), nullable=True),
        sa.Column("fence_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("held_reason", sa.Text, nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.UniqueConstraint("active_host", name="uniq_recoveries0active_host"),
    )
    op.create_index("recoveries_host_idx", "recoveries", ["host"])
    op.create_table(
        "recovery_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recovery_id", sa.Integer, sa.ForeignKey("recoveries.id"), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("dedup_key", sa.String(255), nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("dedup_key", name="uniq_recovery_events0dedup_key"),
    )
    op.create_index("recovery_events_recovery_idx", "recovery_events", ["recovery_id"])
    op.create_table(
        "recovery_evacuations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recovery_id", sa.Integer, sa.ForeignKey("recoveries.id"), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("target_host", sa.String(255), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("requested_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.UniqueConstraint("recovery_id", "instance_uuid",
                            name="uniq_recovery_evacuations0recovery_id0instance_uuid"),
    )
    op.create_table(
        "ha_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("active_kind", sa.String(64), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("raised_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("cleared_at", Timestamp, nullable=True),
        sa.UniqueConstraint("active_kind", name="uniq_ha_alerts0active_kind"),
    )


def downgrade() -> None:
    op.drop_table("ha_alerts")
    op.drop_table("recovery_evacuations")
    op.drop_index("recovery_events_recovery_idx", table_name="recovery_events")
    op.drop_table("recovery_events")
    op.drop_index("recoveries_host_idx", table_name="recoveries")
    op.drop_table("recoveries")
    op.drop_table("ha_leases")
