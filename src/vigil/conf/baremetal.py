"""Options of the bare-metal driver and its hash ring ([baremetal]).

How long a node can go unmanaged, in terms of these options (see docs/baremetal.md):

* its owner is killed: ``service_down_time`` (until the owner is DOWN) + one resource
  tick (``[compute] update_resources_interval``, until the ring's next member takes it);
  the debounce does not add to this: a DOWN owner's nodes go to the next eligible member at
  once.
* its owner hands it over to a member that joined: one tick (released by the owner, taken
  by the new member on its next tick), after the newcomer has been up for
  ``membership_debounce``.
"""

from __future__ import annotations

from oslo_config import cfg

NODE_SOURCES = ("database",)

BAREMETAL_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "membership_debounce",
        default=20.0,
        min=0.0,
        help="Seconds a bare-metal compute service's liveness must stay unchanged (on each "
        "observer's monotonic clock) before the hash ring follows it: a service that joins "
        "gets nodes only after it has been up this long, and one that leaves is dropped "
        "from the ring only after it has been gone this long (its nodes do not wait: they "
        "go to the next live member as soon as it is down). A service flapping faster than "
        "this never moves nodes back and forth. 0: follow every change at once.",
    ),
    cfg.StrOpt(
        "node_source",
        default="database",
        choices=NODE_SOURCES,
        help="Where the nodes come from. 'database': Vigil's own inventory (vigil node "
        "create), read through the conductor.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("baremetal", BAREMETAL_OPTS)]
