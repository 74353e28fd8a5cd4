"""The answer of the liveness facade: the members of a group, each with its states.

What every reader asked for, one way or another: the scheduler (every compute host with its
state, and whether a source host really reports), the HA monitor (whether each host reports,
whatever an operator forced), the registry (each service with its state), the ring (each host's
state and version), an evacuation (whether the source reports). Each read a snapshot itself and
asked the facade for states once or twice; now one call answers, with one backend round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord


@dataclass(slots=True)
class Member:
    """One service with the two answers a reader may need; treated as read-only.

    Not ``frozen``, like :class:`~vigil.objects.services.ServiceRecord`: one is built per
    service of every list, and a frozen dataclass's __init__ cost three times as much
    (issue 12). It was never hashable anyway (its record is not).

    state: the policy's answer (an operator's ``forced_down`` makes it DOWN). What to show
        and what to schedule on: place work only on UP.
    reporting: liveness alone, ignoring ``forced_down``: whether the service really reports.
        What the HA monitor watches (a host it forced down must be seen coming back) and what
        an evacuation checks (only a source that is DOWN here may be evacuated; UNKNOWN is
        never evidence of death).
    """

    record: ServiceRecord
    state: State
    reporting: State

    @property
    def host(self) -> str:
        return self.record.host


@dataclass(frozen=True)
class Membership:
    """Members in the order the database listed them (by id), read with one clock."""

    members: tuple[Member, ...]

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __bool__(self) -> bool:
        return bool(self.members)

    def __getitem__(self, index: int) -> Member:
        return self.members[index]

    @property
    def records(self) -> list[ServiceRecord]:
        return [m.record for m in self.members]

    def by_host(self) -> dict[str, Member]:
        """Members by host: meaningful for one group (a host has one service per topic)."""
        return {m.host: m for m in self.members}

    def by_id(self) -> dict[int, Member]:
        return {m.record.id: m for m in self.members}

    def up_hosts(self) -> list[str]:
        """Hosts whose state is UP, in order."""
        return [m.host for m in self.members if m.state is State.UP]
