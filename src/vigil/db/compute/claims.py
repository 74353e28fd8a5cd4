"""Claims: putting an instance on a node, atomically with the node's usage.

A claim is a compare-and-set UPDATE: the capacity test is in the WHERE clause of the statement
that adds the usage, so the database decides under its row lock (PostgreSQL and InnoDB
re-check the WHERE on the newest row version; SQLite has one writer at a time). The scheduler's
own filters only skip hosts without a round trip; the database's answer is the one that
counts. Lock order as everywhere in :mod:`vigil.db`: the instance row, then the node rows in
id order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Engine

from vigil.db._query import translate_errors
from vigil.db.compute.instances import INSTANCE_COLS, instance_record
from vigil.db.compute.nodes import add_usage
from vigil.db.compute_models import Instance
from vigil.db.types import utcnow
from vigil.objects.compute import InstanceRecord, NodeRecord, TaskState

# The claim path's statements, built once: constructing SQLAlchemy expressions costs more
# than SQLite takes to run them, and the claim is what bounds scheduling decisions per second.
_I = cast(Table, Instance.__table__)
_SELECT_INSTANCE = select(*[_I.c[c.key] for c in INSTANCE_COLS]).where(
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
          expected_task_state: TaskState, new_task_state: TaskState,
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
                if not add_usage(conn, node_id, inst.vcpus, inst.memory_mb, inst.root_gb,
                                 sign=sign, check=check) and check:
                    raise ClaimFailed("node")
            row = conn.execute(_SELECT_INSTANCE, {"b_uuid": inst.uuid}).one()
    except ClaimFailed as exc:
        return ClaimResult(None, str(exc))
    return ClaimResult(instance_record(row))
