"""HAProxy (Debian's haproxy) in a namespace of its own (``lb``): the cluster's one address.

Front ends on the load balancer's address (``.100``, what a VIP is on real controllers):

- ``8774`` the Vigil APIs, HTTP, round robin, ``option httpchk GET /healthz`` (200 only while
  the API's database answers), checked every second;
- ``3306`` Galera, TCP: one writer (``ctl1``), the others ``backup``, each checked by its
  clustercheck on 9200 (:mod:`tests.cluster.clustercheck`) every second;
  ``on-marked-down shutdown-sessions`` cuts the clients of a node that fails its check so they
  reconnect to the next; ``stick on dst`` keeps every connection on the node that took over
  (no fail-back when the old writer returns: two nodes taking writes at once is what
  certification conflicts come from; TripleO's setting);
- ``2379`` etcd's client API (HTTP), all three members active, ``GET /health`` checks (false on
  a member without a quorum), for clients that take one endpoint. ``stick on src``: each
  client stays on one member until that member fails its check. Vigil's etcd driver reads
  the member id in every reply and takes a change of it for a new store (every absent member
  unknown for service_down_time): balanced per request, its reads never became trustworthy;
- ``8404`` HAProxy's statistics page; the admin socket is ``<run dir>/lb/haproxy.sock``.

Checks: ``inter 1s fall 2 rise 2`` -- a server is out after 2 failed checks (about 2 s) and
back after 2 good ones.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.daemon import Daemon
from tests.cluster.net import Network

API_PORT = 8774
DB_PORT = 3306
ETCD_PORT = 2379
STATS_PORT = 8404
CHECK_PORT = 9200

CONFIG = """\
global
    maxconn 4000
    stats socket {dir}/haproxy.sock mode 600 level admin
    stats timeout 30s
    log stdout format raw local0 info

defaults
    log global
    option dontlognull
    timeout connect 2s
    timeout check 2s
    timeout client 90m
    timeout server 90m
    default-server inter 1s fall 2 rise 2

listen stats
    bind {addr}:{stats_port}
    mode http
    stats enable
    stats uri /
    stats refresh 2s

listen vigil-api
    bind {addr}:{api_port}
    mode http
    option httplog
    timeout client 60s
    timeout server 60s
    balance roundrobin
    option redispatch
    retries 2
    option httpchk GET /healthz
    http-check expect status 200
{api_servers}

listen galera
    bind {addr}:{db_port}
    mode tcp
    option tcplog
    option tcpka
    option httpchk
    http-check expect status 200
    stick-table type ip size 1k
    stick on dst
{db_servers}

listen etcd
    bind {addr}:{etcd_port}
    mode http
    no log
    timeout client 30s
    timeout server 30s
    balance roundrobin
    stick-table type ip size 1k
    stick on src
    option redispatch
    retries 2
    option httpchk GET /health
    http-check expect string \\"health\\":\\"true\\"
{etcd_servers}
"""


@dataclass
class ServerStat:
    proxy: str
    server: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, no check
    backup: bool
    current_sessions: int
    check_status: str


@dataclass
class HaProxy:
    host: str
    addr: str
    dir: Path
    daemon: Daemon

    @classmethod
    def create(cls, net: Network, controllers: list[str], host: str = "lb") -> HaProxy:
        d = net.run_dir / host
        d.mkdir(parents=True)
        addr = net.addr(host)

        def servers(port: int, extra: str = "", first_extra: str = "",
                    rest_extra: str = "") -> str:
            return "\n".join(
                f"    server {c} {net.addr(c)}:{port} check{extra}"
                + (first_extra if i == 0 else rest_extra)
                for i, c in enumerate(controllers))

        cfg = CONFIG.format(
            dir=d, addr=addr, api_port=API_PORT, db_port=DB_PORT, etcd_port=ETCD_PORT,
            stats_port=STATS_PORT,
            api_servers=servers(API_PORT),
            db_servers=servers(DB_PORT, f" port {CHECK_PORT} on-marked-down shutdown-sessions",
                               "", " backup"),
            etcd_servers=servers(ETCD_PORT))
        (d / "haproxy.cfg").write_text(cfg)
        daemon = Daemon("haproxy", net.ns(host),
                        ["/usr/sbin/haproxy", "-db", "-f", str(d / "haproxy.cfg")],
                        net.run_dir / "logs" / "haproxy.log")
        return cls(host=host, addr=addr, dir=d, daemon=daemon)

    def command(self, cmd: str, timeout: float = 3) -> str:
        """One command on the admin socket (``show stat``, ``show table galera``...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.dir / "haproxy.sock"))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[ServerStat]:
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return [ServerStat(proxy=r["pxname"], server=r["svname"], status=r["status"],
                           backup=r.get("bck") == "1", current_sessions=int(r["scur"] or 0),
                           check_status=r.get("check_status", ""))
                for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]

    def servers(self, proxy: str) -> dict[str, str]:
        """{server: status} of one proxy (``vigil-api``, ``galera``, ``etcd``)."""
        return {s.server: s.status for s in self.stats() if s.proxy == proxy}

    def up(self, proxy: str, servers: list[str]) -> bool:
        states = self.servers(proxy)
        return all(states.get(s) == "UP" for s in servers)

    @property
    def api_url(self) -> str:
        return f"http://{self.addr}:{API_PORT}"

    @property
    def etcd_endpoint(self) -> str:
        return f"http://{self.addr}:{ETCD_PORT}"
