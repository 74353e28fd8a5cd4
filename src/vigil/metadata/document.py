"""The documents of one instance, in Nova's OpenStack and EC2 formats: pure functions of the
instance's data, so they are table-tested apart from HTTP and cached as built bytes.

What applies to Vigil and what does not: there are no key pairs, images, networks, volumes or
passwords, so ``public_keys`` is always empty, ``network_data.json`` lists nothing, ``devices``
is empty and the EC2 tree leaves out the AMI, IP, security-group and block-device keys. Every
instance is its own reservation of one (``launch_index`` 0): Vigil has no multiple create.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.objects.compute import InstanceDataRecord

# Nova's dated versions of the OpenStack format (nova/api/metadata/base.py), oldest first.
FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"
HAVANA = "2013-10-17"
LIBERTY = "2015-10-15"
NEWTON_ONE = "2016-06-30"
NEWTON_TWO = "2016-10-06"
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
VICTORIA = "2020-10-14"
OPENSTACK_VERSIONS = (FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY,
                      VICTORIA)
# The EC2 API versions Nova serves.
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")
LATEST = "latest"

JSON = "application/json"
TEXT = "text/plain; charset=UTF-8"
OCTETS = "application/octet-stream"


def sanitize_hostname(name: str, default: str) -> str:
    """Nova's ``utils.sanitize_hostname``: a DNS label made of the server's name (latin-1 only,
    at most 63 characters, spaces, dots and underscores become dashes, other characters
    dropped, lower case, no leading or trailing dot or dash), ``default`` when nothing is left.
    """
    text = name.encode("latin-1", "ignore").decode("latin-1")[:63]
    text = re.sub(r"[ _.]", "-", text)
    text = re.sub(r"[^\w.-]+", "", text)
    text = text.lower().strip(".-")
    return text or default[:63]


def hostname_of(inst: InstanceDataRecord, dhcp_domain: str) -> str:
    """The hostname the metadata shows: the sanitized name, with ``dhcp_domain`` if set."""
    host = sanitize_hostname(inst.name, f"server-{inst.uuid}")
    return f"{host}.{dhcp_domain}" if dhcp_domain else host


def _at_least(version: str, since: str) -> bool:
    """Whether ``version`` (a dated version or ``latest``) includes what appeared in ``since``."""
    return version == LATEST or version >= since


def meta_data(inst: InstanceDataRecord, version: str, *, hostname: str,
              random_seed: str) -> dict[str, Any]:
    """``meta_data.json`` at ``version``, with the fields Nova adds in each version."""
    doc: dict[str, Any] = {
        "uuid": inst.uuid,
        "meta": dict(inst.meta),
        "public_keys": {},
        "keys": [],
        "hostname": hostname,
        "name": inst.name,
        "launch_index": 0,
        "availability_zone": inst.availability_zone,
    }
    if _at_least(version, GRIZZLY):
        doc["random_seed"] = random_seed
    if _at_least(version, LIBERTY):
        doc["project_id"] = inst.project_id
    if _at_least(version, NEWTON_ONE):
        doc["devices"] = []
    if _at_least(version, VICTORIA):
        doc["dedicated_cpus"] = []
    return doc


def openstack_files(version: str, has_user_data: bool) -> list[str]:
    """What ``/openstack/<version>`` lists."""
    files = ["meta_data.json"]
    if has_user_data:
        files.append("user_data")
    if _at_least(version, HAVANA):
        files.append("vendor_data.json")
    if _at_least(version, LIBERTY):
        files.append("network_data.json")
    if _at_least(version, NEWTON_TWO):
        files.append("vendor_data2.json")
    return files


def ec2_tree(inst: InstanceDataRecord, hostname: str) -> dict[str, Any]:
    """The EC2 ``meta-data`` tree, for the keys that apply (Nova's names and values)."""
    return {
        "ami-launch-index": "0",
        "hostname": hostname,
        "instance-action": "none",
        # Nova's EC2 id is 'i-' and eight hex digits of an integer id: here the row's.
        "instance-id": f"i-{inst.id:08x}",
        "instance-type": inst.flavor_name,
        "local-hostname": hostname,
        "placement": {"availability-zone": inst.availability_zone or ""},
    }


def listing(tree: Mapping[str, Any]) -> str:
    """Nova's ``ec2_md_print`` of a directory: one entry a line, sub-directories with '/'."""
    return "\n".join(f"{k}/" if isinstance(v, dict) else k for k, v in tree.items())


@dataclass(frozen=True)
class Answer:
    """A built answer: its media type and bytes (served as they are, never rebuilt)."""

    content_type: str
    body: bytes


def _json(value: Any) -> Answer:
    return Answer(JSON, json.dumps(value).encode())


def _text(value: str) -> Answer:
    return Answer(TEXT, value.encode())


@dataclass
class InstanceDocs:
    """Every document of one instance, each built on first use and kept (the random seed is
    drawn once, as Nova's cached InstanceMetadata does)."""

    inst: InstanceDataRecord
    dhcp_domain: str
    random: Callable[[int], bytes] = os.urandom
    _answers: dict[str, Answer | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hostname = hostname_of(self.inst, self.dhcp_domain)
        self.random_seed = base64.b64encode(self.random(512)).decode("ascii")
        self.user_data = (base64.decodebytes(self.inst.user_data.encode("utf-8"))
                          if self.inst.user_data is not None else None)

    def lookup(self, parts: list[str]) -> Answer | None:
        """The answer for a normalized path below the root (its segments), None if the path
        names nothing."""
        key = "/".join(parts)
        if key not in self._answers:
            self._answers[key] = self._build(parts)
        return self._answers[key]

    def _build(self, parts: list[str]) -> Answer | None:
        if parts and parts[0] == "openstack":
            return self._openstack(parts[1:])
        return self._ec2(parts)

    def _openstack(self, parts: list[str]) -> Answer | None:
        if not parts:
            return _text("\n".join([*OPENSTACK_VERSIONS, LATEST]))
        version, rest = parts[0], parts[1:]
        if version != LATEST and version not in OPENSTACK_VERSIONS:
            return None
        files = openstack_files(version, self.user_data is not None)
        if not rest:
            return _text("\n".join(files))
        if len(rest) != 1 or rest[0] not in files:
            return None
        name = rest[0]
        if name == "meta_data.json":
            return _json(meta_data(self.inst, version, hostname=self.hostname,
                                   random_seed=self.random_seed))
        if name == "user_data":
            assert self.user_data is not None
            return Answer(OCTETS, self.user_data)
        if name == "network_data.json":
            return _json({"links": [], "networks": [], "services": []})
        return _json({})  # vendor_data.json, vendor_data2.json: no vendor data providers

    def _ec2(self, parts: list[str]) -> Answer | None:
        if not parts:
            return _text("\n".join([*EC2_VERSIONS, LATEST]))
        version, rest = parts[0], parts[1:]
        if version != LATEST and version not in EC2_VERSIONS:
            return None
        tree: dict[str, Any] = {"meta-data": ec2_tree(self.inst, self.hostname)}
        if self.user_data is not None:
            tree["user-data"] = self.user_data
        node: Any = tree
        for part in rest:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if isinstance(node, dict):
            return _text(listing(node))
        if isinstance(node, bytes):
            return Answer(OCTETS, node)
        return _text(str(node))
