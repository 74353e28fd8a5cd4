"""``vigil up``: every daemon in one process on the embedded defaults.

SQLite in ``state_path``, in-process messaging (``fake://``), a scheduler, and N simulated
compute hosts (fake virt driver) that report through the same conductor code path as real
ones. State survives a restart: the same host names revive the same rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import launch, rpc
from vigil.compute import agent, virt
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI
from vigil.compute.virt.driver import VirtDriver
from vigil.daemons import start_control_plane
from vigil.errors import ConfigError
from vigil.ha.fence.simulated import SimulatedPower
from vigil.scheduler.rpcapi import SchedulerAPI
from vigil.servicegroup.api import ServiceGroup

if TYPE_CHECKING:
    from vigil.api.server import ApiServer

LOG = logging.getLogger(__name__)


def compute_names(n: int) -> list[str]:
    return [f"compute-{i}" for i in range(1, n + 1)]


def start_api(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup,
              transport: messaging.Transport | None = None) -> ApiServer:
    """The REST API in a thread over the same engine and ServiceGroup (an in-process liveness
    backend is then shared). With token_file auth, makes sure an admin token exists in
    state_path and prints it, so the operator can use the API at once."""
    from vigil.api import auth
    from vigil.api.app import create_app
    from vigil.api.policy import Policy
    from vigil.api.server import ApiServer

    token = None
    if conf.api.auth_strategy == "token_file":
        token = auth.write_admin_token_file(conf.api.token_file)
    registry = launch.registry_over(conf, engine, group)
    app = create_app(registry, Policy(conf, conf.api.policy_file), auth.from_conf(conf),
                     feed_poll_interval=conf.api.feed_poll_interval)
    from vigil.console.daemon import consoles_from

    app.state.vigil_consoles = consoles_from(conf, engine)
    if transport is not None:  # server operations wake the scheduler and agents at once
        app.state.vigil_servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                                             computes=ComputeAgentAPI(transport))
    server = ApiServer(app, conf.api.listen, conf.api.port)
    server.start()
    print(f"Vigil API: {server.url}", flush=True)
    print(f"Dashboard: {server.url}/dashboard/", flush=True)
    if token is not None:
        print(f"Admin token (in {conf.api.token_file}): {token}", flush=True)
        print(f"Try: vigil service list --os-endpoint {server.url} --os-token {token}",
              flush=True)
    return server


def start_monitor(conf: cfg.ConfigOpts, engine: Engine,
                  group: ServiceGroup) -> tuple[threading.Event, threading.Thread]:
    """The HA monitor over the simulated hosts: they share this process, so nothing can be
    powered off; the ``simulated`` fence agent marks a host off instead (docs/ha.md). The db
    driver cannot prove death; the embedded demo allows acting on its (report-path gated)
    DOWN explicitly."""
    from vigil.ha.monitor import monitor_from, start_in_thread

    conf.set_override("fence_agent", "simulated", group="ha")
    conf.set_override("allow_unproven_death", True, group="ha")
    LOG.info("HA monitor: simulated fence agent, allow_unproven_death = true (embedded demo "
             "only; see docs/ha.md)")
    from vigil.ha.election import lease_session_limits

    # Its own engine with the monitor's session limits (no-ops on SQLite, the default; they
    # matter when vigil up is pointed at PostgreSQL or MariaDB).
    monitor_engine = launch.engine_from(conf, limits=lease_session_limits(conf.ha.lease_ttl))
    stop = threading.Event()
    return stop, start_in_thread(monitor_from(conf, monitor_engine, group), stop)


BAREMETAL_DEMO_TICK = 5.0

class SimulatedHosts:
    """``vigil up``'s compute hosts, which an operator can crash and revive to watch a failover.

    A host runs its agent only while it has no power mark (:class:`SimulatedPower`): ``vigil
    host crash`` makes it stop at once without leaving its group (its heartbeat goes stale, as
    after a kill -9) and lose its instances (the fake driver keeps them in memory); ``vigil
    host revive`` starts a fresh agent, which registers and reports again. The marks are files,
    so the CLI in another terminal reaches into this process.
    """

    def __init__(self, hosts: Sequence[str], make_agent: Callable[[str], agent.ComputeAgent],
                 power: SimulatedPower, interval: float = 0.2) -> None:
        self.hosts = list(hosts)
        self.agents: dict[str, agent.ComputeAgent | None] = dict.fromkeys(self.hosts)
        self._make_agent = make_agent
        self.power = power
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for host in self.hosts:
            if self.power.is_off(host):
                LOG.warning("%s is powered off (simulated): vigil host revive %s", host, host)
        self.poll()
        self._thread = threading.Thread(target=self._run, name="simulated-hosts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # the demo's power switch must not take vigil up down
                LOG.exception("simulated hosts: poll failed")

    def poll(self) -> None:
        """Crash the hosts that lost power, start the ones that have it back."""
        for host in self.hosts:
            running = self.agents[host]
            off = self.power.is_off(host)
            if off and running is not None:
                running.stop(leave=False)
                self.agents[host] = None
                LOG.warning("%s crashed (simulated): no more reports, its instances are gone",
                            host)
            elif not off and running is None:
                compute = self._make_agent(host)
                compute.start()
                self.agents[host] = compute
                LOG.info("%s is running (simulated)", host)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        for host, running in self.agents.items():
            if running is not None:
                running.stop()
                self.agents[host] = None


def register_baremetal_nodes(engine: Engine, count: int) -> int:
    """Nodes ``bm-1`` .. ``bm-<count>`` (8 CPUs, 32 GB, 500 GB), creating those missing, so
    a restarted ``vigil up`` finds the same nodes. Returns how many it created."""
    from vigil.baremetal.nodes import NodesAPI

    api = NodesAPI(engine)
    have = {v.node.name for v in api.list()}
    created = 0
    for i in range(1, count + 1):
        if f"bm-{i}" not in have:
            api.create(name=f"bm-{i}", cpus=8, memory_mb=32768, local_gb=500)
            created += 1
    return created


def baremetal_driver(conf: cfg.ConfigOpts, host: str,
                     transport: messaging.Transport) -> VirtDriver:
    """A simulated host's bare-metal driver, over the in-process transport every component
    of ``vigil up`` shares (a driver building its own fake:// transport would talk to no
    one)."""
    from vigil.baremetal.rpcapi import BaremetalConductorAPI
    from vigil.compute.virt.baremetal import BaremetalDriver

    return BaremetalDriver(host, BaremetalConductorAPI(transport, conf.rpc_response_timeout),
                           debounce=conf.baremetal.membership_debounce,
                           zone=conf.compute.availability_zone or conf.default_availability_zone)


def run_up(conf: cfg.ConfigOpts, *, computes: int, baremetal_nodes: int = 0) -> int:
    engine = launch.engine_from(conf, sync=True)
    transport = rpc.get_transport(conf)
    group = launch.group_from(conf, engine)
    if baremetal_nodes and conf.compute.update_resources_interval > BAREMETAL_DEMO_TICK:
        # The demo is about watching nodes move: a 60 s tick would hide it. Said, not silent.
        print(f"vigil up: bare-metal hosts tick every {BAREMETAL_DEMO_TICK:g} s "
              "([compute] update_resources_interval)", flush=True)
        conf.set_override("update_resources_interval", BAREMETAL_DEMO_TICK, group="compute")
    from vigil.console.daemon import start_serialproxy
    from vigil.metadata.daemon import ensure_secret, start_metadata

    ensure_secret(conf)  # before any host starts: the process driver signs with it
    with launch.stop_on_signals(conf) as stop:
        plane = start_control_plane(conf, engine, transport, group,
                                    rpc_timeout=conf.rpc_response_timeout)
        client = plane.client
        if baremetal_nodes:
            # The conductor's liveness must be this process's (an in-process backend).
            plane.conductor.baremetal.use_group(group)
            created = register_baremetal_nodes(engine, baremetal_nodes)
            print(f"vigil up: {baremetal_nodes} bare-metal nodes ({created} new) shared by "
                  f"{computes} baremetal hosts; watch them with: vigil ring show, "
                  "vigil node list", flush=True)
        # Simulated hosts: the fake virt driver, the process driver when [compute]
        # compute_driver says so, or with bare-metal nodes the baremetal driver.
        def make_agent(host: str) -> agent.ComputeAgent:
            # The process driver when configured (real processes that read their metadata
            # and have a console), else the fake one.
            simulated = "process" if conf.compute.compute_driver == "process" else "fake"
            driver = (baremetal_driver(conf, host, transport) if baremetal_nodes
                      else virt.load(conf, host, simulated))
            return agent.ComputeAgent(conf, host, transport, client, group, driver=driver)

        hosts = SimulatedHosts(compute_names(computes), make_agent,
                               SimulatedPower(conf.ha.simulated_power_dir))
        hosts.start()
        LOG.info("Vigil is up: %d compute hosts, database %s, driver %s. "
                 "In another terminal: vigil service list, vigil server create --flavor m1.tiny "
                 "--name vm1, vigil hypervisor list. To watch a failover: vigil host crash "
                 "HOST, vigil recovery list, vigil host revive HOST. Ctrl-C stops.",
                 computes, engine.url.render_as_string(), conf.servicegroup_driver)
        api = start_api(conf, engine, group, transport)
        try:
            meta, meta_svc = start_metadata(conf, engine, group, client)
            print(f"Metadata API: {meta.url}", flush=True)
        except ConfigError as exc:
            # The demo stays up without it (another vigil up may hold 8775), and says so.
            meta, meta_svc = None, None
            print(f"vigil up: no metadata API: {exc}", flush=True)
        try:
            proxy, proxy_svc = start_serialproxy(conf, engine, group, client)
            print(f"Serial console proxy: {proxy.url}", flush=True)
        except ConfigError as exc:
            proxy, proxy_svc = None, None
            print(f"vigil up: no serial console proxy: {exc}", flush=True)
        monitor_stop, monitor_thread = start_monitor(conf, engine, group)
        stop.wait()
        monitor_stop.set()
        monitor_thread.join(timeout=15)
        for svc, server in ((meta_svc, meta), (proxy_svc, proxy)):
            if svc is not None and server is not None:
                svc.stop()
                server.stop()
        api.stop()
        hosts.stop()
        plane.stop()
    group.driver.close()
    LOG.info("Vigil stopped")
    return 0
