"""Instances: creation, reads, the one door through which anything starts
(:func:`instance_start`), the compare-and-set updates agents and services make, and the two
ends that give a claim back (:func:`instance_destroy`, :func:`instance_fail`).

Every write is a compare-and-set on what the caller read (host, task state, ownership
generation), so a decision made on a stale picture matches nothing. Ends that give usage back
follow the package's lock order (:mod:`vigil.db`): the instance row first, then its node.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from types import EllipsisType
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from vigil.db._query import cols_of, now_in, translate_errors
from vigil.db.compute.nodes import add_usage
from vigil.db.compute_models import Instance
from vigil.db.ha.hosts import quarantined_clause
from vigil.db.types import utcnow
from vigil.errors import Conflict, NotFound
from vigil.objects.compute import (
    FlavorRecord,
    InstanceDataRecord,
    InstanceRecord,
    PowerState,
    StartGrant,
    StartKind,
    StartRefusal,
    TaskState,
    VmState,
)

INSTANCE_COLS = cols_of(Instance, InstanceRecord)


def instance_record(row: Any) -> InstanceRecord:
    """An instance row as its record (the enums from their stored values)."""
    values = row._asdict()
    values["evacuable"] = bool(values["evacuable"])
    values["deleted"] = bool(values["deleted"])
    values["vm_state"] = VmState(values["vm_state"])
    task = values["task_state"]
    values["task_state"] = TaskState(task) if task is not None else None
    values["power_state"] = PowerState(values["power_state"])
    return InstanceRecord(**values)


@translate_errors
def instance_create(engine: Engine, *, name: str, flavor: FlavorRecord,
                    availability_zone: str | None = None, requested_host: str | None = None,
                    evacuable: bool = True, instance_uuid: str | None = None,
                    user_data: str | None = None, meta: dict[str, str] | None = None,
                    project_id: str | None = None,
                    user_id: str | None = None) -> InstanceRecord:
    """A new instance in BUILD, waiting for the scheduler (task_state ``scheduling``).

    ``user_data`` (base64 text) and ``meta`` are what the metadata API serves
    (:func:`instance_data`); ``project_id``/``user_id``: who created it.
    """
    new_uuid = instance_uuid or str(uuidlib.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(Instance).values(
            uuid=new_uuid, name=name, flavorid=flavor.flavorid, flavor_name=flavor.name,
            vcpus=flavor.vcpus, memory_mb=flavor.memory_mb, root_gb=flavor.root_gb,
            availability_zone=availability_zone, requested_host=requested_host,
            vm_state=VmState.BUILDING, task_state=TaskState.SCHEDULING,
            power_state=PowerState.NOSTATE, evacuable=evacuable, created_at=utcnow(),
            updated_at=utcnow(), deleted=0, user_data=user_data,
            meta=json.dumps(meta, sort_keys=True) if meta else None, project_id=project_id,
            user_id=user_id))
        row = conn.execute(select(*INSTANCE_COLS).where(Instance.uuid == new_uuid)).one()
    return instance_record(row)


@translate_errors
def instance_get(engine: Engine, instance_uuid: str, *,
                 read_deleted: bool = False) -> InstanceRecord:
    stmt = select(*INSTANCE_COLS).where(Instance.uuid == instance_uuid)
    if not read_deleted:
        stmt = stmt.where(Instance.deleted == 0)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"instance {instance_uuid} not found")
    return instance_record(row)


_DATA_COLS = (Instance.id, Instance.uuid, Instance.name, Instance.flavor_name,
              Instance.availability_zone, Instance.host, Instance.project_id, Instance.user_id,
              Instance.user_data, Instance.meta)
_STAMP_COLS = (Instance.updated_at, Instance.generation)


def _stamp(updated_at: Any, generation: Any) -> str:
    return f"{updated_at.isoformat() if updated_at is not None else '-'}/{generation}"


@translate_errors
def instance_data(engine: Engine, instance_uuid: str) -> InstanceDataRecord:
    """What the metadata API serves about a live instance; NotFound if there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(*_DATA_COLS, *_STAMP_COLS).where(
            Instance.uuid == instance_uuid, Instance.deleted == 0)).first()
    if row is None:
        raise NotFound(f"instance {instance_uuid} not found")
    meta = json.loads(row.meta) if row.meta else {}
    return InstanceDataRecord(
        id=row.id, uuid=row.uuid, name=row.name, flavor_name=row.flavor_name,
        availability_zone=row.availability_zone, host=row.host, project_id=row.project_id,
        user_id=row.user_id, user_data=row.user_data, meta=meta,
        stamp=_stamp(row.updated_at, row.generation))


@translate_errors
def instances_changed(engine: Engine, since: dt.datetime | None
                      ) -> tuple[dt.datetime, list[str]]:
    """The database's clock now, and the instances whose row was written (created, updated,
    deleted: every write stamps ``updated_at``) at or after ``since`` on that clock (none when
    ``since`` is None). One statement whatever the fleet's size: how a cache learns what
    changed without reading each instance."""
    with engine.connect() as conn:
        now = now_in(conn)
        if since is None:
            return now, []
        uuids = [r[0] for r in conn.execute(select(Instance.uuid).where(
            Instance.updated_at >= since))]
    return now, uuids


@translate_errors
def instances(engine: Engine, *, host: str | None = None, name: str | None = None,
              uuids: Iterable[str] | None = None, task_states: Sequence[str] | None = None,
              limit: int | None = None) -> list[InstanceRecord]:
    """Live instances matching exact filters, oldest first."""
    stmt = select(*INSTANCE_COLS).where(Instance.deleted == 0)
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
        return [instance_record(r) for r in conn.execute(stmt)]


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
        return instance_record(conn.execute(
            select(*INSTANCE_COLS).where(Instance.uuid == instance_uuid)).one())


@translate_errors
def instance_destroy(engine: Engine, instance_uuid: str) -> InstanceRecord:
    """Soft-delete the instance and give back its claim, in one transaction."""
    with engine.begin() as conn:
        row = conn.execute(select(*INSTANCE_COLS).where(Instance.uuid == instance_uuid,
                                                        Instance.deleted == 0)).first()
        if row is None:
            raise NotFound(f"instance {instance_uuid} not found")
        inst = instance_record(row)
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
            add_usage(conn, inst.compute_node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                      sign=-1, check=False)
        final = conn.execute(select(*INSTANCE_COLS).where(Instance.id == inst.id)).one()
    return instance_record(final)


@translate_errors
def instance_fail(engine: Engine, instance_uuid: str, fault: str, *,
                  expected_task_state: str, release: bool = False,
                  host: str | EllipsisType | None = ...) -> InstanceRecord | None:
    """Put an instance in VmState.ERROR with ``fault`` (if still in ``expected_task_state``).

    With ``release`` the instance also leaves its node and gives the claim back (a failed spawn
    holds nothing); without, it keeps its host (a failed evacuation stays where it was).
    """
    with engine.begin() as conn:
        row = conn.execute(select(*INSTANCE_COLS).where(
            *_instance_where(instance_uuid, host=host,
                             task_states=[expected_task_state]))).first()
        if row is None:
            return None
        inst = instance_record(row)
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
            add_usage(conn, inst.compute_node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                      sign=-1, check=False)
        final = conn.execute(select(*INSTANCE_COLS).where(Instance.id == inst.id)).one()
    return instance_record(final)
