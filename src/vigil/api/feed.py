"""The dashboard's change feed: one poller per API process, shared by every connected dashboard.

What it watches
---------------
Each poll reads, through the same domain classes the REST routes use (so the feed says what
the API says, and never imports the database layer):

========== ======================================================= ========================
section    what                                                    needs (oslo.policy)
========== ======================================================= ========================
services   every service with its state and its host's HA flags    vigil:services:list
hosts      HA facts of the hosts that have some, open recoveries   vigil:hosts:list
recoveries the newest :data:`RECOVERIES` recoveries (summaries)    vigil:recoveries:list
ha         open alerts and the monitor's leader                    vigil:recoveries:list
timelines  events and evacuations of open recoveries (and of       vigil:recoveries:show
           those seen open that closed since)
nodes      bare-metal nodes with their owner                       vigil:nodes:list
handovers  the last :data:`HANDOVERS` changes of a node's owner    vigil:nodes:list
ring       the ring's members, nodes owned and mapped              vigil:ring:show
========== ======================================================= ========================

Heartbeat times (``updated_at``, ``last_seen``) are left out on purpose: they change at every
report, so with them every service would "change" at every poll. The host view of the
dashboard reads them on demand from ``/v2.1/vigil/services``.

How it is sent
--------------
A poll produces a new immutable state (a dict per section); the difference with the previous
one is computed once, in the poll's worker thread, and serialized once per section. Each
connected stream gets only the sections its caller's policy allows, assembled from those
pre-serialized fragments: N dashboards cost one poll and one serialization, not N.

* ``hello``: the sections this caller gets, the row layouts, the intervals.
* ``snapshot``: the whole state (the first message after ``hello``, and again if the stream
  fell too far behind).
* ``change``: only what changed since the previous message: for keyed sections ``set`` (rows
  new or different) and ``del`` (keys gone); whole sections are resent when they differ.
* ``heartbeat``: every :attr:`Feed.heartbeat` seconds without a change, with the age of the
  last successful poll and its error if the last poll failed (the database is away): a
  dashboard can tell "nothing changed" from "nothing is known".
* ``bye``: the stream ends after ``max_age`` seconds; the dashboard reconnects, which
  authenticates its token again (a revoked Keystone token does not watch forever).

The poller runs only while someone is connected, every ``interval`` seconds (liveness is a
function of time: a service goes down without any write, so only a poll can see it), and at
once after a successful write through this API (:class:`PokeOnWrite`: an operator's action
shows without waiting for the interval; at most one poll per :data:`POKE_GAP` however many writes).
The last state is reused for a new stream's snapshot for :attr:`Feed.reuse` seconds after the
poller stopped, so a page reload waits for no poll. A slow reader's queue is bounded: when it
overflows it is emptied and the reader gets a fresh snapshot instead of the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.baremetal.nodes import NodesAPI
from vigil.baremetal.ring import RingAPI
from vigil.errors import Unavailable
from vigil.ha.hosts import HostsAPI
from vigil.ha.views import RecoveriesAPI
from vigil.registry import Registry, ServiceView

LOG = logging.getLogger(__name__)

SERVICE_COLUMNS = ("id", "uuid", "host", "binary", "topic", "zone", "status", "state",
                   "state_reason", "forced_down", "disabled_reason", "quarantined",
                   "maintenance")
NODE_COLUMNS = ("uuid", "name", "owner", "instance_uuid", "power_state", "maintenance")
RECOVERIES = 30       # recoveries kept in the feed, newest first (older: the REST API)
HANDOVERS = 100       # node hand-overs remembered by the feed
POKE_GAP = 0.25       # least time between two polls when writes through the API poke it

# Sections whose state is a mapping key -> row (sent as set/del), and how a row names its key.
KEYED: dict[str, Callable[[Any], Any]] = {
    "services": lambda row: row[0],
    "hosts": lambda v: v["host"],
    "recoveries": lambda v: v["id"],
    "timelines": lambda v: v["recovery_id"],
    "nodes": lambda row: row[0],
}
# Sections sent whole when they differ.
WHOLE = ("ha", "ring", "handovers")
SECTIONS = ("services", "hosts", "recoveries", "ha", "timelines", "nodes", "handovers", "ring")

# The read rules of the REST resources each section mirrors: a caller gets a section only if
# the API would answer it the same data.
SECTION_RULES: dict[str, tuple[str, ...]] = {
    "services": ("vigil:services:list",),
    "hosts": ("vigil:hosts:list",),
    "recoveries": ("vigil:recoveries:list",),
    "ha": ("vigil:recoveries:list",),
    "timelines": ("vigil:recoveries:show",),
    "nodes": ("vigil:nodes:list",),
    "handovers": ("vigil:nodes:list",),
    "ring": ("vigil:ring:show",),
}

State = dict[str, Any]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def service_row(v: ServiceView) -> tuple[Any, ...]:
    r = v.record
    return (r.id, r.uuid, r.host, r.binary, r.topic, v.zone, v.status, v.state.value,
            v.state_reason, r.forced_down, r.disabled_reason, v.quarantined, v.maintenance)


def _signature(summary: Mapping[str, Any]) -> tuple[Any, ...]:
    return (summary["phase"], summary["status"], summary.get("updated_at"),
            summary.get("finished_at"), summary["evacuations_total"],
            tuple(sorted(summary["evacuations_by_status"].items())))


class FleetReader:
    """One poll of everything the dashboard shows (called from one thread at a time).

    Stateful in two small ways: it remembers the timelines of recoveries it saw open (to
    refresh one only when its summary changes once it is closed), and the last owners of the
    bare-metal nodes (to record hand-overs).
    """

    def __init__(self, registry: Registry, *, recoveries: int = RECOVERIES,
                 handovers: int = HANDOVERS) -> None:
        self.registry = registry
        self.recoveries_limit = recoveries
        self._timelines: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self._owners: dict[str, str | None] | None = None
        self._handovers: deque[dict[str, Any]] = deque(maxlen=handovers)
        self.costs: dict[str, float] = {}

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.costs[name] = time.perf_counter() - t0

    def read(self) -> State:
        engine, group = self.registry.engine, self.registry.group
        services = self._timed("services", lambda: {
            v.record.id: service_row(v) for v in self.registry.list()})
        hosts = self._timed("hosts", lambda: {h["host"]: h for h in HostsAPI(engine)
                                              .with_facts()})
        recs = RecoveriesAPI(engine)
        summaries = self._timed("recoveries", lambda: recs.list_recoveries(
            limit=self.recoveries_limit))
        ha = self._timed("ha", lambda: {
            "alerts": recs.alerts(),
            "leader": (lambda lead: None if lead is None else
                       {"holder": lead["holder"], "epoch": lead["epoch"]})(recs.leader())})
        timelines = self._timed("timelines", lambda: self._read_timelines(recs, summaries))
        nodes = self._timed("nodes", lambda: {
            v.node.uuid: (v.node.uuid, v.node.name, v.owner, v.node.instance_uuid,
                          v.node.power_state, v.node.maintenance)
            for v in NodesAPI(engine).list()})
        self._note_handovers(nodes)
        ring: dict[str, Any] = {"members": [], "nodes": 0, "unmanaged": 0}
        if nodes:
            ring = self._timed("ring", lambda: RingAPI(engine, group).show().to_dict())
        return {"services": services, "hosts": hosts,
                "recoveries": {r["id"]: r for r in summaries}, "ha": ha,
                "timelines": timelines, "nodes": nodes, "handovers": list(self._handovers),
                "ring": ring}

    def _read_timelines(self, recs: RecoveriesAPI,
                        summaries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        kept: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        for s in summaries:
            rid, sig = s["id"], _signature(s)
            cached = self._timelines.get(rid)
            if s["open"] or (cached is not None and cached[0] != sig):
                # Open: events may be added without the summary changing (an operator's
                # release). Closed since last seen: one last read for its final events.
                full = recs.get(rid)
                kept[rid] = (sig, {"recovery_id": rid, "events": full["events"],
                                   "evacuations": full["evacuations"]})
            elif cached is not None:
                kept[rid] = cached
        self._timelines = kept
        return {rid: value for rid, (_, value) in kept.items()}

    def _note_handovers(self, nodes: Mapping[str, tuple[Any, ...]]) -> None:
        owners = {uuid: row[2] for uuid, row in nodes.items()}
        if self._owners is not None:
            at = utc_now()
            for uuid, owner in owners.items():
                before = self._owners.get(uuid)
                if uuid in self._owners and before != owner:
                    self._handovers.append({"at": at, "node": uuid,
                                            "name": nodes[uuid][1], "from": before,
                                            "to": owner})
        self._owners = owners


def diff(old: State | None, new: State) -> dict[str, Any]:
    """What changed from ``old`` to ``new``, per section (sections without change absent)."""
    out: dict[str, Any] = {}
    for name in SECTIONS:
        if name not in new:
            continue
        before = old.get(name) if old is not None else None
        after = new[name]
        if name in KEYED:
            before = before or {}
            changed = [row for key, row in after.items() if before.get(key) != row]
            gone = [key for key in before if key not in after]
            if changed or gone:
                out[name] = {"set": changed, "del": gone}
        elif before != after:
            out[name] = after
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def sse(event: str, data: str, seq: int | None = None) -> bytes:
    """One server-sent event. ``data`` is one line of JSON (json.dumps never breaks lines)."""
    head = f"event: {event}\n" + (f"id: {seq}\n" if seq is not None else "")
    return f"{head}data: {data}\n\n".encode()


def _snapshot_value(name: str, value: Any) -> Any:
    if name == "services":
        return {"columns": SERVICE_COLUMNS, "rows": list(value.values())}
    if name == "nodes":
        return {"columns": NODE_COLUMNS, "rows": list(value.values())}
    if name in KEYED:
        return list(value.values())
    return value


@dataclass
class Published:
    """One poll's outcome as streams need it: the state, and its change pre-serialized."""

    seq: int
    at: str
    state: State
    change: dict[str, str]                       # section -> JSON of its change
    _snapshot: dict[str, str] | None = field(default=None, repr=False)

    def snapshot_fragments(self) -> dict[str, str]:
        if self._snapshot is None:
            self._snapshot = {name: _dumps(_snapshot_value(name, value))
                              for name, value in self.state.items()}
        return self._snapshot


def assemble(kind: str, pub: Published, fragments: Mapping[str, str],
             sections: frozenset[str]) -> bytes | None:
    """The message of ``kind`` (snapshot or change) for a caller allowed ``sections``;
    None when none of its sections changed."""
    parts = [f'"{name}":{fragments[name]}' for name in SECTIONS
             if name in sections and name in fragments]
    if kind == "change" and not parts:
        return None
    key = "sections" if kind == "snapshot" else "changes"
    body = f'{{"seq":{pub.seq},"at":"{pub.at}","{key}":{{{",".join(parts)}}}}}'
    return sse(kind, body, pub.seq)


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
        return new, change, {name: _dumps(value) for name, value in change.items()}

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
                yield sse("bye", _dumps({"reason": "max_age", "reconnect": True}))
                return
            item: Item | None = None
            with anyio.move_on_after(min(self.heartbeat, left)):
                item = await sub.queue.get()
            if item is None:
                yield sse("heartbeat", _dumps(self.status()))
            elif isinstance(item, _Close):
                yield sse("bye", _dumps({"reason": "shutdown", "reconnect": True}))
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
                    yield sse("heartbeat", _dumps(self.status()))

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


def feed_for(registry: Registry, interval: float) -> Feed:
    return Feed(FleetReader(registry).read, interval=interval)
