"""The scheduler's decisions and the daemon around them.

Work arrives through the database: an instance waiting in task_state ``scheduling`` (a boot) or
``rebuilding`` (an evacuation). A cast on the scheduler's topic wakes the worker at once; a scan
every ``pending_poll_interval`` catches requests whose cast was lost. Any number of schedulers
may run: each decision ends in an atomic claim (:func:`vigil.db.compute.claims.claim`) that takes
the instance and the host's resources together or not at all, so two schedulers never place one
instance twice and two boots never oversubscribe a host.

A pass reads the hosts once (O(1) queries) and schedules up to ``batch_size`` instances against
that picture, accounting each successful claim in memory; a claim the database refuses (another
scheduler got there first) re-reads that one node and tries again.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import oslo_messaging as messaging
from sqlalchemy.engine import Engine

from vigil.compute import evacuation
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.db.compute import claims as claims_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.errors import Unavailable
from vigil.objects.compute import PENDING_TASKS, InstanceRecord, TaskState
from vigil.scheduler import filters as flt
from vigil.scheduler import rpcapi
from vigil.scheduler.host_state import HostSnapshot, HostState, read_hosts
from vigil.scheduler.weights import RAMWeigher, weigh
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerSettings:
    """What the scheduler needs of the configuration, read once by the composition root
    (:func:`vigil.launch.settings.scheduler_settings`): the scheduler never reads ``conf``."""

    host: str
    """This scheduler's name: its RPC server on the scheduler topic."""
    default_availability_zone: str
    """The zone of a host that names none; a request for a zone matches against it."""
    enabled_filters: tuple[str, ...]
    """The filters every candidate host must pass, in order (names of
    :data:`vigil.scheduler.filters.ALL`; an unknown one is refused when the manager is built)."""
    ram_weight_multiplier: float
    """Weight of free RAM: positive spreads instances over hosts, negative stacks them."""
    host_subset_size: int
    """How many of the best-weighed hosts a placement picks from at random: above 1, concurrent
    schedulers collide less on one host's claim."""
    max_claim_attempts: int
    """How many refused claims (the host filled under concurrent requests) before the instance
    fails with "No valid host"."""
    workers: int
    """Threads that claim one batch against the shared host picture."""
    batch_size: int
    """Instances scheduled against one read of the hosts (one pass may run several batches)."""
    pending_poll_interval: float
    """The scan that catches requests whose wake-up cast was lost: at most this late."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one instance: ``host`` set on success, ``fault`` on failure; both None
    when the instance was no longer waiting (deleted, taken by another scheduler)."""

    instance_uuid: str
    host: str | None = None
    fault: str | None = None


def spec_of(inst: InstanceRecord) -> flt.RequestSpec:
    ignore = (inst.host,) if inst.task_state == TaskState.REBUILDING and inst.host else ()
    return flt.RequestSpec(
        instance_uuid=inst.uuid, flavor_name=inst.flavor_name, vcpus=inst.vcpus,
        memory_mb=inst.memory_mb, root_gb=inst.root_gb,
        availability_zone=inst.availability_zone, requested_host=inst.requested_host,
        ignore_hosts=ignore)


class SchedulerManager:
    """Filter, weigh, claim. Thread-safe: concurrent calls only race in the database, where
    the claims decide."""

    def __init__(
        self,
        settings: SchedulerSettings,
        engine: Engine,
        group: ServiceGroup,
        computes: ComputeAgentAPI | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.group = group
        self.computes = computes
        self.filters = flt.load(settings.enabled_filters)
        self.weighers = [RAMWeigher(settings.ram_weight_multiplier)]
        self.subset = settings.host_subset_size
        self.max_attempts = settings.max_claim_attempts
        self.workers = settings.workers
        # Guards the shared host picture when several workers schedule one batch.
        self._picture = threading.Lock()
        self.default_zone = settings.default_availability_zone
        self._rng = rng or random.Random()
        self.decisions = 0

    def read_hosts(self) -> HostSnapshot:
        return read_hosts(self.engine, self.group, self.default_zone)

    # -- one pass -----------------------------------------------------------------------------
    def schedule_pending(self) -> list[Outcome]:
        """Schedule everything waiting, in batches against one host picture each."""
        outcomes: list[Outcome] = []
        while True:
            pending = instances_db.instances(self.engine, task_states=PENDING_TASKS,
                                             limit=self.settings.batch_size)
            if not pending:
                return outcomes
            snap = self.read_hosts()
            if self.workers > 1 and len(pending) > 1:
                # Claims overlap their commits (PostgreSQL/MariaDB flush each one); they stay
                # correct because the database decides each claim, not this picture.
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    batch = list(pool.map(self.schedule, pending, [snap] * len(pending)))
            else:
                batch = [self.schedule(inst, snap) for inst in pending]
            outcomes += batch
            if all(o.host is None and o.fault is None for o in batch):
                return outcomes  # nothing moved (all taken by others): do not spin

    def schedule_instance(self, instance_uuid: str) -> Outcome:
        """Schedule one instance against a fresh host picture (tests, benchmarks)."""
        inst = instances_db.instance_get(self.engine, instance_uuid)
        return self.schedule(inst, self.read_hosts())

    def schedule(self, inst: InstanceRecord, snap: HostSnapshot) -> Outcome:
        if inst.task_state == TaskState.SCHEDULING:
            return self._place(inst, snap, rebuild=False)
        if inst.task_state == TaskState.REBUILDING:
            return self._evacuate(inst, snap)
        return Outcome(inst.uuid)

    def _evacuate(self, inst: InstanceRecord, snap: HostSnapshot) -> Outcome:
        # Re-checked here, not only when the request was accepted: a source host that came
        # back meanwhile without being quarantined (or whose state is unknown) keeps its
        # instance (vigil.compute.evacuation).
        host = inst.host or ""
        source = snap.services.get(host)
        why = evacuation.scheduler_refusal(
            host, evacuation.reporting_of(snap.reporting, host),
            left=source is not None and source[0].left_at is not None, facts=snap.ha.get(host))
        if why is not None:
            return self._fail(inst, f"Evacuation of {inst.uuid} cancelled: {why}",
                              release=False)
        return self._place(inst, snap, rebuild=True)

    def select(self, hosts: list[HostState], spec: flt.RequestSpec) -> flt.FilterResult:
        return flt.run_filters(self.filters, hosts, spec)

    def _pick(self, candidates: list[HostState]) -> HostState:
        ranked = weigh(self.weighers, candidates)
        top = ranked[: self.subset]
        return top[self._rng.randrange(len(top))][1] if len(top) > 1 else top[0][1]

    def _place(self, inst: InstanceRecord, snap: HostSnapshot, *, rebuild: bool) -> Outcome:
        spec = spec_of(inst)
        expected = TaskState.REBUILDING if rebuild else TaskState.SCHEDULING
        new_task = TaskState.REBUILD_SPAWNING if rebuild else TaskState.SPAWNING
        for _ in range(self.max_attempts):
            with self._picture:
                result = self.select(list(snap.hosts), spec)
            self.decisions += 1
            if not result.hosts:
                return self._fail(inst, result.explain(spec), release=False)
            chosen = self._pick(result.hosts)
            claim = claims_db.claim(self.engine, inst, chosen.node, expected_task_state=expected,
                                    new_task_state=new_task,
                                    source_host=inst.host if rebuild else None)
            if claim.instance is not None:
                with self._picture:
                    chosen.consume(inst)
                LOG.info("%s instance %s on %s", "evacuating" if rebuild else "placed",
                         inst.uuid, chosen.host)
                if self.computes is not None:
                    if rebuild:
                        self.computes.rebuild_instance(chosen.host, inst.uuid)
                    else:
                        self.computes.build_and_run_instance(chosen.host, inst.uuid)
                return Outcome(inst.uuid, host=chosen.host)
            if claim.reason == "instance":
                return Outcome(inst.uuid)  # deleted or taken meanwhile: nothing to do
            # Another scheduler filled the node first: look at it again and decide again.
            fresh = nodes_db.compute_nodes(self.engine, ids=[chosen.node.id])
            with self._picture:
                if fresh:
                    chosen.node = fresh[0]
                elif chosen in snap.hosts:
                    snap.hosts.remove(chosen)
        return self._fail(inst, f"No valid host was found: hosts kept filling up under "
                                f"concurrent requests ({self.max_attempts} claims refused).",
                          release=False)

    def _fail(self, inst: InstanceRecord, fault: str, *, release: bool) -> Outcome:
        LOG.warning("instance %s: %s", inst.uuid, fault)
        assert inst.task_state is not None
        instances_db.instance_fail(self.engine, inst.uuid, fault,
                                   expected_task_state=inst.task_state, release=release)
        return Outcome(inst.uuid, fault=fault)


class SchedulerEndpoint:
    """The scheduler's RPC methods."""

    target = messaging.Target(version="1.0")

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def schedule_pending(self, ctxt: dict[str, Any]) -> None:
        self._wake.set()


@dataclasses.dataclass
class SchedulerStats:
    passes: int = 0
    failures: int = 0
    placed: int = 0
    faults: int = 0


class Scheduler:
    """The daemon: an RPC server that wakes one worker thread, which runs passes."""

    def __init__(self, settings: SchedulerSettings, engine: Engine, group: ServiceGroup,
                 transport: messaging.Transport, *, computes: ComputeAgentAPI) -> None:
        """``settings`` are its options, read by the composition root; ``transport`` is what
        it listens on; ``computes`` how it tells the chosen agent to spawn (the composition
        root builds it: vigil.daemons.control.start_scheduler)."""
        self.settings = settings
        self.host = settings.host
        self.manager = SchedulerManager(settings, engine, group, computes)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._server = messaging.get_rpc_server(
            transport, rpcapi.scheduler_target(server=self.host),
            [SchedulerEndpoint(self._wake)], executor="threading")
        self._thread: threading.Thread | None = None
        self._failing = False
        self.stats = SchedulerStats()

    def start(self) -> None:
        self._server.start()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        LOG.info("scheduler %s listening on topic %s", self.host, rpcapi.SCHEDULER_TOPIC)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        interval = self.settings.pending_poll_interval
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_pass()

    def run_pass(self) -> None:
        try:
            outcomes = self.manager.schedule_pending()
        except Unavailable as exc:
            self.stats.failures += 1
            if not self._failing:
                LOG.error("scheduling pass failed (will keep trying): %s", exc)
                self._failing = True
            return
        except Exception:  # the worker must outlive any bug in one pass
            self.stats.failures += 1
            LOG.exception("unexpected error in a scheduling pass")
            return
        if self._failing:
            LOG.warning("scheduling passes work again")
            self._failing = False
        self.stats.passes += 1
        self.stats.placed += sum(1 for o in outcomes if o.host is not None)
        self.stats.faults += sum(1 for o in outcomes if o.fault is not None)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        try:
            self._server.stop()
            self._server.wait()
        except Exception:  # shutting down; a broken transport must not block the exit
            LOG.exception("error stopping the scheduler RPC server")
        if self._thread is not None:
            self._thread.join(timeout=10)


def wait_idle(engine: Engine, timeout: float) -> bool:
    """Until no instance waits for a scheduler (tests and benchmarks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not instances_db.instances(engine, task_states=PENDING_TASKS, limit=1):
            return True
        time.sleep(0.01)
    return False
