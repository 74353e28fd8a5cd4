"""The feed's event source: the shared poller on the API's event loop, its subscribers (one per
connected dashboard, each with a bounded queue), and the middleware that pokes it after a
write through the API.

Apart from the reader and the wire because this is where the concurrency is (the loop, a
worker thread, pokes from any thread): what is read and what is sent are the other modules'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api.feed.messages import Published, assemble, diff, dumps, sse, utc_now
from vigil.api.feed.sections import State
from vigil.errors import Unavailable

LOG = logging.getLogger(__name__)

POKE_GAP = 0.25       # least time between two polls when writes through the API poke it


class _Close:
    """Put in a subscriber's queue: end the stream."""


class _Resync:
    """Put in a subscriber's queue: send a fresh snapshot (it fell behind)."""


CLOSE, RESYNC = _Close(), _Resync()
Item = Published | _Close | _Resync


@dataclass(eq=False)
class Subscriber:
    sections: frozenset[str]
    queue: asyncio.Queue[Item]
    active: bool = False          # has been given a snapshot (then receives changes)


class Feed:
    """The shared poller and its subscribers, on the API's event loop.

    ``read`` is called in a worker thread (it blocks on the database); everything else runs
    on the loop, except :meth:`close`, which may be called from any thread.
    """

    def __init__(self, read: Callable[[], State], *, interval: float = 1.0,
                 heartbeat: float = 2.0, max_age: float = 300.0, queue_size: int = 32,
                 reuse: float = 30.0) -> None:
        self._read = read
        self.reuse = reuse
        self.interval = interval
        self.heartbeat = heartbeat
        self.max_age = max_age
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._current: Published | None = None
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self.last_ok: float | None = None       # monotonic time of the last successful poll
        self.last_ok_at: str | None = None
        self.last_error: str | None = None
        self.last_poll_ms: float | None = None
        self.polls = 0

    # -- the poller ---------------------------------------------------------------------------
    def _poll_once(self) -> tuple[State, dict[str, Any], dict[str, str]]:
        """In a worker thread: read, diff against the current state, serialize the change."""
        new = self._read()
        old = self._current.state if self._current is not None else None
        change = diff(old, new)
        return new, change, {name: dumps(value) for name, value in change.items()}

    async def _run(self) -> None:
        assert self._wake is not None
        while self._subscribers and not self._closed:
            started = time.monotonic()
            self._wake.clear()  # a poke from now on asks for the poll after this one
            try:
                new, change, fragments = await anyio.to_thread.run_sync(self._poll_once)
            except Unavailable as exc:
                self.last_error = str(exc)
            except Exception as exc:  # the feed must outlive any one failed poll
                LOG.exception("dashboard feed: poll failed")
                self.last_error = f"poll failed: {type(exc).__name__}"
            else:
                self.last_error = None
                self.last_ok, self.last_ok_at = time.monotonic(), utc_now()
                self._publish(new, change, fragments)
            self.polls += 1
            elapsed = time.monotonic() - started
            self.last_poll_ms = elapsed * 1000
            # A poll slower than the interval still leaves the loop a tenth of it to breathe.
            with anyio.move_on_after(max(self.interval - elapsed, self.interval / 10)):
                await self._wake.wait()
            # Poked (a write through this API): poll now, but at most every POKE_GAP seconds
            # however many writes arrive.
            gap = min(self.interval, POKE_GAP) - (time.monotonic() - started)
            if gap > 0 and not self._closed:
                await anyio.sleep(gap)
        self._task = None

    def poke(self) -> None:
        """Something changed through this API: poll without waiting for the interval, so an
        operator's action shows at once. Safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    def _publish(self, new: State, change: dict[str, Any], fragments: dict[str, str]) -> None:
        if change or self._current is None:
            self._seq += 1
            self._current = Published(self._seq, utc_now(), new, fragments)
            if change:
                for sub in self._subscribers:
                    if sub.active:
                        self._put(sub, self._current)
        for sub in self._subscribers:
            if not sub.active:  # waiting for its first snapshot
                sub.active = True
                self._put(sub, self._current)

    def _put(self, sub: Subscriber, item: Item) -> None:
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A reader this far behind gets the present, not the backlog.
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(RESYNC if isinstance(item, Published) else item)

    @property
    def fresh(self) -> bool:
        """The current state may be a new stream's snapshot at once: the poller runs, or it
        stopped (nobody watched) less than :attr:`reuse` seconds ago. A page reload or a
        reconnection then waits for no poll; the next poll's change follows within one
        interval (a snapshot carries its own time, ``at``)."""
        if self._current is None:
            return False
        return self._task is not None or (
            self.last_ok is not None and time.monotonic() - self.last_ok < self.reuse)

    # -- subscribers --------------------------------------------------------------------------
    def subscribe(self, sections: frozenset[str]) -> Subscriber:
        """On the loop: a new stream. Its first item is a snapshot (now, if the poller is
        running, else after the next poll)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first stream (or the app moved to a new loop: tests)
            self._loop, self._wake, self._task = loop, asyncio.Event(), None
            self._subscribers.clear()
        sub = Subscriber(sections, asyncio.Queue(self.queue_size))
        if self._closed:
            sub.queue.put_nowait(CLOSE)
            return sub
        if self.fresh:
            assert self._current is not None
            sub.active = True
            sub.queue.put_nowait(self._current)
        self._subscribers.add(sub)
        if self._task is None:
            self._task = loop.create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def status(self) -> dict[str, Any]:
        age = None if self.last_ok is None else round(time.monotonic() - self.last_ok, 3)
        return {"seq": self._seq, "polled_at": self.last_ok_at, "age": age,
                "error": self.last_error,
                "poll_ms": None if self.last_poll_ms is None else round(self.last_poll_ms, 1)}

    async def events(self, sub: Subscriber) -> AsyncIterator[bytes]:
        """The stream's bytes after ``hello``: snapshot, changes, heartbeats, then ``bye``."""
        deadline = time.monotonic() + self.max_age
        sent: Published | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                yield sse("bye", dumps({"reason": "max_age", "reconnect": True}))
                return
            item: Item | None = None
            with anyio.move_on_after(min(self.heartbeat, left)):
                item = await sub.queue.get()
            if item is None:
                yield sse("heartbeat", dumps(self.status()))
            elif isinstance(item, _Close):
                yield sse("bye", dumps({"reason": "shutdown", "reconnect": True}))
                return
            elif isinstance(item, _Resync) or sent is None:
                pub = item if isinstance(item, Published) else self._current
                if pub is None:
                    continue
                fragments = await anyio.to_thread.run_sync(pub.snapshot_fragments)
                snap = assemble("snapshot", pub, fragments, sub.sections)
                assert snap is not None
                sent = pub
                yield snap
            elif isinstance(item, Published) and item.seq > sent.seq:
                message = assemble("change", item, item.change, sub.sections)
                sent = item
                if message is not None:
                    yield message
                else:  # nothing this caller may see changed: still a sign of life
                    yield sse("heartbeat", dumps(self.status()))

    def close(self) -> None:
        """End every stream (the API is stopping). Safe from any thread."""
        self._closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def in_loop() -> None:
            for sub in list(self._subscribers):
                self._put(sub, CLOSE)
            if self._wake is not None:
                self._wake.set()

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(in_loop)


class PokeOnWrite:
    """ASGI middleware: a successful PUT, POST or DELETE through this API pokes the feed (the
    write is committed when the answer starts). Changes made elsewhere (agents' reports, the
    HA monitor, another API process) are seen at the next poll."""

    def __init__(self, app: ASGIApp, feed: Feed) -> None:
        self.app = app
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("PUT", "POST", "DELETE"):
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                self.feed.poke()
            await send(message)

        await self.app(scope, receive, watch)
