"""One error tree for Vigil, drawn here complete.

::

    VigilError
    ├── ConfigError                 fatal: refuse to start, one line to the operator
    ├── InvalidInput                the caller's fault; nothing was changed (HTTP 400)
    ├── NotFound                    (HTTP 404)
    │   └── ServiceNotFound
    ├── Conflict                    the request is valid but the state forbids it (HTTP 409)
    │   ├── IllegalTransition       a recovery's recorded phase does not allow this named
    │   │                           transition (vigil.ha.transitions.TRANSITIONS); nothing written
    │   ├── InstanceExists          a virt driver asked to spawn what already runs on its host
    │   ├── NodeBusy                the bare-metal node a claim chose holds another instance
    │   └── NotPlacedHere           the instance is not on a node this host manages (any more)
    ├── Unavailable                 retryable: a backend (database, broker, liveness store)
    │   ├── DatabaseUnavailable     did not answer; the caller may try again later
    │   ├── MessagingUnavailable
    │   └── BackendUnavailable
    ├── Superseded                  stop acting: what the caller was doing is no longer its to
    │   │                           do (never retry it as it is; re-read, or step down)
    │   ├── LeadershipLost          the HA leader's fencing token no longer holds the lease
    │   └── AlreadyRecorded         this step's dedup key is in the timeline: it was done
    ├── FenceFailed                 a host could not be fenced (yet): the recovery retries it
    │                               with backoff, and nothing is evacuated meanwhile
    ├── EmptyRingError              (also a ValueError) a lookup on a hash ring with no members
    └── ApiError                    the REST API refused a client's request for a reason
                                    outside this tree (401, 403, 405, 406)

``Unavailable`` and ``Superseded`` are the two branches a loop must tell apart: the first says
"the world did not answer, try again", the second "the world answered, and it is no longer
yours". Treating a ``Superseded`` as retryable is how a deposed leader writes twice.

Backend-library exceptions are translated at the driver boundary with ``raise X from exc`` so the
cause stays attached but callers only ever catch this tree. Outside the tree on purpose: the REST
layer's own answers (``vigil.api.errors.Fault``, ``Unauthenticated``, the microversion errors),
which never leave ``vigil.api``, and the private exceptions a persistence function raises to roll
its own transaction back (``_Rollback``, ``_Lost``, ``ClaimFailed``), which never leave their
function.
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


class IllegalTransition(Conflict):
    """A recovery's recorded phase (or its being closed) does not allow the named transition
    asked for (:data:`vigil.ha.transitions.TRANSITIONS`). Nothing was written. Raised as well when
    the recovery moved on since the caller read it: the caller re-reads and decides again."""


class InstanceExists(Conflict):
    """spawn() of an instance that already runs here: the caller treats it as started."""


class NodeBusy(Conflict):
    """The bare-metal node a claim chose already holds another instance (two claims raced for
    one whole node): the later spawn fails."""


class NotPlacedHere(Conflict):
    """The instance is not placed on a bare-metal node this host manages (any more)."""


class Unavailable(VigilError):
    """Retryable: a backend did not answer. Never evidence that a service is down."""


class DatabaseUnavailable(Unavailable):
    pass


class MessagingUnavailable(Unavailable):
    pass


class BrokerUnreachable(MessagingUnavailable):
    """No connection to a message broker could be made (as opposed to a call sent that got no
    answer): the broker itself is down or cut off."""


class BackendUnavailable(Unavailable):
    """The liveness backend (memcached, ZooKeeper, etcd, Redis) did not answer."""


class Superseded(VigilError):
    """Stop acting: the caller's step has been done, or is no longer the caller's to do.

    Not retryable as it is. The caller re-reads what it acts on and decides again (a step done
    by another leader), or stops acting altogether (its leadership is gone).
    """


class LeadershipLost(Superseded):
    """The fencing token no longer holds the lease: stop acting at once."""


class AlreadyRecorded(Superseded):
    """A step with this dedup key is in the timeline already: it must not be done again."""


class FenceFailed(VigilError):
    """The host could not be fenced (yet). The recovery retries with backoff; its instances
    stay where they are."""


class EmptyRingError(VigilError, ValueError):
    """A lookup was made on a ring that has no members."""


class ApiError(VigilError):
    """The API refused the request for a reason outside the usual tree (401, 403, 405, 406)."""
