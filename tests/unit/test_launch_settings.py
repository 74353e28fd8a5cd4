"""The composition root's settings carry each option's configured value (vigil.launch.settings)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from vigil.compute.agent import ComputeSettings
from vigil.compute.virt.driver import InventoryOverrides, VirtSettings
from vigil.conductor.manager import ConductorSettings
from vigil.launch import settings
from vigil.objects.liveness import LivenessTiming
from vigil.scheduler.manager import SchedulerSettings

SECTIONS: dict[str, dict[str, Any]] = {
    "DEFAULT": {"host": "ctl-1", "enable_new_services": False, "report_interval": 2.0,
                "service_down_time": 60.0, "default_availability_zone": "az-default",
                "rpc_response_timeout": 7, "metadata_host": "::1",
                "metadata_listen_port": 9999},
    "conductor": {"coalesce_interval": 0.25, "batch_size": 77, "probe_interval": 0.75,
                  "stop_consuming_after": 3.0},
    "scheduler": {"enabled_filters": "ComputeFilter,RamFilter", "ram_weight_multiplier": -1.5,
                  "host_subset_size": 3, "max_claim_attempts": 4, "workers": 2,
                  "batch_size": 50, "pending_poll_interval": 0.5},
    "compute": {"resume_guests_state_on_host_boot": False, "update_resources_interval": 5.0,
                "instance_sync_interval": 6.0, "compute_driver": "process",
                "instances_path": "/srv/instances", "process_command": "sleep 1",
                "hypervisor_hostname": "hv-1", "vcpus": 8, "memory_mb": 4096, "local_gb": 40,
                "cpu_allocation_ratio": 2.0, "ram_allocation_ratio": 1.25,
                "disk_allocation_ratio": 1.5, "host_ip": "10.0.0.9"},
    "baremetal": {"membership_debounce": 4.0},
    "neutron": {"metadata_proxy_shared_secret": "s3cret"},
}


def test_every_field_is_the_configured_option(make_conf: Any) -> None:
    conf, _ = make_conf(SECTIONS)
    gap = LivenessTiming(report_interval=2.0, service_down_time=60.0,
                         coalesce_interval=0.25).path_max_gap
    assert gap == dt.timedelta(seconds=60 - 2.2 * 2 - 2 * 0.25)
    assert settings.conductor_settings(conf) == ConductorSettings(
        host="ctl-1", enable_new_services=False, coalesce_interval=0.25, batch_size=77,
        probe_interval=0.75, stop_consuming_after=3.0, path_max_gap=gap)
    assert settings.scheduler_settings(conf) == SchedulerSettings(
        host="ctl-1", default_availability_zone="az-default",
        enabled_filters=("ComputeFilter", "RamFilter"), ram_weight_multiplier=-1.5,
        host_subset_size=3, max_claim_attempts=4, workers=2, batch_size=50,
        pending_poll_interval=0.5)
    assert settings.compute_settings(conf) == ComputeSettings(
        report_interval=2.0, rpc_response_timeout=7, resume_guests_state_on_host_boot=False,
        update_resources_interval=5.0, instance_sync_interval=6.0)
    virt = settings.virt_settings(conf)

    def unread() -> str | None:  # the secret's getter, compared below, not by identity
        return None

    assert dataclasses.replace(virt, metadata_secret=unread) == VirtSettings(
        compute_driver="process",
        inventory=InventoryOverrides(hypervisor_hostname="hv-1", vcpus=8, memory_mb=4096,
                                     local_gb=40, cpu_allocation_ratio=2.0,
                                     ram_allocation_ratio=1.25, disk_allocation_ratio=1.5,
                                     host_ip="10.0.0.9", availability_zone="az-default"),
        state_path=conf.state_path, instances_path="/srv/instances",
        process_command="sleep 1", metadata_host="::1", metadata_listen_port=9999,
        metadata_secret=unread, rpc_response_timeout=7, membership_debounce=4.0)
    assert virt.metadata_secret() == "s3cret"


def test_the_host_zone_wins_over_the_default(make_conf: Any) -> None:
    conf, _ = make_conf({"compute": {"availability_zone": "az-host"}})
    assert settings.virt_settings(conf).inventory.availability_zone == "az-host"


def test_the_metadata_secret_is_read_at_each_use(make_conf: Any) -> None:
    """`vigil up` sets it on conf (ensure_secret); the process driver signs with the current
    one, as when it read conf itself."""
    conf, _ = make_conf({})
    virt = settings.virt_settings(conf)
    assert not virt.metadata_secret()
    conf.set_override("metadata_proxy_shared_secret", "later", group="neutron")
    assert virt.metadata_secret() == "later"


def test_settings_are_frozen(make_conf: Any) -> None:
    conf, _ = make_conf({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.scheduler_settings(conf).workers = 9  # type: ignore[misc]
