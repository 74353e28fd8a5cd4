"""One poll of everything the dashboard shows, through the same domain services the REST routes
use (so the feed says what the API says, and never imports the database layer).

Apart from the wire and the poller because it is the only part that blocks (it runs in a
worker thread) and the only one that knows the domain; the rest sees a :data:`State`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from vigil.api.feed.messages import utc_now
from vigil.api.feed.sections import HANDOVERS, RECOVERIES, State
from vigil.baremetal.nodes import NodesAPI
from vigil.baremetal.ring import RingAPI
from vigil.ha.hosts import HostsAPI
from vigil.ha.views import RecoveriesAPI
from vigil.registry import Registry, ServiceView


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
