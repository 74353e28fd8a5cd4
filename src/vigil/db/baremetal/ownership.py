"""Who owns each bare-metal node's compute-node record, and the hand-overs.

Every ownership change is a compare-and-set decided by the database:

* a take of an existing record is ``UPDATE compute_nodes SET host = :me WHERE id = :rec AND
  host = :expected``; of a node without a live record it inserts a record *and* the node's row
  in ``baremetal_node_records`` (primary key: the node uuid), or repoints that row from a
  deleted record ``WHERE compute_node_id = :dead``. Concurrent takers serialise on that one row
  (PostgreSQL and InnoDB re-check the WHERE on the newest row version, a duplicate key fails
  the second insert, SQLite has one writer): exactly one wins, the others match nothing.
* a release is ``SET host = '' WHERE host = :me AND running_vms = 0``: only an owner gives a
  record up, only without an instance, and the claim that would put one there updates the
  same row, so the two cannot both succeed on a stale picture.

A take moves the record's instances with it: the instance rows are updated first, then the
record (the lock order of :mod:`vigil.db`). The moves arrive as they were decided
(:class:`vigil.objects.baremetal.Move`), whose liveness the conductor re-checked.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, exists, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import translate_errors
from vigil.db.baremetal_models import BareMetalNode, BareMetalNodeRecord
from vigil.db.compute_models import ComputeNode, Instance
from vigil.db.types import utcnow
from vigil.objects.baremetal import RELEASED, Move, MoveKind, MoveResult, RecordState
from vigil.objects.capacity import RESOURCES
from vigil.objects.compute import Inventory


@translate_errors
def record_states(engine: Engine) -> list[RecordState]:
    """Every node's record link, with the live record's owner and inventory: one statement."""
    cn = ComputeNode
    stmt = (select(BareMetalNodeRecord.node_uuid, BareMetalNodeRecord.compute_node_id, cn.id,
                   cn.host, cn.running_vms, cn.vcpus, cn.memory_mb, cn.local_gb,
                   cn.cpu_allocation_ratio, cn.ram_allocation_ratio, cn.disk_allocation_ratio,
                   cn.availability_zone)
            .select_from(BareMetalNodeRecord)
            .outerjoin(cn, and_(cn.id == BareMetalNodeRecord.compute_node_id, cn.deleted == 0))
            .order_by(BareMetalNodeRecord.node_uuid))
    out = []
    with engine.connect() as conn:
        for (node_uuid, record_id, live_id, host, running, vcpus, mem, disk, cr, rr, dr,
             zone) in conn.execute(stmt):
            live = live_id is not None
            out.append(RecordState(
                node_uuid=node_uuid, record_id=int(record_id), live=live,
                host=host if live else None, running_vms=int(running or 0),
                vcpus=int(vcpus or 0), memory_mb=int(mem or 0), local_gb=int(disk or 0),
                cpu_allocation_ratio=float(cr or 0.0), ram_allocation_ratio=float(rr or 0.0),
                disk_allocation_ratio=float(dr or 0.0), availability_zone=zone))
    return out


class _Lost(Exception):
    """Internal: the compare-and-set matched nothing; roll back."""


def closed_ratio(used: str, total: Any) -> Any:
    """The ratio that leaves a record with an instance no room for another, while its
    usage stays within its capacity: ``(used + 0.5) / total`` (capacity = used + 0.5, and
    every claim adds at least 1 vCPU). Instances take whole nodes (Nova's ironic driver
    reported such a node as fully used; here usage belongs to the claims, so the ratio
    closes it instead, and the totals -- what statistics add up -- stay the node's)."""
    used_col = getattr(ComputeNode, used)
    if isinstance(total, int | float):
        return (used_col + 0.5) / float(total) if total > 0 else 0.0
    return case((total > 0, (used_col + 0.5) / total), else_=0.0)


def _record_values(inv: Inventory, *, insert: bool = False) -> dict[str, Any]:
    """A record's columns from an inventory. While the record has an instance claimed on it,
    its ratios are closed (:func:`closed_ratio`), decided by the row itself in the
    statement: an inventory computed before a claim landed must not reopen a whole node to a
    second claim."""
    values: dict[str, Any] = dict(inv.to_primitive())
    if insert:
        return values  # a new record has nothing claimed on it
    for r in RESOURCES:  # the claim's resources (vigil.objects.capacity)
        values[r.ratio] = case((ComputeNode.running_vms > 0, closed_ratio(r.used, values[r.total])),
                               else_=float(values[r.ratio]))
    return values


BATCH = 32  # moves per transaction (see apply_moves)


def _begin_writing(conn: Connection) -> None:
    """Start the transaction as a writer before its first SAVEPOINT.

    pysqlite opens a transaction only at the first INSERT/UPDATE/DELETE: a SAVEPOINT before
    any would run outside the outer transaction (its RELEASE would commit on its own).
    ``BEGIN IMMEDIATE`` also takes SQLite's write lock at once, which the batch needs anyway
    (and which avoids a read lock failing to upgrade halfway). Other databases have begun.
    """
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _take(conn: Connection, host: str, t: Move) -> int:
    """One take inside the caller's savepoint; raises _Lost when it matches nothing."""
    if t.inventory is None:
        raise ValueError("a take writes the record's inventory: the move needs one")
    if t.inventory.hypervisor_hostname != t.node:
        raise ValueError("a bare-metal record's hypervisor_hostname is its node's uuid")
    if t.expected is None:
        created = conn.execute(insert(ComputeNode).values(
            uuid=str(uuidlib.uuid4()), host=host, created_at=utcnow(), vcpus_used=0,
            memory_mb_used=0, local_gb_used=0, running_vms=0, deleted=0,
            **_record_values(t.inventory, insert=True)))
        new_id = int(created.inserted_primary_key[0])  # type: ignore[index]
        if t.record_id is None:
            # The node's link row: its primary key lets exactly one creator insert it.
            conn.execute(insert(BareMetalNodeRecord).values(
                node_uuid=t.node, compute_node_id=new_id, created_at=utcnow()))
        else:
            live = exists().where(ComputeNode.id == t.record_id, ComputeNode.deleted == 0)
            repointed = conn.execute(update(BareMetalNodeRecord).where(
                BareMetalNodeRecord.node_uuid == t.node,
                BareMetalNodeRecord.compute_node_id == t.record_id, ~live,
            ).values(compute_node_id=new_id, updated_at=utcnow()))
            if repointed.rowcount != 1:
                raise _Lost
        return new_id
    if t.record_id is None:
        raise ValueError("taking an existing record needs its id")
    # Instances first (the order of every transaction touching both); rolled back with the
    # savepoint if the record's compare-and-set below matches nothing.
    conn.execute(update(Instance).where(
        Instance.compute_node_id == t.record_id, Instance.deleted == 0,
    ).values(host=host, updated_at=utcnow()))
    moved = conn.execute(update(ComputeNode).where(
        ComputeNode.id == t.record_id, ComputeNode.host == t.expected,
        ComputeNode.hypervisor_hostname == t.node, ComputeNode.deleted == 0,
    ).values(host=host, updated_at=utcnow(), **_record_values(t.inventory)))
    if moved.rowcount != 1:
        raise _Lost
    return t.record_id


def _release(conn: Connection, host: str, node_uuid: str, record_id: int) -> bool:
    provisioned = exists().where(BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0,
                                 BareMetalNode.instance_uuid.is_not(None))
    result = conn.execute(update(ComputeNode).where(
        ComputeNode.id == record_id, ComputeNode.host == host,
        ComputeNode.hypervisor_hostname == node_uuid, ComputeNode.deleted == 0,
        ComputeNode.running_vms == 0, ~provisioned,
    ).values(host=RELEASED, vcpus=0, memory_mb=0, local_gb=0, updated_at=utcnow()))
    return bool(result.rowcount == 1)


def _update(conn: Connection, host: str, record_id: int, inventory: Inventory) -> bool:
    result = conn.execute(update(ComputeNode).where(
        ComputeNode.id == record_id, ComputeNode.host == host,
        ComputeNode.hypervisor_hostname == inventory.hypervisor_hostname,
        ComputeNode.deleted == 0,
    ).values(updated_at=utcnow(), **_record_values(inventory)))
    return bool(result.rowcount == 1)


@translate_errors
def apply_moves(engine: Engine, host: str, moves: Sequence[Move]) -> MoveResult:
    """One host's moves of one tick, in one transaction: its releases, then its takes (each in
    a savepoint: one that matches nothing or loses a race is undone alone), then its
    inventory updates, whatever their order in ``moves``.

    One commit per :data:`BATCH` moves, not one per node (after a death a survivor takes a
    fifth of the nodes at once), nor one for them all: on SQLite a transaction holds the
    only write lock, and the conductor's heartbeat and report-path writes must not wait
    behind hundreds of moves (a late report-path beat turns every stale service UNKNOWN,
    which stops all hand-overs). Each move is still its own compare-and-set. Whether a take's
    ``expected`` owner is really DOWN is the caller's check (:mod:`vigil.baremetal.ownership`,
    on a fresh snapshot). A release or an update is always of a record ``host`` owns.
    """
    for m in moves:
        if not m.kind.takes and m.expected not in (None, host):
            raise ValueError(f"{host} may only release or update its own records, not "
                             f"{m.expected!r}'s")
    out = MoveResult()
    order = {MoveKind.RELEASE: 0, MoveKind.UPDATE: 2}
    work = sorted(moves, key=lambda m: order.get(m.kind, 1))  # stable: takes keep their order
    for start in range(0, len(work), BATCH):
        with engine.begin() as conn:
            _begin_writing(conn)
            for move in work[start:start + BATCH]:
                if move.kind is MoveKind.RELEASE:
                    if move.record_id is None:
                        raise ValueError("a release needs the record's id")
                    (out.released if _release(conn, host, move.node, move.record_id)
                     else out.lost).append(move.node)
                elif move.kind is MoveKind.UPDATE:
                    if move.record_id is None or move.inventory is None:
                        raise ValueError("an update needs the record's id and inventory")
                    if _update(conn, host, move.record_id, move.inventory):
                        out.updated += 1
                    else:
                        out.gone.append(move.inventory.hypervisor_hostname)
                else:
                    savepoint = conn.begin_nested()
                    try:
                        record = _take(conn, host, move)
                    except (_Lost, IntegrityError):
                        savepoint.rollback()
                        out.lost.append(move.node)
                    else:
                        savepoint.commit()
                        out.taken[move.node] = record
    return out


def take(engine: Engine, node_uuid: str, host: str, *, expected: str | None,
         record_id: int | None, inventory: Inventory) -> int | None:
    """One take on its own; the record id if it won, None otherwise."""
    kind = (MoveKind.CREATE if expected is None else MoveKind.TAKE_RELEASED
            if expected == RELEASED else MoveKind.TAKE_FROM_DOWN)
    out = apply_moves(engine, host, [Move(node_uuid, kind, record_id, expected, inventory)])
    return out.taken.get(node_uuid)


def release(engine: Engine, node_uuid: str, record_id: int, host: str) -> bool:
    """``host`` gives its record of ``node_uuid`` up, if the node holds no instance.

    The record's capacity is zeroed in the same statement: a released record is owned by
    nobody, so it must count for nothing (os-hypervisors statistics) and no claim can fit on
    it (a scheduler that read it before the release has its claim refused by the database).
    """
    move = Move(node_uuid, MoveKind.RELEASE, record_id, host)
    return bool(apply_moves(engine, host, [move]).released)


def record_update(engine: Engine, record_id: int, host: str, inventory: Inventory) -> bool:
    """Rewrite the inventory of a record ``host`` still owns; False if it does not."""
    move = Move(inventory.hypervisor_hostname, MoveKind.UPDATE, record_id, host, inventory)
    return apply_moves(engine, host, [move]).updated == 1
