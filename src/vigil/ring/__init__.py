"""Consistent hashing: which member owns which key (pure, deterministic, no I/O)."""

from vigil.ring.hashring import EmptyRingError, HashRing

__all__ = ["EmptyRingError", "HashRing"]
