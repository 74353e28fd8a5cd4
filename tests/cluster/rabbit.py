"""RabbitMQ (Debian's rabbitmq-server), clustered: one node per controller.

Erlang distribution needs three things per node, and each node here has its own:

- a node name whose host part resolves to the node: long names with the address itself
  (``RABBITMQ_USE_LONGNAME=true``, ``rabbit@198.18.x.1``), so nothing depends on the
  namespace's hostname (``ip netns exec`` keeps the machine's) or on DNS;
- an epmd: the first ``erl`` of a namespace starts one on 4369 in that namespace, and the
  node's distribution port (25672) is only there too;
- the cluster's shared secret: the same ``.erlang.cookie`` in each node's own ``$HOME``.

The machine's /etc/rabbitmq/rabbitmq-env.conf (which may pin epmd and distribution to
127.0.0.1 for the system broker) is never read: ``RABBITMQ_CONF_ENV_FILE`` points at the
node's own. ``guest`` may log in from anywhere (``loopback_users = none``): clients are in
other namespaces. ``cluster_partition_handling = pause_minority``: a node cut off from the
majority stops serving (the reference design's setting). ``net_ticktime`` is lowered from 60 s
so a silent partition is noticed in seconds (see :data:`NET_TICKTIME`). Quorum queues elect a
new leader once Ra's failure detector (aten) gives the old one up: its poll interval is
lowered from RabbitMQ's 5 s to 1 s (:data:`ADVANCED_CONFIG`), because while a queue has no
leader nothing can be published to it, the conductors' queue included.

The server is ``/usr/lib/rabbitmq/bin/rabbitmq-server`` run as root in the foreground (the
/usr/sbin wrappers switch to the ``rabbitmq`` user and its home, and with it its cookie).
The nodes start alone (together) and the second and third join the first, one after the
other, with ``rabbitmqctl stop_app; join_cluster; start_app``. A node restarted after a
crash rejoins by itself (it remembers its cluster in its mnesia directory).
"""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.daemon import Daemon, wait_until
from tests.cluster.net import Network

BIN = Path("/usr/lib/rabbitmq/bin")
PORT = 5672
DIST_PORT = 25672
# Seconds: a peer that sends nothing for 4 ticks of NET_TICKTIME/4 is down (partition
# detection between 0.75 and 1.25 x). RabbitMQ's default is 60.
NET_TICKTIME = 10

# Ra's failure detector: poll every second (RabbitMQ's default since 3.8.9 is 5 s). With the
# default, the conductors' queue took 9 s to elect a leader after its node was cut off, and no
# state report could be published meanwhile (issue 14's partition scenario). An Erlang term
# file, because rabbitmq.conf knows the key (raft.adaptive_failure_detector.poll_interval)
# only from 3.11 on.
ATEN_POLL_INTERVAL_MS = 1000
ADVANCED_CONFIG = "[{{aten, [{{poll_interval, {ms}}}]}}].\n"

RABBITMQ_CONF = """\
listeners.tcp.default = {port}
loopback_users = none
cluster_name = {cluster}
cluster_partition_handling = pause_minority
net_ticktime = {ticktime}
disk_free_limit.absolute = 50MB
log.console = true
log.console.level = info
log.file = false
"""


@dataclass
class RabbitNode:
    host: str
    addr: str
    dir: Path
    ns: str
    daemon: Daemon
    env: dict[str, str]

    @property
    def nodename(self) -> str:
        return f"rabbit@{self.addr}"

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@{self.addr}:{PORT}//"

    def ctl(self, *args: str, timeout: float = 60, check: bool = True,
            tool: str = "rabbitmqctl") -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <this node> ARGS`` from this node's namespace and environment."""
        proc = subprocess.run(["ip", "netns", "exec", self.ns, str(BIN / tool), "-n",
                               self.nodename, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} on {self.nodename} exited "
                               f"{proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def cluster_status(self) -> dict[str, Any]:
        """``rabbitmqctl cluster_status`` as JSON (running_nodes, disk_nodes, partitions...)."""
        out = self.ctl("cluster_status", "--formatter", "json", timeout=30).stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def log_size(self) -> int:
        try:
            return self.daemon.log_path.stat().st_size
        except OSError:
            return 0

    def saw_down(self, other: RabbitNode, since: int = 0) -> bool:
        """Whether this node logged ``other`` down (``node '...' down``) after byte ``since``
        of its log: what the node itself decided, without a CLI call."""
        with open(self.daemon.log_path, "rb") as f:
            f.seek(since)
            return f"node '{other.nodename}' down".encode() in f.read()

    def ping(self) -> bool:
        return self.ctl("ping", timeout=30, check=False, tool="rabbitmq-diagnostics"
                        ).returncode == 0


@dataclass
class Rabbit:
    nodes: dict[str, RabbitNode]

    @classmethod
    def create(cls, net: Network, controllers: list[str], cluster_name: str) -> Rabbit:
        cookie = "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))
        nodes = {}
        for c in controllers:
            d = net.run_dir / c / "rabbit"
            (d / "mnesia").mkdir(parents=True)
            (d / "log").mkdir()
            (d / "rabbitmq.conf").write_text(RABBITMQ_CONF.format(
                port=PORT, cluster=cluster_name, ticktime=NET_TICKTIME))
            (d / "advanced.config").write_text(ADVANCED_CONFIG.format(ms=ATEN_POLL_INTERVAL_MS))
            (d / "rabbitmq-env.conf").write_text("# this node's environment is in its process\n")
            (d / "enabled_plugins").write_text("[].\n")
            cookie_file = d / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)
            addr = net.addr(c)
            env = {
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(d),  # the cookie
                "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "RABBITMQ_NODENAME": f"rabbit@{addr}",
                "RABBITMQ_USE_LONGNAME": "true",
                "RABBITMQ_NODE_PORT": str(PORT),
                "RABBITMQ_DIST_PORT": str(DIST_PORT),
                "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_LOGS": "-",
                "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
                # Do not spin idle schedulers: three brokers share two cores with the rest.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
            }
            daemon = Daemon(f"rabbit-{c}", net.ns(c), [str(BIN / "rabbitmq-server")],
                            net.run_dir / "logs" / f"{c}-rabbit.log", env=env, cwd=d)
            nodes[c] = RabbitNode(host=c, addr=addr, dir=d, ns=net.ns(c), daemon=daemon,
                                  env=env)
        return cls(nodes)

    @property
    def first(self) -> RabbitNode:
        return next(iter(self.nodes.values()))

    def start_cluster(self, timeout: float = 180) -> dict[str, float]:
        """Start every node (alone), then join the others to the first. Returns timings."""
        t0 = time.monotonic()
        for n in self.nodes.values():
            n.daemon.start()
        for n in self.nodes.values():
            wait_until(lambda n=n: n.ctl("await_startup", timeout=timeout, check=False,
                                         tool="rabbitmqctl").returncode == 0,
                       timeout, f"RabbitMQ {n.nodename} to start", interval=1)
        times = {"started": time.monotonic() - t0}
        first = self.first
        # One at a time: two nodes joining at once can fail to start mnesia
        # ({badmatch, {error, {normal, {mnesia_app, start...}}}}); a failed join is tried again.
        for n in self.nodes.values():
            if n is first:
                continue
            for attempt in range(3):
                try:
                    n.ctl("stop_app", timeout=timeout)
                    n.ctl("join_cluster", first.nodename, timeout=timeout)
                    n.ctl("start_app", timeout=timeout)
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    time.sleep(2)
        self.wait_clustered(timeout)
        times["clustered"] = time.monotonic() - t0
        return times

    def running_nodes(self, via: RabbitNode | None = None) -> list[str]:
        node = via or self.first
        return sorted(node.cluster_status().get("running_nodes", []))

    def healthy(self, expect: list[str] | None = None, via: RabbitNode | None = None) -> bool:
        """Every expected node (default: all) runs in one cluster without partitions."""
        node = via or next(n for n in self.nodes.values() if n.daemon.running())
        status = node.cluster_status()
        want = sorted(expect if expect is not None else
                      [n.nodename for n in self.nodes.values()])
        return (sorted(status.get("running_nodes", [])) == want
                and not status.get("partitions"))

    def wait_clustered(self, timeout: float = 120, expect: list[str] | None = None) -> None:
        wait_until(lambda: self.healthy(expect), timeout, "the RabbitMQ cluster", interval=1)

    def transport_url(self, vhost: str = "", user: str = "guest",
                      password: str = "guest") -> str:
        """oslo.messaging's URL with every broker: it connects to one, fails over to the next."""
        hosts = ",".join(f"{user}:{password}@{n.addr}:{PORT}" for n in self.nodes.values())
        return f"rabbit://{hosts}/{vhost}"
