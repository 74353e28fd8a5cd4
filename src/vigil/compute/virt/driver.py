"""The virt driver interface: what the compute agent needs of a hypervisor.

Deliberately small (Nova's ComputeDriver has some hundred methods): spawn, destroy,
list_instances, power_state, inventory. A driver knows nothing of the database or of
messaging; the agent decides *what* should run here, the driver only makes it so.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from vigil.objects.compute import InstanceRecord, Inventory, PowerState

if TYPE_CHECKING:
    import oslo_messaging as messaging

__all__ = ["InventoryOverrides", "NewTransport", "VirtDriver", "VirtSettings", "base_inventory"]

NewTransport = Callable[[], "messaging.Transport"]
"""Opens a messaging transport of the driver's own (which it cleans up when it stops)."""


@dataclass(frozen=True)
class InventoryOverrides:
    """``[compute]``'s say over a driver's inventory: the totals an operator fixes (the
    scheduler places against them, so a host can be filled up on purpose) and the allocation
    ratios (how far each resource may be oversubscribed)."""

    hypervisor_hostname: str | None
    """The node's name; unset, the host's."""
    vcpus: int
    """0: the driver's own count (the machine's, or the fake driver's default)."""
    memory_mb: int
    """0: the driver's own."""
    local_gb: int
    """0: the driver's own."""
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    host_ip: str | None
    """The address shown for the hypervisor."""
    availability_zone: str
    """The host's zone: ``[compute] availability_zone``, else ``[DEFAULT]
    default_availability_zone`` (the scheduler's AvailabilityZoneFilter matches on it)."""


@dataclass(frozen=True)
class VirtSettings:
    """What the virt drivers need of the configuration, read once by the composition root
    (:func:`vigil.launch.settings.virt_settings`): no driver reads ``conf``. One object for
    every driver (each reads its own fields), since the loader picks the driver by name."""

    compute_driver: str
    """The driver :func:`vigil.compute.virt.load` builds when it is not named
    (:data:`vigil.plugins.COMPUTE_DRIVERS`)."""
    inventory: InventoryOverrides
    state_path: str
    """The process driver's records and console FIFOs live under
    ``<state_path>/compute/<host>``: this host's alone, even when instances are shared."""
    instances_path: str
    """The process driver's disks; may be shared between hosts (an evacuation reuses one)."""
    process_command: str
    """The process driver's workload command template (empty: the built-in workload)."""
    metadata_host: str
    metadata_listen_port: int
    """Where a process-driver instance reads its metadata (``VIGIL_METADATA_URL``)."""
    metadata_secret: Callable[[], str | None]
    """``[neutron] metadata_proxy_shared_secret``, read at each spawn (``vigil up`` sets it
    at start): the process driver signs each instance's identity with it (unset: unsigned)."""
    rpc_response_timeout: float
    """How long the baremetal driver's calls to the conductor wait for an answer."""
    membership_debounce: float
    """How long a change of the baremetal hosts' membership must hold before the ring
    follows it (``[baremetal]``)."""


class VirtDriver(abc.ABC):
    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: VirtSettings, host: str, *,
                      new_transport: NewTransport | None = None) -> VirtDriver:
        """Build for ``host``. ``new_transport``: for a driver that talks to the conductor
        over a connection of its own (the baremetal driver requires it)."""

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


def base_inventory(c: InventoryOverrides, host: str, *, hypervisor_type: str, vcpus: int,
                   memory_mb: int, local_gb: int) -> Inventory:
    """An inventory with the [compute] overrides and ratios applied to the driver's totals."""
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
        availability_zone=c.availability_zone,
    )
