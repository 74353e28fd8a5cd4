"""Where bare-metal nodes come from, behind one small interface.

The compute agent only needs to *list* nodes (and, to run an instance on one, to provision
it). Vigil ships one source, its own ``baremetal_nodes`` table, which agents read through
the conductor (they never open the database) and the API and CLI read directly. A real
Ironic would be another implementation of the same protocols over openstacksdk
(``conn.baremetal.nodes(details=True)``, and ``instance_uuid`` patches to provision).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sqlalchemy.engine import Engine

from vigil.db import baremetal_api as bdb
from vigil.db.baremetal_api import Node

__all__ = ["DatabaseNodeSource", "Node", "NodeSource", "Provisioner"]


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

    def provision(self, host: str, instance_uuid: str) -> str:
        """One of the ``vigil.db.baremetal_api`` results: PROVISIONED, ALREADY, BUSY,
        NOT_HERE."""

    def unprovision(self, host: str, instance_uuid: str) -> int:
        """Clear the instance from the nodes it no longer lives on; how many."""


class DatabaseNodeSource:
    """Vigil's own inventory, for the processes that may open the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_nodes(self) -> list[Node]:
        return bdb.nodes(self.engine)

    def provision(self, host: str, instance_uuid: str) -> str:
        return bdb.provision(self.engine, host, instance_uuid)

    def unprovision(self, host: str, instance_uuid: str) -> int:
        return bdb.unprovision(self.engine, instance_uuid)
