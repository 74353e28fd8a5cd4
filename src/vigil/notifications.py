"""Versioned notifications (oslo.messaging's notifier) and the audit of who changed what.

Nova emits ``service.update`` and ``service.delete`` when an operator changes a service; Vigil
does the same, in Nova's envelope (``nova_object.name`` / ``.namespace`` / ``.version`` /
``.data``) with its own namespace, so a consumer written for Nova's notifications reads them.
``[oslo_messaging_notifications] driver`` turns them on (``messagingv2``) or off (``noop``, or
unset: the default); ``topics`` and ``transport_url`` are oslo.messaging's usual options.

Every change is also logged (logger ``vigil.audit``), notifications on or off, with who made
it: the API's caller (user, project, request id: :func:`set_actor_source`, set by the API for
each request) or, outside a request, the local operator (the OS user running ``vigil``).
"""

from __future__ import annotations

import contextvars
import getpass
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from oslo_context import context as oslo_context

from vigil.objects.ha import RecoveryRecord
from vigil.objects.services import ServiceRecord

if TYPE_CHECKING:
    import oslo_messaging

AUDIT = logging.getLogger("vigil.audit")
LOG = logging.getLogger(__name__)

PAYLOAD_VERSION = "1.0"


@dataclass(frozen=True)
class Actor:
    """Who asked for a change."""

    user_id: str | None
    project_id: str | None
    request_id: str
    global_request_id: str | None = None

    def to_context(self) -> oslo_context.RequestContext:
        """The notification's context. An oslo.context RequestContext, not a dict:
        oslo.messaging's notifier sends a redacted copy of it and drops a plain dict."""
        return DetachedContext(
            user_id=self.user_id, project_id=self.project_id, request_id=self.request_id,
            global_request_id=self.global_request_id, overwrite=False)

    def __str__(self) -> str:
        project = f" (project {self.project_id})" if self.project_id else ""
        return f"{self.user_id}{project} [{self.request_id}]"


class DetachedContext(oslo_context.RequestContext):  # type: ignore[misc]
    """oslo.context's, never the thread's "current" one, and whose dict also has ``user_id``
    and ``project_id`` (as Nova's notifications' contexts do; oslo.context writes ``user`` and
    ``project``). Used for what is sent (notifications) and what is attached to one log record
    (the API's request context)."""

    def update_store(self) -> None:
        # oslo.context makes a new context the thread's "current" one unless one is already
        # there (overwrite=False only spares an existing one), and oslo.messaging builds one more
        # for its redacted copy. oslo.log tags every record without a context of its own with
        # that current one: every later log line of the thread (a daemon's loop, the next
        # request) would carry this notification's request id. These contexts are only ever
        # sent or attached to a record, never current.
        return None

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = super().to_dict()
        values.update(user_id=self.user_id, project_id=self.project_id)
        return values


def local_operator() -> Actor:
    """The person at this machine's command line: the OS user, and a fresh request id."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still say it was local
        user = "unknown"
    return Actor(user_id=f"local:{user}", project_id=None, request_id=f"req-{uuid.uuid4()}")


_ACTOR_SOURCE: contextvars.ContextVar[Callable[[], Actor] | None] = contextvars.ContextVar(
    "vigil_actor_source", default=None)


def set_actor_source(source: Callable[[], Actor]) -> contextvars.Token[Any]:
    """For the current context (one API request): who is acting, asked when a change is made
    (the caller is known only once authentication has run). Returns the token to reset."""
    return _ACTOR_SOURCE.set(source)


def reset_actor_source(token: contextvars.Token[Any]) -> None:
    _ACTOR_SOURCE.reset(token)


def current_actor() -> Actor:
    source = _ACTOR_SOURCE.get()
    return source() if source is not None else local_operator()


def service_payload(record: ServiceRecord, zone: str | None) -> dict[str, Any]:
    """Nova's ServiceStatusPayload fields that Vigil has, in Nova's versioned envelope."""
    data = {
        "uuid": record.uuid, "host": record.host, "binary": record.binary,
        "topic": record.topic, "disabled": record.disabled,
        "disabled_reason": record.disabled_reason, "forced_down": record.forced_down,
        "availability_zone": zone, "report_count": record.report_count,
        "version": record.version,
        "last_seen_up": record.last_seen_up.isoformat() if record.last_seen_up else None,
    }
    return {"nova_object.name": "ServiceStatusPayload", "nova_object.namespace": "vigil",
            "nova_object.version": PAYLOAD_VERSION, "nova_object.data": data}


def recovery_payload(rec: RecoveryRecord, detail: str | None) -> dict[str, Any]:
    """A recovery's state after a step, in the same versioned envelope (Vigil's own payload:
    Nova has no recovery; Masakari's notifications are the nearest kin)."""
    data = {
        "id": rec.id, "host": rec.host, "phase": str(rec.phase), "status": str(rec.status),
        "trigger": str(rec.trigger), "fence_attempts": rec.fence_attempts,
        "detail": detail,
        "created_at": rec.created_at.isoformat() if rec.created_at else None,
    }
    return {"nova_object.name": "RecoveryPayload", "nova_object.namespace": "vigil",
            "nova_object.version": PAYLOAD_VERSION, "nova_object.data": data}


class Notifier:
    """Sends Vigil's notifications, and writes the audit line of each change."""

    def __init__(self, conf: cfg.ConfigOpts, publisher_id: str) -> None:
        self._conf = conf
        self._publisher_id = publisher_id
        self._notifier: oslo_messaging.Notifier | None = None

    def _get(self) -> oslo_messaging.Notifier:
        # Built at the first change, not at start-up: most commands never change anything (and
        # the library is imported then too: a command that changes nothing does not pay for it).
        if self._notifier is None:
            import oslo_messaging

            transport = oslo_messaging.get_notification_transport(self._conf)
            self._notifier = oslo_messaging.Notifier(transport, publisher_id=self._publisher_id)
        return self._notifier

    def service_changed(self, event_type: str, record: ServiceRecord, zone: str | None,
                        changes: dict[str, Any]) -> None:
        actor = current_actor()
        AUDIT.info("%s of %s/%s (%s) by %s: %s", event_type, record.host, record.binary,
                   record.uuid, actor, changes or "-")
        if not self._conf.oslo_messaging_notifications.driver:
            return
        notifier = self._get()
        if notifier.is_enabled():
            notifier.info(actor.to_context(), event_type, service_payload(record, zone))

    def recovery_changed(self, event_type: str, rec: RecoveryRecord,
                         detail: str | None) -> None:
        """``vigil.recovery.<step>`` (opened, each transition, completed), from the monitor.

        The monitor is the actor (a manual request's operator is in the timeline's ``detected``
        event); the audit line is written whatever the driver.
        """
        AUDIT.info("%s of recovery %s (%s): phase %s, status %s%s", event_type, rec.id,
                   rec.host, rec.phase, rec.status, f": {detail}" if detail else "")
        if not self._conf.oslo_messaging_notifications.driver:
            return
        notifier = self._get()
        if notifier.is_enabled():
            notifier.info(local_operator().to_context(), event_type,
                          recovery_payload(rec, detail))
