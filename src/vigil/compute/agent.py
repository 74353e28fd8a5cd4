"""``vigil compute``: a host's agent. Joins the ``compute`` group and reports its state."""

from __future__ import annotations

from oslo_config import cfg

from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup

BINARY = "vigil-compute"
TOPIC = "compute"


def make_service(
    conf: cfg.ConfigOpts, host: str, conductor: ConductorClient, group: ServiceGroup
) -> Service:
    return Service(
        host=host,
        binary=BINARY,
        topic=TOPIC,
        conductor=conductor,
        group=group,
        report_interval=conf.report_interval,
    )
