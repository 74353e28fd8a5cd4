"""Capacity: "does this claim fit on this node?", one rule for the scheduler's filters and the
database's claim (issue 11, D-D).

Nova's rule, per resource: ``used + requested <= total * allocation_ratio``. The scheduler asks
it in memory to skip hosts without a round trip; the claim asks it again in the WHERE clause of
the UPDATE that adds the usage, and the database's answer is the one that counts
(:mod:`vigil.db.compute.claims`). Both are built from :data:`RESOURCES`, so a resource added or
a ratio renamed changes both answers at once; the bare-metal records' closing of a claimed node
(:mod:`vigil.db.baremetal.ownership`) walks the same table.

It sits with the words (not in ``compute/``, as the review proposed) because the persistence
layer builds its SQL from it and stands below ``compute``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.objects.compute import NodeRecord


@dataclass(frozen=True)
class Resource:
    """One resource a claim consumes: the node's field names for its usage, total and ratio,
    and the name of what an instance (its flavor's copy) asks for."""

    used: str
    total: str
    ratio: str
    request: str

    def fits(self, node: NodeRecord, amount: float) -> bool:
        return bool(getattr(node, self.used) + amount
                    <= getattr(node, self.total) * getattr(node, self.ratio))


VCPUS = Resource("vcpus_used", "vcpus", "cpu_allocation_ratio", "vcpus")
MEMORY = Resource("memory_mb_used", "memory_mb", "ram_allocation_ratio", "memory_mb")
DISK = Resource("local_gb_used", "local_gb", "disk_allocation_ratio", "root_gb")
RESOURCES: tuple[Resource, ...] = (VCPUS, MEMORY, DISK)


def fits(node: NodeRecord, *, vcpus: int, memory_mb: int, root_gb: int) -> bool:
    """Every resource of one instance fits on ``node`` (the claim's WHERE clause, in memory)."""
    asked = {"vcpus": vcpus, "memory_mb": memory_mb, "root_gb": root_gb}
    return all(r.fits(node, asked[r.request]) for r in RESOURCES)
