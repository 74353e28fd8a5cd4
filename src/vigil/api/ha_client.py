"""HTTP clients with the methods ``vigil recovery`` and ``vigil host`` call on
:class:`vigil.ha.views.RecoveriesAPI` and :class:`vigil.ha.hosts.HostsAPI`
(``/v2.1/vigil/recoveries`` and ``/v2.1/vigil/hosts``), so those commands print the same
through a Vigil API as from the database (the Protocols in :mod:`vigil.cli.resources`).

The API answers the views' own dicts, so nothing is rebuilt. One difference is the point of
going through the API: a change's actor is the token's user and project, recorded by the
API, not the ``actor`` the caller passes (a local user name proves nothing to a server).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from vigil.api.client import ApiSession

RECOVERIES = "/v2.1/vigil/recoveries"
HOSTS = "/v2.1/vigil/hosts"


def segment(text: str) -> str:
    """``text`` as one URL path segment (a host name or an id)."""
    return quote(text.strip(), safe="")


class RecoveriesClient(ApiSession):
    """Recoveries, alerts and the monitor's leader; the manual evacuation request.

    The API answers the alerts and the leader with every list: after :meth:`list_recoveries`,
    :meth:`alerts` and :meth:`leader` read that answer instead of asking again, so ``vigil
    recovery list`` costs one round trip, and its three parts are from one moment."""

    _last: dict[str, Any] | None = None

    def overview(self, *, open_only: bool = False, host: str | None = None,
                 limit: int = 100) -> dict[str, Any]:
        """The list, the open alerts and the leader, in one call (as the API answers them)."""
        params: dict[str, Any] = {"limit": limit}
        if open_only:
            params["open"] = "true"
        if host is not None:
            params["host"] = host
        data: dict[str, Any] = self._call("GET", RECOVERIES, params=params)
        self._last = data
        return data

    def list_recoveries(self, *, open_only: bool = False, host: str | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
        recs: list[dict[str, Any]] = self.overview(open_only=open_only, host=host,
                                                   limit=limit)["recoveries"]
        return recs

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = (self._last or self.overview(limit=1))["alerts"]
        return alerts

    def leader(self) -> dict[str, Any] | None:
        leader: dict[str, Any] | None = (self._last or self.overview(limit=1))["leader"]
        return leader

    def get(self, ident: int | str) -> dict[str, Any]:
        rec: dict[str, Any] = self._call("GET", f"{RECOVERIES}/{segment(str(ident))}")[
            "recovery"]
        return rec

    def evacuate_host(self, host: str, *, actor: str | None = None) -> dict[str, Any]:
        self._last = None  # what follows must see the world after the request
        rec: dict[str, Any] = self._call("POST", f"{HOSTS}/{segment(host)}/action",
                                         json={"evacuate": {}})["recovery"]
        return rec


class HostsClient(ApiSession):
    """Compute hosts' HA facts: list, show, maintenance, release."""

    def list(self) -> list[dict[str, Any]]:
        hosts: list[dict[str, Any]] = self._call("GET", HOSTS)["hosts"]
        return hosts

    def get(self, host: str) -> dict[str, Any]:
        return self._host(self._call("GET", f"{HOSTS}/{segment(host)}"))

    def set_maintenance(self, host: str, on: bool, *, reason: str | None,
                        actor: str) -> dict[str, Any]:
        body: dict[str, Any] = {"maintenance": on}
        if reason is not None:
            body["maintenance_reason"] = reason
        return self._host(self._call("PUT", f"{HOSTS}/{segment(host)}", json={"host": body}))

    def release(self, host: str, *, reason: str | None, actor: str) -> dict[str, Any]:
        return self._host(self._call("POST", f"{HOSTS}/{segment(host)}/action",
                                     json={"release": {"reason": reason}}))

    def simulate(self, host: str, action: str) -> dict[str, Any]:
        """``vigil up``'s simulated hosts: ``crash``, ``revive`` or ``kill-agent``."""
        return self._host(self._call("POST", f"{HOSTS}/{segment(host)}/action",
                                     json={action: {}}))

    @staticmethod
    def _host(data: Any) -> dict[str, Any]:
        host: dict[str, Any] = data["host"]
        return host
