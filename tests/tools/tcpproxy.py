"""A small TCP proxy for fault injection between a driver and its server.

    with TcpProxy(("127.0.0.1", 6379)) as proxy:   # listens on 127.0.0.1:<free port>
        proxy.delay = 0.5      # every chunk is forwarded 0.5 s after it arrived (pure latency:
                               # chunks in flight overlap, throughput is not throttled)
        proxy.blackhole = True # accept and read, forward nothing (a partitioned or hung server)
        proxy.refuse = True    # close new connections at once (a server that is down)
        proxy.cut()            # reset every open connection (a crashed server / broken link)
        proxy.heal()           # back to transparent (open connections are kept)

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
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, _Side, bytes | None]] = []
        self._seq = itertools.count()
        self._sides: set[_Side] = set()
        self._commands: list[tuple[str, threading.Event]] = []
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
    def _command(self, name: str) -> None:
        done = threading.Event()
        with self._cmd_lock:
            self._commands.append((name, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        done.wait(timeout=5)

    def cut(self) -> None:
        """Reset every open connection (new ones are accepted unless ``refuse``)."""
        self._command("cut")

    def heal(self) -> None:
        """Back to a transparent proxy (open connections are kept: see :meth:`cut`)."""
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False

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
        for name, done in commands:
            if name == "cut":
                for side in list(self._sides):
                    self._close(side, reset=True)
                self._timers.clear()
            done.set()

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
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.blackhole:  # a hung server: accepted, and nothing ever comes back
                side = _Side(client, drain_only=True)
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
            a, b = _Side(client), _Side(upstream)
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
                self._close(side)
            else:  # EOF travels like data: after what was sent before it
                self._schedule(side.peer, None)
                self._unwatch_read(side)
            return
        self.bytes_seen += len(data)
        if side.drain_only or self.blackhole or side.peer is None:
            return
        self._schedule(side.peer, data)

    def _schedule(self, dst: _Side, data: bytes | None) -> None:
        heapq.heappush(self._timers, (time.monotonic() + self.delay, next(self._seq), dst, data))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, dst, data = heapq.heappop(self._timers)
            if dst not in self._sides:
                continue
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
