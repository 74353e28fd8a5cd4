"""The ``ipmi`` fence agent: chassis power off through the host's BMC (IPMI 2.0 over LAN).

Uses pyghmi (``pip install vigil[ha]``), imported when the agent is first used. ``fence``
sends *power off* (hard, not an OS shutdown) and waits until the BMC reports the chassis off;
``status`` reads the chassis power state.

What is tested here: the BMC lookup, the mapping of every pyghmi failure to FenceFailed /
UNKNOWN, and a real IPMI exchange with pyghmi's own BMC emulator on 127.0.0.1 (a UDP IPMI
server, as virtualbmc uses). No real BMC hardware is reachable from the test machines.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from vigil.ha.fence.base import FenceAgent, FenceFailed, PowerState
from vigil.ha.fence.bmc import BmcConfig, bmc_for, load_hosts

DEFAULT_PORT = 623


class IpmiFence(FenceAgent):
    name = "ipmi"

    def __init__(self, hosts: dict[str, dict[str, Any]]) -> None:
        self.hosts = hosts

    @classmethod
    def from_conf(cls, conf: Any) -> IpmiFence:
        return cls(load_hosts(conf.ha.fence_hosts_file))

    def _bmc(self, host: str) -> BmcConfig:
        bmc = bmc_for(self.hosts, host)
        if bmc is None:
            raise FenceFailed(f"no BMC address for host {host} in [ha] fence_hosts_file")
        return bmc

    @staticmethod
    def connect_args(bmc: BmcConfig) -> dict[str, Any]:
        """pyghmi's Command arguments for a BMC."""
        return {"bmc": bmc.address, "userid": bmc.username or "",
                "password": bmc.password or "", "port": bmc.port or DEFAULT_PORT}

    def _command(self, bmc: BmcConfig) -> Any:
        from pyghmi import exceptions as pyghmi_exc
        from pyghmi.ipmi import command as ipmi_command

        try:
            return ipmi_command.Command(**self.connect_args(bmc), keepalive=False)
        except (pyghmi_exc.PyghmiException, OSError) as exc:
            raise FenceFailed(f"IPMI login to {bmc.address} failed: {exc}") from exc

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        from pyghmi import exceptions as pyghmi_exc

        bmc = self._bmc(host)
        if cancel.is_set():
            raise FenceFailed("cancelled: leadership lost")
        cmd = self._command(bmc)
        try:
            # wait=N: pyghmi polls the chassis state about once a second, N times.
            result = cmd.set_power("off", wait=max(1, int(timeout)))
        except (pyghmi_exc.PyghmiException, OSError) as exc:
            raise FenceFailed(f"IPMI power off of {host} at {bmc.address} failed: {exc}"
                              ) from exc
        finally:
            _logout(cmd)
        if isinstance(result, dict) and "error" in result:
            raise FenceFailed(f"IPMI power off of {host}: {result['error']}")
        state = result.get("powerstate") if isinstance(result, dict) else None
        if state != "off":
            raise FenceFailed(f"IPMI power off of {host} at {bmc.address}: chassis still "
                              f"reports {state or result!r}")
        return f"IPMI chassis power off at {bmc.address}"

    def status(self, host: str, *, timeout: float) -> PowerState:
        from pyghmi import exceptions as pyghmi_exc

        try:
            bmc = self._bmc(host)
            cmd = self._command(bmc)
        except FenceFailed:
            return PowerState.UNKNOWN
        try:
            result = cmd.get_power()
        except (pyghmi_exc.PyghmiException, OSError):
            return PowerState.UNKNOWN
        finally:
            _logout(cmd)
        return power_state_of(result)


def power_state_of(result: Any) -> PowerState:
    """pyghmi's ``{'powerstate': 'on'|'off'}`` as a PowerState (anything else: UNKNOWN)."""
    state = result.get("powerstate") if isinstance(result, dict) else None
    return {"off": PowerState.OFF, "on": PowerState.ON}.get(str(state), PowerState.UNKNOWN)


def _logout(cmd: Any) -> None:
    # A failed logout must not hide the fence's outcome (pyghmi raises several types).
    with contextlib.suppress(Exception):
        cmd.ipmi_session.logout()
