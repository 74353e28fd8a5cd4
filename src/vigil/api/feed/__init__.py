"""The dashboard's change feed: one poller per API process, shared by every connected dashboard.

Four modules, one concept each: :mod:`.sections` (what the feed carries and who may see it),
:mod:`.reader` (one poll of the fleet through the domain services), :mod:`.messages` (the
change between two polls and its server-sent events, serialized once for every stream) and
:mod:`.stream` (the shared poller, its subscribers and the write pokes). This package's names
are the feed's public surface (the dashboard route, the app factory, the tests, the benchmark).

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
shows without waiting for the interval; at most one poll per `stream.POKE_GAP` however many writes).
The last state is reused for a new stream's snapshot for :attr:`Feed.reuse` seconds after the
poller stopped, so a page reload waits for no poll. A slow reader's queue is bounded: when it
overflows it is emptied and the reader gets a fresh snapshot instead of the backlog.
"""

from __future__ import annotations

from vigil.api.feed.messages import Published, assemble, diff, dumps, sse
from vigil.api.feed.reader import FleetReader
from vigil.api.feed.sections import NODE_COLUMNS, SECTION_RULES, SECTIONS, SERVICE_COLUMNS
from vigil.api.feed.stream import Feed, PokeOnWrite
from vigil.registry import Registry

__all__ = ["NODE_COLUMNS", "SECTIONS", "SECTION_RULES", "SERVICE_COLUMNS", "Feed",
           "FleetReader", "PokeOnWrite", "Published", "assemble", "diff", "dumps",
           "feed_for", "sse"]


def feed_for(registry: Registry, interval: float) -> Feed:
    """The API's feed: one :class:`Feed` polling a :class:`FleetReader` over ``registry``."""
    return Feed(FleetReader(registry).read, interval=interval)
