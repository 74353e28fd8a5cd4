"""Recoveries and alerts as operators see them: what ``vigil recovery`` and
``GET /v2.1/vigil/recoveries`` both show, and the operator's manual request
(``vigil host evacuate``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import evacuations as evacuations_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.errors import Conflict, InvalidInput, NotFound
from vigil.ha.election import LEASE_NAME
from vigil.ha.monitor import without_bare_metal
from vigil.objects.ha import EvacuationRecord, RecoveryRecord
from vigil.objects.liveness import State
from vigil.servicegroup.api import ServiceGroup

COMPUTE_TOPIC = "compute"


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def _plain(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = _time(value) if isinstance(value, dt.datetime) else value
    return out


def parse_recovery_ident(text: str) -> int | str:
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if value > 2**31 - 1:
            raise NotFound(f"recovery {text} not found")
        return value
    if len(text) == 36 and text.count("-") == 4:
        return text.lower()
    raise InvalidInput(f"{text!r} is neither a recovery id nor a UUID")


class RecoveriesAPI:
    """Read-only views plus the manual request."""

    def __init__(self, engine: Engine, group: ServiceGroup | None = None) -> None:
        self.engine = engine
        self.group = group

    def summary(self, rec: RecoveryRecord,
                evacuations: list[EvacuationRecord] | None = None) -> dict[str, Any]:
        evs = (evacuations if evacuations is not None
               else evacuations_db.evacuations(self.engine, rec.id))
        out = _plain(rec)
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
        out["events"] = [_plain(e) for e in recoveries_db.events(self.engine, rec.id)]
        out["evacuations"] = [_plain(e) for e in evs]
        return out

    def alerts(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        return [_plain(a) for a in alerts_db.alerts(self.engine, active_only=active_only,
                                                    limit=50)]

    def leader(self) -> dict[str, Any] | None:
        lease = lease_db.lease_get(self.engine, LEASE_NAME)
        if lease is None or not lease.held:
            return None
        return {"holder": lease.holder, "epoch": lease.epoch,
                "expires_at": _time(lease.expires_at)}

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
        state = found[0].reporting
        if state is State.UP:
            raise Conflict(f"compute service of {host} still reports (state up): it is not "
                           "dead; evacuating it would run its instances twice")
        if state is State.UNKNOWN:
            raise Conflict(f"the liveness of {host} cannot be read right now (unknown): not "
                           "evacuating on an unknown state")
        return recoveries_db.recovery_request(
            self.engine, host=host, service_id=svc.id, was_disabled=svc.disabled,
            was_forced_down=svc.forced_down,
            detail=f"requested by {actor or 'an operator'} for {host}")
