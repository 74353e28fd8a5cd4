"""Client of the scheduler: a wake-up cast. The work itself is in the database (instances
waiting in task_state ``scheduling`` or ``rebuilding``), so a lost cast only delays it until
the scheduler's next scan."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import oslo_messaging as messaging

LOG = logging.getLogger(__name__)

SCHEDULER_TOPIC = "vigil-scheduler"


def scheduler_target(server: str | None = None) -> messaging.Target:
    import oslo_messaging as messaging  # when used, not with the assembly (vigil.rpc says why)

    return messaging.Target(topic=SCHEDULER_TOPIC, server=server, version="1.0")


class SchedulerAPI:
    def __init__(self, transport: messaging.Transport) -> None:
        import oslo_messaging as messaging

        self._client = messaging.get_rpc_client(transport, scheduler_target())

    def schedule_pending(self) -> bool:
        """Wake a scheduler. False (logged) if the cast could not be sent."""
        try:
            self._client.prepare(retry=0).cast({}, "schedule_pending")
            return True
        except Exception as exc:  # the scan catches up
            LOG.warning("could not wake the scheduler (its next scan will catch up): %s", exc)
            return False
