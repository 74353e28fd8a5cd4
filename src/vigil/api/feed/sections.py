"""What the dashboard's feed carries: its sections, how a keyed section names its rows, the
row layouts, and the policy rule each section needs.

Apart from the reader and the wire because all three (and the dashboard route's ``hello``)
must agree on these names; a section added here is read, diffed, sent and authorized.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SERVICE_COLUMNS = ("id", "uuid", "host", "binary", "topic", "zone", "status", "state",
                   "state_reason", "forced_down", "disabled_reason", "quarantined",
                   "maintenance")
NODE_COLUMNS = ("uuid", "name", "owner", "instance_uuid", "power_state", "maintenance")
RECOVERIES = 30       # recoveries kept in the feed, newest first (older: the REST API)
HANDOVERS = 100       # node hand-overs remembered by the feed
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

# One poll's state: section -> its value (a mapping key -> row for the keyed ones).
State = dict[str, Any]
