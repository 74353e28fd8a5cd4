"""/v2.1/servers and /v2.1/os-hypervisors over a real app and database (compute routes).

The scheduler is run in-process between requests (its passes are what the daemon runs), so
each test sees every step of a boot or an evacuation through the API.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ADMIN, MEMBER, Api, at
from tests.unit.compute.helpers import set_state
from vigil.api.routes.services import UNKNOWN_HEADER
from vigil.db import services as services_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.launch.settings import scheduler_settings
from vigil.objects.compute import Inventory, TaskState, VmState
from vigil.scheduler.manager import SchedulerManager


def ready(api: Api, *hosts: str) -> None:
    """Give hosts a node and a fresh heartbeat (the other fixture computes stay silent)."""
    for svc in api.computes:
        if svc.host in hosts:
            services_db.record_reports(api.engine, [svc.id], 100)
            nodes_db.compute_node_update(api.engine, svc.host, Inventory(
                hypervisor_hostname=svc.host, hypervisor_type="fake", hypervisor_version=1,
                vcpus=8, memory_mb=16384, local_gb=200, cpu_allocation_ratio=16.0,
                ram_allocation_ratio=1.5, disk_allocation_ratio=1.0))


def schedule(api: Api) -> None:
    SchedulerManager(scheduler_settings(api.conf), api.engine,
                     api.registry.group).schedule_pending()


def boot(api: Api, headers: dict[str, str] = ADMIN, **server: Any) -> Any:
    body = {"server": {"name": "vm", "flavorRef": "1", "imageRef": "ignored", **server}}
    return api.client.post("/v2.1/servers", json=body, headers=headers)


def test_boot_show_list_delete(api: Api) -> None:
    ready(api, "host1", "host2")
    r = boot(api, flavorRef=2, **{"vigil:evacuable": "false"})
    assert r.status_code == 202, r.text
    uuid = r.json()["server"]["id"]
    assert r.json()["server"]["links"][0]["href"].endswith(f"/v2.1/servers/{uuid}")
    shown = api.client.get(f"/v2.1/servers/{uuid}", headers=ADMIN).json()["server"]
    assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("BUILD", "scheduling")
    assert shown["flavor"]["original_name"] == "m1.small" and shown["evacuable"] is False
    schedule(api)
    shown = api.client.get(f"/v2.1/servers/{uuid}", headers=ADMIN).json()["server"]
    assert shown["OS-EXT-SRV-ATTR:host"] in ("host1", "host2")
    listed = api.client.get("/v2.1/servers", headers=ADMIN).json()["servers"]
    assert [s["id"] for s in listed] == [uuid] and set(listed[0]) == {"id", "name", "links"}
    detail = api.client.get("/v2.1/servers/detail?host=nowhere", headers=ADMIN).json()
    assert detail == {"servers": []}
    assert api.client.delete(f"/v2.1/servers/{uuid}", headers=ADMIN).status_code == 204
    r = api.client.get(f"/v2.1/servers/{uuid}", headers=ADMIN)
    assert r.status_code == 404 and "itemNotFound" in r.json()


def test_no_valid_host_fault_is_shown(api: Api) -> None:
    ready(api, "host1")
    r = boot(api, availability_zone="elsewhere")
    schedule(api)
    failed = api.client.get(f"/v2.1/servers/{r.json()['server']['id']}",
                            headers=ADMIN).json()["server"]
    assert failed["status"] == "ERROR" and failed["fault"]["code"] == 500
    assert failed["fault"]["message"].startswith("No valid host was found.")
    assert "AvailabilityZoneFilter removed 1" in failed["fault"]["message"]


@pytest.mark.parametrize("server, version, message", [
    ({"host": "host1"}, "2.73", "Additional properties are not allowed ('host' was"),
    ({"flavorRef": "nope"}, "2.1", "Flavor nope could not be found."),
    ({"name": ""}, "2.1", "should be non-empty"),
    ({"host": "host9"}, "2.74", "Compute host host9 could not be found."),
])
def test_create_rejects_bad_input_with_nova_messages(api: Api, server: dict[str, Any],
                                                     version: str, message: str) -> None:
    r = boot(api, at(version), **server)
    assert r.status_code == 400 and message in r.json()["badRequest"]["message"], r.text
    assert instances_db.instances(api.engine) == []


def test_requested_host_at_274(api: Api) -> None:
    ready(api, "host1", "host2")
    uuid = boot(api, at("2.74"), host="host2").json()["server"]["id"]
    schedule(api)
    assert instances_db.instance_get(api.engine, uuid).host == "host2"


def test_server_rules_default_to_admin(api: Api) -> None:
    assert boot(api, MEMBER).status_code == 403
    assert api.client.get("/v2.1/servers", headers=MEMBER).status_code == 403
    assert api.client.get("/v2.1/os-hypervisors", headers=MEMBER).status_code == 403


def test_evacuate_action_only_from_a_down_host(api: Api) -> None:
    ready(api, "host1", "host2")
    uuid = boot(api, at("2.74"), host="host1").json()["server"]["id"]
    schedule(api)
    instances_db.instance_update(api.engine, uuid, {"vm_state": VmState.ACTIVE, "task_state": None},
                                 host="host1", task_states=[TaskState.SPAWNING])
    url = f"/v2.1/servers/{uuid}/action"
    r = api.client.post(url, json={"evacuate": {}}, headers=ADMIN)
    assert r.status_code == 409 and "still in use" in r.json()["conflictingRequest"]["message"]
    # Forced down while it still reports: an operator's flag is not proof the host stopped.
    api.registry.update(api.computes[0], forced_down=True)
    r = api.client.post(url, json={"evacuate": {}}, headers=ADMIN)
    assert r.status_code == 409
    assert "forced_down alone" in r.json()["conflictingRequest"]["message"]
    api.make_unknown(api.computes[0])
    r = api.client.post(url, json={"evacuate": {}}, headers=ADMIN)
    assert r.status_code == 409 and "unknown" in r.json()["conflictingRequest"]["message"]
    set_state(api.engine, api.computes[0], "stale")  # stopped reporting: down
    r = api.client.post(url, json={"evacuate": {"host": "host1"}}, headers=ADMIN)
    assert r.status_code == 400
    assert api.client.post(url, json={"reboot": {}}, headers=ADMIN).status_code == 400
    r = api.client.post(url, json={"evacuate": {"host": "host2"}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert api.client.get(f"/v2.1/servers/{uuid}",
                          headers=ADMIN).json()["server"]["status"] == "REBUILD"
    schedule(api)
    assert instances_db.instance_get(api.engine, uuid).host == "host2"


def test_hypervisors_list_detail_show(api: Api) -> None:
    ready(api, "host1", "host2")
    api.make_unknown(api.computes[1])
    r = api.client.get("/v2.1/os-hypervisors", headers=ADMIN)
    assert r.status_code == 200 and r.headers[UNKNOWN_HEADER] == "1"
    listed = r.json()["hypervisors"]
    assert [(h["hypervisor_hostname"], h["state"]) for h in listed] == [
        ("host1", "up"), ("host2", "down")]  # unknown is never reported up
    assert all(isinstance(h["id"], int) for h in listed)
    new = api.client.get("/v2.1/os-hypervisors/detail", headers=at("2.53")).json()
    first = new["hypervisors"][0]
    assert (first["vcpus"], first["memory_mb"], first["status"]) == (8, 16384, "enabled")
    shown = api.client.get(f"/v2.1/os-hypervisors/{first['id']}", headers=at("2.53"))
    assert shown.status_code == 200 and shown.json()["hypervisor"]["service"]["host"] == "host1"
    assert api.client.get(f"/v2.1/os-hypervisors/{listed[0]['id']}",
                          headers=ADMIN).status_code == 200
    assert api.client.get("/v2.1/os-hypervisors/abc", headers=at("2.53")).status_code == 400
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.client.get(f"/v2.1/os-hypervisors/{missing}",
                          headers=at("2.53")).status_code == 404


def test_hypervisor_statistics_count_enabled_services_only(api: Api) -> None:
    ready(api, "host1", "host2")
    assert api.client.get("/v2.1/os-hypervisors/statistics",
                          headers=MEMBER).status_code == 403
    schedule(api)  # nothing pending: no change
    assert boot(api, flavorRef=1).status_code == 202
    schedule(api)
    stats = api.client.get("/v2.1/os-hypervisors/statistics", headers=ADMIN).json()[
        "hypervisor_statistics"]
    assert (stats["count"], stats["vcpus"], stats["memory_mb"], stats["local_gb"]) == (
        2, 16, 32768, 400)
    assert stats["running_vms"] == 1 and stats["vcpus_used"] == 1
    assert stats["free_ram_mb"] == stats["memory_mb"] - stats["memory_mb_used"]
    host2 = next(s for s in api.computes if s.host == "host2")
    services_db.service_update(api.engine, host2.id, {"disabled": True})
    after = api.client.get("/v2.1/os-hypervisors/statistics", headers=ADMIN).json()[
        "hypervisor_statistics"]
    assert (after["count"], after["vcpus"]) == (1, 8)
