"""``vigil compute``: a host's agent. Joins the ``compute`` group and reports its state, reports
its inventory, and runs the instances the scheduler places on it through its virt driver."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import oslo_messaging as messaging

from vigil import names
from vigil.compute.manager import ComputeConductor, ComputeManager
from vigil.compute.rpcapi import ComputeConductorAPI, compute_target
from vigil.compute.virt.driver import VirtDriver
from vigil.errors import Unavailable
from vigil.service import ConductorClient, GroupMembership, Service

LOG = logging.getLogger(__name__)

BINARY = names.COMPUTE_BINARY
TOPIC = names.COMPUTE_TOPIC


@dataclass(frozen=True)
class ComputeSettings:
    """What a compute agent needs of the configuration, read once by the composition root
    (:func:`vigil.launch.settings.compute_settings`): the agent never reads ``conf``. The same
    for every agent of a process (``vigil up`` runs many); the host is the agent's own."""

    report_interval: float
    """How often the agent reports (heartbeat and state): with ``service_down_time``, what
    its liveness is judged by."""
    rpc_response_timeout: float
    """How long a call to the conductor (instance updates, inventory) waits for its answer."""
    resume_guests_state_on_host_boot: bool
    """At start, restart the instances the database places on this host as active that do not
    run here (Nova's option); off, such an instance is reported as died (ERROR)."""
    update_resources_interval: float
    """How often the host's inventory is reported (what the scheduler places against)."""
    instance_sync_interval: float
    """How often what runs here is reconciled with the database (stale copies destroyed, lost
    spawns redone); also the cap of the first reconciliation's retry backoff."""


def make_service(
    settings: ComputeSettings, host: str, conductor: ConductorClient, group: GroupMembership
) -> Service:
    return Service(
        host=host,
        binary=BINARY,
        topic=TOPIC,
        conductor=conductor,
        group=group,
        report_interval=settings.report_interval,
    )


class ComputeAgent:
    """A host's agent: the service runner (liveness), the virt driver, the RPC server of topic
    ``compute`` for this host, and the periodic inventory report and reconciliation.

    Start order matters: the driver finds what already runs here first; then the RPC server
    starts (every request is re-checked against the database, so one queued while the agent was
    down is harmless); then the service registers; the first reconciliation (stale copies
    destroyed, lost spawns redone, active instances resumed) runs as soon as the conductor
    answers, and is retried until it does.

    ``settings`` are its options and ``driver`` its virt driver, both built by the composition
    root (:mod:`vigil.launch.settings`, :func:`vigil.compute.virt.load`).
    """

    def __init__(
        self,
        settings: ComputeSettings,
        host: str,
        transport: messaging.Transport,
        conductor: ConductorClient,
        group: GroupMembership,
        *,
        driver: VirtDriver,
        compute_conductor: ComputeConductor | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.driver = driver
        self.service = make_service(settings, host, conductor, group)
        self.manager = ComputeManager(
            host, self.driver,
            compute_conductor or ComputeConductorAPI(transport, settings.rpc_response_timeout),
            resume_on_start=settings.resume_guests_state_on_host_boot)
        self._server = messaging.get_rpc_server(transport, compute_target(host),
                                                [self.manager], executor="threading")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.initialized = threading.Event()

    def start(self) -> None:
        self.driver.init_host()
        self._server.start()
        self.service.start()
        self._thread = threading.Thread(target=self._run, name=f"compute-{self.host}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c = self.settings
        backoff = 0.1
        while not self._stop.is_set():  # first reconciliation, retried until it succeeds
            try:
                self.manager.update_resources()
                self.manager.reconcile(at_start=True)
                self.initialized.set()
                LOG.info("compute %s initialised (%d local instances)", self.host,
                         len(self.driver.list_instances()))
                break
            except Unavailable as exc:
                LOG.warning("compute %s: cannot initialise yet (will retry): %s", self.host, exc)
            except Exception:  # keep trying: the agent must outlive a bug in one attempt
                LOG.exception("compute %s: initialisation failed (will retry)", self.host)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, c.instance_sync_interval)
        last_resources = last_sync = time.monotonic()
        while not self._stop.wait(min(c.update_resources_interval, c.instance_sync_interval)):
            now = time.monotonic()
            try:
                if now - last_resources >= c.update_resources_interval * 0.99:
                    last_resources = now
                    self.manager.update_resources()
                if now - last_sync >= c.instance_sync_interval * 0.99:
                    last_sync = now
                    self.manager.reconcile()
            except Unavailable as exc:
                LOG.warning("compute %s: periodic task failed: %s", self.host, exc)
            except Exception:  # the periodic loop must outlive any bug in one run
                LOG.exception("compute %s: periodic task failed", self.host)

    def stop(self, *, leave: bool = True) -> None:
        """Stop the agent; its instances keep running (they are found again on restart)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self._server.stop()
            self._server.wait()
        except Exception:  # shutting down; a broken transport must not block the exit
            LOG.exception("error stopping the compute RPC server of %s", self.host)
        self.service.stop(leave=leave)
        self.driver.cleanup()
