"""Options of the bare-metal driver and its hash ring ([baremetal]).

How long a node can go unmanaged, in terms of these options (see docs/baremetal.md):

* its owner is killed: ``service_down_time`` (until the owner is DOWN) +
  ``membership_debounce`` (until it has *departed*: a heartbeat late for a moment is not a
  death) + about one resource tick (``[compute] update_resources_interval``: until the
  node's target takes it). If the target died too, unnoticed yet, one more debounce per
  step down the node's preference list.
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
        "observer's monotonic clock) before the ring acts on it: a service gets nodes only "
        "once it has been up this long, its nodes are taken only once it has been down this "
        "long, and the ring's membership follows a join or a departure only after this long "
        "(unknown liveness is neither). A service flapping faster than this moves no nodes. "
        "A killed service's nodes wait service_down_time + this + about one "
        "update_resources_interval. 0: follow every change at once.",
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
