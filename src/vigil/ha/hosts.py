"""Compute hosts as the HA plane sees them, and an operator's two levers on them.

What ``vigil host list|show|maintenance|release`` and ``/v2.1/vigil/hosts`` both call:

- **maintenance** on/off, with a reason: the HA monitor opens no recovery for a host in
  maintenance, and cancels one it opened that has not fenced yet (Masakari's
  ``on_maintenance``). For planned work: upgrading the agent, rebooting the machine.
- **release** of a quarantine, with a reason (required: it is the operator overriding the
  monitor). The host may start instances again at its agent's next reconciliation; the
  recovery that held the quarantine requests no further evacuation (what it did not hand to
  the scheduler yet stays on the host), and if it had not fenced the host yet, it stands
  down. Release is always safe for exactly-once: an instance already handed to an evacuation
  has a new ownership generation the host can never start.

Every change records who made it (the API's user and project, or the local operator) in the
hosts table, and a release is added to the open recovery's timeline.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from vigil import formats
from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import Conflict, InvalidInput, NotFound
from vigil.names import COMPUTE_TOPIC
from vigil.objects.ha import HostRecord, RecoveryRecord

MAX_REASON = 255


def clean_reason(reason: str | None, *, required: bool) -> str | None:
    """A reason an operator typed: stripped, 1..255 printable characters."""
    if reason is None or not reason.strip():
        if required:
            raise InvalidInput("a reason is required")
        return None
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason must be 1 to {MAX_REASON} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in reason):
        raise InvalidInput("the reason must not contain control characters")
    return reason


def view(rec: HostRecord, recovery: RecoveryRecord | None = None) -> dict[str, Any]:
    """A host's HA facts as the CLI and the API show them."""
    return {
        "host": rec.host,
        "quarantined": rec.quarantined,
        "quarantined_at": formats.timestamp(rec.quarantined_at),
        "quarantine_reason": rec.quarantine_reason,
        "quarantine_recovery_id": rec.quarantine_recovery_id if rec.quarantined else None,
        "quarantine_acknowledged": rec.quarantine_acked,
        "released_at": formats.timestamp(rec.released_at),
        "released_by": rec.released_by,
        "release_reason": rec.release_reason,
        "maintenance": rec.maintenance,
        "maintenance_reason": rec.maintenance_reason,
        "maintenance_since": formats.timestamp(rec.maintenance_since),
        "maintenance_by": rec.maintenance_by,
        "open_recovery_id": recovery.id if recovery is not None else None,
        "open_recovery_phase": recovery.phase if recovery is not None else None,
    }


class HostsAPI:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _known(self, host: str) -> None:
        host = host.strip()
        if not host or not services_db.snapshot(self.engine, host=host,
                                                topic=COMPUTE_TOPIC).services:
            raise NotFound(f"Compute host {host} could not be found.")

    def _open(self) -> dict[str, RecoveryRecord]:
        return {r.host: r for r in recoveries_db.recoveries(self.engine, open_only=True)}

    def with_facts(self) -> list[dict[str, Any]]:
        """Only the hosts with HA facts on record (a quarantine, maintenance, a release) or an
        open recovery: two statements whatever the number of compute services (the
        dashboard's feed reads it every second)."""
        facts = hosts_db.hosts(self.engine)
        open_recs = self._open()
        return [view(facts.get(h) or HostRecord(h), open_recs.get(h))
                for h in sorted(set(facts) | set(open_recs))]

    def list(self) -> list[dict[str, Any]]:
        """Every compute host (one per compute service), with its HA facts."""
        services = services_db.snapshot(self.engine, topic=COMPUTE_TOPIC).services
        facts = hosts_db.hosts(self.engine)
        open_recs = self._open()
        names = sorted({s.host for s in services})
        return [view(facts.get(h) or HostRecord(h), open_recs.get(h)) for h in names]

    def get(self, host: str) -> dict[str, Any]:
        self._known(host)
        return view(hosts_db.host_get(self.engine, host), self._open().get(host))

    def set_maintenance(self, host: str, on: bool, *, reason: str | None,
                        actor: str) -> dict[str, Any]:
        reason = clean_reason(reason, required=False)
        if not on and reason is not None:
            raise InvalidInput("a reason is only recorded when turning maintenance on")
        self._known(host)
        rec = hosts_db.set_maintenance(self.engine, host, on, actor=actor, reason=reason)
        return view(rec, self._open().get(host))

    def release(self, host: str, *, reason: str | None, actor: str) -> dict[str, Any]:
        """End the quarantine of ``host`` (Conflict if it is not quarantined)."""
        why = clean_reason(reason, required=True)
        assert why is not None
        self._known(host)
        rec, held = hosts_db.operator_release(self.engine, host, actor=actor, reason=why)
        if held is None:
            raise Conflict(f"host {host} is not quarantined: nothing to release")
        recoveries_db.recovery_note(self.engine, held, "released",
                                    f"released from quarantine by {actor}: {why}")
        return view(rec, self._open().get(host))
