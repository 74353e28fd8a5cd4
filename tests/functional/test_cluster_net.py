"""The cluster harness's network (tests/cluster/net.py): namespaces on a bridge, the two kinds
of partition, and the removal of what a killed run left behind. Needs root; a few seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.daemon import Daemon, wait_until
from tests.cluster.net import BASE_DIR, Network, cleanup_leftovers, sh

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PORT = 8080


@pytest.fixture
def net() -> Iterator[Network]:
    assert os.geteuid() == 0, "network namespaces need root"
    with Network.create(["a1", "b1"]) as n:
        (n.run_dir / "logs").mkdir()
        server = Daemon("http", n.ns("b1"), [sys.executable, "-m", "http.server", "-b",
                                              n.addr("b1"), str(PORT)],
                        n.run_dir / "logs" / "http.log", cwd=n.run_dir)
        server.start()
        wait_until(lambda: reach(None, n, "b1"), 20, "the server in b1")
        yield n


def reach(src: str | None, net: Network, dst: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from ``src``'s namespace (None: this one) to ``dst`` opens."""
    if src is None:
        try:
            socket.create_connection((net.addr(dst), PORT), timeout=timeout).close()
            return True
        except OSError:
            return False
    code = (f"import socket; socket.create_connection(('{net.addr(dst)}', {PORT}), "
            f"timeout={timeout}).close()")
    return net.run(src, [sys.executable, "-c", code], check=False).returncode == 0


def test_hosts_reach_each_other_and_partitions_cut_and_heal(net: Network) -> None:
    assert reach("a1", net, "b1") and reach(None, net, "b1")
    addr = sh(net.exec_argv("b1", ["ip", "-4", "-o", "addr", "show", "eth0"])).stdout
    assert f"{net.addr('b1')}/24" in addr and net.addr("b1").startswith("198.1")

    net.partition("b1")  # silent drop: a connect times out, it is not refused
    t0 = time.monotonic()
    assert not reach("a1", net, "b1", timeout=1.0)
    assert time.monotonic() - t0 >= 0.9
    assert not reach(None, net, "b1")
    net.heal("b1")
    assert wait_until(lambda: reach("a1", net, "b1") and reach(None, net, "b1"), 10, "heal")

    net.partition("b1", how="link")  # the bridge port goes down
    assert not reach("a1", net, "b1") and not reach(None, net, "b1")
    net.heal("b1")
    assert wait_until(lambda: reach("a1", net, "b1"), 10, "heal of the link")

    net.partition("b1", only_from=["a1"])  # cut from a1 only: the test process still reaches it
    assert not reach("a1", net, "b1") and reach(None, net, "b1")
    net.heal("b1")
    assert wait_until(lambda: reach("a1", net, "b1"), 10, "heal of the partial partition")


def test_what_a_killed_run_left_is_removed_and_a_live_run_is_not(net: Network) -> None:
    code = ("import os, signal; from tests.cluster.net import Network; "
            "n = Network.create(['x1']); print(n.run_id, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    dead = proc.stdout.strip()
    assert dead and proc.returncode == -9, proc
    ns = f"vgc{dead}-x1"
    assert ns in sh(["ip", "netns", "list"]).stdout
    removed = cleanup_leftovers()
    assert f"netns {ns}" in removed and f"dir {BASE_DIR / f'vgc{dead}'}" in removed, removed
    assert ns not in sh(["ip", "netns", "list"]).stdout
    assert f"vgc{dead}" not in sh(["ip", "-o", "link", "show"]).stdout
    # Ours (alive) is untouched.
    assert net.ns("a1") in sh(["ip", "netns", "list"]).stdout and net.run_dir.exists()
    assert reach("a1", net, "b1")
