"""Recoveries and alerts as operators see them: what ``vigil recovery`` and
``GET /v2.1/vigil/recoveries`` both show, and the operator's manual request
(``vigil host evacuate``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from vigil import formats, ids
from vigil.compute import evacuation
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import Conflict, NotFound
from vigil.ha.election import LEASE_NAME
from vigil.ha.monitor import without_bare_metal
from vigil.names import COMPUTE_TOPIC
from vigil.objects.ha import EvacuationRecord, RecoveryRecord
from vigil.servicegroup.api import ServiceGroup


def parse_recovery_ident(text: str) -> int | str:
    """A recovery's integer id or UUID (:func:`vigil.ids.parse_id_or_uuid`)."""
    return ids.parse_id_or_uuid(text, "recovery")


class RecoveriesAPI:
    """Read-only views plus the manual request."""

    def __init__(self, engine: Engine, group: ServiceGroup | None = None) -> None:
        self.engine = engine
        self.group = group

    def summary(self, rec: RecoveryRecord,
                evacuations: list[EvacuationRecord] | None = None) -> dict[str, Any]:
        evs = (evacuations if evacuations is not None
               else evacuations_db.evacuations(self.engine, rec.id))
        out = formats.plain(rec)
        out.pop("active_host")
        out["open"] = rec.open
        counts: dict[str, int] = {}
        for e in evs:
            counts[e.status] = counts.get(e.status, 0) + 1
        out["evacuations_total"] = len(evs)
        out["evacuations_by_status"] = counts
        return out

    def list_recoveries(self, *, open_only: bool = False, host: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        return [self.summary(r) for r in recoveries_db.recoveries(self.engine, open_only=open_only,
                                                                  host=host, limit=limit)]

    def get(self, ident: int | str) -> dict[str, Any]:
        rec = recoveries_db.recovery_get(self.engine, ident)
        evs = evacuations_db.evacuations(self.engine, rec.id)
        out = self.summary(rec, evs)
        out["events"] = [formats.plain(e) for e in recoveries_db.events(self.engine, rec.id)]
        out["evacuations"] = [formats.plain(e) for e in evs]
        return out

    def alerts(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        return [formats.plain(a) for a in alerts_db.alerts(self.engine, active_only=active_only,
                                                    limit=50)]

    def leader(self) -> dict[str, Any] | None:
        lease = lease_db.lease_get(self.engine, LEASE_NAME)
        if lease is None or not lease.held:
            return None
        return {"holder": lease.holder, "epoch": lease.epoch,
                "expires_at": formats.timestamp(lease.expires_at)}

    def evacuate_host(self, host: str, *, actor: str | None = None) -> dict[str, Any]:
        """:meth:`request_host_evacuation`, answered as the recovery's summary: what the
        API's evacuate action answers and ``vigil host evacuate`` reads, either way."""
        return self.summary(self.request_host_evacuation(host, actor=actor))

    def request_host_evacuation(self, host: str, *,
                                actor: str | None = None) -> RecoveryRecord:
        """An operator says ``host`` is dead: open (or join) its recovery. ``actor`` (who asks:
        the API's user and project, or the CLI's local user) is recorded in the timeline.

        Refused unless the host really stopped reporting (its liveness, ignoring forced_down,
        is DOWN): UP and UNKNOWN are not evidence of death. The leader then runs the same
        workflow as for a detected failure, fence included, without the detection grace and
        past the judgement brakes (mass failure, unproven death), never past the view brakes.
        """
        if self.group is None:
            raise RuntimeError("RecoveriesAPI needs a ServiceGroup to request an evacuation")
        found = self.group.members(COMPUTE_TOPIC, host=host)
        if not found:
            raise NotFound(f"Compute host {host} could not be found.")
        svc = found[0].record
        if not without_bare_metal(self.engine, [svc]):
            raise Conflict(f"{host} is a bare-metal compute service: its nodes move to a live "
                           "service through the hash ring, not by evacuation")
        why = evacuation.host_request_refusal(host, found[0].reporting)
        if why is not None:
            raise Conflict(why)
        return recoveries_db.recovery_request(
            self.engine, host=host, service_id=svc.id, was_disabled=svc.disabled,
            was_forced_down=svc.forced_down,
            detail=f"requested by {actor or 'an operator'} for {host}")
