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
from vigil.errors import MessagingUnavailable
from vigil.objects.services import ReportVerdict


class Endpoint:
    target = messaging.Target(version="1.0")

    def __init__(self) -> None:
        self.reports = 0

    def report_state(self, ctxt: dict[str, Any], service_id: int) -> str:
        self.reports += 1
        return ReportVerdict.OK.value


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
            for _ in range(rpc.REBUILD_AFTER):
                started = time.monotonic()
                with pytest.raises(MessagingUnavailable):
                    client.report_state(1, timeout=1)
                # The rebuild does not wait for the stalled transport to close.
                assert time.monotonic() - started < 5
            assert client.rebuilds == 1 and made == [via_proxy, url]
            before = endpoint.reports
            assert client.report_state(1, timeout=2) is ReportVerdict.OK
            assert endpoint.reports == before + 1
        finally:
            proxy.heal()
            client.close()


def test_rebuilds_space_out_while_nobody_answers(rabbit_vhost_url: str) -> None:
    """No conductor at all: the transport is made again after 2 failures in a row, then 4,
    then 8: a fleet does not reconnect in step every few seconds during an outage."""
    made = threading.Semaphore(0)

    def make() -> messaging.Transport:
        made.release()
        return rpc.get_transport(conf_for(rabbit_vhost_url))

    client = rpc.ReportClient(make, timeout=5)
    try:
        rebuilt_after: list[int] = []
        failures = 0
        while len(rebuilt_after) < 3:
            with pytest.raises(MessagingUnavailable):
                client.report_state(1, timeout=0.2)
            failures += 1
            if client.rebuilds > len(rebuilt_after):
                rebuilt_after.append(failures)
        assert rebuilt_after == [2, 2 + 4, 2 + 4 + 8]
    finally:
        client.close()


def test_fake_transport_reports_through_the_shared_transport(make_conf: Any) -> None:
    conf, _ = make_conf({"DEFAULT": {"transport_url": "fake://"}})
    shared = rpc.get_transport(conf)
    client = rpc.report_client(conf, shared)
    assert type(client) is rpc.ConductorAPI
