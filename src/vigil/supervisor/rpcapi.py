"""The supervisor's RPC interface: topic ``vigil-supervisor``, server = its host.

One call, ``restart_service``: the monitor asks a live host's supervisor to restart a DOWN
service and gets the outcome back (:class:`~vigil.supervisor.core.Outcome`). A call, not a
cast, because the answer matters: "failed to stop" makes the monitor fence the host at once.
The caller waits in a thread of its own (:mod:`vigil.ha.restarts`), never in its main loop.
"""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging

from vigil.supervisor.core import Outcome, Supervisor

LOG = logging.getLogger(__name__)

SUPERVISOR_TOPIC = "vigil-supervisor"


def supervisor_target(host: str | None = None) -> messaging.Target:
    return messaging.Target(topic=SUPERVISOR_TOPIC, server=host, version="1.0")


class SupervisorEndpoint:
    """The RPC endpoint of one host's supervisor."""

    target = messaging.Target(version="1.0")

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def restart_service(self, ctxt: dict[str, Any], service: str,
                        wait: float) -> dict[str, str]:
        outcome, detail = self.supervisor.restart(service, float(wait))
        return {"outcome": outcome.value, "detail": detail}

    def describe(self, ctxt: dict[str, Any]) -> dict[str, dict[str, object]]:
        return self.supervisor.describe()


class SupervisorAPI:
    """The monitor's client of every host's supervisor."""

    def __init__(self, transport: messaging.Transport) -> None:
        self._client = messaging.get_rpc_client(transport, supervisor_target())

    def restart_service(self, host: str, service: str, *, wait: float,
                        timeout: float) -> tuple[Outcome | None, str]:
        """The supervisor's answer, or (None, why) when it could not be had (no answer in
        ``timeout``, broker trouble): the monitor then relies on its restart timeout alone."""
        try:
            reply = self._client.prepare(server=host, timeout=timeout, retry=0).call(
                {}, "restart_service", service=service, wait=wait)
        except messaging.MessagingTimeout:
            return None, f"no answer from the supervisor of {host} within {timeout:g} s"
        except Exception as exc:  # any transport failure: the restart timeout still holds
            return None, f"cannot reach the supervisor of {host}: {exc}"
        try:
            return Outcome(reply["outcome"]), str(reply.get("detail", ""))
        except (KeyError, TypeError, ValueError):
            return None, f"unreadable answer from the supervisor of {host}: {reply!r}"
