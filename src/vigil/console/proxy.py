"""``vigil serialproxy``'s application: the console page, and the WebSocket bridged to an
instance's console.

A WebSocket (any path, ``?token=``) is checked in this order, refusing with HTTP 403 before it
is accepted: the ``Origin`` (:mod:`.origin`; first, so a hostile page cannot even burn a
token), the token (redeemed, so used up, whatever follows), the optional ``instance`` the
client means (a token for another instance is refused), and that the instance is still where
the token was made for (:meth:`.tokens.Consoles.current`). Then it is accepted and bridged:
every message from the client is written to the console's input, and everything the instance
prints from then on is sent as binary messages. The session ends when the client leaves, and
the proxy ends it (close code 4001) when the instance leaves the token's host or generation,
e.g. an evacuation: the console the client sees would otherwise be a dead or stale copy's.

Plain HTTP serves the page (``/`` and ``/console.html``) and its files (``/static/...``,
shipped in the package: xterm.js and its licence, the page's script). Nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
from starlette.types import Receive, Scope, Send

from vigil.compute.virt.process import ConsoleEndpoint
from vigil.console import origin
from vigil.console.tokens import Consoles
from vigil.objects.compute import ConsoleTarget

LOG = logging.getLogger(__name__)

STATIC = {
    "xterm.js": "application/javascript; charset=utf-8",
    "xterm.css": "text/css; charset=utf-8",
    "console.js": "application/javascript; charset=utf-8",
    "xterm-LICENSE": "text/plain; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGE = "console.html"
# Close code of a session the proxy ends because the instance is no longer where it was.
MOVED = 4001
UNAVAILABLE = 1011
READ_CHUNK = 65536


def _static(name: str) -> bytes:
    return resources.files("vigil.console").joinpath("static", name).read_bytes()


class SerialProxy:
    """The ASGI application (see the module docstring).

    ``endpoint``: where a target's console is (the process driver's
    :func:`~vigil.compute.virt.process.console_endpoint` for this machine's paths);
    ``allowed_origins``: read at each connection (SIGHUP reloads it); ``poll``: seconds
    between two reads of the console's output; ``recheck``: seconds between two checks that
    the instance has not moved.
    """

    def __init__(self, consoles: Consoles, endpoint: Callable[[ConsoleTarget], ConsoleEndpoint],
                 *, allowed_origins: Callable[[], list[str]], proxy_scheme: str = "ws",
                 poll: float = 0.05, recheck: float = 1.0) -> None:
        self.consoles = consoles
        self.endpoint = endpoint
        self.allowed_origins = allowed_origins
        self.proxy_scheme = proxy_scheme
        self.poll = poll
        self.recheck = recheck
        self._files: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    # -- the page -----------------------------------------------------------------------------
    async def _http(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed")
            return
        name = PAGE if path in ("/", f"/{PAGE}") else path.removeprefix("/static/")
        if name != PAGE and (not path.startswith("/static/") or name not in STATIC):
            await _plain(send, 404, b"Not Found")
            return
        if name not in self._files:
            self._files[name] = _static(name)
        body = self._files[name]
        ctype = "text/html; charset=utf-8" if name == PAGE else STATIC[name]
        headers = [(b"content-type", ctype.encode()),
                   (b"content-length", str(len(body)).encode()),
                   # The page runs no script but its own and xterm.js, from here only.
                   (b"content-security-policy",
                    b"default-src 'self'; connect-src 'self' ws: wss:; "
                    b"style-src 'self' 'unsafe-inline'"),
                   (b"x-frame-options", b"DENY")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})

    # -- the console --------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[-1]
        wanted = (query.get("instance") or [None])[-1]
        if not origin.origin_allowed(headers.get("origin"), headers.get("host"),
                                     self.allowed_origins(), self.proxy_scheme):
            LOG.warning("console refused: Origin %r not allowed", headers.get("origin"))
            await send({"type": "websocket.close", "code": 1008})
            return
        target = await anyio.to_thread.run_sync(self.consoles.redeem, token)
        if target is None:
            LOG.warning("console refused: unknown, expired or used token")
            await send({"type": "websocket.close", "code": 1008})
            return
        if wanted is not None and wanted != target.instance_uuid:
            LOG.warning("console refused: a token of %s used for %s", target.instance_uuid,
                        wanted)
            await send({"type": "websocket.close", "code": 1008})
            return
        if not await anyio.to_thread.run_sync(self.consoles.current, target):
            LOG.warning("console refused: instance %s moved since its token was made",
                        target.instance_uuid)
            await send({"type": "websocket.close", "code": 1008})
            return
        where = self.endpoint(target)
        await send({"type": "websocket.accept"})
        try:
            fd = _open_input(where.input_fifo)
        except OSError as exc:
            why = ("the instance is not running" if exc.errno == errno.ENXIO
                   else f"no console ({exc.strerror})")
            await send({"type": "websocket.close", "code": UNAVAILABLE, "reason": why})
            return
        LOG.info("console of %s on %s opened", target.instance_uuid, target.host)
        try:
            await self._bridge(target, where, fd, receive, send)
        finally:
            os.close(fd)
            LOG.info("console of %s closed", target.instance_uuid)

    async def _bridge(self, target: ConsoleTarget, where: ConsoleEndpoint, fd: int,
                      receive: Receive, send: Send) -> None:
        done = anyio.Event()
        closing: dict[str, Any] = {}

        async def output() -> None:
            try:
                log = open(where.output_log, "rb")  # noqa: SIM115 - closed below
            except OSError:
                log = None
            try:
                if log is not None:
                    log.seek(0, os.SEEK_END)
                checked = anyio.current_time()
                while not done.is_set():
                    chunk = log.read(READ_CHUNK) if log is not None else b""
                    if chunk:
                        await send({"type": "websocket.send", "bytes": chunk})
                        continue
                    if anyio.current_time() - checked >= self.recheck:
                        checked = anyio.current_time()
                        if not await anyio.to_thread.run_sync(self.consoles.current, target):
                            closing.update(code=MOVED, reason="the instance moved")
                            done.set()
                            return
                    with anyio.move_on_after(self.poll):
                        await done.wait()
            finally:
                if log is not None:
                    log.close()

        async def client() -> None:
            while not done.is_set():
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    done.set()
                    return
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode("utf-8")
                if data:
                    await anyio.to_thread.run_sync(_write_all, fd, data)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(output)
            tasks.start_soon(client)
            await done.wait()
            tasks.cancel_scope.cancel()
        if closing:
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "websocket.close", **closing})


def _open_input(path: str) -> int:
    """The console's input for writing; ENXIO when no process reads it (not running)."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
