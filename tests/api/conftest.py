"""Fixtures of the API tests: a real app over a real SQLite database with token-file auth.

Tokens: ``admin`` (role admin), ``member`` (member, reader), ``reader`` (reader). Services are
created with the same database function the agents use.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import conf as vconf
from vigil import launch
from vigil.db import services as services_db
from vigil.launch.api import create_app_from_conf
from vigil.objects.services import ServiceRecord
from vigil.registry import Registry

TOKENS = {
    "admin-token": {"user_id": "admin", "project_id": "p1", "roles": ["admin", "member",
                                                                      "reader"]},
    "member-token": {"user_id": "alice", "project_id": "p1", "roles": ["member", "reader"]},
    "reader-token": {"user_id": "bob", "project_id": "p1", "roles": ["reader"]},
}
ADMIN = {"X-Auth-Token": "admin-token"}
MEMBER = {"X-Auth-Token": "member-token"}
READER = {"X-Auth-Token": "reader-token"}


def at(version: str, headers: dict[str, str] = ADMIN) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


@dataclass
class Api:
    client: TestClient
    conf: cfg.ConfigOpts
    conf_path: Path
    engine: Engine
    registry: Registry
    computes: list[ServiceRecord]
    conductor: ServiceRecord

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every services row, to prove a refused request changed nothing."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT * FROM services ORDER BY id")).all()]

    def make_unknown(self, record: ServiceRecord) -> None:
        """Age a never-reporting service past service_down_time with no report path beating:
        its heartbeat is stale but nobody could have reported, so liveness is UNKNOWN."""
        old = dt.datetime.utcnow() - dt.timedelta(hours=1)
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE services SET created_at = :t, last_seen_up = NULL "
                                 "WHERE id = :id"), {"t": old, "id": record.id})


def write_tokens(path: Path, tokens: dict[str, Any] = TOKENS) -> Path:
    path.write_text(json.dumps(tokens))
    return path


def make_conf(tmp_path: Path, sections: dict[str, dict[str, Any]]) -> tuple[cfg.ConfigOpts, Path]:
    """A validated configuration written to a file (subprocesses read the same file)."""
    sections = {k: dict(v) for k, v in sections.items()}
    sections.setdefault("DEFAULT", {}).setdefault("state_path", str(tmp_path / "state"))
    lines: list[str] = []
    for section, values in sections.items():
        lines += [f"[{section}]", *(f"{k} = {v}" for k, v in values.items()), ""]
    path = tmp_path / f"vigil-{uuid.uuid4().hex[:6]}.conf"
    path.write_text("\n".join(lines))
    return vconf.load(["--config-file", str(path)], default_files=[]), path


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Api] = []

    def _make(api_section: dict[str, Any] | None = None, **sections: Any) -> Api:
        token_file = write_tokens(tmp_path / "tokens.json")
        api_opts = {"token_file": str(token_file), **(api_section or {})}
        conf, path = make_conf(tmp_path, {"api": api_opts, **sections})
        engine = launch.engine_from(conf, sync=True)
        computes = [services_db.service_get_or_create(engine, f"host{i}", "vigil-compute",
                                                      "compute")[0]
                    for i in (1, 2, 3)]
        conductor = services_db.service_get_or_create(engine, "host1", "vigil-conductor",
                                                      "conductor")[0]
        registry = launch.registry_over(conf, engine, launch.group_from(conf, engine))
        client = TestClient(create_app_from_conf(conf, registry))
        api = Api(client, conf, path, engine, registry, computes, conductor)
        made.append(api)
        return api

    yield _make
    for api in made:
        api.client.close()
        api.engine.dispose()


@pytest.fixture
def api(api_factory: Any) -> Api:
    result: Api = api_factory()
    return result
