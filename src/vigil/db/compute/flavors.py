"""Flavors: named sizes (vCPUs, RAM, root disk) an instance is created from, copied into the
instance row so a later change of the flavor never changes a running instance."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from vigil.db._query import cols_of, insert_unique, translate_errors
from vigil.db.compute_models import Flavor
from vigil.db.types import utcnow
from vigil.errors import NotFound
from vigil.objects.compute import FlavorRecord

FLAVOR_COLS = cols_of(Flavor, FlavorRecord)


def _flavor(row: Any) -> FlavorRecord:
    return FlavorRecord(**row._asdict())


@translate_errors
def flavor_create(engine: Engine, *, name: str, vcpus: int, memory_mb: int, root_gb: int,
                  flavorid: str | None = None, description: str | None = None) -> FlavorRecord:
    """A new flavor; Conflict if its name or flavorid is taken by a live flavor."""
    fid = flavorid if flavorid is not None else str(uuidlib.uuid4())
    row = insert_unique(
        engine, Flavor,
        dict(flavorid=fid, name=name, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb,
             description=description, created_at=utcnow(), deleted=0),
        taken=or_(Flavor.name == name, Flavor.flavorid == fid),
        conflict=f"a flavor named {name!r} or with id {fid!r} already exists",
        read=select(*FLAVOR_COLS).where(Flavor.flavorid == fid, Flavor.deleted == 0))
    return _flavor(row)


@translate_errors
def flavors(engine: Engine) -> list[FlavorRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(*FLAVOR_COLS).where(Flavor.deleted == 0)
                            .order_by(Flavor.memory_mb, Flavor.vcpus, Flavor.name))
        return [_flavor(r) for r in rows]


@translate_errors
def flavor_get(engine: Engine, ident: str) -> FlavorRecord:
    """By flavorid first, then by name (as the openstack client resolves them)."""
    with engine.connect() as conn:
        for cond in (Flavor.flavorid == ident, Flavor.name == ident):
            row = conn.execute(select(*FLAVOR_COLS).where(cond, Flavor.deleted == 0)).first()
            if row is not None:
                return _flavor(row)
    raise NotFound(f"flavor {ident!r} not found")


@translate_errors
def flavor_delete(engine: Engine, flavor_id: int) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            update(Flavor).where(Flavor.id == flavor_id, Flavor.deleted == 0)
            .values(deleted=Flavor.id, deleted_at=utcnow(), updated_at=utcnow()))
    if result.rowcount == 0:
        raise NotFound(f"flavor {flavor_id} not found")
