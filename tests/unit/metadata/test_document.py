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
