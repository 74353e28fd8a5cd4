"""``vigil server|flavor|hypervisor`` print the same through a real ``vigil api`` process
(``--os-endpoint``/``--os-token``) as from the database, and fail the same way.

Each command runs in-process through ``main()`` twice, once per mode, against the same SQLite
database the API process serves. Where the two runs cannot see the same state (two different
servers booted or deleted), the outputs are compared with the server's id, name and
timestamps left out, and the API run's output is also compared with what the database holds.
Every refused command is shown to leave the compute, flavor and service tables unchanged.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.api import test_real_clients as real
from tests.api.test_real_clients import Server, vigil
from tests.unit.compute.helpers import add_host
from vigil.compute.servers import ServerView
from vigil.conf import load
from vigil.db import services as services_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.engine import make_engine

pytestmark = pytest.mark.slow

server = real.server  # the module-scoped `vigil api` process (one per test module)

Result = tuple[int, str, str]
TABLES = ("instances", "flavors", "compute_nodes", "services")


@pytest.fixture(scope="module")
def engine(server: Server) -> Iterator[Engine]:
    conf = load(["--config-file", str(server.conf_path)], default_files=[])
    eng = make_engine(conf.database.connection)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OS_ENDPOINT", raising=False)
    monkeypatch.delenv("OS_TOKEN", raising=False)


@pytest.fixture
def run(server: Server, capsys: pytest.CaptureFixture[str]) -> Any:
    """``run(*args)``: (database result, API result) of one command."""
    conf = ["--config-file", str(server.conf_path)]

    def both(*args: str) -> tuple[Result, Result]:
        direct = vigil(capsys, *conf, *args)
        via_api = vigil(capsys, *conf, *args, "--os-endpoint", server.root,
                        "--os-token", server.token)
        return direct, via_api

    def db_only(*args: str) -> Result:
        return vigil(capsys, *conf, *args)

    def api_only(*args: str, token: str | None = None) -> Result:
        return vigil(capsys, *conf, *args, "--os-endpoint", server.root,
                     "--os-token", token or server.token)

    both.db = db_only  # type: ignore[attr-defined]
    both.api = api_only  # type: ignore[attr-defined]
    return both


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
                for t in TABLES}


def same(pair: tuple[Result, Result], code: int = 0) -> str:
    """Both modes gave exit ``code`` and the same stdout and stderr; the stdout."""
    direct, via_api = pair
    assert via_api == direct
    assert direct[0] == code, direct
    return direct[1]


def refused(pair: tuple[Result, Result], code: int, message: str) -> None:
    """Both modes failed with ``code`` and the same one-line message, printing nothing."""
    direct, via_api = pair
    assert via_api == direct
    assert direct == (code, "", f"vigil: error: {message}\n")


UNSTABLE = ("id", "name", "created", "updated", "OS-SRV-USG:terminated_at")


def stable(server_json: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(server_json)
    return {k: v for k, v in d.items() if k not in UNSTABLE}


# -- flavors -------------------------------------------------------------------------------------
def test_flavor_commands(run: Any, engine: Engine) -> None:
    for fmt in ("table", "json"):
        listed = same(run("flavor", "list", "--format", fmt))
        assert "m1.tiny" in listed
        shown = same(run("flavor", "show", "m1.tiny", "--format", fmt))
        assert "m1.tiny" in shown
    tiny = json.loads(same(run("flavor", "show", "m1.tiny", "--format", "json")))
    assert json.loads(same(run("flavor", "show", tiny["id"], "--format", "json"))) == tiny

    made = run.api("flavor", "create", "c1.api", "--vcpus", "2", "--ram", "512", "--disk", "5",
                   "--id", "c1-api", "--description", "via the API", "--format", "json")
    assert made[0] == 0
    assert made[1] == run.db("flavor", "show", "c1-api", "--format", "json")[1]
    direct = run.db("flavor", "create", "c1.db", "--vcpus", "2", "--ram", "512", "--disk", "5",
                    "--id", "c1-db", "--description", "via the API", "--format", "json")
    assert direct[0] == 0
    api_made, db_made = json.loads(made[1]), json.loads(direct[1])
    assert (api_made.pop("id"), api_made.pop("name")) == ("c1-api", "c1.api")
    assert (db_made.pop("id"), db_made.pop("name")) == ("c1-db", "c1.db")
    assert api_made == db_made
    table = run.api("flavor", "create", "c1.table", "--vcpus", "1", "--ram", "64")
    assert table[0] == 0 and table[1] == run.db("flavor", "show", "c1.table")[1]

    # A name that is no URL path segment is looked up from the list, as the database does.
    assert run.api("flavor", "create", "gpu/a100", "--vcpus", "1", "--ram", "64", "--id",
                   "gpu-a100")[0] == 0
    same(run("flavor", "show", "gpu/a100"))

    # delete prints the flavor it deleted, as the database mode does
    before = run.db("flavor", "show", "c1.api", "--format", "json")[1]
    assert run.api("flavor", "delete", "c1.api", "--format", "json") == (0, before, "")
    assert run.api("flavor", "delete", "gpu/a100")[0] == 0
    assert run.db("flavor", "delete", "c1.db", "--format", "json")[0] == 0
    for gone in ("c1-api", "gpu-a100", "c1-db"):
        refused(run("flavor", "show", gone), 1, f"flavor {gone!r} not found")

    # bad input: same exit code and message both ways, nothing changed
    state = snapshot(engine)
    refused(run("flavor", "show", "nope"), 1, "flavor 'nope' not found")
    refused(run("flavor", "delete", "nope"), 1, "flavor 'nope' not found")
    refused(run("flavor", "create", "m1.tiny", "--vcpus", "1", "--ram", "64", "--id", "x"),
            1, "a flavor named 'm1.tiny' or with id 'x' already exists")
    refused(run("flavor", "create", "bad", "--vcpus", "0", "--ram", "64"), 2,
            "vcpus must be between 1 and 2147483647")
    assert snapshot(engine) == state


def test_flavor_id_no_url_can_carry_is_refused_through_the_api(run: Any,
                                                              engine: Engine) -> None:
    """The database accepts any flavor id; Nova's routes cannot address one with a ``/``:
    the API mode says so and deletes nothing (the database mode deletes it)."""
    assert run.db("flavor", "create", "slashed", "--vcpus", "1", "--ram", "64", "--id",
                  "a/b")[0] == 0
    same(run("flavor", "show", "slashed"))
    state = snapshot(engine)
    code, out, err = run.api("flavor", "delete", "slashed")
    assert (code, out) == (2, "") and "cannot be sent in a URL" in err
    assert snapshot(engine) == state
    assert run.db("flavor", "delete", "slashed")[0] == 0


# -- hypervisors ---------------------------------------------------------------------------------
def test_hypervisor_commands(run: Any, engine: Engine, server: Server) -> None:
    add_host(engine, "compute1", state="up", vcpus=8, memory_mb=16384, local_gb=200)
    add_host(engine, "compute2", state="unknown", vcpus=4)
    add_host(engine, "compute3", state="down")
    services_db.record_reports(engine, [server.computes[0].id], 100)  # fresh: up for this test

    for fmt in ("table", "json"):
        for extra in ((), ("--long",), ("--matching", "compute"), ("--matching", "2")):
            same(run("hypervisor", "list", "--format", fmt, *extra))
        same(run("hypervisor", "stats", "--format", fmt))
    listed = json.loads(same(run("hypervisor", "list", "--format", "json")))
    # the API mode shows Vigil's unknown (from vigil:state), not Nova's down
    assert [(h["hypervisor_hostname"], h["state"]) for h in listed] == [
        ("compute1", "up"), ("compute2", "unknown"), ("compute3", "down")]
    assert "unknown" in run.api("hypervisor", "list")[1]

    nodes = {n.hypervisor_hostname: n for n in nodes_db.compute_nodes(engine)}
    for ident in ("compute2", nodes["compute2"].uuid, str(nodes["compute2"].id),
                  nodes["compute2"].uuid.replace("-", "").upper()):
        for fmt in ("table", "json"):
            shown = same(run("hypervisor", "show", ident, "--format", fmt))
        assert json.loads(shown)["state"] == "unknown"
        assert json.loads(shown)["id"] == nodes["compute2"].uuid

    state = snapshot(engine)
    refused(run("hypervisor", "show", "nosuch"), 1, "Hypervisor nosuch could not be found.")
    refused(run("hypervisor", "show", "999"), 1, "Hypervisor 999 could not be found.")
    missing = str(uuidlib.uuid4())
    refused(run("hypervisor", "show", missing), 1, f"Hypervisor {missing} could not be found.")
    assert snapshot(engine) == state


# -- servers -------------------------------------------------------------------------------------
def test_server_commands(run: Any, engine: Engine) -> None:
    """No scheduler runs next to this API, so servers stay BUILD/scheduling: stable output."""
    made = run.api("server", "create", "--flavor", "m1.tiny", "--name", "vm-api",
                   "--availability-zone", "az1", "--not-evacuable", "--format", "json")
    assert made[0] == 0
    api_vm = json.loads(made[1])
    assert (api_vm["status"], api_vm["OS-EXT-STS:task_state"]) == ("BUILD", "scheduling")
    assert api_vm["evacuable"] is False
    assert made == run.db("server", "show", api_vm["id"], "--format", "json")
    assert run.api("server", "create", "--flavor", "m1.tiny", "--name", "vm-table")[1] == (
        run.db("server", "show", "vm-table")[1])
    direct = run.db("server", "create", "--flavor", "m1.tiny", "--name", "vm-db",
                    "--availability-zone", "az1", "--not-evacuable", "--format", "json")
    assert direct[0] == 0
    assert stable(made[1]) == stable(direct[1])

    for fmt in ("table", "json"):
        assert "vm-api" in same(run("server", "list", "--format", fmt))
        same(run("server", "list", "--name", "vm-db", "--format", fmt))
        same(run("server", "list", "--host", "compute1", "--format", fmt))
        for ident in ("vm-api", api_vm["id"], api_vm["id"].replace("-", "").upper()):
            same(run("server", "show", ident, "--format", fmt))

    # --wait with nothing to place it: both print it and say it is still building
    waited = run("server", "create", "--flavor", "m1.tiny", "--name", "vm-wait", "--wait",
                 "--timeout", "0.3", "--format", "json")
    for code, out, err in waited:
        assert (code, err) == (1, "")
        assert out.endswith("vigil: still BUILD after 0.3 s\n")
    body = [out[: out.rindex("vigil: still")] for _, out, _ in waited]
    assert stable(body[0]) == stable(body[1])

    # delete prints the deleted server (as the database holds it now), by name or by id
    deleted = run.api("server", "delete", "vm-api", "--format", "json")
    assert deleted[0] == 0
    dead = ServerView(instances_db.instance_get(engine, api_vm["id"], read_deleted=True))
    assert json.loads(deleted[1]) == dead.to_dict()
    assert dead.status == "DELETED"
    vm_db = json.loads(direct[1])["id"]
    direct_deleted = run.db("server", "delete", vm_db, "--format", "json")
    assert direct_deleted[0] == 0
    assert stable(deleted[1]) == stable(direct_deleted[1])
    assert json.loads(deleted[1])["OS-SRV-USG:terminated_at"] is not None
    for gone, name in ((api_vm["id"], "vm-api"), (vm_db, "vm-db")):
        refused(run("server", "show", gone), 1, f"instance {gone} not found")
        refused(run("server", "show", name), 1, f"no server with name or id {name!r}")
    for ident in ("vm-table", *(json.loads(b)["id"] for b in body)):  # two vm-wait
        assert run.api("server", "delete", ident)[0] == 0
    assert same(run("server", "list", "--format", "json")) == "[]\n"


def test_server_bad_input_is_refused_alike_and_changes_nothing(run: Any, engine: Engine) -> None:
    for _ in range(2):
        assert run.db("server", "create", "--flavor", "m1.tiny", "--name", "twin")[0] == 0
    assert run.db("server", "create", "--flavor", "m1.tiny", "--name", "lonely")[0] == 0
    state = snapshot(engine)
    missing = str(uuidlib.uuid4())

    refused(run("server", "create", "--flavor", "nope", "--name", "x"), 2,
            "Flavor nope could not be found.")
    refused(run("server", "create", "--flavor", "m1.tiny", "--name", "x", "--host", "nohost"),
            2, "Compute host nohost could not be found.")
    refused(run("server", "show", "nosuch"), 1, "no server with name or id 'nosuch'")
    refused(run("server", "show", missing), 1, f"instance {missing} not found")
    refused(run("server", "delete", "nosuch"), 1, "no server with name or id 'nosuch'")
    refused(run("server", "delete", missing), 1, f"instance {missing} not found")
    refused(run("server", "show", "twin"), 1, "2 servers are named 'twin': use an id")
    refused(run("server", "delete", "twin"), 1, "2 servers are named 'twin': use an id")
    lonely = json.loads(run.db("server", "show", "lonely", "--format", "json")[1])["id"]
    refused(run("server", "evacuate", "lonely"), 1,
            f"instance {lonely} was never placed on a host: nothing to evacuate")
    refused(run("server", "evacuate", "nosuch"), 1, "no server with name or id 'nosuch'")
    # Input Nova's request schema rejects first: the same exit code, the API's own message.
    direct, via_api = run("server", "create", "--flavor", "m1.tiny", "--name", "")
    assert direct == (2, "", "vigil: error: the server name must be 1 to 255 characters\n")
    assert via_api[:2] == (2, "")
    assert via_api[2].startswith("vigil: error: Invalid input for field/attribute server/name.")
    assert snapshot(engine) == state

    # Nova's flavor id pattern is stricter than the database's: refused through the API only.
    code, _, err = run.api("flavor", "create", "odd", "--vcpus", "1", "--ram", "64", "--id",
                           "a/b")
    assert code == 2
    assert err.startswith("vigil: error: Invalid input for field/attribute flavor/id.")
    assert snapshot(engine) == state


def test_missing_or_wrong_token_changes_nothing(run: Any, engine: Engine,
                                                 server: Server, capsys: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    state = snapshot(engine)
    conf = ["--config-file", str(server.conf_path)]
    commands = [
        ("server", "create", "--flavor", "m1.tiny", "--name", "tokenless"),
        ("server", "list"),
        ("server", "delete", "lonely"),
        ("flavor", "create", "tokenless", "--vcpus", "1", "--ram", "64"),
        ("flavor", "delete", "m1.tiny"),
        ("hypervisor", "list"),
        ("hypervisor", "stats"),
    ]
    for args in commands:
        assert vigil(capsys, *conf, *args, "--os-endpoint", server.root) == (
            2, "", "vigil: error: an API endpoint needs a token: give --os-token (or "
            "OS_TOKEN)\n")
        monkeypatch.setenv("OS_ENDPOINT", server.compute)  # the environment, with /v2.1
        code, out, err = vigil(capsys, *conf, *args)
        monkeypatch.delenv("OS_ENDPOINT")
        assert (code, out) == (2, "") and "needs a token" in err
        code, out, err = run.api(*args, token="wrong")
        assert (code, out) == (1, "") and "the API answered 401" in err
        assert err.count("\n") == 1
    assert snapshot(engine) == state


# -- what the API mode relies on -----------------------------------------------------------------
def test_routes_the_clients_rely_on(server: Server, engine: Engine) -> None:
    """Nova's admin ``uuid``/``deleted`` filters, and ``vigil:state`` next to Nova's state."""
    headers = {"X-Auth-Token": server.token, "OpenStack-API-Version": "compute 2.53"}
    live = instances_db.instance_create(engine, name="filtered",
                                        flavor=flavors_db.flavor_get(engine, "m1.tiny"))
    detail = f"{server.compute}/servers/detail"
    got = httpx.get(detail, params={"uuid": live.uuid}, headers=headers)
    assert [s["id"] for s in got.json()["servers"]] == [live.uuid]
    got = httpx.get(detail, params={"uuid": live.uuid, "deleted": "true"}, headers=headers)
    assert got.json() == {"servers": []}  # deleted=true: deleted servers only
    got = httpx.get(detail, params={"deleted": "true"}, headers=headers)
    assert got.status_code == 400 and "give uuid=" in got.json()["badRequest"]["message"]
    instances_db.instance_destroy(engine, live.uuid)
    got = httpx.get(f"{server.compute}/servers", params={"uuid": live.uuid, "deleted": "1"},
                    headers=headers)
    assert [s["id"] for s in got.json()["servers"]] == [live.uuid]
    got = httpx.get(detail, params={"uuid": live.uuid}, headers=headers)
    assert got.json() == {"servers": []}
    assert httpx.get(f"{server.compute}/servers/{live.uuid}",
                     headers=headers).status_code == 404  # as Nova: show is live servers only

    add_host(engine, "compute2", state="unknown")
    got = httpx.get(f"{server.compute}/os-hypervisors", headers=headers)
    node = next(h for h in got.json()["hypervisors"] if h["hypervisor_hostname"] == "compute2")
    assert (node["state"], node["vigil:state"]) == ("down", "unknown")
    assert int(got.headers["X-Vigil-Unknown-State-Count"]) >= 1
    shown = httpx.get(f"{server.compute}/os-hypervisors/{node['id']}", headers=headers)
    assert (shown.json()["hypervisor"]["state"],
            shown.json()["hypervisor"]["vigil:state"]) == ("down", "unknown")
