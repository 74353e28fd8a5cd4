"""Plain-data records that cross RPC as JSON-safe dicts.

Agents never open the database: rows reach them through the conductor as dicts, with
datetimes as ISO strings. One mixin for every record type, so the wire form cannot drift
between features.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, Self, cast


@functools.cache
def _datetime_fields(cls: type) -> tuple[str, ...]:
    """The fields annotated as datetimes (optional or not), found once per class."""
    return tuple(f.name for f in dataclasses.fields(cls) if "datetime" in str(f.type))


class Primitive:
    """``to_primitive``/``from_primitive`` for a dataclass."""

    __slots__ = ()  # keeps ServiceRecord's slots: 10,000 of them make one service list

    def to_primitive(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> Self:
        values = dict(data)
        for name in _datetime_fields(cast(type, cls)):
            value = values.get(name)
            if isinstance(value, str):
                values[name] = dt.datetime.fromisoformat(value)
        return cls(**values)
