"""Typed options of the liveness drivers, built and validated once from configuration.

A driver receives one of these and a :class:`~vigil.objects.liveness.LivenessTiming`, never the
``ConfigOpts``: every string an operator writes (``host:port`` lists, URLs, the ZooKeeper
connect string) is parsed here, into values a driver can use as they are, and a malformed one is
a one-line :class:`~vigil.errors.ConfigError` naming the option. (tooz's drivers each parse
their own strings; Vigil's did too, from a ``conf: Any``.)

:func:`options_from` and :func:`timing_from` are what the composition root calls; tests and
benchmarks may build the dataclasses directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vigil.errors import ConfigError
from vigil.objects.liveness import LivenessTiming


@dataclass(frozen=True)
class HostPort:
    """One server's address (an IPv6 host without its brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DbOptions:
    """The ``db`` driver has no options: the services table is its backend."""


@dataclass(frozen=True)
class MemcachedOptions:
    """``mc``: ``memcached_servers`` (empty: the in-process cache) and ``[memcache]``."""

    servers: tuple[HostPort, ...] = ()
    socket_timeout: float = 3.0


@dataclass(frozen=True)
class ZooKeeperOptions:
    """``zk``: ``[zookeeper]``. ``address`` is kazoo's connect string, already checked."""

    address: str
    session_timeout: float  # seconds (recv_timeout is in milliseconds)
    prefix: str  # "/servicegroups": leading slash, no trailing one
    retry_interval: float


@dataclass(frozen=True)
class EtcdEndpoint:
    """One etcd member's client URL, split."""

    protocol: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


@dataclass(frozen=True)
class EtcdOptions:
    """``etcd``: ``[etcd]``. ``endpoints``: one or more members (or one load balancer)."""

    endpoints: tuple[EtcdEndpoint, ...]
    prefix: str  # "/vigil/servicegroups": leading slash, no trailing one
    timeout: float
    api_path: str | None  # None: ask the server's /version


@dataclass(frozen=True)
class RedisOptions:
    """``redis``: ``[redis]``."""

    url: str
    key_prefix: str
    socket_timeout: float


DriverOptions = DbOptions | MemcachedOptions | ZooKeeperOptions | EtcdOptions | RedisOptions


# -- parsing ----------------------------------------------------------------------------------

def parse_servers(servers: Sequence[str]) -> tuple[HostPort, ...]:
    """``memcached_servers``: ``host:port`` strings (``[v6]:port`` too); ConfigError if not."""
    out: list[HostPort] = []
    for spec in servers:
        spec = spec.strip()
        host, sep, port = spec.rpartition(":")
        if spec.startswith("unix:") or spec.startswith("/"):
            raise ConfigError(f"memcached_servers: unix sockets are not supported: {spec!r}")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"memcached_servers: {spec!r} is not host:port (e.g. 127.0.0.1:11211)"
            )
        out.append(HostPort(host.strip("[]"), int(port)))
    return tuple(out)


def parse_address(address: str) -> str:
    """Validate ``host:port[,host:port...][/chroot]``; ConfigError with one line otherwise."""
    hosts, _, _chroot = address.strip().partition("/")
    if not hosts:
        raise ConfigError("[zookeeper] address is empty (e.g. 127.0.0.1:2181)")
    for spec in hosts.split(","):
        host, sep, port = spec.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"[zookeeper] address {address!r}: {spec!r} is not host:port "
                "(e.g. 127.0.0.1:2181,10.0.0.2:2181)"
            )
    return address.strip()


def parse_endpoint(endpoint: str) -> EtcdEndpoint:
    """One etcd client URL; ConfigError with one line if malformed."""
    try:
        parts = urlsplit(endpoint.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"[etcd] endpoint {endpoint!r} is invalid: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"[etcd] endpoint {endpoint!r} is not an http(s)://host:port URL "
            "(e.g. http://127.0.0.1:2379)"
        )
    return EtcdEndpoint(parts.scheme, parts.hostname, port or 2379)


def parse_endpoints(endpoints: str) -> tuple[EtcdEndpoint, ...]:
    """``[etcd] endpoint``: one client URL, or several separated by commas (the members)."""
    specs = [s for s in (part.strip() for part in endpoints.split(",")) if s]
    if not specs:
        raise ConfigError("[etcd] endpoint is empty (e.g. http://127.0.0.1:2379)")
    return tuple(parse_endpoint(s) for s in specs)


def _prefix(value: str) -> str:
    return "/" + str(value).strip("/")


# -- from configuration -----------------------------------------------------------------------

def _db(conf: Any) -> DbOptions:
    return DbOptions()


def _mc(conf: Any) -> MemcachedOptions:
    return MemcachedOptions(servers=parse_servers(list(conf.memcached_servers or [])),
                            socket_timeout=float(conf.memcache.socket_timeout))


def _zk(conf: Any) -> ZooKeeperOptions:
    return ZooKeeperOptions(address=parse_address(conf.zookeeper.address),
                            session_timeout=float(conf.zookeeper.recv_timeout) / 1000.0,
                            prefix=_prefix(conf.zookeeper.sg_prefix),
                            retry_interval=float(conf.zookeeper.sg_retry_interval))


def _etcd(conf: Any) -> EtcdOptions:
    return EtcdOptions(endpoints=parse_endpoints(conf.etcd.endpoint),
                       prefix=_prefix(conf.etcd.prefix), timeout=float(conf.etcd.timeout),
                       api_path=conf.etcd.api_path or None)


def _redis(conf: Any) -> RedisOptions:
    return RedisOptions(url=str(conf.redis.url), key_prefix=str(conf.redis.key_prefix),
                        socket_timeout=float(conf.redis.socket_timeout))


BUILDERS: dict[str, Callable[[Any], DriverOptions]] = {
    "db": _db, "mc": _mc, "zk": _zk, "etcd": _etcd, "redis": _redis,
}


def options_from(conf: Any, name: str | None = None) -> DriverOptions:
    """The typed options of driver ``name`` (default: the configured one). ConfigError if bad."""
    name = name or conf.servicegroup_driver
    try:
        build = BUILDERS[name]
    except KeyError:
        raise ConfigError(f"unknown servicegroup_driver {name!r}; choose one of "
                          f"{', '.join(BUILDERS)}") from None
    return build(conf)


def timing_from(conf: Any) -> LivenessTiming:
    """The liveness timing of ``conf`` (``[DEFAULT]`` intervals, ``[conductor]`` tick)."""
    return LivenessTiming(report_interval=float(conf.report_interval),
                          service_down_time=float(conf.service_down_time),
                          coalesce_interval=float(conf.conductor.coalesce_interval))
