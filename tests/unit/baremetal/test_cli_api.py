"""``vigil node``/``vigil ring`` and ``/v2.1/vigil/nodes``/``/v2.1/vigil/ring``: the same
operations, the same refusals; bad input is one line (or a 400) and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.api.conftest import ADMIN, MEMBER, Api, api_factory  # noqa: F401 - a fixture
from tests.conftest import write_config
from tests.unit.baremetal.helpers import boot_on, node, own, service
from tests.unit.compute.helpers import make_group
from vigil.baremetal.ownership import Ownership
from vigil.cli.main import main
from vigil.db import migration
from vigil.db.baremetal_models import BareMetalNode
from vigil.db.engine import make_engine
from vigil.ring import HashRing

UUID = "6f1f4f0e-3d7c-4b8f-9a4e-0f7c2d1b5a10"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    cfg = write_config(tmp_path / "vigil.conf", {
        "DEFAULT": {"state_path": str(tmp_path), "report_interval": 1, "service_down_time": 5},
        "database": {"connection": url},
    })
    engine = make_engine(url)
    migration.sync(engine)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(["--config-file", str(cfg), *args])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    run.engine = engine  # type: ignore[attr-defined]
    yield run
    engine.dispose()


def node_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(BareMetalNode).order_by(
            BareMetalNode.id))]


def test_node_create_show_list_delete(cli: Any) -> None:
    code, out, _ = cli("node", "create", "--name", "rack1-01", "--uuid", UUID.upper(),
                       "--cpus", "32", "--memory-mb", "131072", "--local-gb", "900",
                       "--format", "json")
    assert code == 0
    created = json.loads(out)
    assert created["uuid"] == UUID and created["owner"] is None
    assert created["properties"] == {"cpus": 32, "memory_mb": 131072, "local_gb": 900}
    assert created["power_state"] == "power off" and created["maintenance"] is False
    code, out, _ = cli("node", "show", "rack1-01")
    assert code == 0 and UUID in out and "131072" in out
    code, out, _ = cli("node", "list")
    assert code == 0 and "rack1-01" in out and "Owner" in out.splitlines()[1]
    code, out, _ = cli("node", "delete", UUID, "--format", "json")
    assert code == 0 and json.loads(out)["uuid"] == UUID
    code, out, _ = cli("node", "list", "--format", "json")
    assert json.loads(out) == []


@pytest.mark.parametrize("args", [
    ["--cpus", "0", "--memory-mb", "1", "--local-gb", "1"],
    ["--cpus", "1", "--memory-mb", "-5", "--local-gb", "1"],
    ["--cpus", "1", "--memory-mb", "1", "--local-gb", "1", "--uuid", "not-a-uuid"],
    ["--cpus", "1", "--memory-mb", "1", "--local-gb", "1", "--name", UUID],
    ["--cpus", "1", "--memory-mb", "1", "--local-gb", "1", "--name", " padded"],
    ["--cpus", "1", "--memory-mb", "1", "--local-gb", "1", "--resource-class", "bad class"],
    ["--cpus", "x", "--memory-mb", "1", "--local-gb", "1"],
    ["--cpus", "1", "--memory-mb", "1", "--local-gb", str(2**31)],
    ["--memory-mb", "1", "--local-gb", "1"],
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli: Any, args: list[str]) -> None:
    cli("node", "create", "--name", "keep", "--cpus", "1", "--memory-mb", "1", "--local-gb", "1")
    before = node_rows(cli.engine)
    code, out, err = cli("node", "create", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("vigil: error: ")
    assert node_rows(cli.engine) == before


def test_conflicts_and_missing_nodes_exit_1_and_change_nothing(cli: Any) -> None:
    cli("node", "create", "--name", "n1", "--cpus", "1", "--memory-mb", "1", "--local-gb", "1")
    before = node_rows(cli.engine)
    code, _, err = cli("node", "create", "--name", "n1", "--cpus", "2", "--memory-mb", "1",
                       "--local-gb", "1")
    assert code == 1 and "already exists" in err and len(err.splitlines()) == 1
    code, _, err = cli("node", "delete", "nope")
    assert code == 1 and "not found" in err
    # A node holding an instance is not deleted.
    n = node(cli.engine, "busy")
    service(cli.engine, "h1")
    boot_on(cli.engine, own(cli.engine, n, "h1"))
    before = node_rows(cli.engine)
    code, _, err = cli("node", "delete", "busy")
    assert code == 1 and "instance" in err
    assert node_rows(cli.engine) == before


def fleet_with_ring(engine: Engine) -> tuple[list[str], HashRing]:
    """Two live members and one dead, nodes owned by their ring targets."""
    group = make_group(engine)
    ownership = Ownership(engine, group)
    for host, state in (("h1", "up"), ("h2", "up"), ("h3", "down")):
        service(engine, host, state)
        ownership.view(host)  # registers it as a bare-metal member
    ring = HashRing(["h1", "h2"])
    uuids = []
    for i in range(12):
        n = node(engine, f"n{i}")
        own(engine, n, ring.get_node(n.uuid))
        uuids.append(n.uuid)
    node(engine, "orphan")
    return uuids, ring


def test_ring_show(cli: Any) -> None:
    uuids, ring = fleet_with_ring(cli.engine)
    code, out, _ = cli("ring", "show", "--format", "json", "--node", uuids[0])
    assert code == 0
    report = json.loads(out)
    by_host = {m["host"]: m for m in report["members"]}
    assert set(by_host) == {"h1", "h2", "h3"}
    assert by_host["h3"]["state"] == "down" and by_host["h3"]["nodes_mapped"] == 0
    owned = {h: sum(1 for u in uuids if ring.get_node(u) == h) for h in ("h1", "h2")}
    for h in ("h1", "h2"):
        assert by_host[h]["nodes_owned"] == owned[h]
        assert by_host[h]["nodes_mapped"] == owned[h] + (ring.get_node(
            report_uuid(cli.engine, "orphan")) == h)
    assert report["nodes"] == 13 and report["unmanaged"] == 1
    assert report["node"]["maps_to"] == report["node"]["owner"] == ring.get_node(uuids[0])
    code, out, _ = cli("ring", "show")
    assert code == 0 and "Nodes Mapped" in out and "13 node(s), 1 without a live owner" in out
    code, _, err = cli("ring", "show", "--node", "nope")
    assert code == 1 and "not found" in err


def report_uuid(engine: Engine, name: str) -> str:
    from vigil.db.baremetal import inventory as inventory_db

    return inventory_db.node_get(engine, name).uuid


# -- REST ---------------------------------------------------------------------------------------
@pytest.fixture
def rest(api_factory: Any) -> Api:  # noqa: F811 - the imported fixture, requested
    made: Api = api_factory()
    return made


BODY = {"node": {"name": "api-1", "properties": {"cpus": 8, "memory_mb": 4096,
                                                 "local_gb": 50}}}


def test_rest_nodes(rest: Api) -> None:
    c = rest.client
    r = c.post("/v2.1/vigil/nodes", json=BODY, headers=ADMIN)
    assert r.status_code == 201, r.text
    created = r.json()["node"]
    assert created["name"] == "api-1" and created["properties"]["cpus"] == 8
    assert c.get("/v2.1/vigil/nodes", headers=ADMIN).json()["nodes"] == [created]
    assert c.get("/v2.1/vigil/nodes/api-1", headers=ADMIN).json()["node"] == created
    assert c.get(f"/v2.1/vigil/nodes/{created['uuid']}", headers=ADMIN).status_code == 200
    assert c.post("/v2.1/vigil/nodes", json=BODY, headers=ADMIN).status_code == 409
    assert c.get("/v2.1/vigil/nodes/nope", headers=ADMIN).status_code == 404
    assert c.delete("/v2.1/vigil/nodes/api-1", headers=ADMIN).status_code == 204
    assert c.get("/v2.1/vigil/nodes", headers=ADMIN).json()["nodes"] == []


@pytest.mark.parametrize("body", [
    {"node": {"properties": {"cpus": 0, "memory_mb": 1, "local_gb": 1}}},
    {"node": {"properties": {"cpus": True, "memory_mb": 1, "local_gb": 1}}},
    {"node": {"properties": {"cpus": 1, "memory_mb": 1}}},
    {"node": {"properties": {"cpus": 1, "memory_mb": 1, "local_gb": 1}, "uuid": "x"}},
    {"node": {"properties": {"cpus": 1, "memory_mb": 1, "local_gb": 1}, "extra": 1}},
    {"node": {"properties": {"cpus": 1, "memory_mb": 1, "local_gb": 1},
              "power_state": "on"}},
    {"nodes": {}},
])
def test_rest_bad_input_is_400_and_changes_nothing(rest: Api, body: dict[str, Any]) -> None:
    before = node_rows(rest.engine)
    r = rest.client.post("/v2.1/vigil/nodes", json=body, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert "message" in r.json()["badRequest"]
    assert node_rows(rest.engine) == before


def test_rest_is_admin_only(rest: Api) -> None:
    c = rest.client
    assert c.get("/v2.1/vigil/nodes", headers=MEMBER).status_code == 403
    assert c.post("/v2.1/vigil/nodes", json=BODY, headers=MEMBER).status_code == 403
    assert c.get("/v2.1/vigil/ring", headers=MEMBER).status_code == 403
    assert c.get("/v2.1/vigil/nodes").status_code == 401
    assert node_rows(rest.engine) == []


def test_rest_ring(rest: Api) -> None:
    uuids, ring = fleet_with_ring(rest.engine)
    r = rest.client.get("/v2.1/vigil/ring", params={"node": uuids[1]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()["ring"]
    assert body["nodes"] == 13 and body["unmanaged"] == 1
    assert body["node"]["maps_to"] == ring.get_node(uuids[1])
    assert sum(m["nodes_owned"] for m in body["members"]) == 12
    assert rest.client.get("/v2.1/vigil/ring", params={"bogus": "1"},
                          headers=ADMIN).status_code == 400
    assert rest.client.get("/v2.1/vigil/ring", params={"node": "nope"},
                          headers=ADMIN).status_code == 404
