"""Options of the external liveness backends ([DEFAULT] memcached_servers, [memcache],
[zookeeper], [etcd], [redis]).

Names and defaults follow Nova's servicegroup drivers where Nova had them (``memcached_servers``
in [DEFAULT]; ``address``, ``recv_timeout``, ``sg_prefix``, ``sg_retry_interval`` in
[zookeeper]) so an operator's nova.conf knowledge carries over. Every backend call has a
timeout: a backend that hangs must become UNKNOWN within a bounded time, never block a reader.
"""

from __future__ import annotations

from oslo_config import cfg

MEMCACHED_DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "memcached_servers",
        default=None,
        help="Memcached servers (host:port,...) of the 'mc' servicegroup driver. Unset: an "
        "in-process cache with the same expiry semantics, which only works when agents and "
        "readers share one process (vigil up).",
    ),
]

MEMCACHE_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "socket_timeout",
        default=3.0,
        min=0.01,
        help="Seconds to wait for a memcached server (connect and each request). A timeout is "
        "reported as 'unknown', never as 'down'.",
    ),
]

ZOOKEEPER_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "address",
        default="127.0.0.1:2181",
        help="ZooKeeper ensemble of the 'zk' driver: host1:port,host2:port,...",
    ),
    cfg.IntOpt(
        "recv_timeout",
        default=4000,
        min=1,
        help="ZooKeeper session timeout in milliseconds. A member whose process dies is removed "
        "by ZooKeeper this long after its last ping (the server clamps it to 2..20 tickTime).",
    ),
    cfg.StrOpt(
        "sg_prefix",
        default="/servicegroups",
        help="Parent znode of the groups: members are ephemeral znodes {sg_prefix}/{topic}/{host}.",
    ),
    cfg.IntOpt(
        "sg_retry_interval",
        default=5,
        min=1,
        help="Seconds between attempts to re-create this process's members after ZooKeeper "
        "dropped them (session expiry), when the first attempt failed.",
    ),
]

ETCD_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "endpoint",
        default="http://127.0.0.1:2379",
        help="Client URL of etcd's JSON gateway for the 'etcd' driver; several, separated by "
        "commas, for the members of a cluster (each request goes to the first that answers).",
    ),
    cfg.StrOpt(
        "api_path",
        default="/v3/",
        help="Path of the gRPC JSON gateway: /v3/ for etcd >= 3.4, /v3beta/ for 3.3. Empty: "
        "ask the server's /version at the first call.",
    ),
    cfg.StrOpt(
        "prefix",
        default="/vigil/servicegroups",
        help="Key prefix: members are keys {prefix}/{topic}/{host} attached to a lease.",
    ),
    cfg.FloatOpt(
        "timeout",
        default=3.0,
        min=0.01,
        help="Seconds to wait for one etcd request. A timeout is 'unknown', never 'down'.",
    ),
]

REDIS_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "url",
        default="redis://127.0.0.1:6379/0",
        secret=True,
        help="Redis URL of the 'redis' driver (redis://[:password@]host:port/db or rediss://).",
    ),
    cfg.StrOpt(
        "key_prefix",
        default="vigil:sg:",
        help="Prefix of member keys ({key_prefix}{topic}:{host}) so Vigil can share a Redis.",
    ),
    cfg.FloatOpt(
        "socket_timeout",
        default=3.0,
        min=0.01,
        help="Seconds to wait for Redis (connect and each command). A timeout is 'unknown'.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [
        (None, MEMCACHED_DEFAULT_OPTS),
        ("memcache", MEMCACHE_OPTS),
        ("zookeeper", ZOOKEEPER_OPTS),
        ("etcd", ETCD_OPTS),
        ("redis", REDIS_OPTS),
    ]
