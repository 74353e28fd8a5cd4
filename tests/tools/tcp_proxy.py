"""A TCP proxy that can stall: one process's link to a server, wedged on demand.

Like toxiproxy's "timeout" toxic, in-process: while paused, every byte read from either side is
held (connections stay open, nothing is refused or reset), which is what a stalled network
or an overloaded server looks like to a client: its statements hang. Resuming delivers what was
held, in order. Used to wedge one conductor's database link while the others keep theirs.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class StallingProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; :meth:`pause` stalls every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._accepter.start()

    def pause(self) -> None:
        """Hold every byte from now on, both ways, on old and new connections."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                # Held here while paused: the peer's bytes sit in this thread, undelivered.
                while not self._flowing.wait(0.1):
                    if self._closed.is_set():
                        return
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
