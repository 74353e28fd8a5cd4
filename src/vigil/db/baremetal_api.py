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

import dataclasses
import datetime as dt
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, delete, exists, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from vigil.db.api import translate_errors
from vigil.db.baremetal_models import BareMetalMember, BareMetalNode, BareMetalNodeRecord
from vigil.db.compute_api import Inventory
from vigil.db.compute_models import ComputeNode, Instance
from vigil.db.primitive import Primitive
from vigil.db.types import utcnow
from vigil.errors import Conflict, NotFound

POWER_ON = "power on"
POWER_OFF = "power off"
POWER_STATES = (POWER_ON, POWER_OFF)
RELEASED = ""  # the owner of a released record (same value as vigil.ring.assignment.RELEASED)
HYPERVISOR_TYPE = "baremetal"


@dataclass(frozen=True)
class Node(Primitive):
    """A bare-metal node as its source describes it (whatever the source)."""

    uuid: str
    name: str | None
    resource_class: str
    cpus: int
    memory_mb: int
    local_gb: int
    power_state: str
    maintenance: bool
    instance_uuid: str | None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class RecordState(Primitive):
    """A node's compute-node record as the ownership decisions need it.

    ``record_id`` is the record the node's ownership row points to; ``live`` says whether
    that record still exists (an operator may have deleted it with its service). The other
    fields are the live record's, for deciding whether its inventory needs rewriting.
    """

    node_uuid: str
    record_id: int
    live: bool
    host: str | None
    running_vms: int
    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    availability_zone: str | None


# What crosses RPC of a node (no timestamps) and of a record: positional rows under one list
# of field names, a fraction of the cost of a dict per row at 500 rows a tick.
NODE_WIRE = ("uuid", "name", "resource_class", "cpus", "memory_mb", "local_gb", "power_state",
             "maintenance", "instance_uuid")
RECORD_WIRE = tuple(f.name for f in dataclasses.fields(RecordState))


def pack(items: Sequence[Any], fields: Sequence[str]) -> dict[str, Any]:
    return {"fields": list(fields), "rows": [[getattr(i, f) for f in fields] for i in items]}


def unpack(cls: type[Any], data: Mapping[str, Any]) -> list[Any]:
    names = data["fields"]
    return [cls(**dict(zip(names, row, strict=True))) for row in data["rows"]]


_NODE_COLS = (BareMetalNode.uuid, BareMetalNode.name, BareMetalNode.resource_class,
              BareMetalNode.properties, BareMetalNode.power_state, BareMetalNode.maintenance,
              BareMetalNode.instance_uuid, BareMetalNode.created_at, BareMetalNode.updated_at)


def _node(row: Any) -> Node:
    (uuid, name, rclass, props, power, maintenance, instance_uuid, created, updated) = row
    props = props or {}
    return Node(uuid=uuid, name=name, resource_class=rclass, cpus=int(props.get("cpus", 0)),
                memory_mb=int(props.get("memory_mb", 0)), local_gb=int(props.get("local_gb", 0)),
                power_state=power, maintenance=bool(maintenance), instance_uuid=instance_uuid,
                created_at=created, updated_at=updated)


# -- the inventory ------------------------------------------------------------------------------
@translate_errors
def node_create(engine: Engine, *, cpus: int, memory_mb: int, local_gb: int,
                name: str | None = None, uuid: str | None = None,
                resource_class: str = HYPERVISOR_TYPE, power_state: str = POWER_OFF,
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


@dataclass(frozen=True)
class Take:
    """A compare-and-set to attempt: make the node's record ours if it is still owned by
    ``expected`` (a DOWN service's host, :data:`RELEASED`, or None: no live record, then
    ``record_id`` is the deleted record to replace or None if the node never had one)."""

    node: str
    expected: str | None
    record_id: int | None
    inventory: Inventory


@dataclass
class Outcome:
    """What a batch of moves did: ``taken`` node -> record id; ``lost`` compare-and-sets
    that matched nothing; ``released``; ``updated`` inventories; ``gone``: records to
    update that the host no longer owns."""

    taken: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    updated: int = 0
    gone: list[str] = field(default_factory=list)


def _begin_writing(conn: Connection) -> None:
    """Start the transaction as a writer before its first SAVEPOINT.

    pysqlite opens a transaction only at the first INSERT/UPDATE/DELETE: a SAVEPOINT before
    any would run outside the outer transaction (its RELEASE would commit on its own).
    ``BEGIN IMMEDIATE`` also takes SQLite's write lock at once, which the batch needs anyway
    (and which avoids a read lock failing to upgrade halfway). Other databases have begun.
    """
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _take(conn: Connection, host: str, t: Take) -> int:
    """One take inside the caller's savepoint; raises _Lost when it matches nothing."""
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
def apply_moves(engine: Engine, host: str, *, takes: Sequence[Take] = (),
                releases: Sequence[tuple[str, int]] = (),
                updates: Sequence[tuple[int, Inventory]] = ()) -> Outcome:
    """One host's moves of one tick, in one transaction: its releases (``(node, record
    id)``), then its takes (each in a savepoint: one that matches nothing or loses a race is
    undone alone), then its inventory updates (``(record id, inventory)``).

    One commit per :data:`BATCH` moves, not one per node (after a death a survivor takes a
    fifth of the nodes at once), nor one for them all: on SQLite a transaction holds the
    only write lock, and the conductor's heartbeat and report-path writes must not wait
    behind hundreds of moves (a late report-path beat turns every stale service UNKNOWN,
    which stops all hand-overs). Each move is still its own compare-and-set. Whether a take's
    ``expected`` owner is really DOWN is the caller's check (:mod:`vigil.baremetal.ownership`,
    on a fresh snapshot).
    """
    out = Outcome()
    work: list[tuple[str, Any]] = [("release", r) for r in releases]
    work += [("take", t) for t in takes]
    work += [("update", u) for u in updates]
    for start in range(0, len(work), BATCH):
        with engine.begin() as conn:
            _begin_writing(conn)
            for kind, item in work[start:start + BATCH]:
                if kind == "release":
                    node_uuid, record_id = item
                    (out.released if _release(conn, host, node_uuid, record_id)
                     else out.lost).append(node_uuid)
                elif kind == "take":
                    savepoint = conn.begin_nested()
                    try:
                        record = _take(conn, host, item)
                    except (_Lost, IntegrityError):
                        savepoint.rollback()
                        out.lost.append(item.node)
                    else:
                        savepoint.commit()
                        out.taken[item.node] = record
                else:
                    record_id, inventory = item
                    if _update(conn, host, record_id, inventory):
                        out.updated += 1
                    else:
                        out.gone.append(inventory.hypervisor_hostname)
    return out


def take(engine: Engine, node_uuid: str, host: str, *, expected: str | None,
         record_id: int | None, inventory: Inventory) -> int | None:
    """One :class:`Take` on its own; the record id if it won, None otherwise."""
    out = apply_moves(engine, host, takes=[Take(node_uuid, expected, record_id, inventory)])
    return out.taken.get(node_uuid)


def release(engine: Engine, node_uuid: str, record_id: int, host: str) -> bool:
    """``host`` gives its record of ``node_uuid`` up, if the node holds no instance.

    The record's capacity is zeroed in the same statement: a released record is owned by
    nobody, so it must count for nothing (os-hypervisors statistics) and no claim can fit on
    it (a scheduler that read it before the release has its claim refused by the database).
    """
    return bool(apply_moves(engine, host, releases=[(node_uuid, record_id)]).released)


def record_update(engine: Engine, record_id: int, host: str, inventory: Inventory) -> bool:
    """Rewrite the inventory of a record ``host`` still owns; False if it does not."""
    return apply_moves(engine, host, updates=[(record_id, inventory)]).updated == 1


# -- provisioning (the database inventory's side of spawn and destroy) --------------------------
PROVISIONED = "provisioned"
ALREADY = "already"
BUSY = "busy"
NOT_HERE = "not_here"


@translate_errors
def provision(engine: Engine, host: str, instance_uuid: str) -> str:
    """Put ``instance_uuid`` on the node its claim chose, as Ironic's instance_uuid does.

    :data:`PROVISIONED` on success, :data:`ALREADY` if it already is there, :data:`BUSY` if
    the node holds another instance (two claims raced for one whole node: the later spawn
    fails), :data:`NOT_HERE` if the instance is not placed on a record ``host`` owns.
    The record's allocation ratios close with it so no other claim fits on the node.
    """
    with engine.begin() as conn:
        inst = conn.execute(select(Instance.host, Instance.compute_node_id).where(
            Instance.uuid == instance_uuid, Instance.deleted == 0)).first()
        if inst is None or inst.host != host or inst.compute_node_id is None:
            return NOT_HERE
        node_uuid = conn.execute(select(ComputeNode.hypervisor_hostname).where(
            ComputeNode.id == inst.compute_node_id, ComputeNode.host == host,
            ComputeNode.deleted == 0)).scalar()
        if node_uuid is None:
            return NOT_HERE
        holder = conn.execute(select(BareMetalNode.instance_uuid).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0)).first()
        if holder is None:
            return NOT_HERE
        if holder[0] == instance_uuid:
            return ALREADY
        result = conn.execute(update(BareMetalNode).where(
            BareMetalNode.uuid == node_uuid, BareMetalNode.deleted == 0,
            BareMetalNode.instance_uuid.is_(None),
        ).values(instance_uuid=instance_uuid, power_state=POWER_ON, updated_at=utcnow()))
        if result.rowcount != 1:
            return BUSY
        conn.execute(update(ComputeNode).where(ComputeNode.id == inst.compute_node_id).values(
            updated_at=utcnow(), **{ratio: _closed_ratio(used, getattr(ComputeNode, total))
                                    for used, total, ratio in _RESOURCES}))
    return PROVISIONED


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
        result = conn.execute(stmt.values(instance_uuid=None, power_state=POWER_OFF,
                                          updated_at=utcnow()))
        return int(result.rowcount)
