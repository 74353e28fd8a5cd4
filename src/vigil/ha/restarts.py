"""The leader's restart requests to hosts' supervisors (host UP, compute agent DOWN).

Each request is an RPC call (:class:`vigil.supervisor.rpcapi.SupervisorAPI`) that may take up
to the supervisor's stop timeout to answer, so it runs in a thread of its own and the monitor's
pass only reads the book: when it asked (its monotonic clock) and what the answer was. The book
is in memory: a new leader asks again, and its ``service_restart_timeout`` starts again (a late
escalation, never a wrong one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vigil.supervisor.core import Outcome

LOG = logging.getLogger(__name__)

# host -> (outcome or None if no answer could be had, detail)
RestartSender = Callable[[str], tuple[Outcome | None, str]]


@dataclass
class Request:
    host: str
    requested_at: float
    outcome: Outcome | None = None
    detail: str = ""
    answered: bool = False
    reported: bool = False  # its answer is in the alerts already


class AgentRestarts:
    """Restart requests of the current DOWN runs, one per host."""

    def __init__(self, send: RestartSender | None) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._requests: dict[str, Request] = {}

    def request(self, host: str, now: float) -> None:
        """Ask ``host``'s supervisor to restart its compute agent (once per DOWN run)."""
        with self._lock:
            if host in self._requests:
                return
            req = self._requests[host] = Request(host, now)
        if self._send is None:
            with self._lock:
                req.answered, req.detail = True, "no supervisor client: waiting only"
            return
        threading.Thread(target=self._call, args=(req,), name=f"restart-{host}",
                         daemon=True).start()

    def _call(self, req: Request) -> None:
        assert self._send is not None
        try:
            outcome, detail = self._send(req.host)
        except Exception as exc:  # a thread's edge: the restart timeout still escalates
            LOG.exception("restart request to %s failed", req.host)
            outcome, detail = None, f"request failed: {exc}"
        with self._lock:
            req.outcome, req.detail, req.answered = outcome, detail, True
        LOG.warning("supervisor of %s: %s (%s)", req.host,
                    outcome.value if outcome else "no answer", detail)

    def get(self, host: str) -> Request | None:
        with self._lock:
            return self._requests.get(host)

    def requested_at(self, host: str) -> float | None:
        req = self.get(host)
        return req.requested_at if req is not None else None

    def failed_to_stop(self, host: str) -> bool:
        req = self.get(host)
        return req is not None and req.outcome is Outcome.FAILED_TO_STOP

    def unreported(self) -> list[Request]:
        """Answers not yet written to the alerts (marked reported by this call)."""
        with self._lock:
            out = [r for r in self._requests.values() if r.answered and not r.reported]
            for r in out:
                r.reported = True
            return out

    def forget(self, host: str) -> Request | None:
        with self._lock:
            return self._requests.pop(host, None)

    def hosts(self) -> set[str]:
        with self._lock:
            return set(self._requests)
