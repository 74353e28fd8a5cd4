"""Compute's words: an instance's states (Nova's vocabulary), the records of nodes, flavors and
instances, what an agent reports about its node, and the answer to "may I start this?".

The states are ``StrEnum``/``IntEnum`` members whose values are the strings and numbers the
database and the wire always held, so a row, an RPC dict and an enum member compare equal.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from vigil.objects.primitive import Primitive


class VmState(enum.StrEnum):
    """What an instance is (Nova's ``vm_state``), as the database records it.

    BUILDING: created and not yet running anywhere. Only the scheduler (placing it) and the
        host it is placed on (spawning it) act on it.
    ACTIVE: runs, or must run, on its host. The host keeps it running (resuming it when it
        may); if the host is down, the instance may be evacuated.
    ERROR: failed; ``fault`` says why. Nobody restarts it on their own: an operator deletes it,
        or evacuates it.
    DELETED: gone (its row is soft-deleted). A host that still has a copy destroys it, disk
        included.
    """

    BUILDING = "building"
    ACTIVE = "active"
    ERROR = "error"
    DELETED = "deleted"


class TaskState(enum.StrEnum):
    """What is being done to an instance now (Nova's ``task_state``; None: nothing, it is idle).

    SCHEDULING: waiting for the scheduler to pick and claim a host; it has none yet.
    SPAWNING: claimed; the host it is placed on spawns it, once the database grants the start.
    REBUILDING: an evacuation was requested; waiting for the scheduler to claim a new host. The
        old host must not start it: it no longer owns this generation of the instance.
    REBUILD_SPAWNING: the evacuation claimed a new host, which rebuilds it there (granted start).
    """

    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    REBUILDING = "rebuilding"
    REBUILD_SPAWNING = "rebuild_spawning"


# The task states the scheduler works on: an instance waiting for a host.
PENDING_TASKS: tuple[TaskState, ...] = (TaskState.SCHEDULING, TaskState.REBUILDING)


class PowerState(enum.IntEnum):
    """An instance's power as its host's agent last reported it (Nova's numbers): a report,
    never a command.

    NOSTATE: unknown here (the host does not know the instance, or never reported it).
    RUNNING: it runs on its host.
    SHUTDOWN: it exists on its host and is stopped.
    """

    NOSTATE = 0
    RUNNING = 1
    SHUTDOWN = 4


class StartKind(enum.StrEnum):
    """The three ways an agent starts an instance; each needs the database's grant first
    (:func:`vigil.db.compute.instances.instance_start`).

    SPAWN: a new instance placed here (task state ``spawning``).
    REBUILD: an evacuated instance whose new host is this one (``rebuild_spawning``).
    RESUME: an active, idle instance placed here that does not run (after a restart, or once
        a quarantine is released).
    """

    SPAWN = "spawn"
    REBUILD = "rebuild"
    RESUME = "resume"

    @property
    def task_state(self) -> TaskState | None:
        """The task state the instance must be in for this kind of start (None: idle)."""
        return _START_TASKS[self]


_START_TASKS: dict[StartKind, TaskState | None] = {
    StartKind.SPAWN: TaskState.SPAWNING,
    StartKind.REBUILD: TaskState.REBUILD_SPAWNING,
    StartKind.RESUME: None,
}


class StartRefusal(enum.StrEnum):
    """Why the database refused a start, and what the agent does then.

    QUARANTINED: the host may start nothing until it is released: keep the instance stopped
        and ask again later (it stays placed here).
    MOVED: the instance belongs elsewhere now, or to an evacuation: never start it here.
    DELETED: it was deleted: never start it.
    BUSY: its task changed meanwhile: read it again before doing anything.
    """

    QUARANTINED = "quarantined"
    MOVED = "moved"
    DELETED = "deleted"
    BUSY = "busy"


@dataclass(frozen=True)
class StartGrant(Primitive):
    """The answer to "may this host start this instance now?": ``granted``, or the
    ``reason`` it was refused."""

    granted: bool
    reason: StartRefusal | None = None


@dataclass(frozen=True)
class NodeRecord(Primitive):
    id: int
    uuid: str
    host: str
    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    host_ip: str | None
    availability_zone: str | None
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    running_vms: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    created_at: dt.datetime
    updated_at: dt.datetime | None

    @property
    def free_ram_mb(self) -> float:
        """RAM left after the allocation ratio, as Nova's RAMWeigher counts it: total * ratio -
        used (the os-hypervisors view's ``free_ram_mb`` is Nova's too, and ignores the ratio).
        Whether a claim fits is :mod:`vigil.objects.capacity`'s question."""
        return self.memory_mb * self.ram_allocation_ratio - self.memory_mb_used


@dataclass(frozen=True)
class FlavorRecord(Primitive):
    id: int
    flavorid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    description: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class InstanceRecord(Primitive):
    """An instance row. ``generation``: its ownership generation, bumped by every claim and
    evacuation; a host starts an instance only in the generation it read."""

    id: int
    uuid: str
    name: str
    flavorid: str
    flavor_name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    availability_zone: str | None
    requested_host: str | None
    host: str | None
    node: str | None
    compute_node_id: int | None
    vm_state: VmState
    task_state: TaskState | None
    power_state: PowerState
    generation: int
    evacuable: bool
    fault: str | None
    fault_at: dt.datetime | None
    launched_at: dt.datetime | None
    terminated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime | None
    deleted: bool


@dataclass(frozen=True)
class Inventory(Primitive):
    """What an agent reports about its node (totals; never usage)."""

    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    host_ip: str | None = None
    availability_zone: str | None = None
