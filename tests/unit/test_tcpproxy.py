"""The tests' TCP proxy: the stall (a partition: bytes held both ways, nothing closed) and its
trigger, with real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.functional.procs import poll
from tests.tools.tcpproxy import TcpProxy

QUIET = 0.3  # how long "nothing arrives" is watched for


@pytest.fixture
def server() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1; the test accepts its connections itself."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(5)
    yield listener
    listener.close()


@pytest.fixture
def proxy(server: socket.socket) -> Iterator[TcpProxy]:
    with TcpProxy(server.getsockname()) as p:
        yield p


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


def nothing_arrives(sock: socket.socket) -> bool:
    """True if nothing (neither data nor EOF) arrives for QUIET seconds."""
    sock.settimeout(QUIET)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_a_stall_holds_both_directions_and_the_heal_delivers_in_order(
        server: socket.socket, proxy: TcpProxy) -> None:
    cli = connect(proxy)
    srv, _ = server.accept()
    cli.sendall(b"q1")
    assert recv_exactly(srv, 2) == b"q1"
    proxy.stall()
    assert proxy.stalled.is_set() and proxy.stalled_at is not None
    cli.sendall(b"q2")
    cli.sendall(b"q3")
    srv.sendall(b"r1")
    assert nothing_arrives(srv) and nothing_arrives(cli)  # held, and nothing closed
    proxy.heal()
    assert not proxy.stalled.is_set()
    assert recv_exactly(srv, 4) == b"q2q3"
    assert recv_exactly(cli, 2) == b"r1"
    cli.sendall(b"q4")  # transparent again, same connection
    assert recv_exactly(srv, 2) == b"q4"
    cli.close()
    srv.close()


def test_an_eof_during_a_stall_is_held_too_and_delivered_after_the_data(
        server: socket.socket, proxy: TcpProxy) -> None:
    cli = connect(proxy)
    srv, _ = server.accept()
    proxy.stall()
    srv.sendall(b"FATAL: terminating connection")
    srv.close()  # the server ends the session during the partition: the client cannot know
    assert nothing_arrives(cli)
    proxy.heal()
    assert recv_exactly(cli, 29) == b"FATAL: terminating connection"
    assert cli.recv(1) == b""
    cli.close()


def test_a_connection_opened_during_a_stall_reaches_the_server_at_the_heal(
        server: socket.socket, proxy: TcpProxy) -> None:
    proxy.stall()
    cli = connect(proxy)  # the proxy accepts (it is local), the server sees nothing yet
    cli.sendall(b"startup")
    server.settimeout(QUIET)
    with pytest.raises(TimeoutError):
        server.accept()
    server.settimeout(5)
    proxy.heal()
    srv, _ = server.accept()
    assert recv_exactly(srv, 7) == b"startup"
    srv.sendall(b"ok")
    assert recv_exactly(cli, 2) == b"ok"
    assert proxy.connections == 1
    cli.close()
    srv.close()


def test_the_trigger_forwards_the_matching_chunk_then_stalls_everything(
        server: socket.socket, proxy: TcpProxy) -> None:
    cli, other = connect(proxy), connect(proxy)
    srv, _ = server.accept()
    srv_other, _ = server.accept()
    proxy.stall_on(b"UPDATE ha_leases")
    cli.sendall(b"SELECT now()")
    assert recv_exactly(srv, 12) == b"SELECT now()"
    assert not proxy.stalled.is_set()
    # The pattern split across two reads of the proxy still arms the stall.
    cli.sendall(b"UPDATE ha_")
    assert recv_exactly(srv, 10) == b"UPDATE ha_"
    before = time.monotonic()
    cli.sendall(b"leases SET expires_at")
    assert recv_exactly(srv, 21) == b"leases SET expires_at"  # the chunk itself goes through
    poll(proxy.stalled.is_set, 5, what="the stall")
    assert proxy.stalled_at is not None and proxy.stalled_at >= before
    srv.sendall(b"UPDATE 1")  # the answer, and everything after, is held
    cli.sendall(b"COMMIT")
    other.sendall(b"x")  # every connection: a partition
    assert nothing_arrives(cli) and nothing_arrives(srv) and nothing_arrives(srv_other)
    proxy.heal()
    assert recv_exactly(cli, 8) == b"UPDATE 1"
    assert recv_exactly(srv, 6) == b"COMMIT"
    assert recv_exactly(srv_other, 1) == b"x"
    cli.sendall(b"UPDATE ha_leases")  # the heal disarmed the trigger
    assert recv_exactly(srv, 16) == b"UPDATE ha_leases"
    assert not proxy.stalled.is_set()
    for s in (cli, other, srv, srv_other):
        s.close()


def test_a_connection_only_trigger_stalls_that_connection_alone(
        server: socket.socket, proxy: TcpProxy) -> None:
    cli, other = connect(proxy), connect(proxy)
    srv, _ = server.accept()
    srv_other, _ = server.accept()
    proxy.stall_on(b"UPDATE", connection_only=True)
    cli.sendall(b"UPDATE t")
    assert recv_exactly(srv, 8) == b"UPDATE t"
    poll(proxy.stalled.is_set, 5, what="the stall")
    srv.sendall(b"held")
    other.sendall(b"flows")
    assert recv_exactly(srv_other, 5) == b"flows"
    assert nothing_arrives(cli)
    late = connect(proxy)  # new connections are not stalled either
    srv_late, _ = server.accept()
    late.sendall(b"hi")
    assert recv_exactly(srv_late, 2) == b"hi"
    proxy.heal()
    assert recv_exactly(cli, 4) == b"held"
    for s in (cli, other, late, srv, srv_other, srv_late):
        s.close()
