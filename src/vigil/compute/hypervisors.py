"""Hypervisor (compute node) views: what ``vigil hypervisor`` and ``/os-hypervisors`` show.

``state`` comes from the batch liveness of the nodes' compute services (one snapshot for any
number of nodes); ``status`` is the service's enabled/disabled. A node whose service was
deleted is not shown (the service delete guard keeps services with instances).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from vigil import ids
from vigil.db import services as services_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.ha import hosts as hosts_db
from vigil.errors import NotFound
from vigil.names import COMPUTE_TOPIC
from vigil.objects.compute import NodeRecord
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup


def missing(ident: str) -> NotFound:
    """What ``vigil hypervisor show`` says of an id or hostname that names no hypervisor."""
    return NotFound(f"Hypervisor {ident} could not be found.")


@dataclass(frozen=True)
class HypervisorView:
    node: NodeRecord
    service: ServiceRecord
    state: State
    quarantined: bool = False   # its host's HA facts (vigil.db.ha.hosts)
    maintenance: bool = False
    host_liveness: State | None = None  # its supervisor's state; None: no supervisor

    @property
    def status(self) -> str:
        return "disabled" if self.service.disabled else "enabled"

    def to_dict(self) -> dict[str, Any]:
        """Nova's hypervisor detail (2.53+: ids are UUIDs), plus the allocation ratios."""
        n = self.node
        return {
            "id": n.uuid,
            "hypervisor_hostname": n.hypervisor_hostname,
            "hypervisor_type": n.hypervisor_type,
            "hypervisor_version": n.hypervisor_version,
            "host_ip": n.host_ip,
            "state": self.state.value,
            "status": self.status,
            "vcpus": n.vcpus,
            "vcpus_used": n.vcpus_used,
            "memory_mb": n.memory_mb,
            "memory_mb_used": n.memory_mb_used,
            # Nova's free_* fields ignore the allocation ratios; the ratios are given below.
            "free_ram_mb": n.memory_mb - n.memory_mb_used,
            "local_gb": n.local_gb,
            "local_gb_used": n.local_gb_used,
            "free_disk_gb": n.local_gb - n.local_gb_used,
            "disk_available_least": n.local_gb - n.local_gb_used,
            "running_vms": n.running_vms,
            "current_workload": 0,
            "cpu_info": "{}",
            "service": {"host": self.service.host, "id": self.service.uuid,
                        "disabled_reason": self.service.disabled_reason},
            "cpu_allocation_ratio": n.cpu_allocation_ratio,
            "ram_allocation_ratio": n.ram_allocation_ratio,
            "disk_allocation_ratio": n.disk_allocation_ratio,
            "availability_zone": n.availability_zone,
            # Vigil's own keys (prefixed, as Nova's extensions were): the host's HA facts.
            "vigil:quarantined": self.quarantined,
            "vigil:maintenance": self.maintenance,
            # The host's own liveness (its supervisor), beside ``state`` (the agent's).
            "vigil:host_liveness": self.host_liveness.value if self.host_liveness else None,
        }


class HypervisorsAPI:
    def __init__(self, engine: Engine, group: ServiceGroup) -> None:
        self.engine = engine
        self.group = group

    def _views(self, nodes: list[NodeRecord]) -> list[HypervisorView]:
        by_host = self.group.members(COMPUTE_TOPIC).by_host()
        ha = hosts_db.hosts(self.engine)
        liveness = {m.host: m.state for m in self.group.members("host")}
        out: list[HypervisorView] = []
        for n in nodes:
            if n.host not in by_host:
                continue
            facts = ha.get(n.host)
            member = by_host[n.host]
            out.append(HypervisorView(n, member.record, member.state,
                                      facts is not None and facts.quarantined,
                                      facts is not None and facts.maintenance,
                                      liveness.get(n.host)))
        return out

    def list(self, *, hostname: str | None = None) -> list[HypervisorView]:
        """All nodes (or those whose hypervisor_hostname contains ``hostname``, as Nova's
        hypervisor_hostname_pattern): two queries whatever their number."""
        nodes = nodes_db.compute_nodes(self.engine)
        if hostname is not None:
            nodes = [n for n in nodes if hostname in n.hypervisor_hostname]
        return self._views(nodes)

    def get(self, ident: str) -> HypervisorView:
        """By UUID, integer id, or exact hypervisor hostname."""
        ident = ident.strip()
        nodes: list[NodeRecord]
        if ident.isascii() and ident.isdigit():
            # Beyond the id column's range no row can match: spare the database an overflow.
            nodes = (nodes_db.compute_nodes(self.engine, ids=[int(ident)])
                     if len(ident) <= 10 and int(ident) <= 2**31 - 1 else [])
        else:
            uuid = ids.parse_uuid(ident)
            nodes = []
            if uuid is not None:
                with contextlib.suppress(NotFound):
                    nodes = [nodes_db.compute_node_get(self.engine, uuid)]
            if not nodes:
                nodes = [n for n in nodes_db.compute_nodes(self.engine)
                         if n.hypervisor_hostname == ident]
        views = self._views(nodes)
        if not views:
            raise missing(ident)
        return views[0]

    def statistics(self) -> dict[str, int]:
        """Nova's ``os-hypervisors/statistics``: totals over the enabled services' nodes.

        As Nova, a disabled service's nodes are left out (the scheduler gives them nothing).
        A bare-metal node counts once: its record has exactly one owner at any instant, and
        a released record belongs to no service, so it is not counted at all. Liveness plays
        no part, so it is not read (no backend round trip): two queries.
        """
        enabled = {s.host for s in services_db.snapshot(self.engine, topic=COMPUTE_TOPIC).services
                   if not s.disabled}
        nodes = [n for n in nodes_db.compute_nodes(self.engine) if n.host in enabled]
        vcpus, memory_mb, local_gb = (sum(n.vcpus for n in nodes),
                                      sum(n.memory_mb for n in nodes),
                                      sum(n.local_gb for n in nodes))
        memory_used, disk_used = (sum(n.memory_mb_used for n in nodes),
                                  sum(n.local_gb_used for n in nodes))
        return {"count": len(nodes), "vcpus": vcpus,
                "vcpus_used": sum(n.vcpus_used for n in nodes),
                "memory_mb": memory_mb, "memory_mb_used": memory_used,
                "free_ram_mb": memory_mb - memory_used,
                "local_gb": local_gb, "local_gb_used": disk_used,
                "free_disk_gb": local_gb - disk_used, "disk_available_least": local_gb - disk_used,
                "running_vms": sum(n.running_vms for n in nodes), "current_workload": 0}
