"""user data, metadata and owner of instances (the metadata API's sources); console tokens

Revision ID: 0005_instance_data
Revises: 0004_quarantine
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.db.types import Timestamp

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
    # What the metadata API's cache polls for changes.
    op.create_index("instances_updated_at_idx", "instances", ["updated_at"])
    op.create_table(
        "console_auth_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("console_type", sa.String(255), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires", Timestamp, nullable=False),
        sa.UniqueConstraint("token_hash", name="uniq_console_auth_tokens0token_hash"),
    )
    op.create_index("console_auth_tokens_instance_uuid_idx", "console_auth_tokens",
                    ["instance_uuid"])
    op.create_index("console_auth_tokens_expires_idx", "console_auth_tokens", ["expires"])


def downgrade() -> None:
    op.drop_table("console_auth_tokens")
    op.drop_index("instances_updated_at_idx", table_name="instances")
    with op.batch_alter_table("instances") as batch:
        for name in ("user_id", "project_id", "meta", "user_data"):
            batch.drop_column(name)
