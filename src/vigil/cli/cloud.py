"""Logging in as the OpenStack tools do: ``--os-cloud`` with ``clouds.yaml``, or the ``OS_*``
variables, through keystoneauth (openstacksdk's configuration loader, the one ``openstack``
itself uses, so a cloud that works there works here).

Password and token authentication (``auth_type: password``, ``v3token``, ...) are keystoneauth's
plugins; the compute endpoint is looked up in the catalog of the token, as for any Nova. The
result is the (endpoint, token) pair the CLI's API clients already take: the static
``--os-endpoint``/``--os-token`` (admin token) mode is the same path with the login skipped.

openstacksdk is an optional extra (``vigil[cloud]``) and is imported only when a cloud is
asked for: the other commands do not pay for its import.
"""

from __future__ import annotations

import os

from vigil import errors as verr

EXTRA_HINT = "--os-cloud and OS_AUTH_URL need openstacksdk: pip install 'vigil[cloud]'"


def wanted(cloud: str | None) -> bool:
    """Whether the caller asked for a Keystone login (a cloud name, or OS_AUTH_URL)."""
    return bool(cloud or os.environ.get("OS_CLOUD") or os.environ.get("OS_AUTH_URL"))


def login(cloud: str | None) -> tuple[str, str]:
    """(compute endpoint, token) for ``cloud`` (else OS_CLOUD, else the OS_* variables)."""
    try:
        import openstack.config
        import openstack.exceptions
        from keystoneauth1 import exceptions as ks
    except ImportError as exc:
        raise verr.ConfigError(EXTRA_HINT) from exc
    try:
        region = openstack.config.OpenStackConfig(load_envvars=True).get_one(cloud=cloud)
        session = region.get_session()
        token = session.get_token()
        endpoint = session.get_endpoint(service_type="compute",
                                        interface=region.get_interface(),
                                        region_name=region.get_region_name())
    except openstack.exceptions.ConfigException as exc:
        raise verr.ConfigError(f"cloud configuration: {exc}") from exc
    except ks.EndpointNotFound as exc:
        raise verr.ConfigError(f"no compute endpoint in the catalog: {exc}") from exc
    except ks.Unauthorized as exc:
        raise verr.ApiError(f"Keystone refused the login: {exc}") from exc
    except ks.MissingRequiredOptions as exc:
        raise verr.ConfigError(f"incomplete credentials: {exc}") from exc
    except ks.ClientException as exc:
        raise verr.Unavailable(f"cannot log in to Keystone: {exc}") from exc
    if not endpoint or not token:
        raise verr.ConfigError("the login gave no compute endpoint or no token")
    return str(endpoint), str(token)
