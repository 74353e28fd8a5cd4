"""Bare-metal nodes shared among the live compute services by a hash ring.

* :mod:`.source`: where nodes come from (``NodeSource``: Vigil's database, or a real Ironic);
* :mod:`.inventory`: what a node's compute-node record says (pure);
* :mod:`.ownership`: the conductor's side -- ring membership, and the hand-overs applied as
  compare-and-set statements after re-checking liveness;
* :mod:`.nodes` and :mod:`.ring`: the operations the CLI and the REST API share.

The decisions themselves are pure, in :mod:`vigil.ring.assignment`; the compute agent's side
is the ``baremetal`` virt driver (:mod:`vigil.compute.virt.baremetal`). docs/baremetal.md
explains the invariants and why they hold.
"""
