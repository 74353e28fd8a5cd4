"""Console URLs with one-time tokens, and their redemption.

A token is 32 random bytes (URL-safe text) given to the caller once, inside the URL; the
database keeps only its SHA-256 (:mod:`vigil.db.compute.consoles`), with the instance, the host
and the ownership generation the instance had then, and an expiry ``[consoleauth] token_ttl``
away on the database's clock. The proxy redeems it once. It then opens the console only if the
instance is still live on that host in that generation: after an evacuation, a token made
before it opens nothing (the old host's console may belong to a stale copy, or to nothing),
and asking again gives a URL for the new host.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.engine import Engine

from vigil.db.compute import consoles as consoles_db
from vigil.db.compute import instances as instances_db
from vigil.errors import Conflict, InvalidInput, NotFound
from vigil.objects.compute import ConsoleTarget, TaskState, VmState

SERIAL = "serial"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def with_token(base_url: str, token: str) -> str:
    """Nova's access URL: the base URL with ``token`` in its query string."""
    return f"{base_url}{'&' if '?' in base_url else '?'}token={token}"


class Consoles:
    """Make and redeem console tokens over ``engine``.

    ``enabled``: ``[serial_console] enabled``; ``base_url``: where clients reach the proxy;
    ``ttl``: ``[consoleauth] token_ttl`` seconds.
    """

    def __init__(self, engine: Engine, *, base_url: str, ttl: float,
                 enabled: bool = True) -> None:
        self.engine = engine
        self.base_url = base_url
        self.ttl = ttl
        self.enabled = enabled

    def serial_url(self, instance_uuid: str) -> str:
        """A one-time URL to ``instance_uuid``'s serial console.

        NotFound: no such live instance. InvalidInput: serial consoles are disabled
        (Nova's ConsoleTypeUnavailable). Conflict: the instance is not running on a host now
        (Nova's InstanceNotReady): building, being evacuated, or failed.
        """
        inst = instances_db.instance_get(self.engine, instance_uuid)
        if not self.enabled:
            raise InvalidInput("Unavailable console type serial.")
        moving = inst.task_state in (TaskState.REBUILDING, TaskState.REBUILD_SPAWNING,
                                     TaskState.SCHEDULING, TaskState.SPAWNING)
        if inst.host is None or inst.vm_state != VmState.ACTIVE or moving:
            raise Conflict(f"Instance {instance_uuid} is not ready")
        token = secrets.token_urlsafe(32)
        consoles_db.token_create(self.engine, token_hash(token),
                                 ConsoleTarget(inst.uuid, inst.host, inst.generation, SERIAL),
                                 self.ttl)
        return with_token(self.base_url, token)

    def redeem(self, token: str) -> ConsoleTarget | None:
        """What ``token`` opens, using it up; None if it is unknown, expired or used."""
        if not token:
            return None
        return consoles_db.token_redeem(self.engine, token_hash(token))

    def current(self, target: ConsoleTarget) -> bool:
        """Whether the instance is still live on the token's host in its generation."""
        try:
            inst = instances_db.instance_get(self.engine, target.instance_uuid)
        except NotFound:
            return False
        return inst.host == target.host and inst.generation == target.generation
