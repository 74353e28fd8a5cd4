"""A three-controller Vigil cluster on one machine (issue 14's harness).

Network namespaces joined by a bridge (198.18.0.0/15), one node each of MariaDB/Galera,
RabbitMQ and etcd per controller, HAProxy in front of the APIs, Galera and etcd, and Vigil's
daemons started inside the namespaces. Every piece is the real server from Debian's packages.
Needs root. See :mod:`tests.cluster.harness` for the API and docs/deployment.md for the layout.

    python -m tests.cluster up          # build one, print its addresses, keep it until Ctrl-C
    python -m tests.cluster cleanup     # remove what crashed runs left behind
"""

from tests.cluster.harness import Cluster
from tests.cluster.net import Network, cleanup_leftovers

__all__ = ["Cluster", "Network", "cleanup_leftovers"]
