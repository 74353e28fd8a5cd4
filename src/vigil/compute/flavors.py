"""Flavor operations (CLI and REST API). Instances copy a flavor's numbers at boot, so
deleting a flavor never changes a running instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from vigil.db.compute import flavors as flavors_db
from vigil.errors import InvalidInput
from vigil.objects.compute import FlavorRecord

MAX_NAME = 255
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class FlavorView:
    record: FlavorRecord

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"id": r.flavorid, "name": r.name, "vcpus": r.vcpus, "ram": r.memory_mb,
                "disk": r.root_gb, "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0,
                "os-flavor-access:is_public": True, "OS-FLV-DISABLED:disabled": False,
                "rxtx_factor": 1.0, "description": r.description}


class FlavorsAPI:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, name: str, vcpus: int, ram: int, disk: int,
               flavorid: str | None = None, description: str | None = None) -> FlavorView:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"the flavor name must be 1 to {MAX_NAME} characters")
        if flavorid is not None and not (0 < len(flavorid.strip()) <= MAX_NAME):
            raise InvalidInput(f"the flavor id must be 1 to {MAX_NAME} characters")
        for label, value, low in (("vcpus", vcpus, 1), ("ram", ram, 1), ("disk", disk, 0)):
            if not low <= value <= MAX_INT:
                raise InvalidInput(f"{label} must be between {low} and {MAX_INT}")
        return FlavorView(flavors_db.flavor_create(
            self.engine, name=name, vcpus=vcpus, memory_mb=ram, root_gb=disk,
            flavorid=flavorid.strip() if flavorid else None, description=description))

    def list(self) -> list[FlavorView]:
        return [FlavorView(f) for f in flavors_db.flavors(self.engine)]

    def get(self, ident: str) -> FlavorView:
        return FlavorView(flavors_db.flavor_get(self.engine, ident))

    def delete(self, ident: str) -> FlavorView:
        record = flavors_db.flavor_get(self.engine, ident)
        flavors_db.flavor_delete(self.engine, record.id)
        return FlavorView(record)
