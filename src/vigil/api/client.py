"""An HTTP client with the Registry methods the CLI uses, so ``vigil service`` works the same
against the database or a remote API (:mod:`vigil.api.compute_client` does the same for
servers, flavors and hypervisors over :class:`ApiSession`).

Reads go to Vigil's own resource (``/v2.1/vigil/services``: it has the unknown state, the UUID
and the heartbeat times the CLI shows); writes go through Nova's os-services at microversion
2.53 (by UUID), or 2.1 for a delete by integer id, so the CLI exercises exactly the compatible
API that other clients use. HTTP errors come back as Vigil's error tree, so the CLI's exit
codes and one-line messages are the same either way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

import httpx

from vigil import errors as verr
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.registry import ServiceView

TIMEOUT = 30.0


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def view_from(data: dict[str, Any]) -> ServiceView:
    """A ServiceView from a ``/v2.1/vigil/services`` item."""
    created = _time(data["created_at"])
    assert created is not None
    record = ServiceRecord(
        id=data["id"], uuid=data["uuid"], host=data["host"], binary=data["binary"],
        topic=data["topic"], report_count=data["report_count"],
        disabled=data["status"] == "disabled", disabled_reason=data["disabled_reason"],
        forced_down=data["forced_down"], version=data["version"],
        last_seen_up=_time(data["last_seen"]), left_at=_time(data["left_at"]),
        created_at=created, updated_at=_time(data["updated_at"]),
    )
    liveness = data.get("host_liveness")
    return ServiceView(record, State(data["state"]), data["zone"],
                       bool(data.get("quarantined")), bool(data.get("maintenance")),
                       State(liveness) if liveness else None)


class ApiSession:
    """One connection to a Vigil API: the token, the microversion header, and HTTP errors
    mapped back to Vigil's error tree (``not_found`` for a 404)."""

    not_found: type[verr.NotFound] = verr.NotFound

    def __init__(self, endpoint: str, token: str, *, timeout: float = TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        if self.endpoint.endswith("/v2.1"):
            self.endpoint = self.endpoint[: -len("/v2.1")]
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout, transport=transport,
                                  headers={"X-Auth-Token": token,
                                           "Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, version: str = "2.1", **kwargs: Any) -> Any:
        headers = {"OpenStack-API-Version": f"compute {version}"}
        try:
            resp = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise verr.Unavailable(f"cannot reach the API at {self.endpoint}: {exc}") from exc
        if resp.status_code < 400:
            return resp.json() if resp.content else None
        message = _message(resp)
        code = resp.status_code
        if code == 400:
            raise verr.InvalidInput(message)
        if code == 404:
            raise self.not_found(message)
        if code == 409:
            raise verr.Conflict(message)
        if code >= 500:
            raise verr.Unavailable(f"the API answered {code}: {message}")
        raise verr.ApiError(f"the API answered {code}: {message}")


class RegistryClient(ApiSession):
    """``list``, ``get``, ``find``, ``update`` and ``delete`` over the REST API."""

    not_found = verr.ServiceNotFound

    def list(self, *, host: str | None = None, binary: str | None = None) -> list[ServiceView]:
        params = {k: v for k, v in (("host", host), ("binary", binary)) if v is not None}
        data = self._call("GET", "/v2.1/vigil/services", params=params)
        return [view_from(s) for s in data["services"]]

    def get(self, ident: int | str) -> ServiceView:
        return view_from(self._call("GET", f"/v2.1/vigil/services/{ident}")["service"])

    def find(self, host: str, binary: str) -> ServiceRecord:
        views = self.list(host=host, binary=binary)
        if not views:
            raise verr.ServiceNotFound(f"no service with host {host!r} and binary {binary!r}")
        return views[0].record

    def update(
        self,
        record: ServiceRecord,
        *,
        enabled: bool | None = None,
        disabled_reason: str | None = None,
        forced_down: bool | None = None,
    ) -> ServiceView:
        body: dict[str, Any] = {}
        if enabled is not None:
            body["status"] = "enabled" if enabled else "disabled"
        if disabled_reason is not None:
            body["disabled_reason"] = disabled_reason
        if forced_down is not None:
            body["forced_down"] = forced_down
        self._call("PUT", f"/v2.1/os-services/{record.uuid}", version="2.53", json=body)
        return self.get(record.uuid)

    def delete(self, ident: int | str) -> ServiceRecord:
        record = self.get(ident).record
        if isinstance(ident, int):
            self._call("DELETE", f"/v2.1/os-services/{ident}", version="2.1")
        else:
            self._call("DELETE", f"/v2.1/os-services/{ident}", version="2.53")
        return record


def _message(resp: httpx.Response) -> str:
    """The ``message`` of a Nova fault body, or the raw text."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(data, dict) and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
    return resp.text.strip()
