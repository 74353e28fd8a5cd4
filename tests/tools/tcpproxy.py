"""A small TCP proxy for fault injection between a driver and its server.

    with TcpProxy(("127.0.0.1", 6379)) as proxy:   # listens on 127.0.0.1:<free port>
        proxy.delay = 0.5      # every chunk is forwarded 0.5 s after it arrived (pure latency:
                               # chunks in flight overlap, throughput is not throttled)
        proxy.blackhole = True # accept and read, forward nothing (a partitioned or hung server)
        proxy.refuse = True    # close new connections at once (a server that is down)
        proxy.cut()            # reset every open connection (a crashed server / broken link)
        proxy.stall()          # a partition: hold every byte both ways, close nothing
        proxy.stall_on(b"UPDATE ha_leases")  # the same, from the first client chunk with it
        proxy.heal()           # back to transparent (open connections are kept; held bytes
                               # are delivered, as TCP retransmits them once a partition heals)

One thread multiplexes every connection (selectors), so a thousand clients cost a thousand
sockets, not thousands of threads. Only forwards to a loopback address. Stops by itself when
the ``with`` block (or :meth:`stop`) ends.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(eq=False)
class _Side:
    sock: socket.socket
    peer: _Side | None = None
    out: bytearray = field(default_factory=bytearray)
    closing: bool = False  # close once ``out`` is flushed (the other side said EOF)
    drain_only: bool = False  # blackholed at accept: read and discard
    client: bool = False  # the socket accepted from a client (not the upstream one)
    pending: bool = False  # accepted during a stall: no upstream connection until the heal
    early: list[bytes] = field(default_factory=list)  # a pending client's bytes
    held: list[bytes | None] = field(default_factory=list)  # for this socket, held by a
    # stall (None: the other side's EOF)
    stalled: bool = False  # this connection alone is stalled (stall_on(connection_only))
    tail: bytes = b""  # the last bytes seen from the client, for a pattern split in two reads


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` with injectable latency and outages."""

    def __init__(self, target: tuple[str, int], *, listen_host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if not target[0].startswith("127.") and target[0] not in ("localhost", "::1"):
            raise ValueError("tcpproxy only forwards to loopback addresses")
        self.target = target
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False
        self.bytes_seen = 0
        self.connections = 0
        self.refused = 0  # connections closed at once because of ``refuse``
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, _Side, bytes | None, bool]] = []
        self._stalled = False  # every connection (a partition), new ones included
        self._trigger: tuple[bytes, bool] | None = None  # (pattern, connection_only)
        self.stalled = threading.Event()  # set while a stall holds bytes
        self.stalled_at: float | None = None  # time.monotonic() when the last stall began
        self._seq = itertools.count()
        self._sides: set[_Side] = set()
        self._commands: list[tuple[str, object, threading.Event]] = []
        self._cmd_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, port))
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tcpproxy")
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- control (any thread) -----------------------------------------------------------------
    def _command(self, name: str, arg: object = None) -> None:
        done = threading.Event()
        with self._cmd_lock:
            self._commands.append((name, arg, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        done.wait(timeout=5)

    def cut(self) -> None:
        """Reset every open connection (new ones are accepted unless ``refuse``)."""
        self._command("cut")

    def stall(self) -> None:
        """Hold every byte, both ways, on every connection, and close nothing: what a network
        partition looks like to both ends (no reset, no answer). Connections opened meanwhile
        are accepted but reach the server only at :meth:`heal`."""
        self._command("stall")

    def stall_on(self, pattern: bytes, *, connection_only: bool = False) -> None:
        """Arm a stall on the first chunk from a client that contains ``pattern``: that chunk
        (and what came before it) is forwarded to the server, then everything stalls, or only
        that connection with ``connection_only`` (one flow dropped by a firewall or a NAT).
        :attr:`stalled` is set and :attr:`stalled_at` noted at that moment."""
        if not pattern:
            raise ValueError("an empty pattern would match at once")
        self._command("arm", (pattern, connection_only))

    def heal(self) -> None:
        """Back to a transparent proxy (open connections are kept: see :meth:`cut`). A stall
        ends: held bytes are delivered in order (a held EOF last), connections accepted
        during it are connected to the server, and an armed :meth:`stall_on` is disarmed."""
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False
        self._command("heal")

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._command("cut")
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self._sel.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = 0.2
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            for key, events in self._sel.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                else:
                    side: _Side = key.data
                    if events & selectors.EVENT_READ:
                        self._read(side)
                    if events & selectors.EVENT_WRITE and side in self._sides:
                        self._write(side)
            self._run_timers()
            self._run_commands()

    def _run_commands(self) -> None:
        with self._cmd_lock:
            commands, self._commands = self._commands, []
        for name, arg, done in commands:
            if name == "cut":
                for side in list(self._sides):
                    self._close(side, reset=True)
                self._timers.clear()
            elif name == "stall":
                self._start_stall(None)
            elif name == "arm":
                assert isinstance(arg, tuple)
                self._trigger = arg
            elif name == "heal":
                self._heal()
            done.set()

    def _start_stall(self, side: _Side | None) -> None:
        """Stall every connection (``side`` None) or ``side``'s connection only."""
        if side is None:
            self._stalled = True
        else:
            for s in (side, side.peer):
                if s is not None:
                    s.stalled = True
        self.stalled_at = time.monotonic()
        self.stalled.set()

    def _heal(self) -> None:
        self._stalled = False
        self._trigger = None
        for side in list(self._sides):
            if side not in self._sides:  # closed while releasing an earlier one
                continue
            side.stalled = False
            if side.pending:
                self._connect_upstream(side)
            elif side.held:
                self._release_held(side)
        self.stalled.clear()

    def _release_held(self, side: _Side) -> None:
        held, side.held = side.held, []
        for data in held:
            if data is None:  # the other side's EOF: nothing comes after it
                side.closing = True
                break
            side.out += data
        self._write(side)

    def _connect_upstream(self, client: _Side) -> None:
        """A client accepted during a stall reaches the server now (its SYN got through)."""
        client.pending = False
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close(client)
            return
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.setblocking(False)
        server = _Side(upstream, peer=client)
        client.peer = server
        self._sides.add(server)
        self._sel.register(upstream, selectors.EVENT_READ, server)
        self.connections += 1
        for data in client.early:
            server.out += data
        client.early.clear()
        self._write(server)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.refuse:
                client.close()
                self.refused += 1
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.blackhole or self._stalled:
                # blackhole: a hung server, accepted and nothing ever comes back (what the
                # client sends is discarded). Stalled: held until the heal connects it.
                side = _Side(client, drain_only=self.blackhole, client=True,
                             pending=not self.blackhole)
                client.setblocking(False)
                self._sides.add(side)
                self._sel.register(client, selectors.EVENT_READ, side)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setblocking(False)
            upstream.setblocking(False)
            a, b = _Side(client, client=True), _Side(upstream)
            a.peer, b.peer = b, a
            self._sides.update((a, b))
            self._sel.register(client, selectors.EVENT_READ, a)
            self._sel.register(upstream, selectors.EVENT_READ, b)
            self.connections += 1

    def _read(self, side: _Side) -> None:
        try:
            data = side.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if side.drain_only or side.peer is None:
                # (a pending client that gives up before the heal never reached the server)
                self._close(side)
            else:  # EOF travels like data: after what was sent before it
                self._schedule(side.peer, None)
                self._unwatch_read(side)
            return
        self.bytes_seen += len(data)
        if side.drain_only or self.blackhole:
            return
        if side.pending:
            side.early.append(data)
            return
        if side.peer is None:
            return
        force = False
        if side.client and self._trigger is not None:
            pattern, connection_only = self._trigger
            window = side.tail + data
            side.tail = window[-(len(pattern) - 1):] if len(pattern) > 1 else b""
            if pattern in window:  # this chunk reaches the server; then the stall begins
                self._trigger = None
                force = True
                self._start_stall(side if connection_only else None)
        self._schedule(side.peer, data, force)

    def _schedule(self, dst: _Side, data: bytes | None, force: bool = False) -> None:
        heapq.heappush(self._timers,
                       (time.monotonic() + self.delay, next(self._seq), dst, data, force))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, dst, data, force = heapq.heappop(self._timers)
            if dst not in self._sides:
                continue
            if self._stalled or dst.stalled:
                if not force:
                    dst.held.append(data)
                    continue
                # The chunk that armed the stall goes through, after anything held before it.
                self._release_held(dst)
            if data is None:
                dst.closing = True
            elif not self.blackhole:
                dst.out += data
            self._write(dst)

    def _write(self, side: _Side) -> None:
        if side.out:
            try:
                sent = side.sock.send(side.out)
                del side.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(side)
                return
        if side.out:
            self._watch(side, write=True)
        elif side.closing:
            self._close(side)
        else:
            self._watch(side, write=False)

    def _watch(self, side: _Side, write: bool) -> None:
        try:
            key = self._sel.get_key(side.sock)
        except (KeyError, ValueError):
            return
        events = (key.events & selectors.EVENT_READ) | (selectors.EVENT_WRITE if write else 0)
        if events == 0:
            self._sel.unregister(side.sock)
        elif events != key.events:
            self._sel.modify(side.sock, events, side)

    def _unwatch_read(self, side: _Side) -> None:
        try:
            key = self._sel.get_key(side.sock)
        except (KeyError, ValueError):
            return
        events = key.events & ~selectors.EVENT_READ
        if events:
            self._sel.modify(side.sock, events, side)
        else:
            self._sel.unregister(side.sock)

    def _close(self, side: _Side, reset: bool = False) -> None:
        for s in (side, side.peer):
            if s is None or s not in self._sides:
                continue
            self._sides.discard(s)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s.sock)
            if reset:  # linger on, 0 s: close() sends a RST, as a crashed peer's kernel would
                with contextlib.suppress(OSError):
                    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                s.sock.close()


def main() -> None:
    """``python -m tests.tools.tcpproxy --target 127.0.0.1:6379 --delay 0.5``: a proxy in its
    own process (benchmarks: keeps the proxy's work off the measuring process's GIL). Prints
    the listening port on the first line, then runs until stdin closes or it is killed."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="latency-injecting TCP proxy (loopback only)")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each way")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    with TcpProxy((host, int(port)), port=args.port) as proxy:
        proxy.delay = args.delay
        print(proxy.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
