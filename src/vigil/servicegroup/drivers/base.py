"""The liveness driver interface.

A driver answers one question for the reader -- is this member alive according to *my* backend?
-- and keeps one member alive on the agent side (join / heartbeat / leave). Policy (forced_down,
combining with the services table's heartbeat) lives in :mod:`vigil.servicegroup.api`, not here.

Contract every driver honours (checked by tests/contract):
- ``get_states`` answers for a whole batch in O(1) backend round trips;
- a backend error never yields DOWN: the driver raises BackendUnavailable (the facade turns it
  into UNKNOWN for the whole batch) or returns UNKNOWN for the members it could not read;
- ``leave`` removes the member at once, it does not wait for expiry;
- ``heartbeat`` after the backend lost the member (restart, expired session) re-creates it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.drivers.options import DriverOptions


@dataclass(frozen=True)
class Capabilities:
    """What a driver's verdict can prove (the HA monitor reads these before fencing).

    proves_death: the backend itself ends a dead member's session (ZooKeeper session expiry,
        etcd lease expiry) independently of any reader's clock; a DOWN is strong evidence.
    server_side_expiry: the backend expires records by its own TTL (memcached, Redis, etcd).
    external_server: the driver talks to a server besides the database.
    """

    proves_death: bool
    server_side_expiry: bool
    external_server: bool


def member_key(group: str, member: str) -> str:
    """The backend key of a member: ``<topic>:<host>`` (as Nova's memcached driver did)."""
    return f"{group}:{member}"


class Driver(abc.ABC):
    """A liveness backend."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # False for a driver whose verdict is the services row itself (db): the facade then skips
    # asking it, instead of computing the same fact twice per service.
    has_own_verdict: ClassVar[bool] = True

    def __init__(self, options: DriverOptions, timing: LivenessTiming) -> None:  # noqa: B027
        """Every driver is built the same way, from its typed options and the liveness timing
        (:func:`vigil.servicegroup.drivers.load`); each narrows ``options`` to its own type."""

    # -- agent side ---------------------------------------------------------------------------
    @abc.abstractmethod
    def join(self, member: str, group: str) -> None:
        """Make ``member`` of ``group`` alive in the backend. May raise BackendUnavailable."""

    @abc.abstractmethod
    def heartbeat(self, member: str, group: str) -> None:
        """Refresh the member (called every report_interval); re-creates it if it was lost."""

    @abc.abstractmethod
    def leave(self, member: str, group: str) -> None:
        """Remove the member from the backend now."""

    # -- reader side --------------------------------------------------------------------------
    @abc.abstractmethod
    def get_states(
        self, services: Sequence[ServiceRecord], view: LivenessView
    ) -> dict[int, State]:
        """The backend's verdict for each service id. Raise BackendUnavailable if unreadable."""

    def session(self) -> SessionState:
        """This process's session with the backend right now (what the caller may do in each
        state: :class:`~vigil.objects.liveness.SessionState`)."""
        return SessionState.CONNECTED

    def close(self) -> None:  # noqa: B027 - optional hook, most drivers have nothing to close
        """Release connections and sessions, without leaving explicitly.

        What happens to this client's members then depends on the backend: keys with a TTL
        (mc, etcd, redis) stay until they expire; ZooKeeper's ephemeral znodes belong to the
        session, so closing it removes them at once (as a leave would).
        """
