"""Service registry operations: what the CLI and the REST API both call.

Every operation validates all of its input before writing anything, so bad input changes
nothing. Deletion asks registered guards first (e.g. "this compute still hosts instances").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from vigil import formats, gcpause, ids
from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db
from vigil.errors import InvalidInput, Unavailable
from vigil.names import COMPUTE_TOPIC
from vigil.objects.ha import HostRecord
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup

MAX_REASON = 255
INTERNAL_ZONE = "internal"  # the zone of every service but the computes, as in Nova

DeleteGuard = Callable[[ServiceRecord], None]


@dataclass(slots=True)
class ServiceView:
    """A service with its computed state, as operators see it. ``quarantined`` and
    ``maintenance`` are its host's HA facts (compute services only)."""

    record: ServiceRecord
    state: State
    zone: str
    quarantined: bool = False
    maintenance: bool = False
    # Its host's own liveness (the supervisor, group ``host``), beside the service's: None if
    # the host never had a supervisor. Compute services only.
    host_liveness: State | None = None

    @property
    def status(self) -> str:
        return "disabled" if self.record.disabled else "enabled"

    @property
    def state_reason(self) -> str | None:
        """Why a service is down when the reason is known: an operator forced it, or it left
        its group cleanly (a graceful stop, not a failure)."""
        if self.state is not State.DOWN:
            return None
        if self.record.forced_down:
            return "forced_down"
        if self.record.left_at is not None:
            return "left"
        return None

    @property
    def host_state(self) -> str:
        """``quarantined`` / ``maintenance`` (both, comma-separated) or empty."""
        if not (self.quarantined or self.maintenance):
            return ""  # nearly every host: no join per row of a 10,000-service table
        return ", ".join(n for n, on in (("quarantined", self.quarantined),
                                         ("maintenance", self.maintenance)) if on)

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "uuid": r.uuid,
            "binary": r.binary,
            "host": r.host,
            "zone": self.zone,
            "status": self.status,
            "state": self.state.value,
            "state_reason": self.state_reason,
            "updated_at": formats.timestamp(r.updated_at),
            "disabled_reason": r.disabled_reason,
            "forced_down": r.forced_down,
            "quarantined": self.quarantined,
            "maintenance": self.maintenance,
            "host_liveness": self.host_liveness.value if self.host_liveness else None,
        }


def host_liveness(engine: Engine, group: ServiceGroup) -> dict[str, State]:
    """Each supervised host's own liveness: its supervisor's state (group ``host``, one
    snapshot). A host absent from the answer never had a supervisor."""
    return {m.host: m.state for m in group.members("host")}


def parse_ident(text: str) -> int | str:
    """A service's integer id or UUID (:func:`vigil.ids.parse_id_or_uuid`)."""
    return ids.parse_id_or_uuid(text, "service")


class ServiceNotifier(Protocol):
    """What is told of each change (:class:`vigil.notifications.Notifier`)."""

    def service_changed(self, event_type: str, record: ServiceRecord, zone: str | None,
                        changes: dict[str, Any]) -> None: ...


class Registry:
    def __init__(self, engine: Engine, group: ServiceGroup, *, default_zone: str = "nova") -> None:
        self.engine = engine
        self.group = group
        self.default_zone = default_zone
        self._delete_guards: list[DeleteGuard] = []
        self._zone_source: Callable[[], Mapping[str, str]] | None = None
        self._notifier: ServiceNotifier | None = None

    def set_notifier(self, notifier: ServiceNotifier) -> None:
        """Told of every change made here (vigil.notifications: notification and audit)."""
        self._notifier = notifier

    def add_delete_guard(self, guard: DeleteGuard) -> None:
        """``guard(record)`` raises Conflict to refuse a deletion."""
        self._delete_guards.append(guard)

    def set_zone_source(self, source: Callable[[], Mapping[str, str]]) -> None:
        """``source()`` maps compute hosts to the zone their agents report (each agent reads
        its own ``[compute] availability_zone``, which this process cannot see)."""
        self._zone_source = source

    def zone_of(self, record: ServiceRecord, zones: Mapping[str, str] | None = None) -> str:
        if record.topic != COMPUTE_TOPIC:
            return INTERNAL_ZONE
        return (zones or {}).get(record.host, self.default_zone)

    def _views(self, records: list[ServiceRecord], states: list[State]) -> list[ServiceView]:
        """A view of each record with its state (:meth:`ServiceGroup.member_states`)."""
        zones: Mapping[str, str] = {}
        ha: Mapping[str, HostRecord] = {}
        hosts: Mapping[str, State] = {}
        if any(r.topic == COMPUTE_TOPIC for r in records):
            if self._zone_source is not None:
                zones = self._zone_source()  # one statement for the whole list
            ha = hosts_db.hosts(self.engine)  # one more: the hosts with HA facts
            hosts = host_liveness(self.engine, self.group)
        out: list[ServiceView] = []
        # Once per service of a list: :meth:`zone_of` inlined (a method call per service was a
        # sixth of this loop under cProfile) and every lookup bound to a local first.
        append, default_zone = out.append, self.default_zone
        zone_get, ha_get, host_get = zones.get, ha.get, hosts.get
        for s, state in zip(records, states, strict=True):
            if s.topic != COMPUTE_TOPIC:
                append(ServiceView(s, state, INTERNAL_ZONE))
                continue
            host = s.host
            facts = ha_get(host)
            if facts is None:
                append(ServiceView(s, state, zone_get(host, default_zone), False, False,
                                   host_get(host)))
            else:
                append(ServiceView(s, state, zone_get(host, default_zone), facts.quarantined,
                                   facts.maintenance, host_get(host)))
        return out

    def list(self, *, host: str | None = None, binary: str | None = None) -> list[ServiceView]:
        """Services matching exact filters, with states: O(1) queries for any number.

        Three objects or more per service, all alive until the list is returned: the collector
        waits (:mod:`vigil.gcpause`)."""
        with gcpause.paused():
            return self._views(*self.group.member_states(host=host, binary=binary))

    def get(self, ident: int | str) -> ServiceView:
        record = services_db.service_get(self.engine, ident)
        return self._views(*self.group.member_states(ids=[record.id]))[0]

    def find(self, host: str, binary: str) -> ServiceRecord:
        return services_db.service_get_by_host_binary(self.engine, host, binary)

    def update(
        self,
        record: ServiceRecord,
        *,
        enabled: bool | None = None,
        disabled_reason: str | None = None,
        forced_down: bool | None = None,
    ) -> ServiceView:
        """Enable/disable (with a reason) and force down/up. Validates before writing."""
        values = self.validate_update(enabled=enabled, disabled_reason=disabled_reason,
                                      forced_down=forced_down)
        services_db.service_update(self.engine, record.id, values)
        view = self.get(record.id)
        if self._notifier is not None:
            self._notifier.service_changed("service.update", view.record, view.zone, values)
        return view

    @staticmethod
    def validate_update(
        *, enabled: bool | None, disabled_reason: str | None, forced_down: bool | None
    ) -> dict[str, Any]:
        if enabled is None and forced_down is None and disabled_reason is None:
            raise InvalidInput("nothing to change: give enable/disable and/or force down/up")
        if disabled_reason is not None:
            if enabled is not False:
                raise InvalidInput("a disabled reason is only allowed when disabling")
            disabled_reason = disabled_reason.strip()
            if not disabled_reason or len(disabled_reason) > MAX_REASON:
                raise InvalidInput(f"the disabled reason must be 1 to {MAX_REASON} characters")
        values: dict[str, Any] = {}
        if enabled is not None:
            values["disabled"] = not enabled
            values["disabled_reason"] = None if enabled else disabled_reason
        if forced_down is not None:
            values["forced_down"] = forced_down
        return values

    def delete(self, ident: int | str) -> ServiceRecord:
        """Soft-delete a service and remove it from the liveness backend at once."""
        record = services_db.service_get(self.engine, ident)
        for guard in self._delete_guards:
            guard(record)
        services_db.service_soft_delete(self.engine, record.id)
        if self._notifier is not None:
            self._notifier.service_changed("service.delete", record, self.zone_of(record), {})
        # If the backend is away, its record expires by itself after service_down_time.
        with contextlib.suppress(Unavailable):
            self.group.leave(record.host, record.topic)
        return record
