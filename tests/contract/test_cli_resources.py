"""The CLI's resources (:mod:`vigil.cli.resources`) behave the same over the database and
through a real ``vigil api`` process: the same assertions, run once per side.

The database side is the domain's own API (``NodesAPI``, ``HostsAPI``, ...) over the API
process's SQLite file; the API side is the HTTP client of the same resource. Both are built by
the factories the commands use, from a :class:`~vigil.cli.target.Target`.
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api import test_real_clients as real
from tests.api.test_real_clients import Server
from vigil.cli import resources
from vigil.cli.target import Target
from vigil.conf import load
from vigil.errors import Conflict, InvalidInput, NotFound, ServiceNotFound

pytestmark = pytest.mark.slow

server = real.server  # the module-scoped `vigil api` process


@pytest.fixture(params=["database", "api"])
def side(request: pytest.FixtureRequest, server: Server) -> Iterator[Any]:
    """``open(kind)``: the resource on this side, as a context manager."""
    conf = load(["--config-file", str(server.conf_path)], default_files=[])
    target = (Target(None, None, "test") if request.param == "database"
              else Target(server.root, server.token, "test"))
    factories = {"nodes": resources.nodes, "hosts": resources.hosts,
                 "recoveries": resources.recoveries, "ring": resources.ring,
                 "services": services}

    @contextlib.contextmanager
    def open_(kind: str) -> Iterator[Any]:
        with factories[kind](target, conf) as res:
            yield res

    yield open_


@contextlib.contextmanager
def services(target: Target, conf: Any) -> Iterator[Any]:
    """``vigil service``'s side: the Registry, or its HTTP client (vigil.api.client)."""
    if target.api is None:
        from vigil import launch

        registry = launch.registry_from(conf)
        try:
            yield registry
        finally:
            registry.group.driver.close()
        return
    from vigil.api.client import RegistryClient

    with RegistryClient(*target.api) as client:
        yield client


def test_services(side: Any) -> None:
    with side("services") as reg:
        hosts = sorted(v.record.host for v in reg.list(binary="vigil-compute"))
        assert hosts == ["compute1", "compute2", "compute3", "compute4"]
        record = reg.find("compute3", "vigil-compute")
        assert reg.get(record.uuid).record.id == record.id
        off = reg.update(record, enabled=False, disabled_reason="contract")
        assert off.status == "disabled" and off.record.disabled_reason == "contract"
        on = reg.update(record, enabled=True)
        assert on.status == "enabled" and on.record.disabled_reason is None
        with pytest.raises(ServiceNotFound):
            reg.find("nowhere", "vigil-compute")
        with pytest.raises(ServiceNotFound):
            reg.delete(999999)


def test_nodes(side: Any) -> None:
    name = f"n-{uuidlib.uuid4().hex[:8]}"
    with side("nodes") as nodes:
        created = nodes.create(name=name, cpus=4, memory_mb=2048, local_gb=20).to_dict()
        assert created["name"] == name and created["properties"] == {
            "cpus": 4, "memory_mb": 2048, "local_gb": 20}
        assert created["power_state"] == "power off" and created["owner"] is None
        assert nodes.get(name).to_dict()["uuid"] == created["uuid"]
        assert nodes.get(created["uuid"]).to_dict()["name"] == name
        assert name in [n.to_dict()["name"] for n in nodes.list()]
        with pytest.raises(Conflict):
            nodes.create(name=name, cpus=1, memory_mb=1, local_gb=1)
        with pytest.raises(InvalidInput):
            nodes.create(name=f"{name}-bad", cpus=-1, memory_mb=1, local_gb=1)
        assert nodes.delete(name).to_dict()["uuid"] == created["uuid"]
        with pytest.raises(NotFound):
            nodes.get(name)
        with pytest.raises(NotFound):
            nodes.delete(name)


def test_hosts(side: Any) -> None:
    with side("hosts") as hosts:
        names = [h["host"] for h in hosts.list()]
        assert names == ["compute1", "compute2", "compute3", "compute4"]
        on = hosts.set_maintenance("compute2", True, reason="disk swap", actor="tester")
        assert on["maintenance"] is True and on["maintenance_reason"] == "disk swap"
        assert on["maintenance_by"]
        assert hosts.get("compute2")["maintenance"] is True
        off = hosts.set_maintenance("compute2", False, reason=None, actor="tester")
        assert off["maintenance"] is False
        with pytest.raises(InvalidInput):
            hosts.set_maintenance("compute2", False, reason="why", actor="tester")
        with pytest.raises(Conflict):  # nothing to release
            hosts.release("compute2", reason="test", actor="tester")
        with pytest.raises(NotFound):
            hosts.get("nowhere")
        with pytest.raises(NotFound):
            hosts.set_maintenance("nowhere", True, reason=None, actor="tester")


def test_recoveries(side: Any) -> None:
    with side("recoveries") as recs:
        assert recs.list_recoveries(limit=5) == []
        assert recs.list_recoveries(open_only=True, host="compute1") == []
        assert recs.alerts() == []
        assert recs.leader() is None
        with pytest.raises(NotFound):
            recs.get(999999)
        with pytest.raises(NotFound):
            recs.get(str(uuidlib.uuid4()))
        # compute1 never reported: no evidence that it is dead, so no evacuation.
        with pytest.raises(Conflict):
            recs.evacuate_host("compute1", actor="tester")
        with pytest.raises(NotFound):
            recs.evacuate_host("nowhere", actor="tester")


def test_ring(side: Any) -> None:
    name = f"r-{uuidlib.uuid4().hex[:8]}"
    with side("nodes") as nodes:
        nodes.create(name=name, cpus=1, memory_mb=512, local_gb=1)
    try:
        with side("ring") as ring:
            report = ring.show()
            assert report.members == [] and report.nodes >= 1
            assert report.unmanaged == report.nodes  # no bare-metal host runs: nobody owns
            assert report.node is None
            one = ring.show(name)
            assert one.node is not None and one.node["name"] == name
            assert one.node["maps_to"] is None and one.node["owner"] is None
            with pytest.raises(NotFound):
                ring.show("no-such-node")
    finally:
        with side("nodes") as nodes:
            nodes.delete(name)
