"""The report client makes its transport again when its calls keep getting no answer
(vigil.rpc.ReportClient), against a real RabbitMQ.

The first transport goes through a TCP proxy that then stalls (a partition: every byte held,
nothing closed), so calls on it time out however long oslo.messaging takes to notice; the
transports made afterwards go to the broker directly, as a fresh choice of broker would. A real
oslo.messaging RPC server answers ``report_state`` on the conductor topic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import oslo_messaging as messaging
import pytest

import vigil.conf as vconf
from tests.tools.tcpproxy import TcpProxy
from vigil import rpc
from vigil.errors import BrokerUnreachable, MessagingUnavailable
from vigil.objects.services import ReportVerdict


class Endpoint:
    target = messaging.Target(version="1.0")

    def __init__(self) -> None:
        self.reports = 0

    def report_state(self, ctxt: dict[str, Any], service_id: int) -> str:
        self.reports += 1
        return ReportVerdict.OK.value


def wait_for(predicate: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def conf_for(url: str) -> Any:
    conf = vconf.load([], default_files=[])
    conf.set_override("transport_url", url)
    conf.set_override("rpc_response_timeout", 5)
    return conf


@pytest.fixture
def server(rabbit_vhost_url: str) -> Iterator[tuple[str, Endpoint]]:
    conf = conf_for(rabbit_vhost_url)
    transport = rpc.get_transport(conf)
    endpoint = Endpoint()
    srv = messaging.get_rpc_server(transport, rpc.conductor_target(server="c1"), [endpoint],
                                   executor="threading")
    srv.start()
    yield rabbit_vhost_url, endpoint
    srv.stop()
    srv.wait()
    transport.cleanup()


def test_calls_without_answers_make_a_new_transport_and_reports_get_through_again(
        server: tuple[str, Endpoint]) -> None:
    url, endpoint = server
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with TcpProxy((parts.hostname, parts.port)) as proxy:
        via_proxy = url.replace(f"@{parts.hostname}:{parts.port}/", f"@{proxy.address}/")
        made: list[str] = []

        def make() -> messaging.Transport:
            made.append(via_proxy if not made else url)
            return rpc.get_transport(conf_for(made[-1]))

        client = rpc.ReportClient(make, timeout=5)
        try:
            assert client.report_state(1, timeout=2) is ReportVerdict.OK
            proxy.stall()
            # A send the broker never confirms is a broker out of reach (a new transport at
            # once); an answer that never comes, a call failed (at the REBUILD_AFTER-th).
            failures = 0
            while client.attempts == 0:
                started = time.monotonic()
                with pytest.raises(MessagingUnavailable):
                    client.report_state(1, timeout=1)
                failures += 1
                # The calls do not wait for the new transport, nor for the old to close.
                assert time.monotonic() - started < 5
                assert failures <= rpc.REBUILD_AFTER
            wait_for(lambda: client.rebuilds == 1, "the new transport switched to")
            assert made == [via_proxy, url]
            before = endpoint.reports
            assert client.report_state(1, timeout=2) is ReportVerdict.OK
            assert endpoint.reports == before + 1
        finally:
            proxy.heal()
            client.close()


def test_rebuilds_space_out_while_nobody_answers(rabbit_vhost_url: str) -> None:
    """No conductor at all: a new transport is tried after REBUILD_AFTER failures in a row,
    then twice as many, then four times: a fleet does not reconnect in step every few seconds
    during an outage."""
    made = threading.Semaphore(0)

    def make() -> messaging.Transport:
        made.release()
        return rpc.get_transport(conf_for(rabbit_vhost_url))

    client = rpc.ReportClient(make, timeout=5)
    try:
        tried_after: list[int] = []
        failures = 0
        while len(tried_after) < 3:
            with pytest.raises(MessagingUnavailable):
                client.report_state(1, timeout=0.2)
            failures += 1
            if client.attempts > len(tried_after):
                tried_after.append(failures)
                # The attempt fails (nobody answers it either) before the next threshold.
                wait_for(lambda: client._attempt_since is None, "the attempt given up")
        first = rpc.REBUILD_AFTER
        assert tried_after == [first, first + 2 * first, first + 2 * first + 4 * first]
        assert client.rebuilds == 0  # a new transport that does not answer is not used
    finally:
        client.close()


def test_fake_transport_reports_through_the_shared_transport(make_conf: Any) -> None:
    conf, _ = make_conf({"DEFAULT": {"transport_url": "fake://"}})
    shared = rpc.get_transport(conf)
    client = rpc.report_client(conf, shared)
    assert type(client) is rpc.ConductorAPI


def test_a_broker_that_cannot_be_reached_is_left_at_once(
        server: tuple[str, Endpoint]) -> None:
    """The broker's connections reset and new ones refused (a broker down): the send
    connection cannot be made again, kombu's own error (which oslo.messaging lets through) is
    a BrokerUnreachable, and the client makes a new transport without waiting for a second
    failure."""
    url, _ = server
    parts = urlsplit(url)
    with TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672)) as proxy:
        via_proxy = url.replace(f"@{parts.hostname}:{parts.port}/", f"@{proxy.address}/")
        made: list[str] = []

        def make() -> messaging.Transport:
            made.append(via_proxy if not made else url)
            return rpc.get_transport(conf_for(made[-1]))

        client = rpc.ReportClient(make, timeout=5)
        try:
            assert client.report_state(1, timeout=2) is ReportVerdict.OK
            proxy.refuse = True
            proxy.cut()
            with pytest.raises(BrokerUnreachable):
                client.report_state(1, timeout=2)
            assert client.attempts == 1
            wait_for(lambda: client.rebuilds == 1, "the new transport switched to")
            assert made == [via_proxy, url]
            assert client.report_state(1, timeout=2) is ReportVerdict.OK
        finally:
            client.close()
