"""Compute API microversions, negotiated exactly as Nova does.

A client asks for a version with ``OpenStack-API-Version: compute X.Y`` (preferred) or the legacy
``X-OpenStack-Nova-API-Version: X.Y``; ``latest`` means :data:`MAX`. No header means
:data:`MIN` (2.1), so a client that knows nothing of microversions gets the oldest behaviour.
A malformed version is 400; a well-formed one outside [MIN, MAX] is 406 (Nova's
``InvalidGlobalAPIVersion``). Every answer of the compute API carries the version it was
served at in both headers plus ``Vary`` on them, so caches key on the version too.

Raise :data:`MAX` only together with the behaviour of every resource at the new version: a
client that negotiated 2.X trusts that *all* of 2.X holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from starlette.datastructures import Headers, MutableHeaders

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE_TYPE = "compute"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        m = _VERSION_RE.match(text.strip())
        if m is None:
            raise InvalidVersion(
                f"API Version String {text} is of invalid format. Must be of format "
                "MajorNum.MinorNum."
            )
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= APIVersion.parse(text)


MIN = APIVersion(2, 1)
# 2.79 is the newest version whose changes to os-services (none after 2.75) Vigil implements.
MAX = APIVersion(2, 79)


class InvalidVersion(Exception):
    """A malformed version string: HTTP 400."""


class UnsupportedVersion(Exception):
    """A well-formed version outside [MIN, MAX]: HTTP 406."""


def _from_new_header(value: str) -> str | None:
    """The version for ``compute`` in an OpenStack-API-Version value (comma-separated list)."""
    for item in value.split(","):
        parts = item.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
            return parts[1].strip()
    return None


def requested(headers: Headers) -> APIVersion:
    """The version a request asks for; raises InvalidVersion or UnsupportedVersion."""
    text: str | None = None
    if HEADER in headers:
        text = _from_new_header(", ".join(headers.getlist(HEADER)))
    if text is None and LEGACY_HEADER in headers:
        text = headers[LEGACY_HEADER].strip()
    if text is None:
        return MIN
    if text.lower() == "latest":
        return MAX
    version = APIVersion.parse(text)
    if not MIN <= version <= MAX:
        raise UnsupportedVersion(
            f"Version {version} is not supported by the API. Minimum is {MIN} and maximum "
            f"is {MAX}."
        )
    return version


def add_headers(headers: MutableHeaders, version: APIVersion) -> None:
    """Echo the served version, as Nova does on every compute response (errors included)."""
    headers[HEADER] = f"{SERVICE_TYPE} {version}"
    headers[LEGACY_HEADER] = str(version)
    headers["Vary"] = f"{HEADER}, {LEGACY_HEADER}"
