"""The compute agent's manager: RPC handlers and the reconciliation of this host's instances.

The database (through the conductor) says which instances belong to this host; the virt driver
says which exist here. Every action is decided by comparing the two, freshly read, never from
the content of a message alone: a build or rebuild request that arrives late (queued while the
agent was down, or overtaken by an evacuation) is checked against the instance's current owner
and task state first.

**No start on a local decision.** Spawning, rebuilding or resuming an instance happens only
after the conductor granted it (:func:`vigil.db.compute.instances.instance_start`: one
statement that fails if the instance is no longer this host's in the ownership generation the
agent read, or if this host is quarantined), and it is confirmed afterwards with the same
conditions: a copy whose confirmation fails is destroyed at once, never left running.

**Quarantine.** A host whose fence was decided is quarantined until the HA monitor (or an
operator) releases it. While quarantined the agent runs nothing: it stops every local instance
(keeping its disk: it may be the shared disk the instance now uses elsewhere), tells the
conductor it did (the monitor waits for that before evacuating from a host that reports
again), and starts nothing. Once released, it resumes the instances still placed here.

Reconciliation (at start and every ``instance_sync_interval``):

- quarantined: stop everything, acknowledge, nothing else;
- a local instance the database does not place here is a stale copy (evacuated while this host
  was down, or deleted): destroy it, keeping its disk unless the instance was deleted;
- an instance placed here and waiting to be spawned (``spawning``/``rebuild_spawning``) whose
  request was lost: spawn it;
- an active instance placed here that does not run: at start (``resume_guests_state_on_host_
  boot``) or after a quarantine stopped it, resume it; otherwise its process died: report
  ERROR with a fault.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import oslo_messaging as messaging

from vigil.compute.virt.driver import VirtDriver
from vigil.errors import InstanceExists
from vigil.objects.compute import (
    InstanceRecord,
    Inventory,
    NodeRecord,
    PowerState,
    StartGrant,
    StartKind,
    StartRefusal,
    TaskState,
    VmState,
)
from vigil.objects.ha import HostRecord

LOG = logging.getLogger(__name__)


class ComputeConductor(Protocol):
    """What the agent asks of the conductor (RPC in production, direct in some tests)."""

    def compute_node_update(self, host: str, inventory: Inventory) -> NodeRecord: ...

    def host_view(self, host: str) -> tuple[HostRecord, list[InstanceRecord]]: ...

    def instance_get(self, instance_uuid: str) -> InstanceRecord | None: ...

    def instance_start(self, instance_uuid: str, host: str, generation: int,
                       kind: StartKind) -> StartGrant: ...

    def instance_update(self, instance_uuid: str, host: str, values: dict[str, Any],
                        task_states: Sequence[str | None], now_fields: Sequence[str] = (),
                        generation: int | None = None,
                        unless_quarantined: bool = False) -> InstanceRecord | None: ...

    def instance_spawn_failed(self, instance_uuid: str, host: str, task_state: TaskState,
                              fault: str) -> InstanceRecord | None: ...

    def quarantine_ack(self, host: str, seq: int) -> bool: ...


@runtime_checkable
class NodesReporter(Protocol):
    """A driver of many nodes (bare metal) that reports them itself, through the conductor,
    instead of the one node of its host."""

    def report_nodes(self) -> object: ...


class ComputeManager:
    """RPC endpoint of topic ``compute`` (server = this host) and the reconciliation logic."""

    target = messaging.Target(version="1.0")

    def __init__(self, host: str, driver: VirtDriver, conductor: ComputeConductor, *,
                 resume_on_start: bool = True) -> None:
        self.host = host
        self.driver = driver
        self.conductor = conductor
        self.resume_on_start = resume_on_start
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        # Active instances placed here that do not run are resumed by the next reconciliation
        # allowed to start anything: after the agent starts (resume_on_start), and after a
        # quarantine stopped them. Otherwise such an instance died and is reported as ERROR.
        self._resume_due = False
        self._acked_seq: int | None = None
        self.quarantined = False  # as the last reconciliation found it

    @contextlib.contextmanager
    def _claim(self, instance_uuid: str) -> Iterator[bool]:
        """One action at a time per instance; False if another is in progress."""
        with self._busy_lock:
            if instance_uuid in self._busy:
                yield False
                return
            self._busy.add(instance_uuid)
        try:
            yield True
        finally:
            with self._busy_lock:
                self._busy.discard(instance_uuid)

    # -- RPC handlers (casts) -----------------------------------------------------------------
    def build_and_run_instance(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
        self.spawn_if_mine(instance_uuid, TaskState.SPAWNING)

    def rebuild_instance(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
        self.spawn_if_mine(instance_uuid, TaskState.REBUILD_SPAWNING)

    def terminate_instance(self, ctxt: dict[str, Any], instance_uuid: str) -> None:
        with self._claim(instance_uuid) as mine:
            if not mine:
                return
            inst = self.conductor.instance_get(instance_uuid)
            if inst is None:
                LOG.warning("ignoring a terminate of %s: the database does not know it",
                            instance_uuid)
                return
            if not inst.deleted and inst.host == self.host:
                LOG.warning("ignoring a terminate of %s: the database still places it here",
                            instance_uuid)
                return
            self.driver.destroy(instance_uuid, keep_disk=not inst.deleted)

    # -- actions ------------------------------------------------------------------------------
    def spawn_if_mine(self, instance_uuid: str, task_state: TaskState) -> bool:
        """Spawn the instance if, read now, it is placed here and waiting in ``task_state``."""
        with self._claim(instance_uuid) as mine:
            if not mine:
                return False
            inst = self.conductor.instance_get(instance_uuid)
            if inst is None or inst.deleted or inst.host != self.host:
                LOG.info("not spawning %s: it is not placed on %s (any more)", instance_uuid,
                         self.host)
                return False
            if inst.task_state != task_state:
                LOG.info("not spawning %s: its task is %s, not %s", instance_uuid,
                         inst.task_state, task_state)
                return False
            return self._start(inst, StartKind.REBUILD if task_state == TaskState.REBUILD_SPAWNING
                               else StartKind.SPAWN)

    def _start(self, inst: InstanceRecord, kind: StartKind) -> bool:
        """Ask the database, start, confirm: the one way anything starts on this host."""
        task = kind.task_state
        grant = self.conductor.instance_start(inst.uuid, self.host, inst.generation, kind)
        if not grant.granted:
            LOG.info("not starting instance %s (%s) on %s: %s", inst.uuid, kind, self.host,
                     grant.reason)
            if grant.reason is StartRefusal.QUARANTINED:
                self._resume_due = True  # once released, what stays here runs again
            return False
        rebuild = kind is StartKind.REBUILD
        try:
            self.driver.spawn(inst, rebuild=rebuild)
        except InstanceExists:
            LOG.info("instance %s already runs here", inst.uuid)
        except Exception as exc:  # the driver's failure becomes the instance's fault
            LOG.exception("%s of %s failed", kind, inst.uuid)
            self.driver.destroy(inst.uuid, keep_disk=True)
            fault = f"{'Rebuild' if rebuild else 'Spawn'} failed on {self.host}: {exc}"
            if task is None:
                self.conductor.instance_update(
                    inst.uuid, self.host, {"vm_state": VmState.ERROR,
                                           "power_state": PowerState.SHUTDOWN, "fault": fault},
                    [None], generation=inst.generation)
            else:
                self.conductor.instance_spawn_failed(inst.uuid, self.host, task, fault)
            return False
        values: dict[str, Any] = {"vm_state": VmState.ACTIVE, "task_state": None,
                                  "power_state": PowerState.RUNNING}
        done = self.conductor.instance_update(
            inst.uuid, self.host, values, [task], now_fields=["launched_at"],
            generation=inst.generation, unless_quarantined=True)
        if done is None:
            # The instance moved on while it started (deleted, evacuated, host quarantined):
            # this copy may not run, whatever the database says about the instance now.
            self._discard(inst.uuid)
            return False
        LOG.info("instance %s is active on %s", inst.uuid, self.host)
        return True

    def _discard(self, instance_uuid: str) -> None:
        """Destroy a copy this agent started but may not keep; its disk stays unless the
        instance was deleted."""
        now = self.conductor.instance_get(instance_uuid)
        deleted = now is not None and now.deleted
        LOG.warning("destroying the copy of %s just started on %s: the database no longer "
                    "lets this host run it (%s)", instance_uuid, self.host,
                    "deleted" if deleted else f"host {now.host if now else '?'}")
        self.driver.destroy(instance_uuid, keep_disk=not deleted)

    def _destroy_stale(self, instance_uuid: str) -> None:
        """Destroy a local copy the database no longer places here. An instance the database
        has never heard of is left alone (deleted rows are kept, soft-deleted, so "unknown" is
        not "deleted": it may be a database restored from backup, or a misrouted answer)."""
        now = self.conductor.instance_get(instance_uuid)
        if now is None:
            LOG.warning("instance %s runs here but the database does not know it: leaving it "
                        "alone", instance_uuid)
            return
        if not now.deleted and now.host == self.host:
            return
        LOG.warning("destroying local copy of %s: %s", instance_uuid,
                    "deleted" if now.deleted else f"it now lives on {now.host}")
        self.driver.destroy(instance_uuid, keep_disk=not now.deleted)

    def update_resources(self) -> NodeRecord | None:
        if isinstance(self.driver, NodesReporter):
            self.driver.report_nodes()
            return None
        return self.conductor.compute_node_update(self.host, self.driver.inventory())

    def reconcile(self, *, at_start: bool = False) -> None:
        """Make this host run what the database places here, and nothing else (nothing at all
        while it is quarantined)."""
        if at_start and self.resume_on_start:
            self._resume_due = True
        host, placed = self.conductor.host_view(self.host)
        owned = {i.uuid: i for i in placed}
        was = self.quarantined
        self.quarantined = host.quarantined
        if host.quarantined:
            self._hold(host, owned)
            return
        if was:
            LOG.warning("%s is released from quarantine: resuming the instances placed here",
                        self.host)
        self._acked_seq = None
        for instance_uuid in set(self.driver.list_instances()) - owned.keys():
            with self._claim(instance_uuid) as mine:
                if mine:
                    self._destroy_stale(instance_uuid)
        resume, self._resume_due = self._resume_due, False
        for inst in owned.values():
            with self._claim(inst.uuid) as mine:
                if mine:
                    self._reconcile_one(inst, resume=resume)

    def _hold(self, host: HostRecord, owned: dict[str, InstanceRecord]) -> None:
        """Quarantined: stop every local instance (disks kept), record them as shut down, and
        tell the conductor once nothing runs."""
        if not self.driver.list_instances() and self._acked_seq == host.quarantine_seq:
            return  # already acknowledged, nothing came back since
        LOG.warning("%s is quarantined (%s): it runs nothing until released", self.host,
                    host.quarantine_reason or "a fence was decided")
        for instance_uuid in self.driver.list_instances():
            with self._claim(instance_uuid) as mine:
                if not mine:
                    continue  # an action in flight: its confirmation fails under quarantine
                inst = owned.get(instance_uuid)
                if inst is not None:
                    self._resume_due = True
                    LOG.warning("quarantine: stopping instance %s (it stays placed here)",
                                instance_uuid)
                    self.driver.destroy(instance_uuid, keep_disk=True)
                    continue
                gone = self.conductor.instance_get(instance_uuid)
                deleted = gone is not None and gone.deleted
                LOG.warning("quarantine: destroying local copy of %s (%s)", instance_uuid,
                            "deleted" if deleted else "not placed here")
                self.driver.destroy(instance_uuid, keep_disk=not deleted)
        for inst in owned.values():
            if inst.power_state == PowerState.RUNNING and inst.task_state is None:
                self.conductor.instance_update(inst.uuid, self.host,
                                               {"power_state": PowerState.SHUTDOWN}, [None],
                                               generation=inst.generation)
        if self.driver.list_instances():
            return  # something is still busy: acknowledged by a later pass
        if self.conductor.quarantine_ack(self.host, host.quarantine_seq):
            self._acked_seq = host.quarantine_seq
            LOG.warning("%s: quarantine %d acknowledged: nothing runs here", self.host,
                        host.quarantine_seq)

    def _reconcile_one(self, inst: InstanceRecord, *, resume: bool) -> None:
        if inst.task_state in (TaskState.SPAWNING, TaskState.REBUILD_SPAWNING):
            LOG.info("instance %s waits in %s on this host: spawning it", inst.uuid,
                     inst.task_state)
            self._start(inst, StartKind.REBUILD if inst.task_state == TaskState.REBUILD_SPAWNING
                        else StartKind.SPAWN)
            return
        if inst.vm_state != VmState.ACTIVE or inst.task_state is not None:
            return  # error, or being evacuated away from here: not ours to run
        power = self.driver.power_state(inst.uuid)
        if power == PowerState.RUNNING:
            if inst.power_state != PowerState.RUNNING:
                self.conductor.instance_update(inst.uuid, self.host,
                                               {"power_state": PowerState.RUNNING}, [None],
                                               generation=inst.generation)
            return
        if resume:
            LOG.info("resuming instance %s (active here, not running)", inst.uuid)
            self._start(inst, StartKind.RESUME)
            return
        fault = f"Instance is not running on {self.host} (its process ended)."
        LOG.error("instance %s: %s", inst.uuid, fault)
        self.conductor.instance_update(inst.uuid, self.host,
                                       {"vm_state": VmState.ERROR,
                                        "power_state": PowerState.SHUTDOWN, "fault": fault},
                                       [None], generation=inst.generation)
