"""Notifications through a real RabbitMQ, read by a real oslo.messaging notification listener:
``service.update`` and ``service.delete`` in Nova's versioned envelope, saying who made the
change (the API's caller with the request id it was answered with, or the local operator of
the CLI); ``driver = noop`` sends nothing, and the audit log names the actor either way."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest

from vigil import conf as vconf

from ..conftest import RABBIT_URL, port_open
from .conftest import ADMIN, Api

pytestmark = pytest.mark.slow


class Collector:
    """A notification endpoint: keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
             payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        with self.lock:
            self.heard.append((ctxt, event_type, payload))

    def wait(self, count: int, timeout: float = 30) -> list[tuple[dict[str, Any], str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.heard) >= count:
                    return list(self.heard)
            time.sleep(0.05)
        raise AssertionError(f"heard {len(self.heard)} notifications, wanted {count}")


@pytest.fixture
def topic() -> str:
    assert port_open("127.0.0.1", 5672), "RabbitMQ is not listening on 127.0.0.1:5672"
    return f"vigil-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def listener(topic: str) -> Iterator[Collector]:
    conf = vconf.make()
    conf([], project="vigil", default_config_files=[])
    conf.set_override("transport_url", RABBIT_URL)
    transport = oslo_messaging.get_notification_transport(conf)
    collector = Collector()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [collector], executor="threading")
    server.start()  # declares the queue: nothing sent after this is lost
    yield collector
    server.stop()
    server.wait()
    transport.cleanup()


def sections(topic: str, driver: str = "messagingv2") -> dict[str, Any]:
    return {"DEFAULT": {"transport_url": RABBIT_URL},
            "oslo_messaging_notifications": {"driver": driver, "topics": topic}}


def test_api_update_and_delete_notify_with_the_caller(api_factory: Any, topic: str,
                                                      listener: Collector) -> None:
    api: Api = api_factory(**sections(topic))
    record = api.computes[0]
    r = api.client.put(f"/v2.1/os-services/{record.uuid}",
                       json={"status": "disabled", "disabled_reason": "rack 4"},
                       headers={**ADMIN, "OpenStack-API-Version": "compute 2.53"})
    assert r.status_code == 200, r.text
    ctxt, event, payload = listener.wait(1)[0]
    assert event == "service.update"
    assert payload["nova_object.name"] == "ServiceStatusPayload"
    assert payload["nova_object.version"] == "1.0"
    data = payload["nova_object.data"]
    assert (data["uuid"], data["host"], data["disabled"], data["disabled_reason"]) == (
        record.uuid, "host1", True, "rack 4")
    assert (ctxt["user_id"], ctxt["project_id"]) == ("admin", "p1")
    assert ctxt["request_id"] == r.headers["x-openstack-request-id"]

    stale = api.computes[2]
    api.engine.dispose()
    r = api.client.delete(f"/v2.1/os-services/{stale.uuid}",
                          headers={**ADMIN, "OpenStack-API-Version": "compute 2.53"})
    assert r.status_code == 204, r.text
    ctxt, event, payload = listener.wait(2)[1]
    assert event == "service.delete" and payload["nova_object.data"]["uuid"] == stale.uuid
    assert ctxt["request_id"] == r.headers["x-openstack-request-id"]


def test_cli_update_notifies_as_the_local_operator(api_factory: Any, topic: str,
                                                   listener: Collector) -> None:
    api: Api = api_factory(**sections(topic))
    result = subprocess.run(
        [sys.executable, "-m", "vigil.cli.main", "--config-file", str(api.conf_path),
         "service", "set", "host2", "vigil-compute", "--down"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    ctxt, event, payload = listener.wait(1)[0]
    assert event == "service.update" and payload["nova_object.data"]["forced_down"] is True
    assert ctxt["user_id"].startswith("local:") and ctxt["request_id"].startswith("req-")


def test_noop_driver_sends_nothing_but_the_audit_log_names_the_caller(
        api_factory: Any, topic: str, listener: Collector,
        caplog: pytest.LogCaptureFixture) -> None:
    api: Api = api_factory(**sections(topic, driver="noop"))
    with caplog.at_level(logging.INFO, logger="vigil.audit"):
        r = api.client.put(f"/v2.1/os-services/{api.computes[0].uuid}",
                           json={"status": "disabled"},
                           headers={**ADMIN, "OpenStack-API-Version": "compute 2.53"})
    assert r.status_code == 200
    audit = [rec.getMessage() for rec in caplog.records if rec.name == "vigil.audit"]
    assert len(audit) == 1 and "by admin (project p1)" in audit[0]
    assert r.headers["x-openstack-request-id"] in audit[0]
    time.sleep(1)  # a notification would have arrived by now (the others take milliseconds)
    assert listener.heard == []


def test_recovery_steps_notify_through_the_broker(tmp_path: Any, sqlite_engine: Any,
                                                  topic: str, listener: Collector) -> None:
    """The monitor's notifier (as monitor_from builds it) sends each recovery step as
    ``vigil.recovery.<event>`` with the recovery's state after it."""
    from vigil.db import services as services_db
    from vigil.db.ha import lease as lease_db
    from vigil.db.ha import recoveries as recoveries_db
    from vigil.ha.store import RecoveryStore
    from vigil.notifications import Notifier
    from vigil.objects.ha import Trigger

    from .conftest import make_conf

    conf, _ = make_conf(tmp_path, sections(topic))
    notifier = Notifier(conf, publisher_id="vigil-monitor:test")
    token = lease_db.lease_acquire(sqlite_engine, "L", "m1", ttl=60)
    assert token is not None
    svc, _ = services_db.service_get_or_create(sqlite_engine, "h1", "vigil-compute", "compute")
    rec = recoveries_db.recovery_open(sqlite_engine, token, host="h1", service_id=svc.id,
                                      trigger=Trigger.MONITOR, was_disabled=False,
                                      was_forced_down=False, detail="test")
    assert rec is not None
    store = RecoveryStore(sqlite_engine, lambda: token, notifier.recovery_changed)
    store.tell("vigil.recovery.opened", rec, None)
    store.disable(rec, "compute down")
    heard = listener.wait(2)
    assert [e for _, e, _ in heard] == ["vigil.recovery.opened", "vigil.recovery.disabled"]
    _, _, payload = heard[1]
    assert payload["nova_object.name"] == "RecoveryPayload"
    data = payload["nova_object.data"]
    assert (data["id"], data["host"], data["phase"], data["detail"]) == (
        rec.id, "h1", "disabled", "compute down")


def test_an_operators_request_is_heard_opening_when_the_leader_takes_it_up(
        tmp_path: Any, sqlite_engine: Any, topic: str, listener: Collector) -> None:
    """The API and the CLI write a request and send nothing: the leader's first step announces
    it, once, with who asked."""
    from vigil.db import services as services_db
    from vigil.db.ha import lease as lease_db
    from vigil.db.ha import recoveries as recoveries_db
    from vigil.errors import AlreadyRecorded, IllegalTransition
    from vigil.ha.store import RecoveryStore
    from vigil.notifications import Notifier

    from .conftest import make_conf

    conf, _ = make_conf(tmp_path, sections(topic))
    notifier = Notifier(conf, publisher_id="vigil-monitor:test")
    token = lease_db.lease_acquire(sqlite_engine, "L", "m1", ttl=60)
    assert token is not None
    svc, _ = services_db.service_get_or_create(sqlite_engine, "h1", "vigil-compute", "compute")
    rec = recoveries_db.recovery_request(sqlite_engine, host="h1", service_id=svc.id,
                                         was_disabled=False, was_forced_down=False,
                                         detail="requested by alice (project ops) for h1")
    store = RecoveryStore(sqlite_engine, lambda: token, notifier.recovery_changed)
    store.disable(rec, "requested")
    with pytest.raises((IllegalTransition, AlreadyRecorded)):
        store.disable(rec, "requested")  # a second leader's pass: refused, and silent
    # A marker sent last on the same queue: once it is heard, anything sent before it was too.
    notifier.recovery_changed("vigil.test.marker", rec, None)
    heard = listener.wait(3)
    assert [e for _, e, _ in heard] == ["vigil.recovery.opened", "vigil.recovery.disabled",
                                        "vigil.test.marker"]
    data = heard[0][2]["nova_object.data"]
    assert (data["trigger"], data["phase"], data["detail"]) == (
        "manual", "detected", "requested by alice (project ops) for h1")
