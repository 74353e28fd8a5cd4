"""``vigil up``: every daemon in one process on the embedded defaults.

SQLite in ``state_path``, in-process messaging (``fake://``), a scheduler, and N simulated
compute hosts (fake virt driver) that report through the same conductor code path as real
ones. State survives a restart: the same host names revive the same rows.

Each simulated host runs under a supervisor of its own (:mod:`vigil.supervisor`, in this
process): a member of the ``host`` group, it restarts the host's agent when ``vigil host
kill-agent HOST`` kills it (the instances live on: they are the hypervisor's, which the agent
merely manages), and dies with its host on ``vigil host crash HOST``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import oslo_messaging as messaging
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import launch, rpc, upstate
from vigil.compute import agent
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.compute.servers import ServersAPI
from vigil.compute.virt.driver import VirtDriver
from vigil.daemons.control import start_control_plane
from vigil.errors import ConfigError
from vigil.ha.fence.simulated import AgentKills, SimulatedPower
from vigil.launch.settings import compute_settings, virt_driver
from vigil.launch.supervisor import supervisor_timing
from vigil.scheduler.rpcapi import SchedulerAPI
from vigil.service import ConductorClient, GroupMembership, Service
from vigil.servicegroup.api import ServiceGroup
from vigil.supervisor import daemon as supervisor_daemon
from vigil.supervisor.core import Supervisor, Timing
from vigil.supervisor.rpcapi import SupervisorEndpoint, supervisor_target

if TYPE_CHECKING:
    from vigil.api.server import ApiServer

LOG = logging.getLogger(__name__)


def compute_names(n: int) -> list[str]:
    return [f"compute-{i}" for i in range(1, n + 1)]


def start_api(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup,
              transport: messaging.Transport | None = None) -> tuple[ApiServer, str | None]:
    """The REST API in a thread over the same engine and ServiceGroup (an in-process liveness
    backend is then shared), and the admin token the CLI may use on it. With token_file auth,
    makes sure an admin token exists in state_path and prints it, so the operator can use the
    API at once; with noauth, the token is ``admin:admin`` (noauth's admin)."""
    from vigil.api import auth
    from vigil.api.app import create_app
    from vigil.api.policy import Policy
    from vigil.api.server import ApiServer

    token = None
    if conf.api.auth_strategy == "token_file":
        token = auth.write_admin_token_file(conf.api.token_file)
    elif conf.api.auth_strategy == "noauth":
        token = "admin:admin"
    registry = launch.registry_over(conf, engine, group)
    app = create_app(registry, Policy(conf, conf.api.policy_file), auth.from_conf(conf),
                     feed_poll_interval=conf.api.feed_poll_interval)
    from vigil.console.daemon import consoles_from

    app.state.vigil_consoles = consoles_from(conf, engine)
    # The simulated hosts' power marks: `vigil host crash|revive|kill-agent` through this API.
    app.state.vigil_simulated_power_dir = conf.ha.simulated_power_dir
    if transport is not None:  # server operations wake the scheduler and agents at once
        app.state.vigil_servers = ServersAPI(engine, group, scheduler=SchedulerAPI(transport),
                                             computes=ComputeAgentAPI(transport))
    server = ApiServer(app, conf.api.listen, conf.api.port)
    server.start()
    print(f"Vigil API: {server.url}", flush=True)
    print(f"Dashboard: {server.url}/dashboard/", flush=True)
    if token is not None and conf.api.auth_strategy == "token_file":
        print(f"Admin token (in {conf.api.token_file}): {token}", flush=True)
    return server, token


def start_monitor(conf: cfg.ConfigOpts, engine: Engine, group: ServiceGroup,
                  transport: messaging.Transport | None = None,
                  ) -> tuple[threading.Event, threading.Thread]:
    """The HA monitor over the simulated hosts: they share this process, so nothing can be
    powered off; the ``simulated`` fence agent marks a host off instead (docs/ha.md). The db
    driver cannot prove death; the embedded demo allows acting on its (report-path gated)
    DOWN explicitly."""
    from vigil.daemons.monitor import start_in_thread
    from vigil.launch.monitor import monitor_from, supervisor_client

    conf.set_override("fence_agent", "simulated", group="ha")
    conf.set_override("allow_unproven_death", True, group="ha")
    LOG.info("HA monitor: simulated fence agent, allow_unproven_death = true (embedded demo "
             "only; see docs/ha.md)")
    from vigil.ha.election import lease_session_limits

    # Its own engine with the monitor's session limits (no-ops on SQLite, the default; they
    # matter when vigil up is pointed at PostgreSQL or MariaDB).
    monitor_engine = launch.engine_from(conf, limits=lease_session_limits(conf.ha.lease_ttl))
    stop = threading.Event()
    restart = supervisor_client(conf, transport) if transport is not None else None
    return stop, start_in_thread(monitor_from(conf, monitor_engine, group,
                                              restart_agent=restart), stop)


BAREMETAL_DEMO_TICK = 5.0

class InProcessAgent:
    """A simulated host's compute agent as its supervisor sees it (a supervisor unit).

    The virt driver outlives the agent: it is the host's hypervisor, so the instances survive a
    killed agent and the next agent finds them (as the process driver adopts its processes).
    Its reports are the mark of health, as a real agent's report file is.
    """

    name = "compute"

    def __init__(self, make: Callable[[], agent.ComputeAgent]) -> None:
        self._make = make
        self.agent: agent.ComputeAgent | None = None

    def start(self) -> None:
        compute = self._make()
        compute.start()
        self.agent = compute

    def adopt(self) -> bool:
        return False

    def alive(self) -> bool:
        return self.agent is not None

    def terminate(self) -> None:
        if self.agent is not None:
            self.agent.stop()  # a graceful stop: it leaves its group
            self.agent = None

    def report_mark(self) -> int | None:
        if self.agent is None or not self.agent.service.reports_ok:
            return None
        return self.agent.service.reports_ok

    def pid(self) -> int | None:
        return os.getpid() if self.agent is not None else None

    def crash(self) -> None:
        """Die like a kill -9: no leave, no goodbye."""
        if self.agent is not None:
            self.agent.stop(leave=False)
            self.agent = None


class SimulatedHost:
    """One simulated machine: its supervisor (state machine, ``host`` membership, RPC
    endpoint) and, under it, its agent over the machine's driver."""

    def __init__(self, host: str, make_agent: Callable[[str, VirtDriver], agent.ComputeAgent],
                 driver: VirtDriver, conductor: ConductorClient, group: GroupMembership,
                 transport: messaging.Transport, timing: Timing,
                 report_interval: float) -> None:
        self.host = host
        self.unit = InProcessAgent(lambda: make_agent(host, driver))
        self.service = Service(host=host, binary=supervisor_daemon.BINARY,
                               topic=supervisor_daemon.TOPIC, conductor=conductor, group=group,
                               report_interval=report_interval)
        service = self.service
        self.supervisor = Supervisor([self.unit], {}, timing=timing,
                                     reporting=lambda: service.reporting)
        self._server = messaging.get_rpc_server(transport, supervisor_target(host),
                                                [SupervisorEndpoint(self.supervisor)],
                                                executor="threading")

    def start(self) -> None:
        self.service.start()
        self._server.start()
        self.supervisor.tick()

    def _stop_server(self) -> None:
        with contextlib.suppress(Exception):  # shutting down: never block on the transport
            self._server.stop()
            self._server.wait()

    def crash(self) -> None:
        """Power lost: the supervisor and the agent die at once, nobody leaves."""
        self._stop_server()
        self.service.stop(leave=False)
        self.unit.crash()

    def stop(self) -> None:
        self.supervisor.stop_all()
        self._stop_server()
        self.service.stop()


class SimulatedHosts:
    """``vigil up``'s compute hosts, which an operator can crash and revive to watch a failover,
    or whose agent alone he can kill to watch its supervisor bring it back.

    A host runs only while it has no power mark (:class:`SimulatedPower`): ``vigil host
    crash`` makes its supervisor and agent stop at once without leaving their groups (their
    heartbeats go stale, as after a kill -9) and lose the instances (the fake driver keeps them
    in memory); ``vigil host revive`` starts a fresh host. ``vigil host kill-agent`` kills the
    agent alone (:class:`AgentKills`). The marks are files, so the CLI in another terminal
    reaches into this process.
    """

    def __init__(self, hosts: Sequence[str],
                 make_host: Callable[[str], SimulatedHost],
                 power: SimulatedPower, kills: AgentKills | None = None,
                 interval: float = 0.2) -> None:
        self.hosts = list(hosts)
        self.running: dict[str, SimulatedHost | None] = dict.fromkeys(self.hosts)
        self._make_host = make_host
        self.power = power
        self.kills = kills or AgentKills(power.power_dir)
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def agents(self) -> dict[str, agent.ComputeAgent | None]:
        return {h: (r.unit.agent if r is not None else None) for h, r in self.running.items()}

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
        """Crash the hosts that lost power, start the ones that have it back, kill the agents
        asked to die, and give every supervisor its pass."""
        for host in self.hosts:
            running = self.running[host]
            off = self.power.is_off(host)
            if off and running is not None:
                running.crash()
                self.running[host] = None
                LOG.warning("%s crashed (simulated): no more reports, its instances are gone",
                            host)
            elif not off and running is None:
                running = self._make_host(host)
                running.start()
                self.running[host] = running
                LOG.info("%s is running (simulated) under its supervisor", host)
            if running is not None and not off:
                if self.kills.take(host) and running.unit.alive():
                    running.unit.crash()
                    LOG.warning("%s: its compute agent was killed (simulated); its supervisor "
                                "restarts it, its instances keep running", host)
                running.supervisor.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        for host, running in self.running.items():
            if running is not None:
                running.stop()
                self.running[host] = None


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


def mode_of(conf: cfg.ConfigOpts, baremetal_nodes: int) -> str:
    """The kind of simulated hosts (:func:`vigil.upstate.check_mode`): ``baremetal``, or the
    virt driver the virtual hosts run (``process`` or ``fake``)."""
    if baremetal_nodes:
        return "baremetal"
    return "process" if conf.compute.compute_driver == "process" else "fake"


def mode_found(conf: cfg.ConfigOpts) -> str | None:
    """What a state made before ``vigil-up.mode`` holds: the hypervisor type of its simulated
    hosts' compute nodes (``fake``, ``process`` or ``baremetal``, the mode's own names) when
    they agree; None for a fresh database, or one with no simulated hosts."""
    from vigil.db.compute import nodes as nodes_db
    from vigil.errors import VigilError

    engine = launch.engine_from(conf)
    try:
        types = {n.hypervisor_type for n in nodes_db.compute_nodes(engine)
                 if n.host.startswith("compute-")}
    except VigilError:  # no schema yet: nothing was ever run on it
        return None
    finally:
        engine.dispose()
    return types.pop() if len(types) == 1 else None


def run_up(conf: cfg.ConfigOpts, *, computes: int, baremetal_nodes: int = 0) -> int:
    """Lock the state directory, then run everything until a signal. The lock comes first: a
    second ``vigil up`` on the same state stops here, before it opens the database."""
    held = upstate.lock(conf.state_path)
    try:
        mode = mode_of(conf, baremetal_nodes)
        upstate.check_mode(conf.state_path, mode, lambda: mode_found(conf))
        return _run_up(conf, computes=computes, baremetal_nodes=baremetal_nodes, mode=mode)
    finally:
        upstate.forget(conf.state_path)
        held.release()


def _run_up(conf: cfg.ConfigOpts, *, computes: int, baremetal_nodes: int, mode: str) -> int:
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
        # compute_driver says so (real processes that read their metadata and have a console),
        # or with bare-metal nodes the baremetal driver.
        simulated = "process" if conf.compute.compute_driver == "process" else "fake"

        settings = compute_settings(conf)

        def make_agent(host: str, driver: VirtDriver) -> agent.ComputeAgent:
            if baremetal_nodes:  # its nodes are in the database: a new driver per agent
                driver = baremetal_driver(conf, host, transport)
            return agent.ComputeAgent(settings, host, transport, client, group, driver=driver)

        timing = supervisor_timing(conf)

        def make_host(host: str) -> SimulatedHost:
            # A fresh machine: a new driver (a crashed one lost its instances).
            driver = (baremetal_driver(conf, host, transport) if baremetal_nodes
                      else virt_driver(conf, host, simulated))
            return SimulatedHost(host, make_agent, driver, client, group, transport, timing,
                                 conf.report_interval)

        hosts = SimulatedHosts(compute_names(computes), make_host,
                               SimulatedPower(conf.ha.simulated_power_dir))
        hosts.start()
        LOG.info("Vigil is up: %d compute hosts, database %s, driver %s. "
                 "In another terminal: vigil service list, vigil server create --flavor m1.tiny "
                 "--name vm1, vigil hypervisor list. To watch a failover: vigil host crash "
                 "HOST, vigil recovery list, vigil host revive HOST; to watch an agent restarted "
                 "in place: vigil host kill-agent HOST. Ctrl-C stops.",
                 computes, engine.url.render_as_string(), conf.servicegroup_driver)
        api, token = start_api(conf, engine, group, transport)
        run = upstate.UpRun(pid=os.getpid(), endpoint=api.url, token=token,
                            database=engine.url.render_as_string(hide_password=True),
                            state_path=conf.state_path, mode=mode)
        print(f"Recorded for the CLI: {upstate.record(run)}", flush=True)
        print("Try: vigil status, vigil service list (in another terminal they use this API)",
              flush=True)
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
        monitor_stop, monitor_thread = start_monitor(conf, engine, group, transport)
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
