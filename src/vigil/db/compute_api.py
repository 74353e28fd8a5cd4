"""Query functions over compute_nodes, flavors and instances.

Same rules as :mod:`vigil.db.api`: each function takes an Engine and runs one short
transaction; driver errors become DatabaseUnavailable; callers get plain frozen dataclasses.

Claims (:func:`claim`) are compare-and-set UPDATEs: the capacity test is in the WHERE clause of
the statement that adds the usage, so the database decides under its row lock (PostgreSQL and
InnoDB re-check the WHERE on the newest row version; SQLite has one writer at a time). The
instance row is updated first and the node rows after, in every transaction that touches both,
so two transactions never wait on each other in opposite orders.
"""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from vigil.db.api import translate_errors
from vigil.db.compute_models import ComputeNode, Flavor, Instance
from vigil.db.hosts_api import quarantined_clause
from vigil.db.types import utcnow
from vigil.errors import Conflict, DatabaseUnavailable, NotFound
from vigil.objects.compute import (
    FlavorRecord,
    InstanceRecord,
    Inventory,
    NodeRecord,
    PowerState,
    StartGrant,
    StartKind,
    StartRefusal,
    TaskState,
    VmState,
)
from vigil.objects.primitive import Primitive


def _cols(model: Any, record: type[Primitive]) -> list[Any]:
    return [getattr(model, f.name) for f in dataclasses.fields(record)]  # type: ignore[arg-type]


_NODE_COLS = _cols(ComputeNode, NodeRecord)
_FLAVOR_COLS = _cols(Flavor, FlavorRecord)
_INSTANCE_COLS = _cols(Instance, InstanceRecord)


def _node(row: Any) -> NodeRecord:
    values = row._asdict()
    for key in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
        values[key] = float(values[key])
    return NodeRecord(**values)


def _flavor(row: Any) -> FlavorRecord:
    return FlavorRecord(**row._asdict())


def _instance(row: Any) -> InstanceRecord:
    values = row._asdict()
    values["evacuable"] = bool(values["evacuable"])
    values["deleted"] = bool(values["deleted"])
    values["vm_state"] = VmState(values["vm_state"])
    task = values["task_state"]
    values["task_state"] = TaskState(task) if task is not None else None
    values["power_state"] = PowerState(values["power_state"])
    return InstanceRecord(**values)


# -- compute nodes -------------------------------------------------------------------------------
def _live_node(conn: Connection, host: str, hypervisor_hostname: str) -> Any:
    return conn.execute(
        select(*_NODE_COLS).where(ComputeNode.host == host,
                                  ComputeNode.hypervisor_hostname == hypervisor_hostname,
                                  ComputeNode.deleted == 0)
    ).first()


@translate_errors
def compute_node_update(engine: Engine, host: str, inv: Inventory) -> NodeRecord:
    """Create or update the node's inventory; revives the newest soft-deleted row.

    Usage counters are left alone: they belong to the claims.
    """
    values = {k: v for k, v in inv.to_primitive().items()}
    for _ in range(3):
        try:
            with engine.begin() as conn:
                row = _live_node(conn, host, inv.hypervisor_hostname)
                if row is None:
                    dead = conn.execute(
                        select(ComputeNode.id)
                        .where(ComputeNode.host == host,
                               ComputeNode.hypervisor_hostname == inv.hypervisor_hostname,
                               ComputeNode.deleted != 0)
                        .order_by(ComputeNode.id.desc()).limit(1)
                    ).scalar()
                    if dead is not None:
                        conn.execute(update(ComputeNode).where(ComputeNode.id == dead).values(
                            deleted=0, deleted_at=None, **values, updated_at=utcnow()))
                    else:
                        conn.execute(insert(ComputeNode).values(
                            uuid=str(uuidlib.uuid4()), host=host, created_at=utcnow(),
                            vcpus_used=0, memory_mb_used=0, local_gb_used=0, running_vms=0,
                            deleted=0, **values))
                else:
                    conn.execute(update(ComputeNode).where(ComputeNode.id == row.id).values(
                        **values, updated_at=utcnow()))
                return _node(_live_node(conn, host, inv.hypervisor_hostname))
        except IntegrityError:
            continue  # a concurrent first report created it; update theirs
    raise DatabaseUnavailable(f"could not record compute node of {host}: repeated conflicts")


@translate_errors
def compute_nodes(engine: Engine, *, host: str | None = None,
                  ids: Sequence[int] | None = None) -> list[NodeRecord]:
    """Live nodes in id order: one statement whatever their number."""
    stmt = select(*_NODE_COLS).where(ComputeNode.deleted == 0)
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
    cond = ComputeNode.id == ident if isinstance(ident, int) else ComputeNode.uuid == ident
    with engine.connect() as conn:
        row = conn.execute(select(*_NODE_COLS).where(cond, ComputeNode.deleted == 0)).first()
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


# -- flavors -------------------------------------------------------------------------------------
@translate_errors
def flavor_create(engine: Engine, *, name: str, vcpus: int, memory_mb: int, root_gb: int,
                  flavorid: str | None = None, description: str | None = None) -> FlavorRecord:
    """A new flavor; Conflict if its name or flavorid is taken by a live flavor."""
    fid = flavorid if flavorid is not None else str(uuidlib.uuid4())
    try:
        with engine.begin() as conn:
            taken = conn.execute(
                select(Flavor.id).where(or_(Flavor.name == name, Flavor.flavorid == fid),
                                        Flavor.deleted == 0)).first()
            if taken is not None:
                raise Conflict(f"a flavor named {name!r} or with id {fid!r} already exists")
            conn.execute(insert(Flavor).values(
                flavorid=fid, name=name, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb,
                description=description, created_at=utcnow(), deleted=0))
            row = conn.execute(select(*_FLAVOR_COLS).where(Flavor.flavorid == fid,
                                                           Flavor.deleted == 0)).one()
    except IntegrityError as exc:
        raise Conflict(f"a flavor named {name!r} or with id {fid!r} already exists") from exc
    return _flavor(row)


@translate_errors
def flavors(engine: Engine) -> list[FlavorRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(*_FLAVOR_COLS).where(Flavor.deleted == 0)
                            .order_by(Flavor.memory_mb, Flavor.vcpus, Flavor.name))
        return [_flavor(r) for r in rows]


@translate_errors
def flavor_get(engine: Engine, ident: str) -> FlavorRecord:
    """By flavorid first, then by name (as the openstack client resolves them)."""
    with engine.connect() as conn:
        for cond in (Flavor.flavorid == ident, Flavor.name == ident):
            row = conn.execute(select(*_FLAVOR_COLS).where(cond, Flavor.deleted == 0)).first()
            if row is not None:
                return _flavor(row)
    raise NotFound(f"flavor {ident!r} not found")


@translate_errors
def flavor_delete(engine: Engine, flavor_id: int) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            update(Flavor).where(Flavor.id == flavor_id, Flavor.deleted == 0)
            .values(deleted=Flavor.id, deleted_at=utcnow(), updated_at=utcnow()))
    if result.rowcount == 0:
        raise NotFound(f"flavor {flavor_id} not found")


# -- instances -----------------------------------------------------------------------------------
@translate_errors
def instance_create(engine: Engine, *, name: str, flavor: FlavorRecord,
                    availability_zone: str | None = None, requested_host: str | None = None,
                    evacuable: bool = True, instance_uuid: str | None = None) -> InstanceRecord:
    """A new instance in BUILD, waiting for the scheduler (task_state ``scheduling``)."""
    new_uuid = instance_uuid or str(uuidlib.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(Instance).values(
            uuid=new_uuid, name=name, flavorid=flavor.flavorid, flavor_name=flavor.name,
            vcpus=flavor.vcpus, memory_mb=flavor.memory_mb, root_gb=flavor.root_gb,
            availability_zone=availability_zone, requested_host=requested_host,
            vm_state=VmState.BUILDING, task_state=TaskState.SCHEDULING,
            power_state=PowerState.NOSTATE, evacuable=evacuable, created_at=utcnow(),
            updated_at=utcnow(), deleted=0))
        row = conn.execute(select(*_INSTANCE_COLS).where(Instance.uuid == new_uuid)).one()
    return _instance(row)


@translate_errors
def instance_get(engine: Engine, instance_uuid: str, *,
                 read_deleted: bool = False) -> InstanceRecord:
    stmt = select(*_INSTANCE_COLS).where(Instance.uuid == instance_uuid)
    if not read_deleted:
        stmt = stmt.where(Instance.deleted == 0)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"instance {instance_uuid} not found")
    return _instance(row)


@translate_errors
def instances(engine: Engine, *, host: str | None = None, name: str | None = None,
              uuids: Iterable[str] | None = None, task_states: Sequence[str] | None = None,
              limit: int | None = None) -> list[InstanceRecord]:
    """Live instances matching exact filters, oldest first."""
    stmt = select(*_INSTANCE_COLS).where(Instance.deleted == 0)
    if host is not None:
        stmt = stmt.where(Instance.host == host)
    if name is not None:
        stmt = stmt.where(Instance.name == name)
    if uuids is not None:
        stmt = stmt.where(Instance.uuid.in_(list(uuids)))
    if task_states is not None:
        stmt = stmt.where(Instance.task_state.in_(list(task_states)))
    stmt = stmt.order_by(Instance.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_instance(r) for r in conn.execute(stmt)]


@translate_errors
def instance_start(engine: Engine, instance_uuid: str, host: str, generation: int,
                   kind: StartKind | str) -> StartGrant:
    """Authorize one start of an instance on ``host``: the only door through which an agent
    spawns, rebuilds or resumes anything.

    One UPDATE whose condition is the whole rule: the instance is live, placed on ``host``, in
    the ownership ``generation`` the host read, in the task state of ``kind`` (``spawn``:
    spawning; ``rebuild``: rebuild_spawning; ``resume``: idle and active), and ``host`` is not
    quarantined. It takes the instance row's lock, so it is ordered against the claim or the
    evacuation request that would start a new generation: a start authorized here was
    authorized before the instance could be given to anyone else, and one asked for after is
    refused. (The quarantine lives in another row: a start authorized just before a quarantine
    commits is harmless, because the fence that follows the quarantine stops the very process
    that asked; see docs/ha.md, "Quarantine".)
    """
    try:
        kind = StartKind(kind)
    except ValueError:
        raise ValueError(f"unknown start kind {kind!r}") from None
    conds = _instance_where(instance_uuid, host=host, task_states=[kind.task_state],
                            generation=generation)
    if kind is StartKind.RESUME:
        conds.append(Instance.vm_state == VmState.ACTIVE)
    conds.append(~quarantined_clause(Instance.host))
    with engine.begin() as conn:
        result = conn.execute(update(Instance).where(*conds).values(updated_at=utcnow()))
        if result.rowcount == 1:
            return StartGrant(True)
        row = conn.execute(select(Instance.host, Instance.generation, Instance.deleted)
                           .where(Instance.uuid == instance_uuid)).first()
        quarantined = conn.execute(select(quarantined_clause(host))).scalar()
    if quarantined:
        return StartGrant(False, StartRefusal.QUARANTINED)
    if row is None or row[2]:
        return StartGrant(False, StartRefusal.DELETED)
    if row[0] != host or row[1] != generation:
        return StartGrant(False, StartRefusal.MOVED)
    return StartGrant(False, StartRefusal.BUSY)


@translate_errors
def instance_count_on_host(engine: Engine, host: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(Instance)
            .where(Instance.host == host, Instance.deleted == 0)).scalar_one())


def _instance_where(instance_uuid: str, *, host: str | EllipsisType | None = ...,
                    task_states: Sequence[str | None] | None = None,
                    generation: int | None = None) -> list[ColumnElement[bool]]:
    """Conditions of a compare-and-set on one live instance.

    ``host=...`` (the default) does not test the host; ``host=None`` requires it unset.
    ``task_states`` may contain None (the instance is idle). ``generation``: the ownership
    generation the caller read (see :func:`instance_start`).
    """
    conds: list[ColumnElement[bool]] = [Instance.uuid == instance_uuid, Instance.deleted == 0]
    if generation is not None:
        conds.append(Instance.generation == generation)
    if host is None:
        conds.append(Instance.host.is_(None))
    elif host is not ...:
        conds.append(Instance.host == host)
    if task_states is not None:
        named = [t for t in task_states if t is not None]
        alts: list[ColumnElement[bool]] = []
        if named:
            alts.append(Instance.task_state.in_(named))
        if None in task_states:
            alts.append(Instance.task_state.is_(None))
        conds.append(or_(*alts))
    return conds


_UPDATABLE = {"vm_state", "task_state", "power_state", "fault", "launched_at",
              "terminated_at", "requested_host", "evacuable", "name"}


@translate_errors
def instance_update(engine: Engine, instance_uuid: str, values: dict[str, Any], *,
                    host: str | EllipsisType | None = ...,
                    task_states: Sequence[str | None] | None = None,
                    now_fields: Sequence[str] = (), generation: int | None = None,
                    new_owner: bool = False,
                    unless_quarantined: bool = False) -> InstanceRecord | None:
    """Compare-and-set on a live instance; None if it did not match (moved, deleted, busy).

    ``now_fields`` are set to the database's clock (``launched_at``, ``fault_at`` ...).
    ``generation`` adds the ownership generation to the condition; ``new_owner`` starts a new
    one (an evacuation takes the instance away from its host); ``unless_quarantined`` also
    requires that the instance's host is not quarantined (an agent confirming a start).
    """
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    extra: dict[str, Any] = {f: utcnow() for f in now_fields}
    if "fault" in values and values["fault"] is not None:
        extra["fault_at"] = utcnow()
    if new_owner:
        extra["generation"] = Instance.generation + 1
    conds = _instance_where(instance_uuid, host=host, task_states=task_states,
                            generation=generation)
    if unless_quarantined:
        conds.append(~quarantined_clause(Instance.host))
    with engine.begin() as conn:
        result = conn.execute(
            update(Instance).where(*conds).values(**values, **extra, updated_at=utcnow()))
        if result.rowcount == 0:
            return None
        return _instance(conn.execute(
            select(*_INSTANCE_COLS).where(Instance.uuid == instance_uuid)).one())


# The claim path's statements, built once: constructing SQLAlchemy expressions costs more
# than SQLite takes to run them, and the claim is what bounds scheduling decisions per second.
_I = cast(Table, Instance.__table__)
_N = cast(Table, ComputeNode.__table__)
_SELECT_INSTANCE = select(*[_I.c[c.key] for c in _INSTANCE_COLS]).where(
    _I.c.uuid == bindparam("b_uuid"))
_PLACE: dict[str, Any] = dict(host=bindparam("b_host"), node=bindparam("b_node"),
              compute_node_id=bindparam("b_node_id"), task_state=bindparam("b_new"),
              requested_host=None, generation=_I.c.generation + 1, updated_at=utcnow())
_CLAIM_UNPLACED = update(_I).where(
    _I.c.uuid == bindparam("b_uuid"), _I.c.deleted == 0, _I.c.host.is_(None),
    _I.c.task_state == bindparam("b_expected")).values(**_PLACE)
_CLAIM_MOVE = update(_I).where(
    _I.c.uuid == bindparam("b_uuid"), _I.c.deleted == 0, _I.c.host == bindparam("b_source"),
    _I.c.task_state == bindparam("b_expected")).values(**_PLACE)


def _usage_stmt(sign: int, check: bool) -> Any:
    v: Any = bindparam("b_v")
    m: Any = bindparam("b_m")
    d: Any = bindparam("b_d")
    stmt = update(_N).where(_N.c.id == bindparam("b_id"), _N.c.deleted == 0)
    if check:
        stmt = stmt.where(
            _N.c.vcpus_used + v <= _N.c.vcpus * _N.c.cpu_allocation_ratio,
            _N.c.memory_mb_used + m <= _N.c.memory_mb * _N.c.ram_allocation_ratio,
            _N.c.local_gb_used + d <= _N.c.local_gb * _N.c.disk_allocation_ratio,
        )
    values: dict[str, Any]
    if sign > 0:
        values = dict(vcpus_used=_N.c.vcpus_used + v, memory_mb_used=_N.c.memory_mb_used + m,
                      local_gb_used=_N.c.local_gb_used + d, running_vms=_N.c.running_vms + 1)
    else:
        values = dict(vcpus_used=_N.c.vcpus_used - v, memory_mb_used=_N.c.memory_mb_used - m,
                      local_gb_used=_N.c.local_gb_used - d, running_vms=_N.c.running_vms - 1)
    return stmt.values(**values, updated_at=utcnow())


_ADD_CHECKED = _usage_stmt(+1, True)
_RELEASE = _usage_stmt(-1, False)


def _add_usage(conn: Connection, node_id: int, vcpus: int, memory_mb: int, root_gb: int,
               *, sign: int, check: bool) -> bool:
    """Add (sign +1, with ``check`` only if it still fits) or give back one instance's usage."""
    stmt = _ADD_CHECKED if sign > 0 and check else _RELEASE if sign < 0 and not check else (
        _usage_stmt(sign, check))
    result = conn.execute(stmt, {"b_id": node_id, "b_v": vcpus, "b_m": memory_mb,
                                 "b_d": root_gb})
    return bool(result.rowcount == 1)


class ClaimFailed(Exception):
    """Internal: roll the claim's transaction back."""


@dataclass(frozen=True)
class ClaimResult:
    """``instance`` is set on success; otherwise ``reason`` is 'node' (the host no longer has
    room, try another) or 'instance' (the instance changed under us: deleted, already taken)."""

    instance: InstanceRecord | None
    reason: str | None = None


@translate_errors
def claim(engine: Engine, inst: InstanceRecord, node: NodeRecord, *,
          expected_task_state: str, new_task_state: str,
          source_host: str | None = None) -> ClaimResult:
    """Atomically: put ``inst`` on ``node`` if the node still has room, and (for an evacuation,
    ``source_host`` set) give back what it used on its old node.

    One transaction: the instance's compare-and-set (still live, still ``expected_task_state``,
    still on ``source_host`` or on no host), then the node's conditional usage increment, then
    the release. Any step that does not match rolls back the whole.
    """
    params = {"b_uuid": inst.uuid, "b_expected": expected_task_state, "b_new": new_task_state,
              "b_host": node.host, "b_node": node.hypervisor_hostname, "b_node_id": node.id}
    try:
        with engine.begin() as conn:
            if source_host is None:
                moved = conn.execute(_CLAIM_UNPLACED, params)
            else:
                moved = conn.execute(_CLAIM_MOVE, {**params, "b_source": source_host})
            if moved.rowcount != 1:
                raise ClaimFailed("instance")
            ops: list[tuple[int, int, bool]] = [(node.id, +1, True)]
            if source_host is not None and inst.compute_node_id is not None:
                ops.append((inst.compute_node_id, -1, False))
            for node_id, sign, check in sorted(ops):  # node rows in id order: no deadlock
                if not _add_usage(conn, node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                                  sign=sign, check=check) and check:
                    raise ClaimFailed("node")
            row = conn.execute(_SELECT_INSTANCE, {"b_uuid": inst.uuid}).one()
    except ClaimFailed as exc:
        return ClaimResult(None, str(exc))
    return ClaimResult(_instance(row))


@translate_errors
def instance_destroy(engine: Engine, instance_uuid: str) -> InstanceRecord:
    """Soft-delete the instance and give back its claim, in one transaction."""
    with engine.begin() as conn:
        row = conn.execute(select(*_INSTANCE_COLS).where(Instance.uuid == instance_uuid,
                                                         Instance.deleted == 0)).first()
        if row is None:
            raise NotFound(f"instance {instance_uuid} not found")
        inst = _instance(row)
        # Compare-and-set on the placement we read: a concurrent claim or evacuation that
        # moved it makes this match nothing, and the caller retries with the new placement.
        cond = [Instance.id == inst.id, Instance.deleted == 0,
                Instance.compute_node_id.is_(None) if inst.compute_node_id is None
                else Instance.compute_node_id == inst.compute_node_id]
        result = conn.execute(update(Instance).where(and_(*cond)).values(
            deleted=Instance.id, deleted_at=utcnow(), terminated_at=utcnow(),
            updated_at=utcnow(), vm_state=VmState.DELETED, task_state=None,
            power_state=PowerState.NOSTATE))
        if result.rowcount != 1:
            raise Conflict(f"instance {instance_uuid} changed while being deleted; try again")
        if inst.compute_node_id is not None:
            _add_usage(conn, inst.compute_node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                       sign=-1, check=False)
        final = conn.execute(select(*_INSTANCE_COLS).where(Instance.id == inst.id)).one()
    return _instance(final)


@translate_errors
def instance_fail(engine: Engine, instance_uuid: str, fault: str, *,
                  expected_task_state: str, release: bool = False,
                  host: str | EllipsisType | None = ...) -> InstanceRecord | None:
    """Put an instance in VmState.ERROR with ``fault`` (if still in ``expected_task_state``).

    With ``release`` the instance also leaves its node and gives the claim back (a failed spawn
    holds nothing); without, it keeps its host (a failed evacuation stays where it was).
    """
    with engine.begin() as conn:
        row = conn.execute(select(*_INSTANCE_COLS).where(
            *_instance_where(instance_uuid, host=host,
                             task_states=[expected_task_state]))).first()
        if row is None:
            return None
        inst = _instance(row)
        values: dict[str, Any] = dict(vm_state=VmState.ERROR, task_state=None, fault=fault[:65535],
                                      fault_at=utcnow(), updated_at=utcnow(),
                                      requested_host=None)
        if release:
            values.update(host=None, node=None, compute_node_id=None,
                          power_state=PowerState.NOSTATE, generation=Instance.generation + 1)
        result = conn.execute(update(Instance).where(
            *_instance_where(instance_uuid, host=host, task_states=[expected_task_state]),
            Instance.compute_node_id == inst.compute_node_id if inst.compute_node_id
            is not None else Instance.compute_node_id.is_(None)).values(**values))
        if result.rowcount != 1:
            return None
        if release and inst.compute_node_id is not None:
            _add_usage(conn, inst.compute_node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                       sign=-1, check=False)
        final = conn.execute(select(*_INSTANCE_COLS).where(Instance.id == inst.id)).one()
    return _instance(final)
