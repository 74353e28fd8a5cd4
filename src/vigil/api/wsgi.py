"""The API for ASGI servers: ``vigil.api.wsgi:application``.

A worker process's entry point, so, like the CLI, it calls the composition root
(:mod:`vigil.launch`): the one module of ``api`` allowed to (pyproject.toml's layers contract).

For gunicorn with uvicorn workers (several processes on one port)::

    VIGIL_CONFIG_FILE=/etc/vigil/vigil.conf \\
    gunicorn -k uvicorn_worker.UvicornWorker -w 4 -b 0.0.0.0:8774 vigil.api.wsgi:application

or uvicorn itself (``--factory`` with :func:`create_application`), or ``vigil api --workers N``
(:func:`serve_workers`). The name ``wsgi`` is OpenStack's convention for this module (Nova's
``nova.wsgi.osapi_compute``); the application is ASGI, as the API is FastAPI.

Each worker process builds its own app from the configuration: files named by
``VIGIL_CONFIG_FILE`` (one or more paths, ``:``-separated) and ``VIGIL_CONFIG_DIR``, or else
oslo.config's default paths (``/etc/vigil/vigil.conf``...). The files are validated as by every
command, so a worker with a bad configuration fails to boot with the one-line reason, and
gunicorn stops. ``application`` is built when first looked up (PEP 562 module ``__getattr__``),
which gunicorn does in each worker after forking: no database connection is shared between
processes (do not use gunicorn's ``--preload``, which would build it in the master).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fastapi import FastAPI

from vigil import conf as vconf
from vigil import logs
from vigil.launch.api import create_app_from_conf

CONFIG_FILE_ENV = "VIGIL_CONFIG_FILE"
CONFIG_DIR_ENV = "VIGIL_CONFIG_DIR"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The one app of this worker process, built on first use of ``application``.
_built: dict[str, FastAPI] = {}


def config_args(environ: dict[str, str] | None = None) -> list[str]:
    """``--config-file``/``--config-dir`` arguments from the environment; none: the defaults."""
    env = os.environ if environ is None else environ
    args: list[str] = []
    for path in filter(None, env.get(CONFIG_FILE_ENV, "").split(os.pathsep)):
        args += ["--config-file", path]
    for path in filter(None, env.get(CONFIG_DIR_ENV, "").split(os.pathsep)):
        args += ["--config-dir", path]
    return args


def create_application() -> FastAPI:
    """A new app from the configuration the environment names (``uvicorn --factory``)."""
    conf = vconf.load(config_args())
    logs.setup_daemon(conf)
    return create_app_from_conf(conf)


def __getattr__(name: str) -> Any:
    if name != "application":
        raise AttributeError(name)
    if "app" not in _built:
        _built["app"] = create_application()
    return _built["app"]


def serve_workers(conf_files: list[str], conf_dirs: list[str], host: str, port: int,
                  workers: int) -> int:
    """``vigil api --workers N``: uvicorn's process manager with ``workers`` processes.

    The workers are new interpreters (uvicorn spawns them), each building the app from the same
    files, passed through the environment. They share one metrics directory
    (``PROMETHEUS_MULTIPROC_DIR``, a fresh one unless set) so /metrics, whichever worker
    answers, adds up every worker's counters. uvicorn stops them on SIGTERM/SIGINT and restarts
    them all on SIGHUP.
    """
    import uvicorn

    os.environ[CONFIG_FILE_ENV] = os.pathsep.join(conf_files)
    os.environ[CONFIG_DIR_ENV] = os.pathsep.join(conf_dirs)
    owned = None
    if not os.environ.get(MULTIPROC_ENV):
        owned = tempfile.TemporaryDirectory(prefix="vigil-metrics-")
        os.environ[MULTIPROC_ENV] = owned.name
    try:
        uvicorn.run("vigil.api.wsgi:create_application", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=10)
    finally:
        if owned is not None:
            owned.cleanup()
    return 0
