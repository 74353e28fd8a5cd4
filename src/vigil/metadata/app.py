"""The metadata API as a plain ASGI application.

No framework routing: the paths are a small tree walked by :class:`~.document.InstanceDocs`,
and every request must be cheap (an instance's boot scripts read dozens of paths; the target
is 1,000 requests/s from one worker, bench/metadata.py).

Order of checks, so that nothing about an instance is served by guessing: the method (GET or
HEAD, else 405); the two version listings at ``/`` and ``/openstack``, which say nothing about
any instance; then the identity: ``X-Instance-ID`` and ``X-Instance-ID-Signature`` both
present, once each, and the signature right (else 403, the same answer whichever is wrong, so a
caller learns nothing from it); only then the instance (404 if it does not exist) and the path
(404 if it names nothing). Nova answers a missing header with 400; Vigil with 403, like a
wrong signature: either way the request carries no identity.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from vigil.errors import Unavailable
from vigil.metadata import identity
from vigil.metadata.cache import DocumentCache
from vigil.metadata.document import EC2_VERSIONS, LATEST, OPENSTACK_VERSIONS, TEXT, Answer

LOG = logging.getLogger(__name__)

ID_HEADER = b"x-instance-id"
SIGNATURE_HEADER = b"x-instance-id-signature"

_ROOT = Answer(TEXT, "\n".join([*EC2_VERSIONS, LATEST]).encode())
_OPENSTACK = Answer(TEXT, "\n".join([*OPENSTACK_VERSIONS, LATEST]).encode())


class MetadataApp:
    """Serves :class:`DocumentCache`'s documents to the instance that proves who it is.

    ``secret``: a callable, so a SIGHUP's reload of ``[neutron] metadata_proxy_shared_secret``
    takes effect at once.
    """

    def __init__(self, cache: DocumentCache, secret: Callable[[], str]) -> None:
        self.cache = cache
        self._secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, _plain("405 Method Not Allowed"), head=False,
                        extra=[(b"allow", b"GET, HEAD")])
            return
        head = method == "HEAD"
        path = posixpath.normpath(scope["path"] or "/")
        parts = [p for p in path.split("/") if p]
        if not parts:
            await _send(send, 200, _ROOT, head=head)
            return
        if parts == ["openstack"]:
            await _send(send, 200, _OPENSTACK, head=head)
            return
        instance_id = self._identify(scope["headers"])
        if instance_id is None:
            await _send(send, 403, _plain("403 Forbidden\n\nAccess was denied to this "
                                          "resource."), head=head)
            return
        try:
            # The hot path: served from the cache on the event loop, no thread, no I/O.
            docs = self.cache.peek(instance_id)
            if docs is None:
                docs = await anyio.to_thread.run_sync(self.cache.get, instance_id)
        except Unavailable as exc:
            LOG.warning("metadata for %s: %s", instance_id, exc)
            await _send(send, 503, _plain("503 Service Unavailable"), head=head)
            return
        answer = docs.lookup(parts) if docs is not None else None
        if answer is None:
            await _send(send, 404, _plain("404 Not Found\n\nThe resource could not be found."),
                        head=head)
            return
        await _send(send, 200, answer, head=head)

    def _identify(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The instance id the request proves, or None (missing, repeated or wrong)."""
        ids = [v for k, v in headers if k == ID_HEADER]
        sigs = [v for k, v in headers if k == SIGNATURE_HEADER]
        if len(ids) != 1 or len(sigs) != 1:
            return None
        instance_id = ids[0].decode("latin-1").strip()
        if not instance_id or not identity.verify(self._secret(), instance_id,
                                                  sigs[0].decode("latin-1").strip()):
            LOG.warning("metadata request with a wrong signature for instance %r",
                        instance_id)
            return None
        return instance_id


def _plain(text: str) -> Answer:
    return Answer(TEXT, text.encode())


async def _send(send: Send, status: int, answer: Answer, *, head: bool,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", answer.content_type.encode()),
               (b"content-length", str(len(answer.body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
