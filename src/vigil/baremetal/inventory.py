"""What a bare-metal node's compute-node record says (pure).

One record per node, ``hypervisor_hostname`` = the node's uuid, resources = the node's.
Instances take whole nodes: a record is schedulable (allocation ratios 1.0) only while its
node is free and not in maintenance. In maintenance or holding an instance nobody claimed
here, its ratios are 0. With an instance claimed on it, the database closes its ratios
itself, in every statement that writes them (``(used + 0.5) / total``: no room for another
claim, usage still within capacity; see :func:`vigil.db.baremetal.ownership.closed_ratio`), so
those ratios are the database's business and not compared here.
"""

from __future__ import annotations

from vigil.objects.baremetal import HYPERVISOR_TYPE, Node, RecordState
from vigil.objects.compute import Inventory


def schedulable(node: Node, running_vms: int = 0) -> bool:
    return not node.maintenance and node.instance_uuid is None and running_vms == 0


def record_inventory(node: Node, zone: str | None, running_vms: int = 0) -> Inventory:
    """The inventory the node's record should have."""
    ratio = 1.0 if schedulable(node, running_vms) else 0.0
    return Inventory(
        hypervisor_hostname=node.uuid,
        hypervisor_type=HYPERVISOR_TYPE,
        hypervisor_version=1,
        vcpus=node.cpus,
        memory_mb=node.memory_mb,
        local_gb=node.local_gb,
        cpu_allocation_ratio=ratio,
        ram_allocation_ratio=ratio,
        disk_allocation_ratio=ratio,
        host_ip=None,
        availability_zone=zone,
    )


def needs_update(record: RecordState, wanted: Inventory) -> bool:
    """Whether a live record differs from what it should say (steady state: no writes)."""
    if (record.vcpus, record.memory_mb, record.local_gb, record.availability_zone) != (
            wanted.vcpus, wanted.memory_mb, wanted.local_gb, wanted.availability_zone):
        return True
    if record.running_vms > 0:
        return False  # closed by the database (see the module docstring)
    return (record.cpu_allocation_ratio, record.ram_allocation_ratio,
            record.disk_allocation_ratio) != (
        wanted.cpu_allocation_ratio, wanted.ram_allocation_ratio, wanted.disk_allocation_ratio)
