"""MariaDB with Galera (Debian's ``galera-4``): one node per controller.

Each node has its own data directory (made by ``mariadb-install-db``), its own option file
(read with ``--defaults-file``, so the machine's /etc/mysql is never used), listens on
``<controller address>:3306`` inside the controller's namespace, and talks Galera on 4567
(group communication), 4568 (IST) and 4444 (SST). The first node bootstraps the cluster
(``--wsrep-new-cluster``); the others join it and receive a full copy (SST, ``mariabackup``).
A node that crashed and returns asks for the writes it missed only (IST, from the donors'
gcache) when they are still there.

Its unix socket is a path, not a network address, so the test process (root namespace) reads a
node's own state (``wsrep_*``) through it, whatever the network does; everything a client does
goes through TCP.

Users: ``root`` over the socket (unix_socket authentication, we are root); ``vigil`` /
``vigil`` from anywhere with every privilege (what Vigil and the tests use, through HAProxy).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from tests.cluster.daemon import Daemon, wait_until
from tests.cluster.net import Network, sh

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
USER, PASSWORD = "vigil", "vigil"
PORT = 3306

# Galera's failure detection. Defaults: a silent peer is suspected after 5 s
# (evs.suspect_timeout) and dropped after 15 s (evs.inactive_timeout). The harness keeps the
# suspect time (what decides how long a partition stalls writes) and shortens the rest so a
# test does not wait for nothing. gcache.size: the writes kept for IST (a returning node that
# missed more than this gets a full SST).
PROVIDER_OPTIONS = ("gcache.size=64M; evs.suspect_timeout=PT5S; evs.inactive_timeout=PT10S; "
                    "evs.inactive_check_period=PT0.5S; evs.keepalive_period=PT1S; "
                    "pc.recovery=true")

MY_CNF = """\
[mysqld]
user = root
datadir = {dir}/data
socket = {dir}/mysqld.sock
pid-file = {dir}/mysqld.pid
log-error = {dir}/mysqld.err
tmpdir = {dir}/tmp
port = {port}
bind-address = 0.0.0.0
skip-name-resolve
max_connections = 500
# As small as InnoDB lets it be: three nodes share a test machine.
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
# Galera's requirements.
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = {provider}
wsrep_cluster_name = {cluster}
wsrep_cluster_address = gcomm://{peers}
wsrep_node_address = {addr}
wsrep_node_name = {name}
wsrep_provider_options = "{options}"
wsrep_sst_method = mariabackup
wsrep_sst_auth = root:
wsrep_slave_threads = 2

[mariabackup]
user = root
socket = {dir}/mysqld.sock
"""


def status(conn: Any, like: str = "wsrep_%") -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL STATUS LIKE '{like}'")
        return {k: v for k, v in cur.fetchall()}


@dataclass
class GaleraNode:
    name: str
    host: str  # the controller (namespace) it runs on
    addr: str
    dir: Path
    daemon: Daemon
    bootstrapped: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> str:
        return str(self.dir / "mysqld.sock")

    def local(self, timeout: float = 3) -> pymysql.connections.Connection[Any]:
        """A connection over the unix socket as root (this node alone, network or not)."""
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True,
                               connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout)

    def tcp(self, timeout: float = 3, database: str | None = None
            ) -> pymysql.connections.Connection[Any]:
        """A connection over TCP to this node's address (as a client elsewhere would)."""
        return pymysql.connect(host=self.addr, port=PORT, user=USER, password=PASSWORD,
                               database=database, autocommit=True, connect_timeout=timeout,
                               read_timeout=timeout, write_timeout=timeout)

    def wsrep(self) -> dict[str, str]:
        """This node's ``wsrep_%`` status; {} if it does not answer."""
        try:
            conn = self.local()
        except pymysql.MySQLError:
            return {}
        try:
            return status(conn)
        except pymysql.MySQLError:
            return {}
        finally:
            conn.close()

    def synced(self, size: int | None = None) -> bool:
        """Synced, in the primary component, ready (and of ``size`` nodes if given)."""
        st = self.wsrep()
        ok = (st.get("wsrep_local_state_comment") == "Synced"
              and st.get("wsrep_cluster_status") == "Primary"
              and st.get("wsrep_ready") == "ON")
        return ok and (size is None or st.get("wsrep_cluster_size") == str(size))

    def start(self, bootstrap: bool = False) -> None:
        """Start the node: bootstrap a new cluster, or join the others. After a crash, first
        recover its position from InnoDB (what Debian's ``galera_recovery`` does before the
        systemd unit starts the server), so that it asks for IST, not a full SST."""
        args = ["--wsrep-new-cluster"] if bootstrap else []
        if (pos := self.recover_position()) is not None:
            args.append(f"--wsrep-start-position={pos}")
        self.daemon.start(*args)
        if bootstrap:
            self.bootstrapped = True

    def recover_position(self) -> str | None:
        """``uuid:seqno`` of the last transaction committed here if the node crashed (its
        grastate.dat says ``seqno: -1``), from ``mariadbd --wsrep-recover``; None after a clean
        stop (grastate.dat has it) or before any start."""
        state = self.dir / "data" / "grastate.dat"
        try:
            text = state.read_text()
        except OSError:
            return None
        if not re.search(r"^seqno:\s*-1\s*$", text, re.M):
            return None
        t0 = time.monotonic()
        log = self.dir / "wsrep-recover.log"
        log.unlink(missing_ok=True)
        # In the node's namespace: it opens its port before it exits.
        proc = sh(["ip", "netns", "exec", self.daemon.ns, "/usr/sbin/mariadbd",
                   f"--defaults-file={self.dir / 'my.cnf'}", "--wsrep-recover",
                   f"--log-error={log}"], check=False, timeout=120)
        text = log.read_text(errors="replace") if log.exists() else proc.stderr
        m = re.search(r"WSREP: Recovered position: (\S+:-?\d+)", text)
        self.timings["recover_position"] = time.monotonic() - t0
        if m is None or m.group(1).endswith(":-1"):
            return None  # nothing to recover: a full SST it is
        return m.group(1)

    def how_joined(self) -> str:
        """How the node's last start got its state, from its error log: "SST" (a full copy),
        "IST" (the missed writes only), "none" (it was up to date) or "" (not joined yet)."""
        text = self.error_log()
        tail = text[text.rfind("WSREP: Loading provider"):]  # the last start
        # mariabackup's script says which it does ("Proceeding with SST" / "Running IST");
        # Galera logs "SST received" and "Receiving IST" in both cases.
        if "Proceeding with SST" in tail:
            return "SST"
        if re.search(r"Running IST|IST received|Receiving IST", tail):
            return "IST"
        if "Installed new state from SST" in tail:
            return "SST"
        if "Synchronized with group" in tail:
            return "none"
        return ""

    def error_log(self) -> str:
        try:
            return (self.dir / "mysqld.err").read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Galera:
    nodes: dict[str, GaleraNode]

    @classmethod
    def create(cls, net: Network, controllers: list[str], cluster_name: str) -> Galera:
        """Write each node's option file; the first node's data directory (not started)."""
        peers = ",".join(net.addr(c) for c in controllers)
        nodes = {}
        for c in controllers:
            d = net.run_dir / c / "galera"
            (d / "tmp").mkdir(parents=True)
            cnf = d / "my.cnf"
            cnf.write_text(MY_CNF.format(dir=d, port=PORT, provider=PROVIDER,
                                         cluster=cluster_name, peers=peers, addr=net.addr(c),
                                         name=c, options=PROVIDER_OPTIONS))
            daemon = Daemon(f"galera-{c}", net.ns(c),
                            ["/usr/sbin/mariadbd", f"--defaults-file={cnf}"],
                            net.run_dir / "logs" / f"{c}-galera.log")
            nodes[c] = GaleraNode(name=c, host=c, addr=net.addr(c), dir=d, daemon=daemon)
        first = nodes[controllers[0]]
        sh(["mariadb-install-db", "--no-defaults", f"--datadir={first.dir}/data", "--user=root",
            "--skip-test-db", "--auth-root-authentication-method=socket"], timeout=120)
        return cls(nodes)

    @property
    def first(self) -> GaleraNode:
        return next(iter(self.nodes.values()))

    def start_cluster(self, initial: str = "clone", timeout: float = 120) -> dict[str, float]:
        """Bootstrap the first node, create the users, and join the others. Returns the
        seconds each step took.

        ``initial="clone"``: the first node is stopped cleanly once the users exist, its data
        directory copied to the others, and it bootstraps again; the others join at the same
        position, so nothing is transferred (seconds, not the ~11 s per joiner of an SST, 10 of
        which are a fixed ``sleep 10`` in Debian's wsrep_sst_mariabackup donor script).
        ``initial="sst"``: the others start empty and get a full SST each (mariabackup), as a
        new node of a real cluster does.
        """
        times: dict[str, float] = {}
        t0 = time.monotonic()
        first = self.first
        first.start(bootstrap=True)
        wait_until(lambda: first.synced(1), timeout, f"{first.name} to bootstrap Galera",
                   interval=0.1)
        self.create_users(first)
        times["bootstrap"] = time.monotonic() - t0
        others = [n for n in self.nodes.values() if n is not first]
        if initial == "clone":
            first.daemon.stop()
            for n in others:
                shutil.copytree(first.dir / "data", n.dir / "data", symlinks=True)
                state = n.dir / "data" / "grastate.dat"
                state.write_text(state.read_text().replace("safe_to_bootstrap: 1",
                                                           "safe_to_bootstrap: 0"))
            first.start(bootstrap=True)
            wait_until(lambda: first.synced(1), timeout, f"{first.name} to bootstrap again",
                       interval=0.1)
        elif initial == "sst":
            for n in others:
                (n.dir / "data").mkdir()
        else:
            raise ValueError(f"initial={initial!r}: 'clone' or 'sst'")
        # One at a time: two nodes joining a fresh cluster at once can make one of them fail
        # its IST ("IST didn't contain all write sets, expected last: 6 last received: 5")
        # and hang there, out of the cluster.
        for i, n in enumerate(others, start=2):
            n.start()
            wait_until(lambda n=n, i=i: n.synced(i), timeout,
                       f"{n.name} to join Galera (size {i})", interval=0.2)
        size = len(self.nodes)
        wait_until(lambda: all(n.synced(size) for n in self.nodes.values()), timeout,
                   f"Galera to have {size} Synced nodes", interval=0.2)
        times["joined"] = time.monotonic() - t0
        return times

    def create_users(self, node: GaleraNode) -> None:
        """The ``vigil`` user (replicated to every node: Galera replicates DDL)."""
        conn = node.local()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION")
        finally:
            conn.close()

    def healthy(self, size: int | None = None) -> bool:
        size = size if size is not None else len(self.nodes)
        return all(n.synced(size) for n in self.nodes.values())

    def describe(self) -> dict[str, dict[str, str]]:
        keys = ("wsrep_cluster_size", "wsrep_cluster_status", "wsrep_local_state_comment",
                "wsrep_ready", "wsrep_last_committed")
        return {n: {k.removeprefix("wsrep_"): st.get(k, "-") for k in keys}
                for n, st in ((n, node.wsrep()) for n, node in self.nodes.items())}
