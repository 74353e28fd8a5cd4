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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from vigil.errors import BrokerUnreachable, ConfigError, MessagingUnavailable
from vigil.objects.services import ReportVerdict, ServiceRecord

if TYPE_CHECKING:
    import oslo_messaging as messaging

LOG = logging.getLogger(__name__)

CONDUCTOR_TOPIC = "vigil-conductor"

# A service's report client tries a new transport after this many calls in a row failed,
# then after twice as many, and so on up to REBUILD_AFTER_MAX (see ReportClient). One: the
# attempt runs beside the calls and is used only once a call got through it, so it costs a
# pair of connections, and waiting for a second failure cost another report interval of a
# partition's 10 to 12 s of failed reports.
REBUILD_AFTER = 1
REBUILD_AFTER_MAX = 32
# Seconds after which a new transport still being tried no longer holds the next attempt back.
ABANDON_ATTEMPT_AFTER = 30.0


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
        from kombu.exceptions import KombuError  # the rabbit driver's (imported with it)

        try:
            client = (self._client.prepare(retry=0, timeout=call_timeout)
                      if call_timeout is not None and call_timeout < self._client.timeout
                      else self._client.prepare(retry=0))
            return client.call({}, method, **kwargs)
        except messaging.MessagingTimeout as exc:
            raise MessagingUnavailable(f"conductor did not answer {method} in time") from exc
        except messaging.MessageDeliveryFailure as exc:  # "Unable to connect to AMQP server"
            raise BrokerUnreachable(f"conductor {method}: {exc}") from exc
        except messaging.MessagingException as exc:
            raise MessagingUnavailable(f"conductor {method} failed: {exc}") from exc
        except messaging.RemoteError as exc:
            raise MessagingUnavailable(f"conductor {method} failed remotely: {exc.value}") from exc
        except (KombuError, OSError) as exc:
            # oslo.messaging lets kombu's own error through when a new connection cannot be
            # made at all (a broker down or cut off: the connect timed out or was refused).
            raise BrokerUnreachable(f"conductor {method}: no connection to a broker: "
                                    f"{exc}") from exc


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
    transport of its own, which it replaces when its calls keep failing.

    Why: oslo.messaging fails over between brokers per connection, on its own evidence (a
    heartbeat missed, a send not acknowledged), and that can take long or never happen. In
    issue 14's partition scenario, a process's connection for RPC *answers* moved to the
    cut-off broker and stayed there for the whole partition: kombu kept retrying that one
    half-open connection every 6 s instead of moving to the next broker, so every call of the
    process timed out, and its state reports with them. The evidence that matters here is
    the answers: after ``REBUILD_AFTER`` calls in a row without one (at once, once the
    attempts have spaced out, when the broker did not take the call at all), this client
    makes a new transport (new connections, to brokers chosen afresh: :func:`report_client`)
    *in the background*, and proves it with the call that failed; only then does it switch to
    it and close the old one (closing a
    connection to a cut-off broker blocks). Meanwhile the calls go on through the old one:
    a new connection can wait out a connect timeout on a broker that is down (12 s in the
    scenario, with the report loop held), while the old transport may recover first (a quorum
    queue electing a new leader refuses sends for a few seconds).

    While the conductors are away for everyone, the attempts space out (after 1, 2, 4, ... up
    to 32 failures in a row), so a fleet does not reconnect in step every few seconds. An
    attempt still pending after :data:`ABANDON_ATTEMPT_AFTER` seconds no longer holds the next
    one back.

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
        self._attempt: int = 0  # the generation of the newest attempt
        self._attempt_since: float | None = None  # monotonic start of a pending attempt
        self.attempts = 0  # new transports tried (tests, logs)
        self.rebuilds = 0  # new transports switched to

    def _call(self, method: str, *, call_timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            result = super()._call(method, call_timeout=call_timeout, **kwargs)
        except MessagingUnavailable as exc:
            failed = exc
        else:
            with self._lock:
                self._failures = 0
                self._rebuild_at = REBUILD_AFTER
            return result
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            failures = self._failures
            free = (self._attempt_since is None
                    or now - self._attempt_since > ABANDON_ATTEMPT_AFTER)
            # The broker did not take the call at all: try another at once.
            start = free and (failures >= self._rebuild_at
                              or isinstance(failed, BrokerUnreachable))
            if start:
                self._rebuild_at = min(self._rebuild_at * 2, REBUILD_AFTER_MAX)
                self._failures = 0
                self._attempt += 1
                self._attempt_since = now
                self.attempts += 1
                generation = self._attempt
        if start:
            LOG.warning("%d calls to the conductors in a row failed (%s): connecting to the "
                        "brokers again (a new transport, tried in the background)",
                        failures, failed)
            threading.Thread(target=self._try_transport,
                             args=(generation, method, call_timeout, kwargs),
                             name="report-transport", daemon=True).start()
        raise failed

    def _try_transport(self, generation: int, method: str, call_timeout: float | None,
                       kwargs: dict[str, Any]) -> None:
        """Make a new transport, prove it with the call that failed, then switch to it."""
        transport: messaging.Transport | None = None
        try:
            transport = self._make_transport()
            trial = ConductorClientBase(transport, self._timeout)
            trial._call(method, call_timeout=call_timeout, **kwargs)
        except Exception as exc:  # MessagingUnavailable or a broken factory: tried again later
            LOG.warning("the new transport did not answer either (%s); keeping the old one",
                        exc)
            with self._lock:
                if self._attempt == generation:
                    self._attempt_since = None
            if transport is not None:
                _cleanup(transport)
            return
        with self._lock:
            if self._attempt != generation:  # abandoned, and a newer attempt is under way
                current = False
            else:
                current = True
                old, self._transport, self._client = self._transport, transport, trial._client
                self._attempt_since = None
                self._failures = 0
                self._rebuild_at = REBUILD_AFTER
                self.rebuilds += 1
        if not current:
            _cleanup(transport)
            return
        LOG.warning("calls to the conductors get through the new transport: switched to it")
        _cleanup(old)

    def close(self) -> None:
        """Close this client's own transport (the process is stopping)."""
        _cleanup(self._transport)


def _cleanup(transport: messaging.Transport) -> None:
    try:
        transport.cleanup()
    except Exception:  # a broken connection must not stop its replacement's work
        LOG.debug("closing an old transport failed", exc_info=True)


def report_client(conf: cfg.ConfigOpts, shared: messaging.Transport) -> ConductorAPI:
    """The conductor client a service reports through: a :class:`ReportClient` on a transport
    of its own for a real broker, a plain client of the ``shared`` transport for ``fake://``
    (whose server and clients must share one transport object).

    Each transport the report client makes gets every broker of ``transport_url``, and
    oslo.messaging picks among them at random for each connection. Not one broker at a time:
    the connection for answers is made with unlimited retries on the first call, so a
    transport given only a broker that is down would hold that call for ever, where one given
    all of them moves on to the next."""
    import oslo_messaging as messaging

    url = messaging.TransportURL.parse(conf, conf.transport_url)
    if url.transport == "fake":
        return ConductorAPI(shared, timeout=conf.rpc_response_timeout)
    return ReportClient(lambda: get_transport(conf), timeout=conf.rpc_response_timeout)
