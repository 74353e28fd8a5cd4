"""One error tree for Vigil.

::

    VigilError
    ├── ConfigError                 fatal: refuse to start, one line to the operator
    ├── InvalidInput                the caller's fault; nothing was changed (HTTP 400)
    ├── NotFound                    (HTTP 404)
    │   └── ServiceNotFound
    ├── Conflict                    the request is valid but the state forbids it (HTTP 409)
    ├── Unavailable                 retryable: a backend (database, broker, liveness store)
    │   ├── DatabaseUnavailable     did not answer; the caller may try again later
    │   ├── MessagingUnavailable
    │   └── BackendUnavailable
    └── ...

Backend-library exceptions are translated at the driver boundary with ``raise X from exc`` so the
cause stays attached but callers only ever catch this tree.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """The configuration is inconsistent; the process must not start."""


class InvalidInput(VigilError):
    """Bad input from an operator or client; nothing was changed."""


class NotFound(VigilError):
    """The named object does not exist."""


class ServiceNotFound(NotFound):
    pass


class Conflict(VigilError):
    """The request is well-formed but conflicts with the current state."""


class Unavailable(VigilError):
    """Retryable: a backend did not answer. Never evidence that a service is down."""


class DatabaseUnavailable(Unavailable):
    pass


class MessagingUnavailable(Unavailable):
    pass


class BackendUnavailable(Unavailable):
    """The liveness backend (memcached, ZooKeeper, etcd, Redis) did not answer."""
