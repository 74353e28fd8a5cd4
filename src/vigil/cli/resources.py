"""One Protocol per resource the CLI reads or changes, and where each command gets it.

Each Protocol is met twice: by the domain's own API over the database (``RecoveriesAPI``,
``HostsAPI``, ``NodesAPI``, ``RingAPI``) and by the HTTP client of the same resource
(:mod:`vigil.api.ha_client`, :mod:`vigil.api.baremetal_client`). The commands are written
against the Protocol only, so they print the same either way, and
``tests/contract/test_cli_resources.py`` runs the same assertions on both. The context
managers below (:func:`recoveries`, :func:`hosts`, ...) pick one for the target that
:func:`vigil.cli.target.resolve` chose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from oslo_config import cfg

from vigil.cli.target import Target

if TYPE_CHECKING:  # an annotation only: the ring's module imports the bare-metal tables
    from vigil.baremetal.ring import RingReport


class Recoveries(Protocol):
    """Host recoveries, the monitor's alerts and leader; the manual evacuation request."""

    def list_recoveries(self, *, open_only: bool = False, host: str | None = None,
                        limit: int = 100) -> list[dict[str, Any]]: ...

    def get(self, ident: int | str) -> dict[str, Any]: ...

    def alerts(self) -> list[dict[str, Any]]: ...

    def leader(self) -> dict[str, Any] | None: ...

    def evacuate_host(self, host: str, *, actor: str | None = None) -> dict[str, Any]: ...


class Hosts(Protocol):
    """Compute hosts' HA facts: quarantine and maintenance."""

    def list(self) -> list[dict[str, Any]]: ...

    def get(self, host: str) -> dict[str, Any]: ...

    def set_maintenance(self, host: str, on: bool, *, reason: str | None,
                        actor: str) -> dict[str, Any]: ...

    def release(self, host: str, *, reason: str | None, actor: str) -> dict[str, Any]: ...


class Node(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Nodes(Protocol):
    """The bare-metal inventory."""

    def create(self, *, cpus: Any, memory_mb: Any, local_gb: Any, name: Any = None,
               uuid: Any = None, resource_class: Any = ..., power_state: Any = ...,
               maintenance: Any = False) -> Node: ...

    def list(self) -> Sequence[Node]: ...

    def get(self, ident: str) -> Node: ...

    def delete(self, ident: str) -> Node: ...


class Ring(Protocol):
    """The bare-metal hash ring."""

    def show(self, node: str | None = None) -> RingReport: ...


@contextlib.contextmanager
def recoveries(target: Target, conf: cfg.ConfigOpts) -> Iterator[Recoveries]:
    """Recoveries over ``target``'s API, or over the configured database."""
    if target.api is not None:
        from vigil.api.ha_client import RecoveriesClient

        with RecoveriesClient(*target.api) as client:
            yield client
        return
    from vigil import launch
    from vigil.ha.views import RecoveriesAPI

    engine = launch.engine_from(conf)
    group = launch.group_from(conf, engine)
    try:
        yield RecoveriesAPI(engine, group)
    finally:
        group.driver.close()


@contextlib.contextmanager
def hosts(target: Target, conf: cfg.ConfigOpts) -> Iterator[Hosts]:
    """Hosts over ``target``'s API, or over the configured database."""
    if target.api is not None:
        from vigil.api.ha_client import HostsClient

        with HostsClient(*target.api) as client:
            yield client
        return
    from vigil import launch
    from vigil.ha.hosts import HostsAPI

    yield HostsAPI(launch.engine_from(conf))


@contextlib.contextmanager
def nodes(target: Target, conf: cfg.ConfigOpts) -> Iterator[Nodes]:
    """Bare-metal nodes over ``target``'s API, or over the configured database."""
    if target.api is not None:
        from vigil.api.baremetal_client import NodesClient

        with NodesClient(*target.api) as client:
            yield client
        return
    from vigil import launch
    from vigil.baremetal.nodes import NodesAPI

    yield NodesAPI(launch.engine_from(conf))


@contextlib.contextmanager
def ring(target: Target, conf: cfg.ConfigOpts) -> Iterator[Ring]:
    """The hash ring over ``target``'s API, or over the configured database."""
    if target.api is not None:
        from vigil.api.baremetal_client import RingClient

        with RingClient(*target.api) as client:
            yield client
        return
    from vigil import launch
    from vigil.baremetal.ring import RingAPI

    engine = launch.engine_from(conf)
    group = launch.group_from(conf, engine)
    try:
        yield RingAPI(engine, group)
    finally:
        group.driver.close()
