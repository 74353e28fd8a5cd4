"""The one loader of pluggable classes: liveness drivers, virt drivers, fence agents.

Each kind is a table, name -> ``"module:Class"``, kept here as plain strings so that

* the option's choices (``conf``) and the loader read the *same* names (they were two lists
  that could drift: ``conf/opts.py`` and ``servicegroup/drivers/__init__.py``);
* a plugin's module, and the optional client library it needs (kazoo, etcd3gw, redis, pyghmi,
  sushy), is imported only when that plugin is configured: a missing library is a one-line
  :class:`~vigil.errors.ConfigError` naming the extra to install, not an ImportError at the
  start of every command;
* this module imports nothing of Vigil's but the error tree, so any layer may ask it.

Why not Python entry points (tooz's way)? They are read from the installed distribution's
metadata, so a source tree run through an editable install that predates a new plugin would not
see it, and Vigil has no third-party plugins to discover. The table is the registry; one test
(``tests/unit/test_plugins.py``) imports every entry and checks it is the kind's class.

Instantiation stays with each kind, because each builds differently (a liveness driver from
typed options, a virt driver for a host, a fence agent from ``[ha]``): this module answers
"which class is that name", uniformly, with one message shape for every mistake.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

from vigil.errors import ConfigError

__all__ = ["COMPUTE_DRIVERS", "FENCE_AGENTS", "SERVICEGROUP_DRIVERS", "Kind", "Plugin", "load"]

T = TypeVar("T")


@dataclass(frozen=True)
class Plugin:
    """Where a plugin's class lives, and the pip extra that carries its client library."""

    target: str  # "package.module:Class"
    extra: str | None = None


@dataclass(frozen=True)
class Kind:
    """One pluggable kind: the option that chooses it and its plugins by name."""

    option: str  # as an operator writes it in messages: "servicegroup_driver", "[ha] fence_agent"
    plugins: Mapping[str, Plugin] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The valid names, in table order (the option's ``choices``)."""
        return tuple(self.plugins)


SERVICEGROUP_DRIVERS = Kind("servicegroup_driver", {
    "db": Plugin("vigil.servicegroup.drivers.db:DbDriver"),
    "mc": Plugin("vigil.servicegroup.drivers.mc:MemcachedDriver"),
    "zk": Plugin("vigil.servicegroup.drivers.zk:ZooKeeperDriver", extra="zk"),
    "etcd": Plugin("vigil.servicegroup.drivers.etcd:EtcdDriver", extra="etcd"),
    "redis": Plugin("vigil.servicegroup.drivers.redis:RedisDriver", extra="redis"),
})

COMPUTE_DRIVERS = Kind("[compute] compute_driver", {
    "fake": Plugin("vigil.compute.virt.fake:FakeDriver"),
    "process": Plugin("vigil.compute.virt.process:ProcessDriver"),
    "baremetal": Plugin("vigil.compute.virt.baremetal:BaremetalDriver"),
})

FENCE_AGENTS = Kind("[ha] fence_agent", {
    "process": Plugin("vigil.ha.fence.process:ProcessFence"),
    "command": Plugin("vigil.ha.fence.command:CommandFence"),
    "ipmi": Plugin("vigil.ha.fence.ipmi:IpmiFence", extra="ha"),
    "redfish": Plugin("vigil.ha.fence.redfish:RedfishFence", extra="ha"),
    "simulated": Plugin("vigil.ha.fence.simulated:SimulatedFence"),
})


def load(kind: Kind, name: str, base: Callable[..., T]) -> type[T]:
    """The class that ``name`` chooses among ``kind``'s plugins, checked to be a ``base``.

    Raises ConfigError (one line) for an unknown name, listing the valid ones, and for a plugin
    whose module cannot be imported, naming the extra that carries its library. (``base`` is
    typed as a callable only because mypy refuses an abstract class where ``type[T]`` is
    expected, and every kind's base is abstract.)
    """
    try:
        plugin = kind.plugins[name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind.option} {name!r}; choose one of {', '.join(kind.names)}"
        ) from None
    module_name, _, cls_name = plugin.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (install vigil[{plugin.extra}])" if plugin.extra else ""
        raise ConfigError(f"{kind.option} {name!r} is not available: {exc}{hint}") from exc
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)):
        # A broken table, not an operator's mistake; still one line naming both sides.
        what = getattr(base, "__name__", repr(base))
        raise ConfigError(f"{kind.option} {name!r}: {plugin.target} is not a {what}")
    return cast("type[T]", cls)
