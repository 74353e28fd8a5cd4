"""The ``redfish`` fence agent: ForceOff through the host's BMC (DMTF Redfish, HTTPS).

Uses sushy (``pip install vigil[ha]``), imported when the agent is first used. ``fence`` posts
``ComputerSystem.Reset`` with ``ForceOff`` and polls the system until it reads ``Off``;
``status`` reads ``PowerState``.

What is tested here: the BMC lookup, argument building, the mapping of sushy's errors (and a
refused connection) to FenceFailed / UNKNOWN, and a real Redfish exchange with sushy-tools'
emulator (fake system driver) on 127.0.0.1. No real BMC hardware is reachable from the test
machines.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from vigil.errors import FenceFailed
from vigil.ha.fence.base import FenceAgent, PowerState
from vigil.ha.fence.bmc import BmcConfig, bmc_for, load_hosts


class RedfishFence(FenceAgent):
    name = "redfish"

    def __init__(self, hosts: dict[str, dict[str, Any]], *, timeout: float = 10.0) -> None:
        self.hosts = hosts
        self.timeout = timeout  # seconds per HTTP request to the BMC

    @classmethod
    def from_conf(cls, conf: Any) -> RedfishFence:
        return cls(load_hosts(conf.ha.fence_hosts_file),
                   timeout=min(10.0, conf.ha.fence_timeout))

    def _bmc(self, host: str) -> BmcConfig:
        bmc = bmc_for(self.hosts, host)
        if bmc is None:
            raise FenceFailed(f"no BMC address for host {host} in [ha] fence_hosts_file")
        return bmc

    @staticmethod
    def connect_args(bmc: BmcConfig) -> dict[str, Any]:
        """sushy.Sushy's arguments for a BMC: the service root URL and credentials."""
        base = bmc.address if "://" in bmc.address else f"https://{bmc.address}"
        if bmc.port is not None:
            scheme, _, rest = base.partition("://")
            hostpart, slash, path = rest.partition("/")
            base = f"{scheme}://{hostpart.split(':')[0]}:{bmc.port}{slash}{path}"
        if not base.rstrip("/").endswith("/redfish/v1"):
            base = base.rstrip("/") + "/redfish/v1"
        args: dict[str, Any] = {"base_url": base, "verify": bmc.verify}
        if bmc.username is not None or bmc.password is not None:
            # A BMC without credentials in the hosts file gets no Authorization at all: sushy
            # would send the strings "None" (requests' HTTPBasicAuth on None, with a warning).
            args.update(username=bmc.username or "", password=bmc.password or "")
        return args

    def _system(self, bmc: BmcConfig) -> Any:
        import sushy

        args = self.connect_args(bmc)
        # One try per request, bounded: the monitor retries fences itself (with backoff), and
        # sushy's default (3 tries, 2 s apart, 60 s timeouts) would stall its loop for minutes.
        connector = sushy.connector.Connector(
            args["base_url"], verify=args["verify"], server_side_retries=1,
            server_side_retries_delay=0.1, connect_timeout=self.timeout,
            default_request_timeout=self.timeout)
        try:
            no_auth = None if "username" in args else _no_auth()
            conn = sushy.Sushy(**args, connector=connector, auth=no_auth)
            if bmc.system_id:
                return conn.get_system(bmc.system_id)
            members = list(conn.get_system_collection().members_identities)
            if len(members) != 1:
                raise FenceFailed(f"Redfish service at {bmc.address} has {len(members)} "
                                  "systems: set system_id for this host")
            return conn.get_system(members[0])
        except sushy.exceptions.SushyError as exc:
            raise FenceFailed(f"Redfish at {bmc.address}: {exc}") from exc

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        import sushy

        bmc = self._bmc(host)
        system = self._system(bmc)
        try:
            if system.power_state != sushy.POWER_STATE_OFF:
                system.reset_system(sushy.RESET_FORCE_OFF)
            deadline = time.monotonic() + timeout
            while True:
                system.refresh(force=True)
                if system.power_state == sushy.POWER_STATE_OFF:
                    return f"Redfish ForceOff of {system.path} at {bmc.address}"
                if cancel.is_set():
                    raise FenceFailed("cancelled: leadership lost")
                if time.monotonic() > deadline:
                    raise FenceFailed(f"Redfish system {system.path} still reads "
                                      f"{system.power_state} {timeout:g} s after ForceOff")
                time.sleep(0.5)
        except sushy.exceptions.SushyError as exc:
            raise FenceFailed(f"Redfish ForceOff of {host} at {bmc.address}: {exc}") from exc

    def status(self, host: str, *, timeout: float) -> PowerState:
        import sushy

        try:
            system = self._system(self._bmc(host))
            system.refresh(force=True)
            state = system.power_state
        except (FenceFailed, sushy.exceptions.SushyError):
            return PowerState.UNKNOWN
        if state == sushy.POWER_STATE_OFF:
            return PowerState.OFF
        if state == sushy.POWER_STATE_ON:
            return PowerState.ON
        return PowerState.UNKNOWN



def _no_auth() -> Any:
    """sushy's authentication for a BMC without credentials: none (no Authorization header).
    Built here, not at import: sushy is imported when the agent is first used."""
    import sushy

    class NoAuth(sushy.auth.AuthBase):  # type: ignore[misc]
        def _do_authenticate(self) -> None:
            pass

        def can_refresh_session(self) -> bool:
            return False

    return NoAuth()
