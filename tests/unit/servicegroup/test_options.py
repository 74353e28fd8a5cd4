"""Typed driver options and the liveness timing: parsed once from conf, one line if wrong."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import vigil.conf
from vigil.errors import ConfigError
from vigil.objects.liveness import LivenessTiming, path_max_gap
from vigil.servicegroup import drivers
from vigil.servicegroup.drivers.options import (
    DbOptions,
    EtcdEndpoint,
    EtcdOptions,
    HostPort,
    MemcachedOptions,
    RedisOptions,
    ZooKeeperOptions,
    options_from,
    timing_from,
)


def make_conf(**groups: dict[str, Any]) -> Any:
    conf = vigil.conf.make()
    conf([])
    for group, values in groups.items():
        for key, value in values.items():
            conf.set_override(key, value, group=None if group == "DEFAULT" else group)
    return conf


def test_each_driver_gets_its_options_parsed() -> None:
    conf = make_conf(
        DEFAULT={"memcached_servers": ["10.0.0.1:11211", "[::1]:11212"]},
        memcache={"socket_timeout": 0.5},
        zookeeper={"address": "z1:2181,z2:2181/chroot", "recv_timeout": 2500,
                   "sg_prefix": "sg/", "sg_retry_interval": 2},
        etcd={"endpoint": "http://e1:2379, https://e2", "prefix": "/a/b/", "timeout": 1.5,
              "api_path": ""},
        redis={"url": "redis://r:6379/1", "key_prefix": "p:", "socket_timeout": 0.25},
    )
    assert options_from(conf, "db") == DbOptions()
    assert options_from(conf, "mc") == MemcachedOptions(
        servers=(HostPort("10.0.0.1", 11211), HostPort("::1", 11212)), socket_timeout=0.5)
    assert options_from(conf, "zk") == ZooKeeperOptions(
        address="z1:2181,z2:2181/chroot", session_timeout=2.5, prefix="/sg", retry_interval=2)
    assert options_from(conf, "etcd") == EtcdOptions(
        endpoints=(EtcdEndpoint("http", "e1", 2379), EtcdEndpoint("https", "e2", 2379)),
        prefix="/a/b", timeout=1.5, api_path=None)
    assert options_from(conf, "redis") == RedisOptions(url="redis://r:6379/1", key_prefix="p:",
                                                       socket_timeout=0.25)
    assert str(HostPort("::1", 11212)) == "[::1]:11212"


@pytest.mark.parametrize(("name", "groups", "message"), [
    ("mc", {"DEFAULT": {"memcached_servers": ["10.0.0.1"]}}, "is not host:port"),
    ("mc", {"DEFAULT": {"memcached_servers": ["unix:/tmp/mc"]}}, "unix sockets"),
    ("zk", {"zookeeper": {"address": "z1:port"}}, "is not host:port"),
    ("zk", {"zookeeper": {"address": "/chroot"}}, "address is empty"),
    ("etcd", {"etcd": {"endpoint": "e1:2379"}}, "is not an http(s)://host:port URL"),
    ("etcd", {"etcd": {"endpoint": " , "}}, "endpoint is empty"),
])
def test_bad_option_is_one_line_naming_it(name: str, groups: dict[str, dict[str, Any]],
                                          message: str) -> None:
    with pytest.raises(ConfigError) as info:
        options_from(make_conf(**groups), name)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_timing_carries_every_derived_value() -> None:
    conf = make_conf(DEFAULT={"report_interval": 10, "service_down_time": 60},
                     conductor={"coalesce_interval": 0.5})
    timing = timing_from(conf)
    assert timing == LivenessTiming(report_interval=10, service_down_time=60,
                                    coalesce_interval=0.5)
    assert timing.down_after == dt.timedelta(seconds=60)
    assert timing.path_max_gap == path_max_gap(60, 10, 0.5) == dt.timedelta(seconds=37)
    assert timing.trust_after == 61.0


def test_drivers_are_built_from_options_and_timing_alone() -> None:
    """No driver reads the ConfigOpts: the same options give the same driver with or without
    a configuration around it."""
    timing = LivenessTiming(report_interval=1, service_down_time=2.5, coalesce_interval=0.1)
    mc = drivers.build("mc", MemcachedOptions(), timing)
    try:
        assert (mc.expiry, mc.local_ttl, mc.trust_after) == (4, 2.5, 3.5)  # type: ignore[attr-defined]
    finally:
        mc.close()
    rd = drivers.build("redis", RedisOptions("redis://127.0.0.1:1/0", "k:", 0.1), timing)
    try:
        assert (rd.ttl_ms, rd.trust_after) == (2500, 3.5)  # type: ignore[attr-defined]
    finally:
        rd.close()
    etcd = drivers.build("etcd", EtcdOptions((EtcdEndpoint("http", "a", 1),
                                              EtcdEndpoint("https", "b", 2)), "/p", 1.0, None),
                         timing)
    try:
        assert etcd.endpoints == ["http://a:1", "https://b:2"]  # type: ignore[attr-defined]
        assert etcd.ttl == 3  # type: ignore[attr-defined]
    finally:
        etcd.close()
