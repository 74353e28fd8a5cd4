"""quarantine and maintenance of hosts; ownership generation of instances

Revision ID: 0004_quarantine
Revises: 0003_ha
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.db.types import Timestamp

revision = "0004_quarantine"
down_revision = "0003_ha"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("quarantine_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("quarantined_at", Timestamp, nullable=True),
        sa.Column("quarantine_reason", sa.Text, nullable=True),
        sa.Column("quarantine_recovery_id", sa.Integer, nullable=True),
        sa.Column("quarantine_acked_seq", sa.Integer, nullable=True),
        sa.Column("quarantine_acked_at", Timestamp, nullable=True),
        sa.Column("released_at", Timestamp, nullable=True),
        sa.Column("released_by", sa.String(255), nullable=True),
        sa.Column("release_reason", sa.Text, nullable=True),
        sa.Column("maintenance", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("maintenance_reason", sa.Text, nullable=True),
        sa.Column("maintenance_since", Timestamp, nullable=True),
        sa.Column("maintenance_by", sa.String(255), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=True),
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("generation")
    op.drop_table("hosts")
