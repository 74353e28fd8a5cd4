"""Version documents at ``/`` and ``/v2.1``, as Nova's, so clients can negotiate.

keystoneauth (openstacksdk, OSC) reads the ``version``/``min_version`` range of the ``v2.1``
entry to pick a microversion, and follows its ``self`` link to find the API root. These
documents are public, like Nova's: a client discovers before it authenticates.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vigil.api import microversions

router = APIRouter(tags=["versions"])

UPDATED = "2013-07-23T11:33:21Z"  # Nova's timestamp of v2.1; clients ignore it but expect it

_LINK = {"type": "object", "properties": {"href": {"type": "string"}, "rel": {"type": "string"},
                                          "type": {"type": "string"}},
         "required": ["href", "rel"]}
_VERSION = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "enum": ["v2.1"]},
        "links": {"type": "array", "items": _LINK},
        "status": {"type": "string", "enum": ["CURRENT"]},
        "version": {"type": "string"},
        "min_version": {"type": "string"},
        "updated": {"type": "string"},
        "media-types": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["id", "links", "status", "version", "min_version", "updated"],
}
VERSIONS_SCHEMA = {"type": "object", "properties": {"versions": {"type": "array",
                                                                 "items": _VERSION}},
                   "required": ["versions"]}
VERSION_SCHEMA = {"type": "object", "properties": {"version": _VERSION}, "required": ["version"]}


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _entry(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "links": [{"href": f"{_root(request)}/v2.1/", "rel": "self"}],
        "status": "CURRENT",
        "version": str(microversions.MAX),
        "min_version": str(microversions.MIN),
        "updated": UPDATED,
    }


def _ok(schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"schema": schema}}}}


@router.get("/", summary="List API versions", response_model=None,
            responses=_ok(VERSIONS_SCHEMA))
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_entry(request)]}


def _show(request: Request) -> dict[str, Any]:
    doc = _entry(request)
    doc["links"].append({"href": "https://docs.openstack.org/", "rel": "describedby",
                         "type": "text/html"})
    doc["media-types"] = [{"base": "application/json",
                           "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return {"version": doc}


@router.get("/v2.1", summary="Show API version v2.1", response_model=None,
            responses=_ok(VERSION_SCHEMA))
def show(request: Request) -> dict[str, Any]:
    return _show(request)


@router.get("/v2.1/", include_in_schema=False)
def show_slash(request: Request) -> dict[str, Any]:
    return _show(request)
