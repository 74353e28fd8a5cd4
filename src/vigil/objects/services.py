"""A service as the rest of Vigil sees it: its row, a snapshot of many, and the answer to a
state report."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from vigil.objects.primitive import Primitive


@dataclass(slots=True)
class ServiceRecord(Primitive):
    """A service row as the rest of Vigil sees it: plain data, treated as read-only.

    Not ``frozen``: a frozen dataclass's __init__ pays an object.__setattr__ per field, which
    showed up as the largest cost of listing 10,000 services.
    """

    id: int
    uuid: str
    host: str
    binary: str
    topic: str
    report_count: int
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    version: int
    last_seen_up: dt.datetime | None
    left_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime | None
    deleted: bool = False


@dataclass(frozen=True)
class Snapshot:
    """Rows read together with the database's clock and the report-path beats, in one go.

    ``path_beats``: every conductor's ``(last_beat, healthy_since)``, on the same clock as
    ``now`` (see :mod:`vigil.objects.liveness`).
    """

    now: dt.datetime
    services: list[ServiceRecord]
    path_beats: list[tuple[dt.datetime, dt.datetime]]


class ReportVerdict(enum.StrEnum):
    """The conductor's answer to an agent's state report.

    OK: queued; the next flush stamps the heartbeat with the database's clock. Keep reporting.
    DELETED: the service's row was deleted while the service runs (an operator deleted a live
        service): the report was ignored, and so will every later one be. Say so once, loudly,
        and keep running; only a restart registers the service again.
    """

    OK = "ok"
    DELETED = "deleted"
