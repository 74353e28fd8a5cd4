"""The HA monitor's alerts (a brake that needs an operator: mass failure, unproven death):
at most one open alert per kind, raised and cleared only by the leader."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import clip, translate_errors
from vigil.db.ha.lease import guard
from vigil.db.ha_models import HaAlert
from vigil.objects.ha import AlertRecord, LeaderToken

_ALERT_COLS = [HaAlert.id, HaAlert.kind, HaAlert.active_kind, HaAlert.message, HaAlert.raised_at,
               HaAlert.last_seen_at, HaAlert.cleared_at]


def _alert(row: Any) -> AlertRecord:
    id_, kind, active_kind, message, raised_at, last_seen_at, cleared_at = row
    return AlertRecord(id_, kind, active_kind is not None, message, raised_at, last_seen_at,
                       cleared_at)


@translate_errors
def alert_raise(engine: Engine, token: LeaderToken, kind: str, message: str) -> None:
    """Raise (or refresh) the open alert of ``kind``."""
    try:
        with engine.begin() as conn:
            now = guard(conn, token)
            result = conn.execute(update(HaAlert).where(HaAlert.active_kind == kind)
                                  .values(message=clip(message), last_seen_at=now))
            if result.rowcount == 0:
                conn.execute(insert(HaAlert).values(kind=kind, active_kind=kind,
                                                    message=clip(message), raised_at=now,
                                                    last_seen_at=now))
    except IntegrityError:
        pass  # raised concurrently: it is open, which is what we wanted


@translate_errors
def alert_clear(engine: Engine, token: LeaderToken, kind: str) -> bool:
    with engine.begin() as conn:
        now = guard(conn, token)
        result = conn.execute(update(HaAlert).where(HaAlert.active_kind == kind)
                              .values(active_kind=None, cleared_at=now))
        return bool(result.rowcount)


@translate_errors
def alerts(engine: Engine, *, active_only: bool = False,
           limit: int | None = None) -> list[AlertRecord]:
    stmt = select(*_ALERT_COLS)
    if active_only:
        stmt = stmt.where(HaAlert.active_kind.is_not(None))
    stmt = stmt.order_by(HaAlert.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_alert(r) for r in conn.execute(stmt)]
