"""The daemons' settings, read from the configuration here and nowhere else.

The conductor, the scheduler and the compute agent each declare, beside their code, the small
frozen dataclass of what they need (:class:`~vigil.conductor.manager.ConductorSettings`,
:class:`~vigil.scheduler.manager.SchedulerSettings`,
:class:`~vigil.compute.agent.ComputeSettings`); the composition root fills it from ``conf``.
So the domain never imports oslo.config: a test builds the object it means, a reader sees in
one signature every option a class depends on, and an option's name (or its group, when one
moves, as Nova's ``[filter_scheduler]`` did) is read in one place.
"""

from __future__ import annotations

from oslo_config import cfg

from vigil.compute.agent import ComputeSettings
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
