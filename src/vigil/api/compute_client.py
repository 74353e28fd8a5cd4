"""HTTP clients with the methods ``vigil server|flavor|hypervisor`` call on
:class:`~vigil.compute.servers.ServersAPI`, :class:`~vigil.compute.flavors.FlavorsAPI` and
:class:`~vigil.compute.hypervisors.HypervisorsAPI`, so the CLI prints the same through a Vigil
API as from the database.

The API's detail bodies are the views' ``to_dict()`` (plus Nova's ``links``), so the remote
views below hold what the API answered, without the links: nothing is rebuilt or guessed. Where
Nova's routes differ from the CLI's lookups, the client resolves as the database mode does:

- servers by UUID through ``GET /servers/{id}``, by name through ``GET /servers/detail?name=``
  (exact), with the same "no server" / "N servers are named" errors; a deleted server (what
  ``delete`` prints, what ``--wait`` may end on) through Nova's admin filter
  ``GET /servers/detail?uuid=&deleted=true``;
- flavors by id, then name, through ``GET /flavors/{id}`` (which resolves the same way), or
  from the list when the id or name cannot be a URL path segment;
- hypervisors at microversion 2.53 (UUID ids); an integer id is read at 2.1 and matched to its
  UUID by its service and hostname; ``state`` is taken from ``vigil:state`` (up, down or
  unknown), not from Nova's ``state``, which says ``down`` for unknown.

HTTP errors come back as Vigil's error tree (:class:`vigil.api.client.ApiSession`).
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from vigil import errors as verr
from vigil import ids
from vigil.api.client import ApiSession
from vigil.compute.hypervisors import missing
from vigil.compute.servers import pick_named

SERVERS = "/v2.1/servers"
FLAVORS = "/v2.1/flavors"
HYPERVISORS = "/v2.1/os-hypervisors"
HOST_IN_CREATE = "2.74"
UUID_FOR_ID = "2.53"
VIGIL_STATE = "vigil:state"


def _without_links(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "links"}


def _segment(ident: str) -> str | None:
    """``ident`` quoted as one URL path segment, or None where no quoting can carry it (a
    ``/`` is decoded before routing; ``.`` and ``..`` are dot segments)."""
    if not ident or "/" in ident or ident in (".", ".."):
        return None
    return quote(ident, safe="")


# -- servers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteServer:
    """A server as the API showed it (``ServerView.to_dict()`` without ``links``)."""

    data: dict[str, Any] = field(repr=False)

    @property
    def uuid(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def task_state(self) -> str | None:
        value = self.data.get("OS-EXT-STS:task_state")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class ServersClient(ApiSession):
    """``list``, ``create``, ``get``, ``delete``, ``evacuate`` and ``wait`` over the API."""

    def _show(self, uuid: str) -> RemoteServer:
        return RemoteServer(_without_links(self._call("GET", f"{SERVERS}/{uuid}")["server"]))

    def _deleted(self, uuid: str) -> RemoteServer:
        found = self._call("GET", f"{SERVERS}/detail",
                           params={"uuid": uuid, "deleted": "true"})["servers"]
        if not found:
            raise verr.NotFound(f"instance {uuid} not found")
        return RemoteServer(_without_links(found[0]))

    def resolve(self, ident: str) -> RemoteServer:
        """A live server by UUID, or by name when exactly one server has it."""
        ident = ident.strip()
        uuid = ids.parse_uuid(ident)
        if uuid is not None:
            return self._show(uuid)
        # The API ignores an empty filter; the exact match is checked here as well.
        return pick_named(ident, [s for s in self.list(name=ident) if s.data["name"] == ident])

    def list(self, *, host: str | None = None, name: str | None = None) -> list[RemoteServer]:
        params = {k: v for k, v in (("host", host), ("name", name)) if v is not None}
        data = self._call("GET", f"{SERVERS}/detail", params=params)
        return [RemoteServer(_without_links(s)) for s in data["servers"]]

    def create(self, *, name: str, flavor: str, host: str | None = None,
               availability_zone: str | None = None, evacuable: bool = True) -> RemoteServer:
        server: dict[str, Any] = {"name": name, "flavorRef": flavor,
                                  "vigil:evacuable": evacuable}
        if host is not None:
            server["host"] = host
        if availability_zone is not None:
            server["availability_zone"] = availability_zone
        made = self._call("POST", SERVERS, version=HOST_IN_CREATE, json={"server": server})
        # The create answer is Nova's id/name/links: read the server back (a scheduler may
        # already have moved it on; the database mode shows it as created).
        return self._show(made["server"]["id"])

    def get(self, ident: str) -> RemoteServer:
        return self.resolve(ident)

    def delete(self, ident: str) -> RemoteServer:
        uuid = self.resolve(ident).uuid
        self._call("DELETE", f"{SERVERS}/{uuid}")
        return self._deleted(uuid)

    def evacuate(self, ident: str, *, host: str | None = None) -> RemoteServer:
        uuid = self.resolve(ident).uuid
        self._call("POST", f"{SERVERS}/{uuid}/action",
                   json={"evacuate": {} if host is None else {"host": host}})
        return self._show(uuid)

    def wait(self, ident: str, done: Callable[[RemoteServer], bool], *, timeout: float,
             interval: float = 0.2) -> RemoteServer:
        """Poll until ``done(view)`` (also true once the server is deleted), up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                view = self.get(ident)
            except verr.NotFound:
                view = self._deleted(ident)
            if done(view) or view.status == "DELETED" or time.monotonic() >= deadline:
                return view
            time.sleep(interval)


# -- flavors -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFlavor:
    """A flavor as the API showed it (``FlavorView.to_dict()`` without ``links``)."""

    data: dict[str, Any] = field(repr=False)

    @property
    def flavorid(self) -> str:
        return str(self.data["id"])

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class FlavorsClient(ApiSession):
    """``list``, ``get``, ``create`` and ``delete`` over the API."""

    def list(self) -> list[RemoteFlavor]:
        return [RemoteFlavor(_without_links(f))
                for f in self._call("GET", f"{FLAVORS}/detail")["flavors"]]

    def get(self, ident: str) -> RemoteFlavor:
        """By flavor id first, then by name, as the database mode."""
        segment = _segment(ident)
        if segment is not None:
            return RemoteFlavor(_without_links(
                self._call("GET", f"{FLAVORS}/{segment}")["flavor"]))
        flavors = self.list()
        for key in ("id", "name"):
            for f in flavors:
                if f.data[key] == ident:
                    return f
        raise verr.NotFound(f"flavor {ident!r} not found")

    def create(self, *, name: str, vcpus: int, ram: int, disk: int,
               flavorid: str | None = None, description: str | None = None) -> RemoteFlavor:
        flavor: dict[str, Any] = {"name": name, "vcpus": vcpus, "ram": ram, "disk": disk}
        if flavorid is not None:
            flavor["id"] = flavorid
        if description is not None:
            flavor["description"] = description
        made = self._call("POST", FLAVORS, json={"flavor": flavor})["flavor"]
        return RemoteFlavor(_without_links(made))

    def delete(self, ident: str) -> RemoteFlavor:
        view = self.get(ident)
        segment = _segment(view.flavorid)
        if segment is None:
            raise verr.InvalidInput(f"flavor id {view.flavorid!r} cannot be sent in a URL: "
                                    "delete this flavor without --os-endpoint")
        self._call("DELETE", f"{FLAVORS}/{segment}")
        return view


# -- hypervisors ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteHypervisor:
    """A hypervisor as the API showed it at 2.53, with ``state`` Vigil's up/down/unknown (from
    ``vigil:state``; an API without that key leaves Nova's up/down)."""

    data: dict[str, Any] = field(repr=False)

    @property
    def hypervisor_hostname(self) -> str:
        return str(self.data["hypervisor_hostname"])

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.data)
        if VIGIL_STATE in out:
            out["state"] = out.pop(VIGIL_STATE)
        return out


class HypervisorsClient(ApiSession):
    """``list``, ``get`` and ``statistics`` over the API."""

    def list(self, *, hostname: str | None = None) -> list[RemoteHypervisor]:
        params = {} if hostname is None else {"hypervisor_hostname_pattern": hostname}
        data = self._call("GET", f"{HYPERVISORS}/detail", version=UUID_FOR_ID, params=params)
        return [RemoteHypervisor(h) for h in data["hypervisors"]]

    def _named(self, hostname: str) -> builtins.list[RemoteHypervisor]:
        return [h for h in self.list(hostname=hostname) if h.hypervisor_hostname == hostname]

    def get(self, ident: str) -> RemoteHypervisor:
        """By UUID, integer id, or exact hypervisor hostname (in the database mode's order)."""
        ident = ident.strip()
        found: builtins.list[RemoteHypervisor]
        if ident.isdigit():
            try:
                old = self._call("GET", f"{HYPERVISORS}/{ident}", version="2.1")["hypervisor"]
            except verr.NotFound:
                raise missing(ident) from None
            # 2.1 answers the integer id: the same node at 2.53 is the one of the same
            # compute service with the same hostname.
            found = [h for h in self._named(old["hypervisor_hostname"])
                     if h.data["service"]["id"] == old["service"]["id"]]
        else:
            found = []
            uuid = ids.parse_uuid(ident)
            if uuid is not None:
                with contextlib.suppress(verr.NotFound):
                    found = [RemoteHypervisor(self._call(
                        "GET", f"{HYPERVISORS}/{uuid}", version=UUID_FOR_ID)["hypervisor"])]
            if not found:
                found = self._named(ident)
        if not found:
            raise missing(ident)
        return found[0]

    def statistics(self) -> dict[str, int]:
        stats: dict[str, int] = self._call("GET", f"{HYPERVISORS}/statistics")[
            "hypervisor_statistics"]
        return stats

