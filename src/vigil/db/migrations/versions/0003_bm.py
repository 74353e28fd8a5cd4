"""bare-metal nodes, their compute-node records, bare-metal ring members

Revision ID: 0003_bm
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.db.types import Timestamp

revision = "0003_bm"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "baremetal_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("resource_class", sa.String(80), nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("power_state", sa.String(32), nullable=False),
        sa.Column("maintenance", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("uuid", "deleted", name="uniq_baremetal_nodes0uuid0deleted"),
        sa.UniqueConstraint("name", "deleted", name="uniq_baremetal_nodes0name0deleted"),
    )
    op.create_index("baremetal_nodes_instance_uuid_idx", "baremetal_nodes", ["instance_uuid"])
    op.create_table(
        "baremetal_node_records",
        sa.Column("node_uuid", sa.String(36), primary_key=True),
        sa.Column("compute_node_id", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
    )
    op.create_table(
        "baremetal_members",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("service_version", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("baremetal_members")
    op.drop_table("baremetal_node_records")
    op.drop_index("baremetal_nodes_instance_uuid_idx", table_name="baremetal_nodes")
    op.drop_table("baremetal_nodes")
