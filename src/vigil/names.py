"""The names of Vigil's services: their binaries and topics, and what Nova calls them.

This is the one home of these words (the structure review's rule D-C): the agents register
with them, the readers filter on them, and the Nova-compatible API translates them here.

Two vocabularies
----------------
Vigil's services are stored, logged and shown in Vigil's own views (``/v2.1/vigil/*``, the
CLI, the dashboard) as ``vigil-compute``, ``vigil-conductor`` and ``vigil-scheduler``. The
Nova-compatible API (``/v2.1/os-services``) speaks Nova's ``nova-compute``, ``nova-conductor``
and ``nova-scheduler`` by default, because the tools that call it (the ``openstack`` CLI,
openstacksdk, novaclient, tempest, Watcher, operators' scripts) look compute services up by
those names and would otherwise find none. ``[api] nova_binary_names = false`` makes that API
speak Vigil's names instead.

The translation is a view concern: the database never holds a Nova name, so switching the
option rewrites nothing and is safe in either direction.

A Vigil service with no Nova counterpart (any other ``vigil-*`` binary) is *hidden* from the
Nova-compatible API while it speaks Nova's names, as Nova hides its own API services there: a
Nova client has no use for a row whose binary it has never heard of. Binaries that are not
Vigil's (rows written by other tools) pass through unchanged in both directions, except a row
stored under one of the Nova names Vigil's own services are shown as, which is hidden rather
than shown twice under one name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# ---- topics: what a service does (the liveness group it joins) -------------------------------
COMPUTE_TOPIC = "compute"
CONDUCTOR_TOPIC = "conductor"
SCHEDULER_TOPIC = "scheduler"

# ---- Vigil's binaries ------------------------------------------------------------------------
COMPUTE_BINARY = "vigil-compute"
CONDUCTOR_BINARY = "vigil-conductor"
SCHEDULER_BINARY = "vigil-scheduler"

VIGIL_PREFIX = "vigil-"

# ---- Nova's binaries, for the Nova-compatible API --------------------------------------------
NOVA_COMPUTE = "nova-compute"

TO_NOVA: Mapping[str, str] = MappingProxyType({
    COMPUTE_BINARY: NOVA_COMPUTE,
    CONDUCTOR_BINARY: "nova-conductor",
    SCHEDULER_BINARY: "nova-scheduler",
})
FROM_NOVA: Mapping[str, str] = MappingProxyType({v: k for k, v in TO_NOVA.items()})


@dataclass(frozen=True)
class BinaryNames:
    """How one API spells binaries: Nova's names (``nova=True``) or Vigil's.

    ``outward`` and ``inward`` are inverse on every name they accept, so a binary read from a
    listing can be given back in a filter or an update body and names the same service.
    """

    nova: bool

    def outward(self, binary: str) -> str | None:
        """The name a client sees for a stored ``binary``; None when the service is hidden."""
        if not self.nova:
            return binary
        if binary in TO_NOVA:
            return TO_NOVA[binary]
        # A row stored under a Nova name would be indistinguishable from the Vigil service
        # shown under it (a filter on the name finds the Vigil one): hidden, not ambiguous.
        if binary in FROM_NOVA or binary.startswith(VIGIL_PREFIX):
            return None
        return binary

    def inward(self, name: str) -> str | None:
        """The stored binary a client's ``name`` means; None when it can name no shown service
        (a Vigil name while Nova's are spoken: answering it would list rows whose binary
        differs from the filter)."""
        if not self.nova:
            return name
        if name in FROM_NOVA:
            return FROM_NOVA[name]
        return None if name.startswith(VIGIL_PREFIX) else name

    @property
    def compute(self) -> str:
        """The compute binary's name, as error messages quote it."""
        return NOVA_COMPUTE if self.nova else COMPUTE_BINARY


NOVA_NAMES = BinaryNames(nova=True)
VIGIL_NAMES = BinaryNames(nova=False)


def for_api(nova_binary_names: bool) -> BinaryNames:
    """The vocabulary of the Nova-compatible API under ``[api] nova_binary_names``."""
    return NOVA_NAMES if nova_binary_names else VIGIL_NAMES
