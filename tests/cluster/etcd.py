"""etcd (Debian's etcd-server, 3.4): a three-member cluster, one member per controller.

Clients on ``<address>:2379`` (and the namespace's 127.0.0.1), peers on ``<address>:2380``.
The members are created together (``--initial-cluster-state new`` with all three); a member
restarted with its data directory rejoins by itself (the flags about the initial cluster are
then ignored). Heartbeat 100 ms and election timeout 1000 ms are etcd's defaults: the minimum
lease TTL is then 2 s (``ceil(1.5 x election timeout)``), below any ``service_down_time`` used
here. ``--pre-vote``: a partitioned member's return forces no election.

Health: ``GET /health`` answers ``{"health":"true"}`` only when the member has a leader and a
quorum read succeeds (so a member cut off from the other two says false); membership through
the v3 JSON gateway (``POST /v3/cluster/member/list``).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.cluster.daemon import Daemon, wait_until
from tests.cluster.net import Network

CLIENT_PORT = 2379
PEER_PORT = 2380


def _get(url: str, timeout: float = 2) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict[str, Any], timeout: float = 2) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class EtcdMember:
    host: str
    addr: str
    daemon: Daemon

    @property
    def endpoint(self) -> str:
        return f"http://{self.addr}:{CLIENT_PORT}"

    def health(self, timeout: float = 2) -> bool:
        try:
            return str(_get(f"{self.endpoint}/health", timeout).get("health")) == "true"
        except (OSError, ValueError):
            return False

    def members(self, timeout: float = 2) -> list[dict[str, Any]]:
        reply = _post(f"{self.endpoint}/v3/cluster/member/list", {}, timeout)
        members: list[dict[str, Any]] = reply.get("members", [])
        return members

    def status(self, timeout: float = 2) -> dict[str, Any]:
        """The member's ``Maintenance.Status``: leader id, raft term and index, ..."""
        reply: dict[str, Any] = _post(f"{self.endpoint}/v3/maintenance/status", {}, timeout)
        return reply


@dataclass
class Etcd:
    members: dict[str, EtcdMember]

    @classmethod
    def create(cls, net: Network, controllers: list[str], token: str) -> Etcd:
        initial = ",".join(f"{c}=http://{net.addr(c)}:{PEER_PORT}" for c in controllers)
        members = {}
        for c in controllers:
            a = net.addr(c)
            d = net.run_dir / c / "etcd"
            d.mkdir(parents=True)
            argv = [
                "etcd", "--name", c, "--data-dir", str(d / "data"),
                "--listen-client-urls", f"http://{a}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}",
                "--advertise-client-urls", f"http://{a}:{CLIENT_PORT}",
                "--listen-peer-urls", f"http://{a}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{a}:{PEER_PORT}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", token,
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                # A member cut off from the others must not depose the leader on its return
                # (docs/deployment.md, "etcd").
                "--pre-vote",
                "--logger", "zap", "--log-outputs", "stderr",
            ]
            daemon = Daemon(f"etcd-{c}", net.ns(c), argv,
                            net.run_dir / "logs" / f"{c}-etcd.log")
            members[c] = EtcdMember(host=c, addr=a, daemon=daemon)
        return cls(members)

    def start_cluster(self, timeout: float = 60) -> dict[str, float]:
        t0 = time.monotonic()
        for m in self.members.values():
            m.daemon.start()
        self.wait_healthy(timeout)
        return {"healthy": time.monotonic() - t0}

    def healthy(self, expect: list[str] | None = None) -> bool:
        """Every expected member (default: all) healthy, and it lists all members."""
        names = expect if expect is not None else list(self.members)
        if not all(self.members[n].health() for n in names):
            return False
        return len(self.members[names[0]].members()) == len(self.members)

    def wait_healthy(self, timeout: float = 60, expect: list[str] | None = None) -> None:
        wait_until(lambda: self.healthy(expect), timeout, "etcd to be healthy", interval=0.2)

    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members.values()]

    def leader(self) -> str | None:
        """The controller whose member leads (None if no member answers)."""
        ids: dict[str, str] = {}
        leader_id = None
        for name, m in self.members.items():
            try:
                st = m.status(timeout=1)
            except (OSError, ValueError):
                continue
            ids[str(st.get("header", {}).get("member_id"))] = name
            leader_id = str(st.get("leader"))
        return ids.get(leader_id) if leader_id else None
