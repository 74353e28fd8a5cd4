"""Consistent hashing: which member owns which key (pure, deterministic, no I/O), and the
ownership decisions built on it (``assignment``: live services -> node hand-overs)."""

from vigil.ring.assignment import MembershipDebouncer, NodeOwnership, Plan, plan
from vigil.ring.hashring import HashRing

__all__ = ["HashRing", "MembershipDebouncer", "NodeOwnership", "Plan", "plan"]
