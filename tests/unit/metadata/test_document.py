"""The pure parts of the metadata API: hostnames, signatures, versions."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from vigil.metadata import document, identity


@pytest.mark.parametrize(("name", "expected"), [
    ("web", "web"),
    ("Web Server_1", "web-server-1"),
    ("a.b.c", "a-b-c"),
    ("--x--", "x"),
    ("ünïcode", "ünïcode"),  # latin-1 letters are word characters, as in Nova
    ("日本", "server-u"),       # nothing left: the default
    ("x" * 80, "x" * 63),
    ("semi;colon", "semicolon"),
])
def test_sanitize_hostname(name: str, expected: str) -> None:
    assert document.sanitize_hostname(name, "server-u") == expected


def test_signature_is_nova_hmac_sha256_hex() -> None:
    expected = hmac.new(b"key", b"uuid-1", hashlib.sha256).hexdigest()
    assert identity.sign("key", "uuid-1") == expected
    assert identity.verify("key", "uuid-1", expected)
    assert not identity.verify("key", "uuid-2", expected)
    assert not identity.verify("key", "uuid-1", expected.upper()[:-1])
    assert not identity.verify("", "uuid-1", identity.sign("", "uuid-1"))  # empty key: never


@pytest.mark.parametrize(("version", "has"), [
    ("2012-08-10", {"meta_data.json"}),
    ("2013-10-17", {"meta_data.json", "vendor_data.json"}),
    ("2016-10-06", {"meta_data.json", "vendor_data.json", "network_data.json",
                    "vendor_data2.json"}),
    ("latest", {"meta_data.json", "vendor_data.json", "network_data.json",
                "vendor_data2.json"}),
])
def test_openstack_files_by_version(version: str, has: set[str]) -> None:
    assert set(document.openstack_files(version, False)) == has
    assert "user_data" in document.openstack_files(version, True)


def test_cache_drops_what_changed_and_serves_the_rest_without_io() -> None:
    """The cache against a fake clock and a scripted database (the rule, not the SQL)."""
    import datetime as dt

    from vigil.errors import NotFound
    from vigil.metadata.cache import MARGIN, DocumentCache
    from vigil.objects.compute import InstanceDataRecord

    now = [100.0]
    db_now = dt.datetime(2026, 1, 1)
    names = {"a": "one", "b": "two"}
    changed: list[str] = []
    asked: list[dt.datetime | None] = []
    loads: list[str] = []

    def load(u: str) -> InstanceDataRecord:
        loads.append(u)
        if u not in names:
            raise NotFound(u)
        return InstanceDataRecord(id=1, uuid=u, name=names[u], flavor_name="f",
                                  availability_zone=None, host="h", project_id=None,
                                  user_id=None, user_data=None, meta={}, stamp="s")

    def changes(since: dt.datetime | None) -> tuple[dt.datetime, list[str]]:
        asked.append(since)
        out = list(changed)
        changed.clear()
        return db_now, out

    cache = DocumentCache(load, changes, ttl=15, dhcp_domain="", poll=0.5,
                          clock=lambda: now[0])
    assert cache.peek("a") is None  # nothing polled yet: go to get()
    docs = cache.get("a")
    assert docs is not None and docs.inst.name == "one" and asked == [None]
    assert cache.peek("a") is docs  # no I/O until the next poll is due
    names["a"] = "uno"
    changed.append("a")
    now[0] += 0.4
    assert cache.get("a") is docs and len(asked) == 1  # not yet due: at most one poll late
    now[0] += 0.2
    assert cache.peek("a") is None
    assert cache.get("a").inst.name == "uno"  # type: ignore[union-attr]
    assert asked[-1] == db_now - MARGIN  # looks back over commits in flight
    assert cache.get("ghost") is None and cache.get("ghost") is None
    now[0] += 16  # past the expiration: rebuilt even if unchanged
    before = len(loads)
    cache.get("b")
    cache.get("b")
    assert len(loads) == before + 1
