"""An ASGI application on uvicorn in a thread, stopped on the daemon's stop event with a
bounded wait: how ``vigil metadata`` and ``vigil serialproxy`` serve (the same shape as
:class:`vigil.api.server.ApiServer`, which this layer may not import)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from vigil.errors import ConfigError
from vigil.service import ConductorClient, Service
from vigil.servicegroup.api import ServiceGroup

LOG = logging.getLogger(__name__)


class HttpServer:
    """``app`` served on ``host:port`` by one uvicorn worker on its own thread."""

    def __init__(self, app: Any, host: str, port: int, *, name: str,
                 ws: str = "none") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off", ws=ws)  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self.app = app
        self.name = name
        self.host = host
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (the real one when 0, an ephemeral port, was asked)."""
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until it accepts connections (or fail with one line)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConfigError(f"{self.name} could not listen on {self.host}:"
                                  f"{self._server.config.port} (address in use?)")
            if time.monotonic() > deadline:
                raise ConfigError(f"{self.name} did not start listening in {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


def register(conf: Any, server: HttpServer, group: ServiceGroup, conductor: ConductorClient, *,
             binary: str, topic: str) -> tuple[HttpServer, Service]:
    """Start ``server`` and the service record that reports for it."""
    server.start()
    LOG.info("%s listening on %s", binary, server.url)
    svc = Service(host=conf.host, binary=binary, topic=topic, conductor=conductor, group=group,
                  report_interval=conf.report_interval)
    svc.start()
    return server, svc
