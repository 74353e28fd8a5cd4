"""Running the API on uvicorn, in a thread, so ``vigil api`` and ``vigil up`` stop it the same
way the other daemons stop: on the shared stop event (SIGTERM/SIGINT), with a bounded wait.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

from vigil.errors import ConfigError

LOG = logging.getLogger(__name__)


class ApiServer:
    """A uvicorn server on its own thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self.app = app
        self._thread = threading.Thread(target=self._server.run, name="vigil-api", daemon=True)
        self.host = host
        self.port = port

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
                raise ConfigError(f"the API could not listen on {self.url} (address in use?)")
            if time.monotonic() > deadline:
                raise ConfigError(f"the API did not start listening on {self.url} in {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        # Endless answers (the dashboard's feed) end first, or uvicorn would wait for them.
        feed = getattr(self.app.state, "vigil_feed", None)
        if feed is not None:
            feed.close()
        self._server.should_exit = True
        self._thread.join(timeout)
