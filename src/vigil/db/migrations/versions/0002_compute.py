"""compute nodes, flavors, instances; built-in flavors

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigil.db.types import Timestamp, utcnow

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Nova's historical defaults (flavorid, name, vcpus, memory_mb, root_gb).
BUILTIN_FLAVORS = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
)


def _soft_delete_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "compute_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("hypervisor_hostname", sa.String(255), nullable=False),
        sa.Column("hypervisor_type", sa.String(255), nullable=False),
        sa.Column("hypervisor_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("host_ip", sa.String(64), nullable=True),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("local_gb", sa.Integer, nullable=False),
        sa.Column("vcpus_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("memory_mb_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("local_gb_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("running_vms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cpu_allocation_ratio", sa.Double, nullable=False),
        sa.Column("ram_allocation_ratio", sa.Double, nullable=False),
        sa.Column("disk_allocation_ratio", sa.Double, nullable=False),
        *_soft_delete_columns(),
        sa.UniqueConstraint("host", "hypervisor_hostname", "deleted",
                            name="uniq_compute_nodes0host0hypervisor_hostname0deleted"),
    )
    flavors = op.create_table(
        "flavors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flavorid", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("root_gb", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        *_soft_delete_columns(),
        sa.UniqueConstraint("name", "deleted", name="uniq_flavors0name0deleted"),
        sa.UniqueConstraint("flavorid", "deleted", name="uniq_flavors0flavorid0deleted"),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("flavorid", sa.String(255), nullable=False),
        sa.Column("flavor_name", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("root_gb", sa.Integer, nullable=False),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("requested_host", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("compute_node_id", sa.Integer, nullable=True),
        sa.Column("vm_state", sa.String(255), nullable=False),
        sa.Column("task_state", sa.String(255), nullable=True),
        sa.Column("power_state", sa.Integer, nullable=False, server_default="0"),
        sa.Column("evacuable", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("fault", sa.Text, nullable=True),
        sa.Column("fault_at", Timestamp, nullable=True),
        sa.Column("launched_at", Timestamp, nullable=True),
        sa.Column("terminated_at", Timestamp, nullable=True),
        *_soft_delete_columns(),
    )
    op.create_index("instances_host_deleted_idx", "instances", ["host", "deleted"])
    op.create_index("instances_task_state_deleted_idx", "instances", ["task_state", "deleted"])
    for flavorid, name, vcpus, memory_mb, root_gb in BUILTIN_FLAVORS:
        op.execute(
            flavors.insert().values(
                flavorid=flavorid, name=name, vcpus=vcpus, memory_mb=memory_mb,
                root_gb=root_gb, created_at=utcnow(), deleted=0,
            )
        )


def downgrade() -> None:
    op.drop_index("instances_task_state_deleted_idx", table_name="instances")
    op.drop_index("instances_host_deleted_idx", table_name="instances")
    op.drop_table("instances")
    op.drop_table("flavors")
    op.drop_table("compute_nodes")
