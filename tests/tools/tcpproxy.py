"""A small threaded TCP proxy for fault injection between a driver and its server.

    with TcpProxy(("127.0.0.1", 6379)) as proxy:   # listens on 127.0.0.1:<free port>
        proxy.delay = 0.5      # every chunk is forwarded 0.5 s after it arrived (pure latency:
                               # chunks in flight overlap, throughput is not throttled)
        proxy.blackhole = True # accept and read, forward nothing (a partitioned or hung server)
        proxy.cut()            # reset every open connection (a crashed server / broken link)

Only ever targets a loopback address given by the caller. Bounded: each connection has two
pump threads and ends when either side closes or the proxy stops.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import struct
import threading
import time
from types import TracebackType


class _Pipe:
    """One direction of one connection: read from ``src``, deliver to ``dst`` after a delay."""

    def __init__(self, proxy: TcpProxy, src: socket.socket, dst: socket.socket) -> None:
        self.proxy = proxy
        self.src = src
        self.dst = dst
        self._queue: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._eof = False

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True, name="tcpproxy-read").start()
        threading.Thread(target=self._write, daemon=True, name="tcpproxy-write").start()

    def _read(self) -> None:
        try:
            while True:
                data = self.src.recv(65536)
                if not data:
                    break
                self.proxy.bytes_seen += len(data)
                if self.proxy.blackhole:
                    continue
                with self._cond:
                    heapq.heappush(self._queue,
                                   (time.monotonic() + self.proxy.delay, next(self._seq), data))
                    self._cond.notify()
        except OSError:
            pass
        with self._cond:
            self._eof = True
            self._cond.notify()

    def _write(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._eof:
                        self._cond.wait()
                    if not self._queue:
                        break
                    due, _, data = self._queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    heapq.heappop(self._queue)
                if self.proxy.blackhole:
                    continue
                self.dst.sendall(data)
        except OSError:
            pass
        finally:
            self.proxy._close_pair(self.src, self.dst)


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` with injectable latency and outages."""

    def __init__(self, target: tuple[str, int], *, listen_host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if not target[0].startswith("127.") and target[0] not in ("localhost", "::1"):
            raise ValueError("tcpproxy only forwards to loopback addresses")
        self.target = target
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False  # close new connections at once (a server that is down)
        self.bytes_seen = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, port))
        self._listener.listen(512)
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcpproxy")
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.blackhole:
                # A hung server: the connection is accepted and nothing ever comes back.
                with self._lock:
                    self._socks.add(client)
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.update((client, upstream))
                self.connections += 1
            _Pipe(self, client, upstream).start()
            _Pipe(self, upstream, client).start()

    def _drain(self, sock: socket.socket) -> None:
        try:
            while sock.recv(65536):
                if self._stop.is_set():
                    break
        except OSError:
            pass
        self._close_pair(sock, sock)

    def _close_pair(self, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            with self._lock:
                self._socks.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        """Reset every open connection (new ones are accepted unless ``refuse``)."""
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                # linger on, 0 s: close() sends a RST, as a crashed peer's kernel would
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._close_pair(sock, sock)

    def heal(self) -> None:
        """Back to a transparent proxy."""
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        self._thread.join(timeout=2)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
