"""What the scheduler knows about each candidate host, read in O(1) queries.

One services snapshot (batch liveness through :meth:`ServiceGroup.states`) and one read of the
compute nodes, whatever the number of hosts: the ComputeFilter never asks about one host at a
time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from vigil.db.compute import nodes as nodes_db
from vigil.db.ha import hosts as hosts_db
from vigil.names import COMPUTE_TOPIC
from vigil.objects.compute import InstanceRecord, NodeRecord
from vigil.objects.ha import HostRecord
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup


@dataclass
class HostState:
    """A compute node with its service's liveness. ``node`` is replaced as claims land."""

    node: NodeRecord
    service: ServiceRecord | None
    state: State
    zone: str
    quarantined: bool = False
    maintenance: bool = False

    @property
    def host(self) -> str:
        return self.node.host

    def consume(self, inst: InstanceRecord) -> None:
        """Account a claim that succeeded, so the next decision of the same pass sees it."""
        n = self.node
        self.node = dataclasses.replace(
            n, vcpus_used=n.vcpus_used + inst.vcpus,
            memory_mb_used=n.memory_mb_used + inst.memory_mb,
            local_gb_used=n.local_gb_used + inst.root_gb, running_vms=n.running_vms + 1)


@dataclass
class HostSnapshot:
    """All candidate hosts, the liveness of every compute service, and what evacuation checks
    of a source host: whether it really reports (``reporting``: liveness ignoring forced_down)
    and its HA facts (``ha``: quarantine, maintenance)."""

    hosts: list[HostState]
    services: dict[str, tuple[ServiceRecord, State]]
    reporting: dict[str, State] = field(default_factory=dict)
    ha: dict[str, HostRecord] = field(default_factory=dict)


def read_hosts(engine: Engine, group: ServiceGroup, default_zone: str) -> HostSnapshot:
    members = group.members(COMPUTE_TOPIC)  # one backend round trip for both answers
    services = {m.host: (m.record, m.state) for m in members}
    ha = hosts_db.hosts(engine)
    hosts: list[HostState] = []
    for node in nodes_db.compute_nodes(engine):
        svc, state = services.get(node.host, (None, State.UNKNOWN))
        facts = ha.get(node.host)
        hosts.append(HostState(node, svc, state, node.availability_zone or default_zone,
                               quarantined=facts is not None and facts.quarantined,
                               maintenance=facts is not None and facts.maintenance))
    return HostSnapshot(hosts, services, {m.host: m.reporting for m in members}, ha)
