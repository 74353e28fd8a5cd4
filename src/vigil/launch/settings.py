"""The daemons' settings, read from the configuration here and nowhere else.

The conductor, the scheduler, the compute agent and the virt drivers each declare, beside their
code, the small frozen dataclass of what they need
(:class:`~vigil.conductor.manager.ConductorSettings`,
:class:`~vigil.scheduler.manager.SchedulerSettings`,
:class:`~vigil.compute.agent.ComputeSettings`,
:class:`~vigil.compute.virt.driver.VirtSettings`); the composition root fills it from ``conf``.
So the domain never imports oslo.config: a test builds the object it means, a reader sees in
one signature every option a class depends on, and an option's name (or its group, when one
moves, as Nova's ``[filter_scheduler]`` did) is read in one place.
"""

from __future__ import annotations

from oslo_config import cfg

from vigil import rpc
from vigil.compute import virt
from vigil.compute.agent import ComputeSettings
from vigil.compute.virt.driver import InventoryOverrides, VirtDriver, VirtSettings
from vigil.conductor.manager import ConductorSettings
from vigil.scheduler.manager import SchedulerSettings
from vigil.servicegroup.drivers.options import timing_from


def conductor_settings(conf: cfg.ConfigOpts) -> ConductorSettings:
    c = conf.conductor
    return ConductorSettings(
        host=conf.host,
        enable_new_services=conf.enable_new_services,
        coalesce_interval=c.coalesce_interval,
        batch_size=c.batch_size,
        probe_interval=c.probe_interval,
        stop_consuming_after=c.stop_consuming_after,
        path_max_gap=timing_from(conf).path_max_gap,
    )


def scheduler_settings(conf: cfg.ConfigOpts) -> SchedulerSettings:
    s = conf.scheduler
    return SchedulerSettings(
        host=conf.host,
        default_availability_zone=conf.default_availability_zone,
        enabled_filters=tuple(s.enabled_filters),
        ram_weight_multiplier=s.ram_weight_multiplier,
        host_subset_size=s.host_subset_size,
        max_claim_attempts=s.max_claim_attempts,
        workers=s.workers,
        batch_size=s.batch_size,
        pending_poll_interval=s.pending_poll_interval,
    )


def compute_settings(conf: cfg.ConfigOpts) -> ComputeSettings:
    c = conf.compute
    return ComputeSettings(
        report_interval=conf.report_interval,
        rpc_response_timeout=conf.rpc_response_timeout,
        resume_guests_state_on_host_boot=c.resume_guests_state_on_host_boot,
        update_resources_interval=c.update_resources_interval,
        instance_sync_interval=c.instance_sync_interval,
    )


def virt_settings(conf: cfg.ConfigOpts) -> VirtSettings:
    c = conf.compute
    return VirtSettings(
        compute_driver=c.compute_driver,
        inventory=InventoryOverrides(
            hypervisor_hostname=c.hypervisor_hostname,
            vcpus=c.vcpus,
            memory_mb=c.memory_mb,
            local_gb=c.local_gb,
            cpu_allocation_ratio=c.cpu_allocation_ratio,
            ram_allocation_ratio=c.ram_allocation_ratio,
            disk_allocation_ratio=c.disk_allocation_ratio,
            host_ip=c.host_ip,
            availability_zone=c.availability_zone or conf.default_availability_zone,
        ),
        state_path=conf.state_path,
        instances_path=c.instances_path,
        process_command=c.process_command,
        metadata_host=conf.metadata_host,
        metadata_listen_port=conf.metadata_listen_port,
        # Read at each spawn, as the driver did: `vigil up` sets it on conf (ensure_secret).
        metadata_secret=lambda: conf.neutron.metadata_proxy_shared_secret,
        rpc_response_timeout=conf.rpc_response_timeout,
        membership_debounce=conf.baremetal.membership_debounce,
    )


def virt_driver(conf: cfg.ConfigOpts, host: str, name: str | None = None) -> VirtDriver:
    """``host``'s virt driver: ``[compute] compute_driver`` (or ``name``) with the configured
    settings; a driver that needs its own messaging connection opens it on ``conf``'s
    transport."""
    return virt.load(virt_settings(conf), host, name,
                     new_transport=lambda: rpc.get_transport(conf))

