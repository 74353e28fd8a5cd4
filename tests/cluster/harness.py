"""The three-controller cluster on one machine: what the tests and benchmarks drive.

    from tests.cluster import Cluster

    with Cluster.up() as c:                      # namespaces, Galera, RabbitMQ, etcd, HAProxy
        c.wait_healthy()
        c.db_url()                               # mysql+pymysql://vigil:vigil@<lb>:3306/vigil
        c.start_vigil()                          # api/conductor/scheduler/monitor + computes
        c.kill_controller("ctl1")                # kill -9 of everything on ctl1
        c.start_controller("ctl1")               # its servers again; they rejoin by themselves
        c.wait_rejoined("ctl1")                  # {"galera": s, "rabbit": s, ...}
        c.partition("ctl2"); c.heal("ctl2")
    # everything is gone: processes, namespaces, links, files

Hosts: ``ctl1``..``ctl3`` (198.18.x.1-3), computes ``cmp1``.. (.20, .21, ...), the load
balancer ``lb`` (.100), the test process on the bridge (.254). See the modules for each
server: :mod:`net`, :mod:`galera`, :mod:`rabbit`, :mod:`etcd`, :mod:`haproxy`.

Servers of a controller, by the names the helpers take: ``galera``, ``clustercheck``,
``rabbit``, ``etcd`` and, once started, ``api``, ``conductor``, ``scheduler``, ``monitor``.
A compute host runs ``compute``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pymysql

from tests.cluster import galera as galera_mod
from tests.cluster.daemon import Daemon, wait_until
from tests.cluster.etcd import Etcd
from tests.cluster.galera import Galera
from tests.cluster.haproxy import HaProxy
from tests.cluster.net import Network
from tests.cluster.rabbit import Rabbit

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PYTHON = sys.executable
VIGIL = str(Path(sys.executable).with_name("vigil"))
VIGIL_CONTROLLER_SERVICES = ("api", "conductor", "scheduler", "monitor")
DATABASE = "vigil"

# Vigil's timing in the cluster: short enough for tests, long enough for a loaded 2-core
# machine. service_down_time must cover 2.2 x report_interval + 3 x coalesce_interval +
# probe_interval (vigil.conf's start-up check), and also the time the report path itself takes
# to fail over when a controller dies: the clients of its RabbitMQ node reconnect and its
# quorum queues elect new leaders. State reports were seen failing for up to 8 s after a
# kill -9 of a controller, and for up to 14 s during a partition of one (the database's writer
# moving, the conductors taking reports again, new broker connections: docs/benchmarks.md); at
# service_down_time = 10 a live scheduler was shown down once in seven runs, and at 15 a live
# compute read unknown for a moment in some partition runs. 20 s covers the 14 s and one
# report interval, with room (docs/deployment.md says the same for real deployments).

# Seconds a RabbitMQ node may take to rejoin before wait_healthy restarts it (a healthy rejoin
# takes 3 to 5 s here; see Cluster.restart_stuck_rabbit).
RABBIT_STUCK_AFTER = 60.0

VIGIL_DEFAULTS: dict[str, dict[str, Any]] = {
    "DEFAULT": {"report_interval": 2, "service_down_time": 20, "rpc_response_timeout": 10},
    "conductor": {"coalesce_interval": 0.2, "probe_interval": 0.5},
    "oslo_messaging_rabbit": {
        "rabbit_quorum_queue": "true",
        # A broker that stops answering (partition) is given up after this many seconds
        # (oslo.messaging's default is 60).
        "heartbeat_timeout_threshold": 4,
    },
    "compute": {"compute_driver": "process", "instance_sync_interval": 2,
                "update_resources_interval": 2, "vcpus": 8, "memory_mb": 16384,
                "local_gb": 200},
    "scheduler": {"pending_poll_interval": 1},
    "ha": {"detection_grace": 2, "poll_interval": 0.5, "lease_ttl": 6,
           "fence_agent": "command", "fence_timeout": 20, "max_fences_per_minute": 10},
}


def _merge(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None
           ) -> dict[str, dict[str, Any]]:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in (extra or {}).items():
        out.setdefault(section, {}).update(values)
    return out


def write_ini(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _in_parallel(calls: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run each call in a daemon thread; return their results, or raise the first error.

    Daemon threads, not a ThreadPoolExecutor: on an interrupt (Ctrl-C, SIGTERM) the caller
    goes on to remove the cluster at once, and the interpreter does not wait at exit for a
    thread still polling a server that will never come up."""
    results: dict[str, T] = {}
    errors: list[BaseException] = []

    def run(name: str, call: Callable[[], T]) -> None:
        try:
            results[name] = call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item, daemon=True, name=f"start-{item[0]}")
               for item in calls.items()]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and not errors:
        time.sleep(0.1)
    if errors:
        raise errors[0]
    return results


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Host:
    """One namespace: a controller or a compute host, with its servers by name."""

    name: str
    addr: str
    servers: dict[str, Daemon] = field(default_factory=dict)
    config: Path | None = None


class Cluster:
    """Three controllers (Galera, RabbitMQ, etcd, clustercheck; Vigil once started), compute
    hosts and HAProxy, each in its network namespace. Build it with :meth:`up`."""

    def __init__(self, net: Network, controllers: list[str], computes: list[str]) -> None:
        self.net = net
        self.controllers = controllers
        self.computes = computes
        self.logs = net.run_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        name = f"vgc{net.run_id}"
        self.galera = Galera.create(net, controllers, name)
        self.rabbit = Rabbit.create(net, controllers, name)
        self.rabbit_restarts = 0  # nodes restarted by restart_stuck_rabbit
        self.rabbit_stuck_after = RABBIT_STUCK_AFTER
        self.etcd = Etcd.create(net, controllers, name)
        self.haproxy = HaProxy.create(net, controllers)
        self.hosts: dict[str, Host] = {h: Host(h, net.addr(h)) for h in controllers + computes}
        for c in controllers:
            node = self.galera.nodes[c]
            self.hosts[c].servers.update(
                galera=node.daemon, rabbit=self.rabbit.nodes[c].daemon,
                etcd=self.etcd.members[c].daemon,
                clustercheck=Daemon(
                    f"clustercheck-{c}", net.ns(c),
                    [PYTHON, "-m", "tests.cluster.clustercheck", "--socket", node.socket,
                     "--bind", net.addr(c), "--port", "9200"],
                    self.logs / f"{c}-clustercheck.log",
                    env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO))
        self.timings: dict[str, float] = {}
        self.token = ""
        self.vigil_options: dict[str, dict[str, Any]] = {}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def up(cls, computes: int = 3, *, start: bool = True, keep: bool = False,
           run_id: str | None = None) -> Iterator[Cluster]:
        """Build the cluster, start its servers (unless ``start=False``) and remove all of it
        at the end, whatever happens. ``keep=True`` leaves the run directory (logs, data) in
        place, renamed ``<run dir>.kept`` (for a post-mortem; not found by leftover cleanup)."""
        controllers = ["ctl1", "ctl2", "ctl3"]
        cmps = [f"cmp{i}" for i in range(1, computes + 1)]
        # A SIGTERM (a CI timeout, a kill) must still remove everything: Python's default
        # action ends the process without running ``finally``.
        previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            previous = signal.signal(signal.SIGTERM, _interrupt)
        net = Network.create(controllers + cmps + ["lb"], run_id=run_id)
        try:
            cluster = cls(net, controllers, cmps)
            if start:
                cluster.start()
            yield cluster
        finally:
            if keep:
                for d in net.run_dir.glob("ctl*/galera/mysqld.sock"):
                    d.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copytree(net.run_dir, str(net.run_dir) + ".kept", symlinks=True,
                                    ignore=shutil.ignore_patterns("*.sock", "data", "mnesia"))
            net.destroy()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def start(self, timeout: float = 240) -> dict[str, float]:
        """Start Galera, RabbitMQ and etcd (concurrently), the clustercheck services and
        HAProxy; wait until all is healthy. Returns (and keeps in ``timings``) the seconds."""
        t0 = time.monotonic()
        results = _in_parallel({"galera": lambda: self.galera.start_cluster(timeout=timeout),
                                "rabbit": lambda: self.rabbit.start_cluster(timeout=timeout),
                                "etcd": lambda: self.etcd.start_cluster(timeout=timeout)})
        for name, steps in results.items():
            for step, secs in steps.items():
                self.timings[f"{name}_{step}"] = secs
        for c in self.controllers:
            self.hosts[c].servers["clustercheck"].start()
        self.haproxy.daemon.start()
        self.wait_healthy(timeout)
        self.timings["healthy"] = time.monotonic() - t0
        self.create_database()
        return self.timings

    def create_database(self) -> None:
        with self.db() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")

    # -- addresses ----------------------------------------------------------------------------
    def addr(self, host: str) -> str:
        return self.net.addr(host)

    @property
    def lb(self) -> str:
        return self.haproxy.addr

    def db_url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL of the database through HAProxy (the writer)."""
        return (f"mysql+pymysql://{galera_mod.USER}:{galera_mod.PASSWORD}@{self.lb}:"
                f"{galera_mod.PORT}/{database}")

    def db(self, database: str | None = None, timeout: float = 5
           ) -> pymysql.connections.Connection[Any]:
        """A pymysql connection through HAProxy (autocommit)."""
        return pymysql.connect(host=self.lb, port=galera_mod.PORT, user=galera_mod.USER,
                               password=galera_mod.PASSWORD, database=database,
                               autocommit=True, connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout)

    def writer(self) -> str:
        """The Galera node HAProxy sends connections to now (asked through HAProxy)."""
        with self.db() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@wsrep_node_name")
            row = cur.fetchone()
        assert row is not None
        return str(row[0])

    def transport_url(self, vhost: str = "") -> str:
        return self.rabbit.transport_url(vhost)

    @property
    def api_url(self) -> str:
        return self.haproxy.api_url

    # -- health -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """A snapshot of every server's view (for messages and for people)."""
        out: dict[str, Any] = {"galera": self.galera.describe()}
        try:
            via = next(self.rabbit.nodes[c] for c in self.controllers
                       if self.rabbit.nodes[c].daemon.running() and c not in self.net.partitioned)
            out["rabbit_running"] = self.rabbit.running_nodes(via)
        except Exception as exc:  # none running, or the CLI failed
            out["rabbit_running"] = f"? {exc}"
        out["etcd_health"] = {c: m.health(timeout=1) for c, m in self.etcd.members.items()}
        try:
            out["haproxy"] = {p: self.haproxy.servers(p) for p in ("galera", "vigil-api", "etcd")}
        except OSError as exc:
            out["haproxy"] = f"? {exc}"
        return out

    def wait_healthy(self, timeout: float = 120, controllers: list[str] | None = None,
                     api: bool = False) -> dict[str, float]:
        """Wait until ``controllers`` (default: all) are in every cluster: Galera Synced in a
        primary component of that size, RabbitMQ running exactly them without partitions,
        etcd healthy on each, HAProxy's galera and etcd backends UP (and the API's when
        ``api``). Returns how long each took from the call."""
        want = controllers if controllers is not None else self.controllers
        t0 = time.monotonic()
        deadline = t0 + timeout
        times: dict[str, float] = {}

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        try:
            wait_until(lambda: all(self.galera.nodes[c].synced(len(want)) for c in want),
                       left(), f"Galera: {want} Synced, size {len(want)}", interval=0.2)
            times["galera"] = time.monotonic() - t0
            rabbit_names = [self.rabbit.nodes[c].nodename for c in want]
            try:
                wait_until(lambda: self.rabbit.healthy(rabbit_names,
                                                       via=self.rabbit.nodes[want[0]]),
                           min(left(), self.rabbit_stuck_after),
                           f"RabbitMQ: {rabbit_names} running", interval=1)
            except AssertionError:
                if not self.restart_stuck_rabbit(want):
                    raise
                wait_until(lambda: self.rabbit.healthy(rabbit_names,
                                                       via=self.rabbit.nodes[want[0]]),
                           left(), f"RabbitMQ: {rabbit_names} running", interval=1)
            times["rabbit"] = time.monotonic() - t0
            wait_until(lambda: all(self.etcd.members[c].health() for c in want),
                       left(), f"etcd: {want} healthy", interval=0.2)
            times["etcd"] = time.monotonic() - t0
            proxies = ["galera", "etcd"] + (["vigil-api"] if api else [])
            wait_until(lambda: all(self.haproxy.up(p, want) for p in proxies), left(),
                       f"HAProxy: {want} UP in {proxies}", interval=0.2)
            times["haproxy"] = time.monotonic() - t0
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nhealth: {json.dumps(self.health(), indent=1)}"
                                 ) from None
        return times

    def restart_stuck_rabbit(self, want: list[str]) -> list[str]:
        """Restart the RabbitMQ nodes of ``want`` whose broker is not running (``rabbitmq-
        diagnostics check_running`` fails: its Erlang node is up, the broker has not booted),
        as the reference design's resource manager does when a node's monitor fails
        (Pacemaker's rabbitmq agent); returns them. Needed for RabbitMQ 3.10.8 on Erlang 25.2
        (Debian 12): a node that paused in a minority sometimes hangs for good on its way back,
        in ``global:sync`` ("Global hang workaround ... Faking nodedown/nodeup" in its log,
        rabbitmq-server#6034, fixed in later RabbitMQ). Counted in :attr:`rabbit_restarts`."""
        views: list[dict[str, Any]] = []
        for c in want:
            with contextlib.suppress(Exception):  # a stuck or cut-off node may not answer
                views.append(self.rabbit.nodes[c].cluster_status())
        # The majority's view: the answer that lists the most running nodes.
        view = max(views, key=lambda v: len(v.get("running_nodes", [])), default={})
        running = set(view.get("running_nodes", []))
        parts = view.get("partitions") or {}
        split = {str(n) for nodes in (parts.values() if isinstance(parts, dict) else parts)
                 for n in (nodes if isinstance(nodes, list) else [nodes])}
        stuck = []
        for c in want:
            node = self.rabbit.nodes[c]
            if c in self.net.partitioned:
                continue
            try:
                booted = node.ctl("check_running", timeout=20, check=False,
                                  tool="rabbitmq-diagnostics").returncode == 0
            except subprocess.TimeoutExpired:
                booted = False
            if not booted or node.nodename not in running or node.nodename in split:
                stuck.append(c)
        if len(stuck) == len(want):
            return []  # no majority to rejoin: not this node's hang
        print(f"[cluster] RabbitMQ view before restarting: {json.dumps(view)}", flush=True)
        for c in stuck:
            print(f"[cluster] RabbitMQ on {c} has not booted again in "
                  f"{self.rabbit_stuck_after:g} s: "
                  f"restarting it (as a resource manager would)", flush=True)
            self.stop_server(c, "rabbit", timeout=10)
            self.start_server(c, "rabbit")
            self.rabbit_restarts += 1
        return stuck

    # -- servers ------------------------------------------------------------------------------
    def server(self, host: str, name: str) -> Daemon:
        return self.hosts[host].servers[name]

    def start_server(self, host: str, name: str) -> None:
        if name == "galera":
            self.galera.nodes[host].start()
        else:
            self.server(host, name).start()

    def stop_server(self, host: str, name: str, timeout: float = 60) -> None:
        self.server(host, name).stop(timeout)

    def kill_server(self, host: str, name: str) -> None:
        """``kill -9`` of one server (its process group)."""
        self.server(host, name).kill()

    def kill_controller(self, host: str) -> float:
        """``kill -9`` of every process in the host's namespace (its servers, epmd, Vigil
        daemons: the machine's software crashes at once). Returns the monotonic time of the
        kill."""
        at = time.monotonic()
        self.net.kill_all(host)
        for d in self.hosts[host].servers.values():
            d.reap()
        return at

    kill_host = kill_controller  # a compute host dies the same way (what a fence does too)

    def start_controller(self, host: str, vigil: bool = True) -> None:
        """Start the host's servers again (Galera after recovering its position; Vigil's
        daemons too if they had been started and ``vigil``). Returns at once: see
        :meth:`wait_rejoined`."""
        servers = self.hosts[host].servers
        for name in ("galera", "clustercheck", "rabbit", "etcd"):
            if name in servers and not servers[name].running():
                self.start_server(host, name)
        if vigil:
            for name in (*VIGIL_CONTROLLER_SERVICES, "compute"):
                if name in servers and not servers[name].running():
                    servers[name].start()

    def restore(self) -> None:
        """Undo what a failed test may have left: heal every partition and start every
        controller's and compute host's servers that are not running (the next test then waits
        for health instead of timing out on a node that nothing will start)."""
        for host in list(self.net.partitioned):
            self.heal(host)
        for host in list(self.net.blocked):
            self.net.unblock(host)
        for host in self.controllers + self.computes:
            self.start_controller(host)

    def wait_rejoined(self, host: str, timeout: float = 180) -> dict[str, float]:
        """Wait until every controller (``host`` included) is back in every cluster; returns
        the seconds from the call until each part was (galera, rabbit, etcd, haproxy)."""
        return self.wait_healthy(timeout)

    def partition(self, host: str, how: str = "drop", only_from: list[str] | None = None
                  ) -> None:
        """Cut ``host`` off (see :meth:`Network.partition`)."""
        self.net.partition(host, how=how, only_from=only_from or [])

    def heal(self, host: str) -> None:
        self.net.heal(host)

    def cut_database(self, host: str) -> None:
        """``host`` loses the database (its packets to HAProxy's Galera port are dropped,
        silently) while it still reaches RabbitMQ, etcd and its peers: its conductor can take
        reports off the queue but cannot write them (issue 14's wedged conductor)."""
        self.net.block(host, self.lb, galera_mod.PORT)

    def restore_database(self, host: str) -> None:
        self.net.unblock(host)

    # -- Vigil --------------------------------------------------------------------------------
    def vigil_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SRC)
        return env

    def vigil_sections(self, host: str, extra: dict[str, dict[str, Any]] | None = None
                       ) -> dict[str, dict[str, Any]]:
        """The configuration of ``host`` (a controller or a compute host): every broker in
        transport_url, quorum queues, the database and etcd through HAProxy."""
        fence = f"{PYTHON} {Path(__file__).with_name('fence_netns.py')}"
        sections = _merge(VIGIL_DEFAULTS, {
            "DEFAULT": {"host": host, "transport_url": self.transport_url(),
                        "control_exchange": "vigil", "servicegroup_driver": "etcd",
                        "state_path": str(self.net.run_dir / host / "vigil")},
            "database": {"connection": self.db_url()},
            # One endpoint: the etcd driver takes one URL; HAProxy spreads over the members
            # that have a quorum.
            "etcd": {"endpoint": self.haproxy.etcd_endpoint},
            "api": {"listen": self.addr(host), "port": 8774, "auth_strategy": "token_file",
                    "token_file": str(self.net.run_dir / "api-tokens.json")},
            "compute": {"instances_path": str(self.net.run_dir / "instances")},
            "ha": {"fence_command": f"{fence} {{action}} {self.net.tag}-{{host}}",
                   "fence_status_command": f"{fence} status {self.net.tag}-{{host}}"},
        })
        return _merge(_merge(sections, self.vigil_options), extra)

    def write_vigil_config(self, host: str, extra: dict[str, dict[str, Any]] | None = None
                           ) -> Path:
        d = self.net.run_dir / host / "vigil"
        d.mkdir(parents=True, exist_ok=True)
        path = write_ini(d / "vigil.conf", self.vigil_sections(host, extra))
        self.hosts[host].config = path
        return path

    def vigil(self, host: str, *args: str, timeout: float = 60, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        """Run a one-shot ``vigil`` command in ``host``'s namespace with its configuration."""
        config = self.hosts[host].config or self.write_vigil_config(host)
        proc = subprocess.run(self.net.exec_argv(host, [VIGIL, "--config-file", str(config),
                                                        *args]),
                              env=self.vigil_env(), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args)} on {host} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-3000:]}")
        return proc

    def vigil_daemon(self, host: str, service: str) -> Daemon:
        """The ``vigil <service>`` daemon of ``host`` (made on first use, not started)."""
        servers = self.hosts[host].servers
        if service not in servers:
            config = self.hosts[host].config or self.write_vigil_config(host)
            args = [VIGIL, "--config-file", str(config), service]
            if service == "compute":
                args += ["--host", host]
            servers[service] = Daemon(f"{service}-{host}", self.net.ns(host), args,
                                      self.logs / f"{host}-{service}.log",
                                      env=self.vigil_env())
        return servers[service]

    def start_vigil(self, services: tuple[str, ...] = VIGIL_CONTROLLER_SERVICES,
                    computes: bool = True, timeout: float = 120) -> dict[str, float]:
        """Migrate the schema once (``vigil db sync`` on the first controller), write the
        admin token, start ``services`` on every controller and ``vigil compute`` on every
        compute host; wait until HAProxy has every API UP and ``vigil service list`` through
        it shows every service up. Returns the seconds each step took."""
        from vigil.api import auth

        t0 = time.monotonic()
        times: dict[str, float] = {}
        for h in self.controllers + (self.computes if computes else []):
            self.write_vigil_config(h)
        self.token = auth.write_admin_token_file(self.net.run_dir / "api-tokens.json")
        self.vigil(self.controllers[0], "db", "sync", timeout=timeout)
        times["db_sync"] = time.monotonic() - t0
        for c in self.controllers:
            for s in services:
                if s != "monitor":
                    self.vigil_daemon(c, s).start()
        if "monitor" in services:
            # The first controller's monitor first, so that it leads: the lease holder and the
            # Galera writer are then on one controller (the hardest controller to lose).
            self.vigil_daemon(self.controllers[0], "monitor").start()
            wait_until(self.monitor_leader, timeout, "the first monitor to take the lease",
                       interval=0.5)
            for c in self.controllers[1:]:
                self.vigil_daemon(c, "monitor").start()
        if computes:
            for h in self.computes:
                self.vigil_daemon(h, "compute").start()
        # (the monitors register no service: they show in the lease they hold)
        expect = {(s, c) for c in self.controllers for s in services
                  if s not in ("api", "monitor")}
        if computes:
            expect |= {("compute", h) for h in self.computes}
        if "api" in services:
            wait_until(lambda: self.haproxy.up("vigil-api", self.controllers), timeout,
                       "every API UP in HAProxy", interval=0.3)
            times["api_up"] = time.monotonic() - t0
            wait_until(lambda: self._all_up(expect), timeout, f"services up: {sorted(expect)}",
                       interval=0.5)
            times["services_up"] = time.monotonic() - t0
        if "monitor" in services:
            wait_until(self.monitor_leader, timeout, "a monitor to hold the lease")
            times["monitor_leader"] = time.monotonic() - t0
        return times

    def monitor_leader(self) -> str | None:
        """The host whose ``vigil monitor`` holds the HA lease now (database clock), if any."""
        with self.db(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("SELECT holder FROM ha_leases WHERE name = 'ha-monitor' "
                        "AND holder IS NOT NULL AND expires_at > UTC_TIMESTAMP(6)")
            row = cur.fetchone()
        return str(row[0]).split(":")[0] if row else None

    def _all_up(self, expect: set[tuple[str, str]]) -> bool:
        states = {(s["binary"].removeprefix("vigil-"), s["host"]): s["state"]
                  for s in self.service_list()}
        return all(states.get(k) == "up" for k in expect)

    def service_list(self, timeout: float = 30) -> list[dict[str, Any]]:
        """``vigil service list --format json`` through HAProxy (the API), from the test
        process's namespace."""
        config = self.hosts[self.controllers[0]].config or self.write_vigil_config(
            self.controllers[0])
        proc = subprocess.run(
            [VIGIL, "--config-file", str(config), "service", "list", "--format", "json",
             "--os-endpoint", self.api_url, "--os-token", self.token],
            env=self.vigil_env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"vigil service list: {proc.stderr.strip()[-2000:]}")
        data: list[dict[str, Any]] = json.loads(proc.stdout)
        return data

    def api_get(self, path: str, timeout: float = 5) -> tuple[int, Any]:
        """GET through HAProxy with the admin token: (status, JSON body or text)."""
        req = urllib.request.Request(self.api_url + path,
                                     headers={"X-Auth-Token": self.token})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    # -- diagnostics --------------------------------------------------------------------------
    def dump(self, tail: int = 3000) -> str:
        """The end of every log (servers' and Galera's error logs), for a failed test."""
        parts = []
        for p in sorted(self.logs.glob("*.log")):
            parts.append(f"==== {p.name}\n{p.read_text(errors='replace')[-tail:]}")
        for c in self.controllers:
            parts.append(f"==== {c} mysqld.err\n{self.galera.nodes[c].error_log()[-tail:]}")
        return "\n".join(parts)
