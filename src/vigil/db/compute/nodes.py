"""Compute nodes: the inventory agents report, and the usage counters claims keep.

Inventory (totals and allocation ratios) belongs to the agent's report; usage (``*_used``,
``running_vms``) belongs to the claims, which change it only by conditional increments
(:func:`add_usage`) inside the transactions of :mod:`.claims` and :mod:`.instances`.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from vigil.db._query import (
    Origin,
    by_id_or_uuid,
    cols_of,
    retry_conflicts,
    revive_or_insert,
    translate_errors,
)
from vigil.db.compute_models import ComputeNode
from vigil.db.types import utcnow
from vigil.errors import NotFound
from vigil.objects.capacity import RESOURCES
from vigil.objects.compute import Inventory, NodeRecord

NODE_COLS = cols_of(ComputeNode, NodeRecord)


def _node(row: Any) -> NodeRecord:
    values = row._asdict()
    for key in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
        values[key] = float(values[key])
    return NodeRecord(**values)


def _live_node(conn: Connection, host: str, hypervisor_hostname: str) -> Any:
    return conn.execute(
        select(*NODE_COLS).where(ComputeNode.host == host,
                                 ComputeNode.hypervisor_hostname == hypervisor_hostname,
                                 ComputeNode.deleted == 0)
    ).first()


@translate_errors
def compute_node_update(engine: Engine, host: str, inv: Inventory) -> NodeRecord:
    """Create or update the node's inventory; revives the newest soft-deleted row.

    Usage counters are left alone: they belong to the claims.
    """
    values = inv.to_primitive()
    match = [ComputeNode.host == host, ComputeNode.hypervisor_hostname == inv.hypervisor_hostname]

    def record() -> NodeRecord:
        with engine.begin() as conn:
            origin = revive_or_insert(
                conn, ComputeNode, match, revive={**values, "updated_at": utcnow()},
                create={**values, "uuid": str(uuidlib.uuid4()), "host": host,
                        "created_at": utcnow(), "vcpus_used": 0, "memory_mb_used": 0,
                        "local_gb_used": 0, "running_vms": 0})
            if origin is Origin.FOUND:
                conn.execute(update(ComputeNode).where(*match, ComputeNode.deleted == 0)
                             .values(**values, updated_at=utcnow()))
            return _node(_live_node(conn, host, inv.hypervisor_hostname))

    # A concurrent first report creates it: the retry updates theirs.
    return retry_conflicts(record, what=f"record compute node of {host}")


@translate_errors
def compute_nodes(engine: Engine, *, host: str | None = None,
                  ids: Sequence[int] | None = None) -> list[NodeRecord]:
    """Live nodes in id order: one statement whatever their number."""
    stmt = select(*NODE_COLS).where(ComputeNode.deleted == 0)
    if host is not None:
        stmt = stmt.where(ComputeNode.host == host)
    if ids is not None:
        stmt = stmt.where(ComputeNode.id.in_(list(ids)))
    with engine.connect() as conn:
        return [_node(r) for r in conn.execute(stmt.order_by(ComputeNode.id))]


@translate_errors
def host_zones(engine: Engine) -> dict[str, str]:
    """Host -> the availability zone its agent reports its nodes in (those that set one)."""
    stmt = (select(ComputeNode.host, ComputeNode.availability_zone)
            .where(ComputeNode.deleted == 0, ComputeNode.availability_zone.is_not(None))
            .distinct())
    with engine.connect() as conn:
        return {host: zone for host, zone in conn.execute(stmt) if zone is not None}


@translate_errors
def compute_node_get(engine: Engine, ident: int | str) -> NodeRecord:
    with engine.connect() as conn:
        row = conn.execute(select(*NODE_COLS).where(by_id_or_uuid(ComputeNode, ident),
                                                    ComputeNode.deleted == 0)).first()
    if row is None:
        raise NotFound(f"hypervisor {ident} not found")
    return _node(row)


@translate_errors
def compute_nodes_soft_delete(engine: Engine, host: str) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            update(ComputeNode).where(ComputeNode.host == host, ComputeNode.deleted == 0)
            .values(deleted=ComputeNode.id, deleted_at=utcnow(), updated_at=utcnow()))
        return int(result.rowcount)


# The usage statements, built once: constructing SQLAlchemy expressions costs more than
# SQLite takes to run them, and the claim is what bounds scheduling decisions per second.
_N = cast(Table, ComputeNode.__table__)


# Each resource's bound parameter (add_usage's names).
_BIND = {"vcpus": "b_v", "memory_mb": "b_m", "root_gb": "b_d"}


def _usage_stmt(sign: int, check: bool) -> Any:
    """The usage UPDATE; with ``check``, capacity's rule (:mod:`vigil.objects.capacity`) for
    every resource, in the WHERE clause."""
    asked: dict[str, Any] = {r.request: bindparam(_BIND[r.request]) for r in RESOURCES}
    stmt = update(_N).where(_N.c.id == bindparam("b_id"), _N.c.deleted == 0)
    if check:
        stmt = stmt.where(*[_N.c[r.used] + asked[r.request] <= _N.c[r.total] * _N.c[r.ratio]
                            for r in RESOURCES])
    values: dict[str, Any] = {
        r.used: _N.c[r.used] + asked[r.request] if sign > 0 else _N.c[r.used] - asked[r.request]
        for r in RESOURCES}
    values["running_vms"] = _N.c.running_vms + sign
    return stmt.values(**values, updated_at=utcnow())


_ADD_CHECKED = _usage_stmt(+1, True)
_RELEASE = _usage_stmt(-1, False)


def add_usage(conn: Connection, node_id: int, vcpus: int, memory_mb: int, root_gb: int,
              *, sign: int, check: bool) -> bool:
    """Add (sign +1, with ``check`` only if it still fits) or give back one instance's usage."""
    stmt = _ADD_CHECKED if sign > 0 and check else _RELEASE if sign < 0 and not check else (
        _usage_stmt(sign, check))
    result = conn.execute(stmt, {"b_id": node_id, "b_v": vcpus, "b_m": memory_mb,
                                 "b_d": root_gb})
    return bool(result.rowcount == 1)
