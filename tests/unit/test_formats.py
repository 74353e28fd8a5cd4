"""vigil.formats: Nova's timestamp layouts, the one home (the values are Nova's own examples)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from vigil import formats
from vigil.objects.ha import RecoveryStatus

AT = dt.datetime(2012, 10, 29, 13, 42, 2, 5)


def test_layouts() -> None:
    assert formats.timestamp(AT) == "2012-10-29T13:42:02.000005"
    assert formats.timestamp(AT.replace(microsecond=0)) == "2012-10-29T13:42:02.000000"
    assert formats.server_time(AT) == "2012-10-29T13:42:02Z"
    assert formats.usage_time(AT) == "2012-10-29T13:42:02.000005"
    for layout in (formats.timestamp, formats.server_time, formats.usage_time):
        assert layout(None) is None


def test_plain_keeps_every_field_and_spells_only_timestamps() -> None:
    @dataclasses.dataclass(frozen=True)
    class Rec:
        id: int
        status: RecoveryStatus
        at: dt.datetime | None
        note: str | None

    assert formats.plain(Rec(1, RecoveryStatus.DONE, AT, None)) == {
        "id": 1, "status": "done", "at": "2012-10-29T13:42:02.000005", "note": None}
