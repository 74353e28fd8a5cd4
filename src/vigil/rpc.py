"""Messaging: the transport, the conductor's target and its client.

Agents reach the database only through the conductor, over oslo.messaging RPC: RabbitMQ
(``rabbit://``) across processes, ``fake://`` inside one process (``vigil up``). With the fake
driver, server and clients must share one transport object (its exchanges live in the driver
instance), so callers build the transport once and pass it around.

oslo.messaging is imported when a transport or a client is made, not with this module: the
assembly (vigil.launch) imports every client, and a command that sends nothing (``vigil service
list``) must not pay for the library, its server and eventlet (about 0.3 s, issue 12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from vigil.errors import ConfigError, MessagingUnavailable
from vigil.objects.services import ReportVerdict, ServiceRecord

if TYPE_CHECKING:
    import oslo_messaging as messaging

CONDUCTOR_TOPIC = "vigil-conductor"


def get_transport(conf: cfg.ConfigOpts) -> messaging.Transport:
    import oslo_messaging as messaging

    try:
        return messaging.get_rpc_transport(conf, url=conf.transport_url)
    except (messaging.InvalidTransportURL, messaging.DriverLoadFailure) as exc:
        raise ConfigError(f"invalid transport_url {conf.transport_url!r}: {exc}") from exc


def conductor_target(server: str | None = None) -> messaging.Target:
    import oslo_messaging as messaging

    return messaging.Target(topic=CONDUCTOR_TOPIC, server=server, version="1.0")


class ConductorClientBase:
    """An RPC client of the conductor topic whose every failure is MessagingUnavailable.

    One place sorts oslo.messaging's errors (timeout, transport failure, remote exception) into
    Vigil's retryable branch, for every feature's conductor client.
    """

    def __init__(self, transport: messaging.Transport, timeout: float) -> None:
        import oslo_messaging as messaging

        self._client = messaging.get_rpc_client(transport, conductor_target(), timeout=timeout)

    def _call(self, method: str, *, call_timeout: float | None = None, **kwargs: Any) -> Any:
        """``method`` on a conductor; ``call_timeout`` (seconds) instead of the client's
        ``rpc_response_timeout`` when given and shorter."""
        import oslo_messaging as messaging  # imported already: the client was made

        try:
            client = (self._client.prepare(retry=0, timeout=call_timeout)
                      if call_timeout is not None and call_timeout < self._client.timeout
                      else self._client.prepare(retry=0))
            return client.call({}, method, **kwargs)
        except messaging.MessagingTimeout as exc:
            raise MessagingUnavailable(f"conductor did not answer {method} in time") from exc
        except messaging.MessagingException as exc:
            raise MessagingUnavailable(f"conductor {method} failed: {exc}") from exc
        except messaging.RemoteError as exc:
            raise MessagingUnavailable(f"conductor {method} failed remotely: {exc.value}") from exc


class ConductorAPI(ConductorClientBase):
    """Client side of the conductor's service registry calls."""

    def service_get_or_create(self, host: str, binary: str, topic: str) -> ServiceRecord:
        data = self._call("service_get_or_create", host=host, binary=binary, topic=topic)
        return ServiceRecord.from_primitive(data)

    def report_state(self, service_id: int, *, timeout: float | None = None) -> ReportVerdict:
        return ReportVerdict(self._call("report_state", call_timeout=timeout,
                                        service_id=service_id))

    def service_leave(self, service_id: int) -> None:
        self._call("service_leave", service_id=service_id)
