"""Options of the bare-metal driver and its hash ring ([baremetal]).

How long a node can go unmanaged, in terms of these options (see docs/baremetal.md):

* its owner is killed: ``service_down_time`` (until the owner is DOWN) + about one resource
  tick (``[compute] update_resources_interval``: until the node's target sees it and takes
  it). If the target died too, unnoticed yet, one more debounce per step down the node's
  preference list.
* its owner hands it over to a member that joined: about one tick (released by the owner,
  taken by the newcomer at its next tick), once the newcomer has been up for
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
        "observer's monotonic clock) before the ring follows it: a service gets nodes only "
        "once it has been up this long, and the ring's membership follows a join or a "
        "departure only after this long (unknown liveness is neither). A DOWN service's "
        "nodes go at once to their targets (after service_down_time + about one "
        "update_resources_interval), then one step further down their preference lists per "
        "debounce if a target does not take them. A service flapping faster than this loses "
        "its nodes once and gets none back. 0: follow every change at once.",
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
