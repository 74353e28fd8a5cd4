"""Real servers for the driver contract suite.

``tests/servers/start.sh`` runs once per session: it installs the server packages if missing and
starts the shared instances on their usual ports (the benchmarks and manual runs use those).
The suite itself runs against *private* instances started here on free ports, one per kind per
session, so it can kill, restart or slow them down without disturbing anyone else's server.
A server that cannot start fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_SH = ROOT / "tests" / "servers" / "start.sh"
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process was given before: the kernel may hand
    the same ephemeral port to two binds in a row once the first socket is closed (two etcd
    members once got the same peer port)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """One server process on 127.0.0.1:<port>, restartable on the same port and data."""

    kind = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.kind}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return port_answers(self.port)

    def start(self, deadline: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + deadline
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see "
                                   f"{self.log}:\n{self.log.read_text()[-2000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"{self.kind} not ready on port {self.port} after "
                                   f"{deadline}s; see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash: no clean shutdown, whatever is not on disk is lost."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        end = time.monotonic() + 10
        while port_answers(self.port) and time.monotonic() < end:
            time.sleep(0.05)

    def restart(self) -> None:
        self.kill()
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        """Running and ready (a test that killed it and failed must not break the next one)."""
        if not self.running():
            self.start()


class Memcached(Server):
    kind = "memcached"

    def command(self) -> list[str]:
        user = ["-u", "root"] if os.geteuid() == 0 else []
        return ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "128",
                "-c", "4096", *user]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Redis(Server):
    kind = "redis"

    def command(self) -> list[str]:
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--daemonize", "no"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Etcd(Server):
    kind = "etcd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.peer_port = free_port()
        self.data = workdir / "etcd-data"

    def command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        # A short election timeout lowers etcd's minimum lease TTL to 1 s (default: 2 s).
        return ["etcd", "--name", "contract", "--data-dir", str(self.data),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"contract={peer}", "--heartbeat-interval", "50",
                "--election-timeout", "500", "--log-level", "warn"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except OSError:
            return False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ZooKeeper(Server):
    kind = "zookeeper"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data = workdir / "zk-data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.cfg = workdir / "zoo.cfg"
        # tickTime 500 ms lets sessions be as short as 1 s (2 ticks).
        self.cfg.write_text(
            f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={self.data}\n"
            f"clientPort={self.port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr,stat\n"
        )

    def command(self) -> list[str]:
        return ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dzookeeper.log.dir={self.workdir}", "-Djute.maxbuffer=16777216",
                "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(self.cfg)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"srvr")
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            return b"Mode:" in reply
        except OSError:
            return False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def shared_servers() -> None:
    """Install (if needed) and start the shared servers; fail loudly if that does not work."""
    result = subprocess.run(["bash", str(START_SH)], capture_output=True, text=True,
                            timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"tests/servers/start.sh failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vigil-contract-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _private(cls: type[Server], servers_dir: Path) -> Iterator[Server]:
    workdir = servers_dir / cls.kind
    workdir.mkdir(parents=True, exist_ok=True)
    server = cls(workdir)
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.kill()


@pytest.fixture(scope="session")
def memcached_server(shared_servers: None, servers_dir: Path) -> Iterator[Server]:
    yield from _private(Memcached, servers_dir)


@pytest.fixture(scope="session")
def redis_server(shared_servers: None, servers_dir: Path) -> Iterator[Server]:
    yield from _private(Redis, servers_dir)


@pytest.fixture(scope="session")
def etcd_server(shared_servers: None, servers_dir: Path) -> Iterator[Server]:
    yield from _private(Etcd, servers_dir)


@pytest.fixture(scope="session")
def zookeeper_server(shared_servers: None, servers_dir: Path) -> Iterator[Server]:
    yield from _private(ZooKeeper, servers_dir)


class EtcdMember(Etcd):
    """One member of a private three-member etcd cluster (see :func:`etcd_cluster`)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.initial_cluster = ""  # set by the cluster once every member has its peer port
        super().__init__(workdir)
        self.log = workdir / f"etcd-{name}.log"
        self.data = workdir / f"etcd-{name}"

    def command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return ["etcd", "--name", self.name, "--data-dir", str(self.data),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-token", f"vigil-contract-{self.workdir.name}",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--log-level", "warn"]


def start_cluster(members: list[EtcdMember], deadline: float = 60.0) -> None:
    """Start every member at once (each waits for a quorum before it is healthy)."""
    initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in members)
    for member in members:
        member.initial_cluster = initial
        with open(member.log, "ab") as log:
            member.proc = subprocess.Popen(member.command(), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
    end = time.monotonic() + deadline
    while not all(m.ready() for m in members):
        for member in members:
            if member.proc is not None and member.proc.poll() is not None:
                raise RuntimeError(f"etcd {member.name} exited; see {member.log}:\n"
                                   f"{member.log.read_text()[-2000:]}")
        if time.monotonic() > end:
            raise RuntimeError(f"etcd cluster not healthy after {deadline}s; see {members[0].log}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def etcd_cluster(shared_servers: None, servers_dir: Path) -> Iterator[list[EtcdMember]]:
    """Three etcd members on private ports, one cluster (the layout of docs/deployment.md)."""
    workdir = servers_dir / "etcd-cluster"
    workdir.mkdir(parents=True, exist_ok=True)
    members = [EtcdMember(workdir, f"m{i}") for i in range(3)]
    start_cluster(members)
    yield members
    for member in members:
        with contextlib.suppress(Exception):
            member.kill()
