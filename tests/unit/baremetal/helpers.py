"""Shared helpers of the bare-metal tests: real rows, real liveness (services table)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vigil.baremetal.inventory import record_inventory
from vigil.db import services as services_db
from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import ownership as ownership_db
from vigil.db.compute import claims as claims_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.compute_models import ComputeNode
from vigil.objects.baremetal import Node
from vigil.objects.compute import InstanceRecord, TaskState
from vigil.objects.services import ServiceRecord

T = TypeVar("T")


def node(engine: Engine, name: str, *, cpus: int = 8, memory_mb: int = 16384,
         local_gb: int = 100) -> Node:
    return inventory_db.node_create(engine, name=name, cpus=cpus, memory_mb=memory_mb,
                                    local_gb=local_gb)


def service(engine: Engine, host: str, state: str = "up") -> ServiceRecord:
    """A compute service, UP (fresh heartbeat) or DOWN (a clean leave)."""
    svc, _ = services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
    if state == "up":
        services_db.record_reports(engine, [svc.id], 100)
    elif state == "down":
        services_db.record_leave(engine, svc.id)
    else:
        raise AssertionError(state)
    return services_db.service_get(engine, svc.id)


def own(engine: Engine, n: Node, host: str) -> int:
    """Create ``n``'s record owned by ``host``; its id."""
    rid = ownership_db.take(engine, n.uuid, host, expected=None, record_id=None,
                            inventory=record_inventory(n, "nova"))
    assert rid is not None
    return rid


def record(engine: Engine, record_id: int) -> tuple[str, int, int]:
    """(host, vcpus, deleted) of a record, deleted or not."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(ComputeNode.host, ComputeNode.vcpus, ComputeNode.deleted)
                           .where(ComputeNode.id == record_id)).one()
    return row[0], row[1], row[2]


def live_records(engine: Engine, node_uuid: str) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            sa.select(ComputeNode.id, ComputeNode.host).where(
                ComputeNode.hypervisor_hostname == node_uuid, ComputeNode.deleted == 0))]


def boot_on(engine: Engine, record_id: int, name: str = "vm") -> InstanceRecord:
    """An instance claimed onto a record, as the scheduler does."""
    flavor = flavors_db.flavor_get(engine, "m1.tiny")
    inst = instances_db.instance_create(engine, name=name, flavor=flavor)
    result = claims_db.claim(engine, inst, nodes_db.compute_node_get(engine, record_id),
                             expected_task_state=TaskState.SCHEDULING,
                             new_task_state=TaskState.SPAWNING)
    assert result.instance is not None, result.reason
    return result.instance


def race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` in ``n`` threads released together; their results, in order."""
    barrier = threading.Barrier(n)
    results: list[T | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = fn(i)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results  # type: ignore[return-value]
