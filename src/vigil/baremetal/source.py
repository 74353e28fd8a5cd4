"""Where bare-metal nodes come from, behind one small interface.

The compute agent only needs to *list* nodes (and, to run an instance on one, to provision
it). Vigil ships one source, its own ``baremetal_nodes`` table, which agents read through
the conductor (they never open the database) and the API and CLI read directly
(:class:`vigil.baremetal.nodes.DatabaseNodeSource`). A real Ironic would be another
implementation of the same protocols over openstacksdk (``conn.baremetal.nodes(details=True)``,
and ``instance_uuid`` patches to provision). This module is the agent's: it speaks in words
only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vigil.objects.baremetal import Node, Provisioning

__all__ = ["Node", "NodeSource", "Provisioner"]


@runtime_checkable
class NodeSource(Protocol):
    """The nodes that exist, with their resources, power state and instance.

    Contract: ``list_nodes`` returns every node or raises (a VigilError subclass, usually
    Unavailable). It never returns a partial list on failure: a caller deciding ownership
    from an empty answer would let go of nodes that still exist.
    """

    def list_nodes(self) -> list[Node]: ...


@runtime_checkable
class Provisioner(Protocol):
    """Putting an instance on a node and taking it off (Ironic's ``instance_uuid``)."""

    def provision(self, host: str, instance_uuid: str) -> Provisioning:
        """Put the instance on the node its claim chose (see :class:`Provisioning`)."""

    def unprovision(self, host: str, instance_uuid: str) -> int:
        """Clear the instance from the nodes it no longer lives on; how many."""
