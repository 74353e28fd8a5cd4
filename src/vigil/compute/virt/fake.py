"""The fake driver: instances are entries in a dict.

Used by ``vigil up``'s simulated hosts and by the benchmark. Capacity comes from [compute]
vcpus/memory_mb/local_gb (defaults 16 vCPUs, 32 GB, 1 TB) so an operator can fill a host up and
watch the scheduler's filters refuse it.
"""

from __future__ import annotations

import threading

from vigil.compute.virt.driver import NewTransport, VirtDriver, VirtSettings, base_inventory
from vigil.errors import InstanceExists
from vigil.objects.compute import InstanceRecord, Inventory, PowerState

DEFAULT_VCPUS = 16
DEFAULT_MEMORY_MB = 32768
DEFAULT_LOCAL_GB = 1024


class FakeDriver(VirtDriver):
    name = "fake"

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._lock = threading.Lock()
        self._instances: dict[str, InstanceRecord] = {}
        # Every spawn and destroy, in order (tests assert on what the agent asked for).
        self.calls: list[tuple[str, str]] = []

    @classmethod
    def from_settings(cls, settings: VirtSettings, host: str, *,
                      new_transport: NewTransport | None = None) -> FakeDriver:
        return cls(base_inventory(settings.inventory, host, hypervisor_type="fake",
                                  vcpus=DEFAULT_VCPUS, memory_mb=DEFAULT_MEMORY_MB,
                                  local_gb=DEFAULT_LOCAL_GB))

    def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
        with self._lock:
            if instance.uuid in self._instances:
                raise InstanceExists(instance.uuid)
            self._instances[instance.uuid] = instance
            self.calls.append(("rebuild" if rebuild else "spawn", instance.uuid))

    def destroy(self, instance_uuid: str, *, keep_disk: bool) -> None:
        with self._lock:
            if self._instances.pop(instance_uuid, None) is not None:
                self.calls.append(("destroy", instance_uuid))

    def list_instances(self) -> list[str]:
        with self._lock:
            return list(self._instances)

    def power_state(self, instance_uuid: str) -> PowerState:
        with self._lock:
            return PowerState.RUNNING if instance_uuid in self._instances else PowerState.NOSTATE

    def inventory(self) -> Inventory:
        return self._inventory
