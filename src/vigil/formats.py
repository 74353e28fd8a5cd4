"""How a timestamp or a record is spelt in what Vigil shows: the REST API's bodies and the CLI's
JSON, which print the same dicts.

Three layouts, each the one Nova uses for the same field, so that OpenStack clients parse
Vigil's answers unchanged. Every timestamp Vigil holds is naive UTC, read from the database's
clock; none carries an offset, and none gets one here.

This is the one home of the layouts (issue 11, D-F). The review proposed ``api/formats.py``;
the layouts sit on the ground floor instead because the domain's views (``ServerView``,
``ServiceView``, the recoveries' and hosts' views) build the dicts that the API and the CLI
both print, and the domain stands below ``api`` (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


def timestamp(value: dt.datetime | None) -> str | None:
    """os-services and Vigil's own resources: ``2012-10-29T13:42:02.000000``."""
    if value is None:
        return None
    # Once per service of a list: isoformat() without arguments costs 40% less, and it already
    # writes all six digits when there are microseconds (nearly always, from the database).
    if value.microsecond:
        return value.isoformat()
    return value.isoformat(timespec="microseconds")


def server_time(value: dt.datetime | None) -> str | None:
    """Nova's server ``created``/``updated`` and a fault's ``created``:
    ``2012-08-20T21:11:09Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def usage_time(value: dt.datetime | None) -> str | None:
    """Nova's ``OS-SRV-USG:launched_at``/``terminated_at``: ``2013-09-23T13:53:12.000000``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


def plain(record: Any) -> dict[str, Any]:
    """A record (a dataclass) as a JSON-ready dict, every field kept, timestamps spelt by
    :func:`timestamp`. Enum members stay members: they are ``str``/``int`` subclasses, which
    JSON prints as their values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = timestamp(value) if isinstance(value, dt.datetime) else value
    return out
