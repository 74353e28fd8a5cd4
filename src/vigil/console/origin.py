"""Which pages may open a console WebSocket: Nova's origin rule, a pure function.

A browser sends ``Origin`` with every WebSocket it opens, and sends the user's cookies and
network position with it: without this check any web page the operator visits could open a
console it was handed a URL for (cross-site WebSocket hijacking). The rule, as Nova's proxy:
no ``Origin`` is a non-browser client and is let through (the token is still needed); an
``Origin`` must name the host the client connected to (``Host``) or one of ``[console]
allowed_origins``, and its scheme must match the proxy's (``http`` for ``ws://``, ``https``
for ``wss://``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

_PAGE_SCHEME = {"ws": "http", "wss": "https"}


def _hostname(authority: str) -> str | None:
    return urlsplit(f"//{authority}").hostname


def origin_allowed(origin: str | None, host_header: str | None, allowed: Sequence[str],
                   proxy_scheme: str) -> bool:
    """Whether a WebSocket with this ``Origin`` may connect (see the module docstring)."""
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    if not parts.hostname or parts.scheme != _PAGE_SCHEME.get(proxy_scheme, proxy_scheme):
        return False
    expected = {h.strip().lower() for h in allowed if h.strip()}
    if host_header:
        own = _hostname(host_header.strip())
        if own:
            expected.add(own.lower())
    return parts.hostname.lower() in expected
