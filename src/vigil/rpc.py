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

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from vigil.errors import ConfigError, MessagingUnavailable
from vigil.objects.services import ReportVerdict, ServiceRecord

if TYPE_CHECKING:
    import oslo_messaging as messaging

LOG = logging.getLogger(__name__)

CONDUCTOR_TOPIC = "vigil-conductor"

# A service's report client builds its transport again after this many calls in a row failed,
# then after twice as many, and so on up to REBUILD_AFTER_MAX (see ReportClient).
REBUILD_AFTER = 2
REBUILD_AFTER_MAX = 32


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

        self._timeout = timeout
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


class ReportClient(ConductorAPI):
    """The conductor client of one service's own registration and state reports, on a
    transport of its own, made again when its calls keep failing.

    Why: oslo.messaging fails over between brokers per connection, on its own evidence (a
    heartbeat missed, a send not acknowledged), and that can take long or never happen. In
    issue 14's partition scenario, a process's connection for RPC *answers* moved to the
    cut-off broker and stayed there for the whole partition: kombu kept retrying that one
    half-open connection every 6 s instead of moving to the next broker, so every call of the
    process timed out, and its state reports with them. The evidence that matters here is
    the answers: after ``REBUILD_AFTER`` calls in a row without one, this client makes a new
    transport (new connections, to brokers chosen afresh) and lets the old one close in the
    background (closing a connection to a cut-off broker blocks). While the conductors are
    away for everyone, the rebuilds space out (after 2, 4, 8, ... up to 32 failures in a
    row), so a fleet does not reconnect in step every few seconds.

    Only for a real broker: with ``fake://`` (``vigil up``) a server and its clients must
    share one transport object. See :func:`report_client`.
    """

    def __init__(self, make_transport: Callable[[], messaging.Transport],
                 timeout: float) -> None:
        self._make_transport = make_transport
        self._transport = make_transport()
        super().__init__(self._transport, timeout)
        self._lock = threading.Lock()
        self._failures = 0
        self._rebuild_at = REBUILD_AFTER
        self.rebuilds = 0  # transports made again (tests, logs)

    def _call(self, method: str, *, call_timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            result = super()._call(method, call_timeout=call_timeout, **kwargs)
        except MessagingUnavailable:
            with self._lock:
                self._failures += 1
                rebuild = self._failures >= self._rebuild_at
                if rebuild:
                    self._rebuild_at = min(self._rebuild_at * 2, REBUILD_AFTER_MAX)
                    failures, self._failures = self._failures, 0
            if rebuild:
                self._rebuild(failures)
            raise
        with self._lock:
            self._failures = 0
            self._rebuild_at = REBUILD_AFTER
        return result

    def _rebuild(self, failures: int) -> None:
        import oslo_messaging as messaging

        try:
            transport = self._make_transport()
        except Exception:  # the next failures will try again
            LOG.exception("could not make a new transport for the conductor client")
            return
        client = messaging.get_rpc_client(transport, conductor_target(), timeout=self._timeout)
        with self._lock:
            old, self._transport, self._client = self._transport, transport, client
            self.rebuilds += 1
        LOG.warning("%d calls to the conductors in a row got no answer: connecting to the "
                    "brokers again (new transport)", failures)
        threading.Thread(target=_cleanup, args=(old,), name="transport-cleanup",
                         daemon=True).start()

    def close(self) -> None:
        """Close this client's own transport (the process is stopping)."""
        _cleanup(self._transport)


def _cleanup(transport: messaging.Transport) -> None:
    try:
        transport.cleanup()
    except Exception:  # a broken connection must not stop its replacement's work
        LOG.debug("closing an old transport failed", exc_info=True)


def report_client(conf: cfg.ConfigOpts, shared: messaging.Transport) -> ConductorAPI:
    """The conductor client a service reports through: a :class:`ReportClient` on its own
    transport for a real broker, a plain client of the ``shared`` transport for ``fake://``
    (whose server and clients must share one transport object)."""
    import oslo_messaging as messaging

    url = messaging.TransportURL.parse(conf, conf.transport_url)
    if url.transport == "fake":
        return ConductorAPI(shared, timeout=conf.rpc_response_timeout)
    return ReportClient(lambda: get_transport(conf), timeout=conf.rpc_response_timeout)
