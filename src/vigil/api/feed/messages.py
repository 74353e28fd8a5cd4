"""The feed on the wire: the change between two polls, and the server-sent events that carry
it, each section serialized once per poll and assembled per caller from those fragments.

Apart from the poller because this is pure (state in, bytes out: the benchmark and the tests
call it without a loop), and from the reader because it never touches the domain.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.api.feed.sections import KEYED, NODE_COLUMNS, SECTIONS, SERVICE_COLUMNS, State


def utc_now() -> str:
    """A message's time (``at``), as the dashboard reads it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def dumps(value: Any) -> str:
    """Compact JSON on one line (what an event's ``data`` must be)."""
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
            self._snapshot = {name: dumps(_snapshot_value(name, value))
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
