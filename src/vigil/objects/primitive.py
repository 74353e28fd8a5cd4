"""Plain-data records that cross RPC as JSON-safe dicts.

Agents never open the database: rows reach them through the conductor as dicts, with
datetimes as ISO strings, enums as their values and a record inside a record (a bare-metal
move's inventory) as its own dict. One mixin for every record type, so the wire form cannot
drift between features: how to decode each field is read once per class from its annotations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar, cast

Decoder = Callable[[Any], Any]


def _decoder(annotation: Any) -> Decoder | None:
    """How to turn a field's JSON value back into its annotated type (None: JSON carries it
    as it is). ``X | None`` decodes as ``X``; None stays None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
    if annotation is dt.datetime:
        return lambda v: dt.datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        kind = annotation
        return lambda v: kind(v) if v is not None else None
    if isinstance(annotation, type) and issubclass(annotation, Primitive):
        record = annotation
        return lambda v: record.from_primitive(v) if isinstance(v, Mapping) else v
    return None


@functools.cache
def _decoders(cls: type) -> tuple[tuple[str, Decoder], ...]:
    """The fields of ``cls`` that need decoding, found once per class."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        decode = _decoder(hints[f.name])
        if decode is not None:
            out.append((f.name, decode))
    return tuple(out)


class Primitive:
    """``to_primitive``/``from_primitive`` for a dataclass."""

    __slots__ = ()  # keeps ServiceRecord's slots: 10,000 of them make one service list

    def to_primitive(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Primitive):
                value = value.to_primitive()
            out[f.name] = value
        return out

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> Self:
        values = dict(data)
        for name, decode in _decoders(cast(type, cls)):
            if name in values:
                values[name] = decode(values[name])
        return cls(**values)


def pack(items: Sequence[Any], fields: Sequence[str]) -> dict[str, Any]:
    """Many records as positional rows under one list of field names: a fraction of the cost
    of a dict per record, for lists that cross RPC every tick (bare-metal nodes and records).
    Fields must be JSON-safe as they are, or enums."""
    rows = []
    for item in items:
        row = []
        for f in fields:
            value = getattr(item, f)
            row.append(value.value if isinstance(value, enum.Enum) else value)
        rows.append(row)
    return {"fields": list(fields), "rows": rows}


P = TypeVar("P", bound=Primitive)


def unpack(cls: type[P], data: Mapping[str, Any]) -> list[P]:
    """The records :func:`pack` packed."""
    names = data["fields"]
    return [cls.from_primitive(dict(zip(names, row, strict=True))) for row in data["rows"]]
