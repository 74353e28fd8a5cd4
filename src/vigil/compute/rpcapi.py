"""RPC clients of the compute side.

- :class:`ComputeAgentAPI`: scheduler and API -> one compute agent (topic ``compute``,
  server = host). Casts only: the agent reports back through the conductor, and a cast that is
  lost (agent down, broker hiccup) is redone by the agent's own reconciliation.
- :class:`ComputeConductorAPI`: agent -> conductor, the agent's only way to the database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vigil import rpc
from vigil.names import COMPUTE_TOPIC
from vigil.objects.compute import (
    InstanceRecord,
    Inventory,
    NodeRecord,
    StartGrant,
    StartKind,
    TaskState,
)
from vigil.objects.ha import HostRecord

if TYPE_CHECKING:
    import oslo_messaging as messaging

LOG = logging.getLogger(__name__)



def compute_target(host: str | None = None) -> messaging.Target:
    import oslo_messaging as messaging  # when used, not with the assembly (vigil.rpc says why)

    return messaging.Target(topic=COMPUTE_TOPIC, server=host, version="1.0")


class ComputeAgentAPI:
    def __init__(self, transport: messaging.Transport) -> None:
        import oslo_messaging as messaging

        self._client = messaging.get_rpc_client(transport, compute_target())

    def _cast(self, host: str, method: str, **kwargs: Any) -> bool:
        """Best effort: False (logged) if the message could not be sent."""
        try:
            self._client.prepare(server=host, retry=0).cast({}, method, **kwargs)
            return True
        except Exception as exc:  # any transport failure; the agent's reconciliation redoes it
            LOG.warning("could not send %s to compute %s (its reconciliation will catch up): "
                        "%s", method, host, exc)
            return False

    def build_and_run_instance(self, host: str, instance_uuid: str) -> bool:
        return self._cast(host, "build_and_run_instance", instance_uuid=instance_uuid)

    def rebuild_instance(self, host: str, instance_uuid: str) -> bool:
        return self._cast(host, "rebuild_instance", instance_uuid=instance_uuid)

    def terminate_instance(self, host: str, instance_uuid: str) -> bool:
        return self._cast(host, "terminate_instance", instance_uuid=instance_uuid)


class ComputeConductorAPI(rpc.ConductorClientBase):
    """Agent -> conductor calls (same topic as :class:`vigil.rpc.ConductorAPI`). Every call
    raises MessagingUnavailable on failure."""

    def compute_node_update(self, host: str, inventory: Inventory) -> NodeRecord:
        data = self._call("compute_node_update", host=host, inventory=inventory.to_primitive())
        return NodeRecord.from_primitive(data)

    def instance_get(self, instance_uuid: str) -> InstanceRecord | None:
        data = self._call("instance_get", instance_uuid=instance_uuid)
        return InstanceRecord.from_primitive(data) if data is not None else None

    def host_view(self, host: str) -> tuple[HostRecord, list[InstanceRecord]]:
        data = self._call("host_view", host=host)
        return (HostRecord.from_primitive(data["host"]),
                [InstanceRecord.from_primitive(d) for d in data["instances"]])

    def instance_start(self, instance_uuid: str, host: str, generation: int,
                       kind: StartKind) -> StartGrant:
        data = self._call("instance_start", instance_uuid=instance_uuid, host=host,
                          generation=generation, kind=kind)
        return StartGrant.from_primitive(data)

    def quarantine_ack(self, host: str, seq: int) -> bool:
        return bool(self._call("quarantine_ack", host=host, seq=seq))

    def instance_update(self, instance_uuid: str, host: str, values: dict[str, Any],
                        task_states: Sequence[str | None], now_fields: Sequence[str] = (),
                        generation: int | None = None,
                        unless_quarantined: bool = False) -> InstanceRecord | None:
        data = self._call("instance_update", instance_uuid=instance_uuid, host=host,
                          values=values, task_states=list(task_states),
                          now_fields=list(now_fields), generation=generation,
                          unless_quarantined=unless_quarantined)
        return InstanceRecord.from_primitive(data) if data is not None else None

    def instance_spawn_failed(self, instance_uuid: str, host: str, task_state: TaskState,
                              fault: str) -> InstanceRecord | None:
        data = self._call("instance_spawn_failed", instance_uuid=instance_uuid, host=host,
                          task_state=task_state, fault=fault)
        return InstanceRecord.from_primitive(data) if data is not None else None
