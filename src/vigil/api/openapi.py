"""The OpenAPI document, as served at ``/openapi.json``; ``python -m vigil.api.openapi`` prints
it (that is how docs/openapi.json is regenerated; a test checks the two are identical).

The document is a property of the code (routes and schemas), not of a deployment, so it is
built here over an in-memory database with development auth.
"""

from __future__ import annotations

import json
from typing import Any

from vigil import conf as vconf
from vigil.api import auth
from vigil.api.app import create_app
from vigil.api.policy import Policy
from vigil.db.engine import make_engine
from vigil.registry import Registry
from vigil.servicegroup import drivers
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.options import timing_from


def document() -> dict[str, Any]:
    conf = vconf.load([], default_files=[])
    engine = make_engine("sqlite://")
    group = ServiceGroup(drivers.load(conf), timing_from(conf), engine=engine)
    app = create_app(Registry(engine, group), Policy(conf), auth.NoAuth())
    return app.openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(document()), end="")
