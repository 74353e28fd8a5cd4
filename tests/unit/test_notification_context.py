"""A notification leaves no request context behind in the thread that sent it.

oslo.log tags a record with the thread's "current" oslo.context when the record has none of its
own; oslo.messaging's notifier sends a redacted copy of the context, which oslo.context registers
as current unless told not to. Before this was fixed, every log line a daemon wrote after its
first notification carried that notification's request id and user.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from oslo_context import context as oslo_context

from vigil.notifications import Notifier
from vigil.objects.services import ServiceRecord

T0 = dt.datetime(2026, 1, 1)


def test_sending_a_notification_does_not_become_the_threads_context(make_conf: Any) -> None:
    conf, _ = make_conf({"DEFAULT": {"transport_url": "fake:/"},
                         "oslo_messaging_notifications": {"driver": "messagingv2"}})
    record = ServiceRecord(id=1, uuid="s1", host="h1", binary="vigil-compute", topic="compute",
                           report_count=1, disabled=True, disabled_reason="r", forced_down=False,
                           version=1, last_seen_up=T0, left_at=None, created_at=T0, updated_at=T0)
    # Whatever an earlier test in this thread left (oslo.context has no public "clear").
    vars(oslo_context._request_store).pop("context", None)
    notifier = Notifier(conf, "vigil-api.test")
    assert notifier._get().is_enabled()
    notifier.service_changed("service.update", record, None, {"disabled": True})
    assert oslo_context.get_current() is None


def test_a_requests_log_context_is_attached_to_its_records_only() -> None:
    from vigil.api import request_log

    vars(oslo_context._request_store).pop("context", None)
    request_log.install_log_context()
    records: list[Any] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("vigil.test.request_context")
    log.addHandler(keep := Keep())
    log.propagate = False
    try:
        token = request_log._CURRENT.set({"request_id": "req-inside"})
        try:
            log.warning("during the request")
        finally:
            request_log._CURRENT.reset(token)
        log.warning("after it")
    finally:
        log.removeHandler(keep)
    assert records[0].context.request_id == "req-inside"
    assert not hasattr(records[1], "context")
    assert oslo_context.get_current() is None  # oslo.log would tag later lines with it
