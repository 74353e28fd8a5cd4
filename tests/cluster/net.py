"""Network namespaces on one machine: one per host, joined by a Linux bridge.

    with Network.create(["ctl1", "ctl2", "ctl3", "lb", "cmp1"]) as net:
        net.addr("ctl1")          # "198.18.7.1"
        net.run("ctl1", ["ip", "addr"])
        net.partition("ctl1")     # nft DROP of all its IP traffic (heal() undoes it)

Layout of one run (``<id>``: 6 hex digits, unique per run):

- namespaces ``vgc<id>-<host>`` (``ip netns``), each with ``lo`` up and ``eth0`` (one end of
  a veth pair) holding the host's address;
- the bridge ``vgc<id>br`` in the root namespace, with the other ends (``vgc<id><tag>``)
  as ports and the address ``.254`` so that the test process reaches every host;
- one ``/24`` of the benchmarking range 198.18.0.0/15 per run, chosen under a lock among the
  ones no interface of the root namespace holds, so concurrent runs never share addresses;
- a run directory ``$VIGIL_CLUSTER_DIR/vgc<id>`` (default /tmp/vigil-cluster) whose ``owner``
  file names the process that made it: :func:`cleanup_leftovers` removes the namespaces,
  links and directories of runs whose owner is dead (a crashed or killed run), and nothing of
  a live one.

Names are short on purpose: a Linux interface name has at most 15 characters.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "vgc"
BASE_DIR = Path(os.environ.get("VIGIL_CLUSTER_DIR", "/tmp/vigil-cluster"))
LOCK_FILE = Path("/run/lock/vigil-cluster.lock")
RANGE = ipaddress.ip_network("198.18.0.0/15")
HOST_OCTET = 254  # the root namespace's address on the bridge

# Host addresses by role (the last octet); the rest get 20, 21, ... in order.
FIXED_OCTETS = {"ctl1": 1, "ctl2": 2, "ctl3": 3, "lb": 100}


def sh(argv: Sequence[str], *, check: bool = True, timeout: float = 60,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; on failure raise with its stderr in the message."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


def _proc_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(run_dir: Path) -> bool:
    """Whether the process recorded in ``run_dir/owner`` (pid and start time) still runs
    (a zombie does not: a killed run whose parent has not reaped it yet)."""
    try:
        pid_s, start = (run_dir / "owner").read_text().split()
        with open(f"/proc/{int(pid_s)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and fields[19] == start


def netns_pids(ns: str) -> list[int]:
    """Pids of every process in network namespace ``ns``."""
    out = sh(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split()]


def kill_netns_processes(ns: str, sig: int = signal.SIGKILL, timeout: float = 10) -> None:
    """Signal every process in ``ns`` (repeatedly: a dying parent may have forked), and wait
    until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in netns_pids(ns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of namespace {ns} survive signal {sig}")
        time.sleep(0.05)


def _runs_in_use() -> dict[str, list[str]]:
    """{run id: [what exists]}: namespaces, links and directories named after a run."""
    found: dict[str, list[str]] = {}
    pat = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})")
    for line in sh(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if m := pat.match(name):
            found.setdefault(m.group(1), []).append(f"netns {name}")
    for line in sh(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if m := pat.match(name):
            found.setdefault(m.group(1), []).append(f"link {name}")
    if BASE_DIR.is_dir():
        for d in BASE_DIR.iterdir():
            if m := re.fullmatch(rf"{PREFIX}([0-9a-f]{{6}})", d.name):
                found.setdefault(m.group(1), []).append(f"dir {d}")
    return found


def remove_run(run_id: str) -> list[str]:
    """Remove everything of run ``run_id``: its processes, namespaces, links, /etc/netns
    entries and run directory. Returns what it removed. Safe to call twice."""
    removed: list[str] = []
    tag = f"{PREFIX}{run_id}"
    for line in sh(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(tag + "-"):
            kill_netns_processes(name)
            sh(["ip", "netns", "del", name], check=False)
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
            removed.append(f"netns {name}")
    for line in sh(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(tag):
            sh(["ip", "link", "del", name], check=False)
            removed.append(f"link {name}")
    run_dir = BASE_DIR / tag
    if run_dir.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"dir {run_dir}")
    return removed


def cleanup_leftovers() -> list[str]:
    """Remove what crashed runs left (namespaces, links, directories named ``vgc<id>...``
    whose run's owner process is dead). A live run's things are left alone."""
    removed: list[str] = []
    for run_id in _runs_in_use():
        if not _owner_alive(BASE_DIR / f"{PREFIX}{run_id}"):
            removed += remove_run(run_id)
    return removed


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    used: set[ipaddress.IPv4Network] = set()
    for line in sh(["ip", "-4", "-o", "addr", "show"], check=False).stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            if iface.ip in RANGE:
                used.add(ipaddress.ip_network(f"{iface.ip}/24", strict=False))
    for line in sh(["ip", "-4", "route", "show"], check=False).stdout.splitlines():
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(line.split()[0], strict=False)
            if net.subnet_of(RANGE):  # type: ignore[arg-type]
                used.add(ipaddress.ip_network(f"{net.network_address}/24", strict=False))
    return used


@dataclass
class Network:
    """The namespaces, bridge and addresses of one run (see the module docstring)."""

    run_id: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, str] = field(default_factory=dict)  # name -> address
    run_dir: Path = Path()
    partitioned: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)

    # -- naming -------------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        return f"{PREFIX}{self.run_id}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def veth(self, host: str) -> str:
        """The root-namespace end of ``host``'s veth pair (a bridge port)."""
        return f"{self.tag}{host}"

    def addr(self, host: str) -> str:
        return self.hosts[host]

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test process is)."""
        return str(self.subnet.network_address + HOST_OCTET)

    # -- life cycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, hosts: Iterable[str], run_id: str | None = None) -> Network:
        """Make the bridge, the namespaces and their links; undone by :meth:`destroy` (or the
        ``with`` block). Leftovers of dead runs are removed first."""
        cleanup_leftovers()
        run_id = run_id or uuid.uuid4().hex[:6]
        run_dir = BASE_DIR / f"{PREFIX}{run_id}"
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / "owner").write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        hosts = list(hosts)
        with _lock():
            used = _subnets_in_use()
            nets = list(RANGE.subnets(new_prefix=24))
            start = int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % len(nets)
            subnet = next((n for n in nets[start:] + nets[:start] if n not in used), None)
            if subnet is None:
                raise RuntimeError("no free /24 left in 198.18.0.0/15")
            net = cls(run_id=run_id, subnet=subnet, run_dir=run_dir)
            try:
                net._build(hosts)
            except BaseException:
                net.destroy()
                raise
        return net

    def _build(self, hosts: list[str]) -> None:
        extra = 20
        for h in hosts:
            if h in FIXED_OCTETS:
                octet = FIXED_OCTETS[h]
            else:
                octet, extra = extra, extra + 1
            self.hosts[h] = str(self.subnet.network_address + octet)
        for h in hosts:  # 9 + 6 characters: the 15 of an interface name
            if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", h):
                raise ValueError(f"host name {h!r}: 1 to 6 of [a-z0-9], a letter first")
        sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        # No STP, no forwarding delay: a port forwards as soon as it is up (a heal is instant).
        sh(["ip", "link", "set", self.bridge, "type", "bridge", "forward_delay", "0",
            "stp_state", "0"])
        sh(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        sh(["ip", "link", "set", self.bridge, "up"])
        for h in hosts:
            ns, veth = self.ns(h), self.veth(h)
            sh(["ip", "netns", "add", ns])
            sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh(["ip", "link", "set", veth, "master", self.bridge])
            sh(["ip", "link", "set", veth, "up"])
            ex = ["ip", "netns", "exec", ns]
            sh([*ex, "ip", "link", "set", "lo", "up"])
            sh([*ex, "ip", "addr", "add", f"{self.hosts[h]}/24", "dev", "eth0"])
            sh([*ex, "ip", "link", "set", "eth0", "up"])
        # /etc/hosts of every namespace (``ip netns exec`` bind-mounts /etc/netns/NS/hosts):
        # each host's name resolves to its address everywhere, as on a real network.
        lines = ["127.0.0.1 localhost"] + [f"{a} {h}" for h, a in self.hosts.items()]
        for h in hosts:
            d = Path("/etc/netns") / self.ns(h)
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text("\n".join(lines) + "\n")

    def destroy(self) -> None:
        """Kill every process in the namespaces, delete them, the links and the run dir."""
        remove_run(self.run_id)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- running things -----------------------------------------------------------------------
    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(self, host: str, argv: Sequence[str], *, check: bool = True,
            timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return sh(self.exec_argv(host, argv), check=check, timeout=timeout, input=input)

    def pids(self, host: str) -> list[int]:
        return netns_pids(self.ns(host))

    def kill_all(self, host: str) -> None:
        """SIGKILL every process of ``host`` (a crash of the whole machine's software)."""
        kill_netns_processes(self.ns(host))

    # -- faults -------------------------------------------------------------------------------
    def partition(self, host: str, how: str = "drop", only_from: Iterable[str] = ()) -> None:
        """Cut ``host`` off the network until :meth:`heal`.

        ``how="drop"`` (default): nftables rules inside the host's namespace drop every IP
        packet in and out except on ``lo`` -- a silent partition: the link stays up, ARP still
        answers, nothing is refused or reset, peers learn of it only by their own timeouts
        (the hard case, as when a switch or a firewall drops traffic). With ``only_from`` the
        drop is limited to those hosts (e.g. the other controllers, while the load balancer
        still reaches it).

        ``how="link"``: the bridge port of its veth goes down (a pulled cable): both ends lose
        carrier, and a peer's connect fails with "no route" once its ARP entry expires.
        """
        ns = self.ns(host)
        if how == "link":
            sh(["ip", "link", "set", self.veth(host), "down"])
        elif how == "drop":
            addrs = [self.addr(h) for h in only_from]
            match_in = f"ip saddr {{ {', '.join(addrs)} }} " if addrs else ""
            match_out = f"ip daddr {{ {', '.join(addrs)} }} " if addrs else ""
            rules = (
                "table inet vgc_partition {\n"
                "  chain input { type filter hook input priority -300; policy accept;\n"
                f"    iif lo accept\n    {match_in}drop\n  }}\n"
                "  chain output { type filter hook output priority -300; policy accept;\n"
                f"    oif lo accept\n    {match_out}drop\n  }}\n"
                "}\n"
            )
            sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules)
        else:
            raise ValueError(f"partition how={how!r}: 'drop' or 'link'")
        self.partitioned.add(host)

    def block(self, host: str, addr: str, port: int) -> None:
        """Drop, silently, ``host``'s TCP packets to ``addr:port`` and their answers, until
        :meth:`unblock` (one service lost while the rest of the network works: a firewall
        change, a load balancer unreachable from one machine)."""
        rules = (
            "table inet vgc_block {\n"
            "  chain output { type filter hook output priority -300; policy accept;\n"
            f"    ip daddr {addr} tcp dport {port} drop\n  }}\n"
            "  chain input { type filter hook input priority -300; policy accept;\n"
            f"    ip saddr {addr} tcp sport {port} drop\n  }}\n"
            "}\n"
        )
        sh(["ip", "netns", "exec", self.ns(host), "nft", "-f", "-"], input=rules)
        self.blocked.add(host)

    def unblock(self, host: str) -> None:
        """Undo :meth:`block`."""
        sh(["ip", "netns", "exec", self.ns(host), "nft", "delete", "table", "inet", "vgc_block"],
           check=False)
        self.blocked.discard(host)

    def heal(self, host: str) -> None:
        """Undo :meth:`partition` (both kinds)."""
        sh(["ip", "link", "set", self.veth(host), "up"])
        sh(["ip", "netns", "exec", self.ns(host), "nft", "delete", "table", "inet",
            "vgc_partition"], check=False)
        self.partitioned.discard(host)
