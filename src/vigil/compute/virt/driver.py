"""The virt driver interface: what the compute agent needs of a hypervisor.

Deliberately small (Nova's ComputeDriver has some hundred methods): spawn, destroy,
list_instances, power_state, inventory. A driver knows nothing of the database or of
messaging; the agent decides *what* should run here, the driver only makes it so.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from oslo_config import cfg

from vigil.objects.compute import InstanceRecord, Inventory, PowerState

__all__ = ["VirtDriver", "base_inventory"]


class VirtDriver(abc.ABC):
    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_conf(cls, conf: cfg.ConfigOpts, host: str) -> VirtDriver:
        """Build from the [compute] options for ``host``."""

    def init_host(self) -> None:  # noqa: B027 - optional hook
        """Prepare the host (find what already runs). Called once before anything else."""

    @abc.abstractmethod
    def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
        """Start ``instance`` here. ``rebuild``: re-create an instance that ran on another host,
        reusing its disk if this host can see it (shared instances_path).

        Raises InstanceExists if it already runs here; any other exception is a failed spawn.
        """

    @abc.abstractmethod
    def destroy(self, instance_uuid: str, *, keep_disk: bool) -> None:
        """Stop the instance if it runs here and forget it; a no-op if it does not.

        ``keep_disk``: leave its disk alone (it may belong to a copy on another host now).
        """

    @abc.abstractmethod
    def list_instances(self) -> list[str]:
        """UUIDs of the instances that exist here (running or not)."""

    @abc.abstractmethod
    def power_state(self, instance_uuid: str) -> PowerState:
        """RUNNING, SHUTDOWN (exists but stopped) or NOSTATE (unknown here)."""

    @abc.abstractmethod
    def inventory(self) -> Inventory:
        """This host's node: its totals and allocation ratios (never its usage)."""

    def cleanup(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds when the agent stops (instances keep running)."""


def base_inventory(conf: cfg.ConfigOpts, host: str, *, hypervisor_type: str, vcpus: int,
                   memory_mb: int, local_gb: int) -> Inventory:
    """An inventory with the [compute] overrides and ratios applied to the driver's totals."""
    c = conf.compute
    return Inventory(
        hypervisor_hostname=c.hypervisor_hostname or host,
        hypervisor_type=hypervisor_type,
        hypervisor_version=1,
        vcpus=c.vcpus or vcpus,
        memory_mb=c.memory_mb or memory_mb,
        local_gb=c.local_gb or local_gb,
        cpu_allocation_ratio=c.cpu_allocation_ratio,
        ram_allocation_ratio=c.ram_allocation_ratio,
        disk_allocation_ratio=c.disk_allocation_ratio,
        host_ip=c.host_ip,
        availability_zone=c.availability_zone or conf.default_availability_zone,
    )
