"""Test helpers shared by the compute and scheduler tests: real databases, real rows.

Liveness states are produced the way production produces them, through the services table:
UP = a fresh heartbeat; DOWN = a clean leave (or forced down); STALE = DOWN the other way, a
stale heartbeat while a conductor's report path has long been healthy (a service that stops
reporting without leaving, and may start again without a restart); UNKNOWN = a stale
heartbeat while no conductor's report path is healthy (nobody could have reported, so stale
proves nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import conf as vconf
from vigil.db import services as services_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.models import ReportPath, Service
from vigil.objects.compute import FlavorRecord, InstanceRecord, Inventory, NodeRecord, StartGrant
from vigil.objects.ha import HostRecord
from vigil.objects.liveness import LivenessTiming
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.db import DbDriver

# Not "stale": the report path is global, so it cannot be mixed with "unknown" in one database.
STATES = ("up", "down", "forced_down", "unknown", "disabled")
LONG_AGO = dt.datetime(2000, 1, 1)


def make_conf(**groups: dict[str, Any]) -> cfg.ConfigOpts:
    conf = vconf.load([], default_files=[])
    for group, values in groups.items():
        for key, value in values.items():
            conf.set_override(key, value, group=None if group == "DEFAULT" else group)
    return conf


def make_group(engine: Engine, down_time: float = 60.0) -> ServiceGroup:
    return ServiceGroup(DbDriver(), LivenessTiming(report_interval=down_time / 6,
                                                   service_down_time=down_time,
                                                   coalesce_interval=0.5),
                        engine=engine)


def clear(engine: Engine) -> None:
    """Empty the compute and service tables (keeps the built-in flavors)."""
    from vigil.db.compute_models import ComputeNode, Instance

    with engine.begin() as conn:
        for table in (Instance, ComputeNode, Service, ReportPath):
            conn.execute(sa.delete(table))


def set_state(engine: Engine, svc: ServiceRecord, state: str) -> None:
    if state in ("up", "disabled"):
        # A service that left comes back only by registering again (a restart), as a real one.
        services_db.service_get_or_create(engine, svc.host, svc.binary, svc.topic)
        services_db.record_reports(engine, [svc.id], 100)
    if state == "disabled":
        services_db.service_update(engine, svc.id, {"disabled": True, "disabled_reason": "test"})
    elif state == "down":
        services_db.record_leave(engine, svc.id)
    elif state == "stale":
        with engine.begin() as conn:
            conn.execute(sa.update(Service).where(Service.id == svc.id).values(
                last_seen_up=LONG_AGO, created_at=LONG_AGO))
        services_db.beat_report_path(engine, "test-conductor", dt.timedelta(days=365 * 100))
        with engine.begin() as conn:
            conn.execute(sa.update(ReportPath).where(ReportPath.conductor == "test-conductor")
                         .values(healthy_since=LONG_AGO))
    elif state == "forced_down":
        services_db.service_update(engine, svc.id, {"forced_down": True})
    elif state == "unknown":
        with engine.begin() as conn:
            conn.execute(sa.update(Service).where(Service.id == svc.id).values(
                last_seen_up=LONG_AGO, created_at=LONG_AGO))
            conn.execute(sa.delete(ReportPath))
    elif state == "up":
        pass
    else:
        raise AssertionError(state)


def add_host(engine: Engine, host: str, *, state: str = "up", vcpus: int = 16,
             memory_mb: int = 32768, local_gb: int = 1024, cpu_ratio: float = 1.0,
             ram_ratio: float = 1.0, disk_ratio: float = 1.0,
             zone: str | None = None) -> NodeRecord:
    svc, _ = services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
    set_state(engine, svc, state)
    return nodes_db.compute_node_update(engine, host, Inventory(
        hypervisor_hostname=host, hypervisor_type="fake", hypervisor_version=1, vcpus=vcpus,
        memory_mb=memory_mb, local_gb=local_gb, cpu_allocation_ratio=cpu_ratio,
        ram_allocation_ratio=ram_ratio, disk_allocation_ratio=disk_ratio,
        availability_zone=zone))


def add_flavor(engine: Engine, vcpus: int, memory_mb: int, root_gb: int) -> FlavorRecord:
    name = f"f-{vcpus}-{memory_mb}-{root_gb}"
    try:
        return flavors_db.flavor_get(engine, name)
    except Exception:
        return flavors_db.flavor_create(engine, name=name, vcpus=vcpus, memory_mb=memory_mb,
                                        root_gb=root_gb, flavorid=name)


def usage_by_node(engine: Engine) -> dict[int, tuple[int, int, int, int]]:
    """Sum of live instances' resources per node, recomputed from the instances."""
    out: dict[int, tuple[int, int, int, int]] = {}
    for inst in instances_db.instances(engine):
        if inst.compute_node_id is None:
            continue
        v, m, d, n = out.get(inst.compute_node_id, (0, 0, 0, 0))
        out[inst.compute_node_id] = (v + inst.vcpus, m + inst.memory_mb, d + inst.root_gb, n + 1)
    return out


def assert_accounting(engine: Engine) -> None:
    """Counters equal the instances' sums, and no node is over its capacity."""
    usage = usage_by_node(engine)
    for node in nodes_db.compute_nodes(engine):
        v, m, d, n = usage.get(node.id, (0, 0, 0, 0))
        assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used, node.running_vms) == (
            v, m, d, n), node
        assert v <= node.vcpus * node.cpu_allocation_ratio, node
        assert m <= node.memory_mb * node.ram_allocation_ratio, node
        assert d <= node.local_gb * node.disk_allocation_ratio, node


class DirectConductor:
    """The agent's conductor client without messaging: the real conductor endpoint over the
    real database. Arguments and answers still go through JSON, as over RPC."""

    def __init__(self, engine: Engine) -> None:
        from vigil.conductor.compute import ComputeConductorManager

        self.endpoint = ComputeConductorManager(engine)

    @staticmethod
    def _wire(value: Any) -> Any:
        import json

        return json.loads(json.dumps(value))

    def compute_node_update(self, host: str, inventory: Inventory) -> NodeRecord:
        return NodeRecord.from_primitive(self._wire(self.endpoint.compute_node_update(
            {}, host, self._wire(inventory.to_primitive()))))

    def host_view(self, host: str) -> tuple[HostRecord, list[InstanceRecord]]:
        data = self._wire(self.endpoint.host_view({}, host))
        return (HostRecord.from_primitive(data["host"]),
                [InstanceRecord.from_primitive(d) for d in data["instances"]])

    def instance_start(self, instance_uuid: str, host: str, generation: int,
                       kind: str) -> StartGrant:
        return StartGrant.from_primitive(self._wire(self.endpoint.instance_start(
            {}, instance_uuid, host, generation, kind)))

    def quarantine_ack(self, host: str, seq: int) -> bool:
        return bool(self.endpoint.quarantine_ack({}, host, seq))

    def instance_get(self, instance_uuid: str) -> InstanceRecord | None:
        data = self._wire(self.endpoint.instance_get({}, instance_uuid))
        return InstanceRecord.from_primitive(data) if data is not None else None

    def instance_update(self, instance_uuid: str, host: str, values: dict[str, Any],
                        task_states: Any, now_fields: Any = (), generation: int | None = None,
                        unless_quarantined: bool = False) -> InstanceRecord | None:
        data = self._wire(self.endpoint.instance_update(
            {}, instance_uuid, host, self._wire(values), list(task_states), list(now_fields),
            generation, unless_quarantined))
        return InstanceRecord.from_primitive(data) if data is not None else None

    def instance_spawn_failed(self, instance_uuid: str, host: str, task_state: str,
                              fault: str) -> InstanceRecord | None:
        data = self._wire(self.endpoint.instance_spawn_failed({}, instance_uuid, host,
                                                              task_state, fault))
        return InstanceRecord.from_primitive(data) if data is not None else None
