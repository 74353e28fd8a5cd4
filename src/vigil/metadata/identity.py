"""Which instance is asking: Nova's metadata-proxy identity, a pure rule.

Neutron's metadata proxy (and, in Vigil, the ``process`` driver, which hands each instance its
own) sends ``X-Instance-ID`` with ``X-Instance-ID-Signature``: the hex HMAC-SHA256 of the id
under ``[neutron] metadata_proxy_shared_secret``. The metadata API recomputes it and serves
nothing on a mismatch: an instance that knows another's id cannot sign it, so it cannot read
that instance's user data (which often holds credentials).

The hazards: the comparison is constant-time (a byte-by-byte ``==`` leaks, through timing, how
much of a forged signature is right), and an empty secret is refused by the callers, since
anybody can compute an HMAC under the empty key.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]


def sign(secret: str, instance_id: str) -> str:
    """The signature of ``instance_id``: hex HMAC-SHA256 under ``secret`` (as Nova)."""
    return hmac.new(secret.encode("utf-8"), instance_id.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def verify(secret: str, instance_id: str, signature: str) -> bool:
    """Whether ``signature`` is ``instance_id``'s, compared in constant time. False for an
    empty secret, whatever the signature."""
    if not secret:
        return False
    return hmac.compare_digest(sign(secret, instance_id).encode("ascii"),
                               signature.encode("utf-8", "replace"))
