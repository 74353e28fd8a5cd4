"""Options of the external liveness backends ([memcache], [zookeeper], [etcd], [redis])."""

from __future__ import annotations

from oslo_config import cfg


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return []
