"""The ``db`` driver: the services table's heartbeat is the only liveness source.

The heartbeat itself is written by the conductor from the agents' RPC state reports (coalesced,
with the database clock), so join/heartbeat/leave have nothing of their own to do here: the
runner's report and the conductor's ``record_leave`` are the db driver's writes. Its verdict
is the facade's own RPC-liveness rule (:func:`vigil.objects.liveness.record_states`).
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil.objects.liveness import LivenessTiming, LivenessView, State, record_states
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.base import Capabilities, Driver
from vigil.servicegroup.drivers.options import DbOptions


class DbDriver(Driver):
    name = "db"
    # The row's heartbeat is all it knows: the facade's RPC liveness already is its verdict.
    has_own_verdict = False
    # A stale row proves only that reports stopped arriving; whether the host is dead is
    # inferred by the reader, hence proves_death=False.
    capabilities = Capabilities(proves_death=False, server_side_expiry=False,
                                external_server=False)

    def __init__(self, options: DbOptions | None = None,
                 timing: LivenessTiming | None = None) -> None:
        """Nothing to configure: the services table is the backend, and the facade applies
        the timing to it (the arguments only keep every driver's one constructor shape)."""

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
