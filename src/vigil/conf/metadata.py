"""Options of the metadata API (``vigil metadata``, or ``vigil api`` with ``enabled_apis``).

Nova's names and groups: ``[DEFAULT] metadata_listen``/``metadata_listen_port``/
``enabled_apis``, ``[api] metadata_cache_expiration``/``dhcp_domain`` and ``[neutron]
metadata_proxy_shared_secret``. Two differences, both so that a fresh install is never open:
the API listens on loopback (Nova: 0.0.0.0), and an empty shared secret is refused at start
(Nova signs with the empty key, which anybody can compute). ``vigil up`` writes a random
secret into ``state_path`` instead.
"""

from __future__ import annotations

from oslo_config import cfg, types

OSAPI_COMPUTE = "osapi_compute"
METADATA = "metadata"
APIS = (OSAPI_COMPUTE, METADATA)

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "enabled_apis",
        item_type=types.String(choices=APIS),
        default=[OSAPI_COMPUTE],
        deprecated_opts=[cfg.DeprecatedOpt("enabled_apis", group="api")],
        help="APIs 'vigil api' serves: osapi_compute on [api] port, metadata on "
        "metadata_listen_port. Nova's default serves both; Vigil's serves the compute API only, "
        "because 'vigil up' and 'vigil metadata' run the metadata API themselves and a second "
        "listener on 8775 would collide with them.",
    ),
    cfg.StrOpt(
        "metadata_listen",
        default="127.0.0.1",
        help="Address the metadata API binds to (Nova: 0.0.0.0). Loopback by default: the "
        "process driver's instances run on this machine.",
    ),
    cfg.PortOpt(
        "metadata_listen_port",
        default=8775,
        help="TCP port of the metadata API (Nova's 8775).",
    ),
    cfg.StrOpt(
        "metadata_host",
        default="127.0.0.1",
        help="Address the process driver gives its instances for the metadata API (the "
        "address of a host running 'vigil metadata'); the URL is "
        "http://<metadata_host>:<metadata_listen_port>.",
    ),
]

API_OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "metadata_cache_expiration",
        default=15,
        min=0,
        help="Seconds a built metadata document is kept (0: never cached). Changes are not "
        "waited for: the cache polls the database for written instances every 0.5 s (one "
        "statement for the whole fleet) and drops them, so a change or a deletion is served "
        "within half a second; the expiration only bounds memory and the random seed's age.",
    ),
    cfg.StrOpt(
        "dhcp_domain",
        default="novalocal",
        help="Domain appended to an instance's hostname in the metadata (Nova's default). "
        "Empty: the bare hostname.",
    ),
]

NEUTRON_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "metadata_proxy_shared_secret",
        default="",
        secret=True,
        help="Key of the HMAC-SHA256 signature of X-Instance-ID (X-Instance-ID-Signature, "
        "hex): how the metadata API knows which instance asks. The process driver signs each "
        "instance's id with it, so the compute hosts and the metadata API need the same "
        "value. Must not be empty for 'vigil metadata' (refused at start).",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [(None, DEFAULT_OPTS), ("api", API_OPTS), ("neutron", NEUTRON_OPTS)]
