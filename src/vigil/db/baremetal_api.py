"""Query functions over bare-metal nodes and the ownership of their compute-node records.

Same rules as :mod:`vigil.db.api`: each function takes an Engine and runs one short
transaction; driver errors become DatabaseUnavailable; callers get plain frozen dataclasses.

Every ownership change is a compare-and-set decided by the database:

* :func:`take` of an existing record is ``UPDATE compute_nodes SET host = :me WHERE id = :rec
  AND host = :expected``; of a node without a live record it inserts a record *and* the
  node's row in ``baremetal_node_records`` (primary key: the node uuid), or repoints that row
  from a deleted record ``WHERE compute_node_id = :dead``. Concurrent takers serialise on that
  one row (PostgreSQL and InnoDB re-check the WHERE on the newest row version, a duplicate key
  fails the second insert, SQLite has one writer): exactly one wins, the others match nothing.
* :func:`release` is ``SET host = '' WHERE host = :me AND running_vms = 0``: only an owner
  gives a record up, only without an instance, and the claim that would put one there
  updates the same row, so the two cannot both succeed on a stale picture.

Transactions that touch instances and records update the instance rows first, as
:mod:`vigil.db.compute_api` does, so they never wait on each other in opposite orders.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, delete, exists, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db.api import translate_errors
from vigil.db.baremetal_models import BareMetalMember, BareMetalNode, BareMetalNodeRecord
from vigil.db.compute_models import ComputeNode, Instance
from vigil.db.types import utcnow
from vigil.errors import Conflict, NotFound
from vigil.objects.baremetal import (
    HYPERVISOR_TYPE,
    RELEASED,
    Move,
    MoveKind,
    MoveResult,
    Node,
    NodePower,
    Provisioning,
    RecordState,
)
from vigil.objects.compute import Inventory

_NODE_COLS = (BareMetalNode.uuid, BareMetalNode.name, BareMetalNode.resource_class,
              BareMetalNode.properties, BareMetalNode.power_state, BareMetalNode.maintenance,
              BareMetalNode.instance_uuid, BareMetalNode.created_at, BareMetalNode.updated_at)


def _node(row: Any) -> Node:
    (uuid, name, rclass, props, power, maintenance, instance_uuid, created, updated) = row
    props = props or {}
    return Node(uuid=uuid, name=name, resource_class=rclass, cpus=int(props.get("cpus", 0)),
                memory_mb=int(props.get("memory_mb", 0)), local_gb=int(props.get("local_gb", 0)),
                power_state=NodePower(power), maintenance=bool(maintenance),
                instance_uuid=instance_uuid, created_at=created, updated_at=updated)


# -- the inventory ------------------------------------------------------------------------------
@translate_errors
def node_create(engine: Engine, *, cpus: int, memory_mb: int, local_gb: int,
                name: str | None = None, uuid: str | None = None,
                resource_class: str = HYPERVISOR_TYPE, power_state: NodePower = NodePower.OFF,
                maintenance: bool = False) -> Node:
    """A new node; Conflict if a live node already has its uuid or name. The caller has
    validated the values (:mod:`vigil.baremetal.nodes`)."""
    node_uuid = uuid or str(uuidlib.uuid4())
    try:
        with engine.begin() as conn:
            cond = BareMetalNode.uuid == node_uuid
            if name is not None:
                cond = or_(cond, BareMetalNode.name == name)
            if conn.execute(select(BareMetalNode.id).where(cond, BareMetalNode.deleted == 0)
                            ).first() is not None:
                raise Conflict(f"a node with uuid {node_uuid} or name {name!r} already exists")
            conn.execute(insert(BareMetalNode).values(
                uuid=node_uuid, name=name, resource_class=resource_class,
                properties={"cpus": cpus, "memory_mb": memory_mb, "local_gb": local_gb},
                power_state=power_state, maintenance=maintenance, instance_uuid=None,
                created_at=utcnow(), deleted=0))
            row = conn.execute(select(*_NODE_COLS).where(
                BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0)).one()
    except IntegrityError as exc:
        raise Conflict(f"a node with uuid {node_uuid} or name {name!r} already exists") from exc
    return _node(row)


@translate_errors
def nodes(engine: Engine) -> list[Node]:
    """Live nodes, oldest first: one statement whatever their number."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_NODE_COLS).where(BareMetalNode.deleted == 0)
                            .order_by(BareMetalNode.id))
        return [_node(r) for r in rows]


def _find(conn: Connection, ident: str) -> Any:
    for cond in (BareMetalNode.uuid == ident, BareMetalNode.name == ident):
        row = conn.execute(select(BareMetalNode.id, *_NODE_COLS)
                           .where(cond, BareMetalNode.deleted == 0)).first()
        if row is not None:
            return row
    raise NotFound(f"bare-metal node {ident} not found")


@translate_errors
def node_get(engine: Engine, ident: str) -> Node:
    """By uuid, then by name."""
    with engine.connect() as conn:
        return _node(_find(conn, ident)[1:])


@translate_errors
def node_delete(engine: Engine, ident: str) -> Node:
    """Delete a node that holds no instance, and its compute-node record with it.

    One transaction: the record goes with the node, so no record outlives its node (it would
    keep counting capacity that no longer exists), and the record's running_vms = 0 is part
    of the UPDATE's WHERE so a claim landing meanwhile makes the delete fail, not vanish.
    """
    with engine.begin() as conn:
        row = _find(conn, ident)
        node = _node(row[1:])
        if node.instance_uuid is not None:
            raise Conflict(f"node {node.uuid} holds instance {node.instance_uuid}: delete the "
                           "instance first")
        link = conn.execute(select(BareMetalNodeRecord.compute_node_id).where(
            BareMetalNodeRecord.node_uuid == node.uuid)).scalar()
        if link is not None:
            busy = conn.execute(select(ComputeNode.running_vms).where(
                ComputeNode.id == link, ComputeNode.deleted == 0)).scalar()
            if busy:
                raise Conflict(f"node {node.uuid} has an instance placed on it: delete the "
                               "instance first")
            conn.execute(update(ComputeNode).where(
                ComputeNode.id == link, ComputeNode.deleted == 0, ComputeNode.running_vms == 0,
            ).values(deleted=ComputeNode.id, deleted_at=utcnow(), updated_at=utcnow()))
            conn.execute(delete(BareMetalNodeRecord).where(
                BareMetalNodeRecord.node_uuid == node.uuid))
        result = conn.execute(update(BareMetalNode).where(
            BareMetalNode.id == row[0], BareMetalNode.deleted == 0,
            BareMetalNode.instance_uuid.is_(None),
        ).values(deleted=BareMetalNode.id, deleted_at=utcnow(), updated_at=utcnow()))
        if result.rowcount != 1:
            raise Conflict(f"node {node.uuid} changed while being deleted; try again")
    return node


# -- ring members -------------------------------------------------------------------------------
@translate_errors
def members(engine: Engine) -> dict[str, int]:
    """Host -> the service version it last announced running the bare-metal driver with."""
    with engine.connect() as conn:
        return {h: int(v) for h, v in conn.execute(
            select(BareMetalMember.host, BareMetalMember.service_version))}


@translate_errors
def member_register(engine: Engine, host: str, version: int) -> None:
    """Record that ``host``'s service, at ``version``, runs the bare-metal driver."""
    for _ in range(2):
        try:
            with engine.begin() as conn:
                result = conn.execute(update(BareMetalMember).where(
                    BareMetalMember.host == host).values(service_version=version,
                                                         updated_at=utcnow()))
                if result.rowcount == 0:
                    conn.execute(insert(BareMetalMember).values(
                        host=host, service_version=version, created_at=utcnow()))
            return
        except IntegrityError:
            continue  # registered concurrently: update theirs


# -- ownership ----------------------------------------------------------------------------------
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


# (usage column, total column, ratio column) of each resource a claim checks.
_RESOURCES = (("vcpus_used", "vcpus", "cpu_allocation_ratio"),
              ("memory_mb_used", "memory_mb", "ram_allocation_ratio"),
              ("local_gb_used", "local_gb", "disk_allocation_ratio"))


def _closed_ratio(used: str, total: Any) -> Any:
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
    its ratios are closed (:func:`_closed_ratio`), decided by the row itself in the
    statement: an inventory computed before a claim landed must not reopen a whole node to a
    second claim."""
    values: dict[str, Any] = dict(inv.to_primitive())
    if insert:
        return values  # a new record has nothing claimed on it
    for used, total, ratio in _RESOURCES:
        values[ratio] = case((ComputeNode.running_vms > 0, _closed_ratio(used, values[total])),
                             else_=float(values[ratio]))
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


# -- provisioning (the database inventory's side of spawn and destroy) --------------------------
@translate_errors
def provision(engine: Engine, host: str, instance_uuid: str) -> Provisioning:
    """Put ``instance_uuid`` on the node its claim chose, as Ironic's instance_uuid does
    (:class:`~vigil.objects.baremetal.Provisioning` says what each answer means). The record's
    allocation ratios close with it so no other claim fits on the node.
    """
    with engine.begin() as conn:
        inst = conn.execute(select(Instance.host, Instance.compute_node_id).where(
            Instance.uuid == instance_uuid, Instance.deleted == 0)).first()
        if inst is None or inst.host != host or inst.compute_node_id is None:
            return Provisioning.NOT_HERE
        node_uuid = conn.execute(select(ComputeNode.hypervisor_hostname).where(
            ComputeNode.id == inst.compute_node_id, ComputeNode.host == host,
            ComputeNode.deleted == 0)).scalar()
        if node_uuid is None:
            return Provisioning.NOT_HERE
        holder = conn.execute(select(BareMetalNode.instance_uuid).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0)).first()
        if holder is None:
            return Provisioning.NOT_HERE
        if holder[0] == instance_uuid:
            return Provisioning.ALREADY
        result = conn.execute(update(BareMetalNode).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0,
            BareMetalNode.instance_uuid.is_(None),
        ).values(instance_uuid=instance_uuid, power_state=NodePower.ON, updated_at=utcnow()))
        if result.rowcount != 1:
            return Provisioning.BUSY
        conn.execute(update(ComputeNode).where(ComputeNode.id == inst.compute_node_id).values(
            updated_at=utcnow(), **{ratio: _closed_ratio(used, getattr(ComputeNode, total))
                                    for used, total, ratio in _RESOURCES}))
    return Provisioning.PROVISIONED


@translate_errors
def unprovision(engine: Engine, instance_uuid: str) -> int:
    """Clear ``instance_uuid`` from every node it no longer lives on; returns how many.

    The node its live instance is placed on keeps it: a stale copy being cleaned up by the
    node's previous owner (the node moved, with its instance) must not wipe the node.
    """
    with engine.begin() as conn:
        home = conn.execute(
            select(ComputeNode.hypervisor_hostname)
            .join(Instance, Instance.compute_node_id == ComputeNode.id)
            .where(Instance.uuid == instance_uuid, Instance.deleted == 0)).scalar()
        stmt = update(BareMetalNode).where(BareMetalNode.instance_uuid == instance_uuid,
                                           BareMetalNode.deleted == 0)
        if home is not None:
            stmt = stmt.where(BareMetalNode.uuid != home)
        result = conn.execute(stmt.values(instance_uuid=None, power_state=NodePower.OFF,
                                          updated_at=utcnow()))
        return int(result.rowcount)
