"""Models of bare-metal nodes and of their compute-node records' ownership.

Three tables, three concerns:

* ``baremetal_nodes``: the inventory Vigil keeps itself (``vigil node create``), one
  :class:`vigil.baremetal.source.NodeSource` among possible others (Ironic). Soft delete as
  everywhere: ``deleted`` is 0 while live and the row's id once deleted.
* ``baremetal_node_records``: for each node uuid (whatever its source), the one compute-node
  record that stands for it. The primary key on the node uuid is what makes "one record per
  node" a constraint rather than a hope: two services creating a record for the same new node
  race on this row, and the database lets exactly one insert it. Who *owns* the node is that
  record's ``compute_nodes.host`` -- a single column, so never two owners.
* ``baremetal_members``: the compute hosts running the bare-metal driver, with the service
  version (bumped at every start) they last announced. A host restarted with another driver
  keeps its row but not its version, so it drops out of the ring without anyone cleaning up.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.db.models import Base
from vigil.db.types import Timestamp


class BareMetalNode(Base):
    """A physical machine that instances can be placed on, whole."""

    __tablename__ = "baremetal_nodes"
    __table_args__ = (
        UniqueConstraint("uuid", "deleted", name="uniq_baremetal_nodes0uuid0deleted"),
        UniqueConstraint("name", "deleted", name="uniq_baremetal_nodes0name0deleted"),
        Index("baremetal_nodes_instance_uuid_idx", "instance_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    resource_class: Mapped[str] = mapped_column(String(80), nullable=False)
    # cpus, memory_mb, local_gb (as Ironic's node properties)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    power_state: Mapped[str] = mapped_column(String(32), nullable=False)
    maintenance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class BareMetalNodeRecord(Base):
    """Node uuid -> the compute-node record standing for it (live, or deleted and due to be
    replaced by whichever service takes the node next)."""

    __tablename__ = "baremetal_node_records"

    node_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    compute_node_id: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)


class BareMetalMember(Base):
    """A compute host that runs the bare-metal driver, as of its service's ``version``."""

    __tablename__ = "baremetal_members"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    service_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
