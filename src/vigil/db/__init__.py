"""Persistence: SQLAlchemy models, query functions and Alembic migrations.

One package for every domain's tables and SQL, split by concept (review of issue 11, §2.4):

* :mod:`.services`: services and the conductors' report paths;
* :mod:`.compute`: :mod:`~.compute.nodes`, :mod:`~.compute.flavors`,
  :mod:`~.compute.instances`, :mod:`~.compute.claims`;
* :mod:`.ha`: the leader :mod:`~.ha.lease`, :mod:`~.ha.recoveries` and their timeline,
  :mod:`~.ha.evacuations`, :mod:`~.ha.alerts`, and the :mod:`~.ha.hosts`' quarantine and
  maintenance;
* :mod:`.baremetal`: :mod:`~.baremetal.inventory`, ring :mod:`~.baremetal.members`,
  record :mod:`~.baremetal.ownership`, :mod:`~.baremetal.provisioning`;
* the tables: :mod:`.models` (services), :mod:`.compute_models`, :mod:`.ha_models`,
  :mod:`.baremetal_models`, gathered by :mod:`.schema`; :mod:`.migration` runs Alembic.

Why one package and not one per domain: Vigil's strongest guarantees are transactions that
cross domains -- an evacuation request writes the recovery's evacuation, the compute instance
and the timeline under the leader's token (:mod:`.ha.evacuations`); a bare-metal take moves the
node's record and its instances (:mod:`.baremetal.ownership`); a start is refused while the
host is quarantined (:mod:`.compute.instances`) -- and they must agree on one lock order.

The rules every module here follows:

1. Each function takes an Engine and runs its own short transaction: no session outlives a
   call, so a database that goes away mid-flight costs one failed call, not a wedged process.
2. Driver errors are translated at this boundary (:func:`._query.translate_errors`) into
   :class:`~vigil.errors.DatabaseUnavailable`, the retryable branch.
3. Callers get plain records and enums (:mod:`vigil.objects`), never ORM objects.
4. Timestamps are written and compared on the database's clock only (:func:`db_now`,
   :func:`vigil.db.types.utcnow`).
5. **Lock order.** Every transaction that touches both instance rows and compute-node rows
   updates the instance rows first, then the node rows in id order (a claim, a destroy or a
   failed spawn giving usage back, a bare-metal take): two transactions never wait on each
   other in opposite orders.
6. Ownership changes are compare-and-sets on what the caller read (host, task state, ownership
   generation, the leader's epoch): a decision made on a stale picture matches nothing.

Only the conductor, the API and the domain services open the database; agents, liveness drivers
and pure policies never import this package (an import-linter contract checks it).
"""

from vigil.db._query import db_now

__all__ = ["db_now"]
