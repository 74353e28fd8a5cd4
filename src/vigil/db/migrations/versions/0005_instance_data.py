"""user data, metadata and owner of instances (the metadata API's sources)

Revision ID: 0005_instance_data
Revises: 0004_quarantine
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_instance_data"
down_revision = "0004_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        # Base64 text as the API received it (Nova stores it so too): at most 65535
        # characters, which MySQL's TEXT holds.
        batch.add_column(sa.Column("user_data", sa.Text, nullable=True))
        # The server's metadata (key -> value strings) as one JSON object.
        batch.add_column(sa.Column("meta", sa.Text, nullable=True))
        batch.add_column(sa.Column("project_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        for name in ("user_id", "project_id", "meta", "user_data"):
            batch.drop_column(name)
