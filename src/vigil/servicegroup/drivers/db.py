"""The ``db`` driver: the services table's heartbeat is the only liveness source.

The heartbeat itself is written by the conductor from the agents' RPC state reports (coalesced,
with the database clock), so join/heartbeat/leave have nothing of their own to do here: the
runner's report and the conductor's ``record_leave`` are the db driver's writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil.db.api import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver, LivenessView
from vigil.servicegroup.liveness import Heartbeat, State, heartbeat_state, heartbeat_states


def record_states(
    records: Sequence[ServiceRecord], view: LivenessView
) -> dict[int, State]:
    """RPC liveness of many rows, by id (forced_down excluded)."""
    return heartbeat_states(
        ((r.id, r.last_seen_up or r.created_at, r.left_at) for r in records),
        view.now, view.down_after, view.reports_healthy_since,
    )


def record_state(record: ServiceRecord, view: LivenessView) -> State:
    """RPC liveness of one row (forced_down excluded: that is the facade's policy)."""
    hb = Heartbeat(record.last_seen_up, record.created_at, record.left_at)
    return heartbeat_state(hb, view.now, view.down_after, view.reports_healthy_since)


class DbDriver(Driver):
    name = "db"
    # The row's heartbeat is all it knows: the facade's RPC liveness already is its verdict.
    has_own_verdict = False
    # A stale row proves only that reports stopped arriving; whether the host is dead is
    # inferred by the reader, hence proves_death=False.
    capabilities = Capabilities(proves_death=False, server_side_expiry=False,
                                external_server=False)

    def join(self, member: str, group: str) -> None:
        return None

    def heartbeat(self, member: str, group: str) -> None:
        return None

    def leave(self, member: str, group: str) -> None:
        return None

    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        return record_states(services, view)
