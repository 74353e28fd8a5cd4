"""Models of compute resources: compute nodes, flavors and instances.

They live on the same ``Base`` as the services so Alembic sees one metadata (:mod:`.schema`
gathers every model module). Soft delete follows Nova as for services: ``deleted`` is 0
for a live row and the row's own id once deleted.

Resource usage (``*_used``, ``running_vms``) of a compute node is never recomputed from a read:
it changes only in the same transaction that assigns an instance to the node or takes it away,
with a conditional UPDATE, which is what keeps concurrent boots from oversubscribing a host.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Double, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.db.models import Base
from vigil.db.types import Timestamp


class ComputeNode(Base):
    """One hypervisor of a compute host, with its inventory and what is claimed on it."""

    __tablename__ = "compute_nodes"
    __table_args__ = (
        UniqueConstraint("host", "hypervisor_hostname", "deleted",
                         name="uniq_compute_nodes0host0hypervisor_hostname0deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    hypervisor_type: Mapped[str] = mapped_column(String(255), nullable=False)
    hypervisor_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    host_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    local_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    vcpus_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Double, not Float: MySQL's FLOAT is single precision and 1.1 would not round-trip.
    cpu_allocation_ratio: Mapped[float] = mapped_column(Double, nullable=False)
    ram_allocation_ratio: Mapped[float] = mapped_column(Double, nullable=False)
    disk_allocation_ratio: Mapped[float] = mapped_column(Double, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Flavor(Base):
    """A size of instance. Instances copy its numbers at boot, so deleting it harms nobody."""

    __tablename__ = "flavors"
    __table_args__ = (
        UniqueConstraint("name", "deleted", name="uniq_flavors0name0deleted"),
        UniqueConstraint("flavorid", "deleted", name="uniq_flavors0flavorid0deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    root_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Instance(Base):
    """A server. ``host``/``node``/``compute_node_id`` are set by the scheduler's claim."""

    __tablename__ = "instances"
    __table_args__ = (
        Index("instances_host_deleted_idx", "host", "deleted"),
        Index("instances_task_state_deleted_idx", "task_state", "deleted"),
        # The metadata cache's poll for changes (vigil.metadata.cache).
        Index("instances_updated_at_idx", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    flavorid: Mapped[str] = mapped_column(String(255), nullable=False)
    flavor_name: Mapped[str] = mapped_column(String(255), nullable=False)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    root_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    requested_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    compute_node_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vm_state: Mapped[str] = mapped_column(String(255), nullable=False)
    task_state: Mapped[str | None] = mapped_column(String(255), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Ownership generation: every change of who may run the instance (a claim on a host, an
    # evacuation taking it away, a failed spawn releasing it) adds one. A start on a host is
    # authorized only for the generation the host read (vigil.db.compute.instances.instance_start),
    # so a host acting on a stale picture can never start a copy that belongs elsewhere.
    generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    evacuable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # What the metadata API serves (vigil.metadata), read apart from the record agents get:
    # user data is up to 64 KiB of base64 that no agent needs in every RPC.
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object of strings
    project_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fault: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    launched_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ConsoleAuthToken(Base):
    """A console token (Nova's ``console_auth_tokens``): only its SHA-256 is stored, so a
    leaked database opens no console. It is for one instance, on the host and in the ownership
    generation it had when the token was made (an evacuation makes it useless), used at most
    once, until ``expires`` (the database's clock)."""

    __tablename__ = "console_auth_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uniq_console_auth_tokens0token_hash"),
        Index("console_auth_tokens_instance_uuid_idx", "instance_uuid"),
        Index("console_auth_tokens_expires_idx", "expires"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    console_type: Mapped[str] = mapped_column(String(255), nullable=False)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    expires: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
