"""The OpenAPI document: served, describing the real bodies, and kept in docs/openapi.json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.conftest import Api
from vigil.api import openapi
from vigil.api.routes import services

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_copy_matches_what_the_app_serves(api: Api) -> None:
    served = api.client.get("/openapi.json").json()
    assert openapi.render(served) == DOC.read_text(), (
        "docs/openapi.json is stale: python -m vigil.api.openapi > docs/openapi.json")
    assert openapi.document() == served


def test_document_describes_nova_bodies(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    put = doc["paths"]["/v2.1/os-services/{service_id}"]["put"]
    bodies = put["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert services.UPDATE in bodies and services.UPDATE_V211 in bodies
    assert services.UPDATE_V253 in bodies
    listing = doc["paths"]["/v2.1/os-services"]["get"]["responses"]["200"]
    items = [alt["properties"]["services"]["items"] for alt in
             listing["content"]["application/json"]["schema"]["anyOf"]]
    assert {"forced_down"} == set(items[1]["properties"]) - set(items[0]["properties"])
    assert items[2]["properties"]["id"] == {"type": "string", "format": "uuid"}
    assert "422" not in json.dumps(doc["paths"])
    assert put["security"] == [{"token": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
