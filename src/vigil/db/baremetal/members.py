"""The bare-metal ring's members: the hosts that announced running the bare-metal driver, with
the service version they announced it at (a member restarted with another driver no longer
counts, because its version moved on)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from vigil.db._query import translate_errors
from vigil.db.baremetal_models import BareMetalMember
from vigil.db.types import utcnow


@translate_errors
def members(engine: Engine) -> dict[str, int]:
    """Host -> the service version it last announced running the bare-metal driver with."""
    with engine.connect() as conn:
        return {h: int(v) for h, v in conn.execute(
            select(BareMetalMember.host, BareMetalMember.service_version))}


@translate_errors
def member_register(engine: Engine, host: str, version: int) -> None:
    """Record that ``host``'s service, at ``version``, runs the bare-metal driver."""
    for _ in range(2):
        try:
            with engine.begin() as conn:
                result = conn.execute(update(BareMetalMember).where(
                    BareMetalMember.host == host).values(service_version=version,
                                                         updated_at=utcnow()))
                if result.rowcount == 0:
                    conn.execute(insert(BareMetalMember).values(
                        host=host, service_version=version, created_at=utcnow()))
            return
        except IntegrityError:
            continue  # registered concurrently: update theirs
