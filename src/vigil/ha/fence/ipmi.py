"""The ``ipmi`` fence agent: chassis power off through the host's BMC (IPMI 2.0 over LAN).

Uses pyghmi (``pip install vigil[ha]``). ``fence`` sends *power off* (hard, not an OS
shutdown) and waits until the BMC reports the chassis off; ``status`` reads the chassis power.

Each operation runs in a short-lived child process (``python -m vigil.ha.fence.ipmi``, the
BMC's credentials on its stdin, never in its argv) with a hard deadline. pyghmi keeps
process-global session state: constructing a second client for a BMC whose session it already
holds waits forever (seen with pyghmi 1.6.19), and it raises TypeError or struct.error on
protocol surprises besides its own IpmiException. A child process bounds all of that: a hang
is killed at the deadline, any failure is one FenceFailed (or UNKNOWN), and the monitor's own
process holds no pyghmi state at all.

What is tested here: the BMC lookup, the mapping of every failure to FenceFailed / UNKNOWN,
and a real IPMI exchange with pyghmi's own BMC emulator on 127.0.0.1 (a UDP IPMI server, as
virtualbmc uses). No real BMC hardware is reachable from the test machines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from vigil.errors import FenceFailed
from vigil.ha.fence.base import FenceAgent, PowerState
from vigil.ha.fence.bmc import BmcConfig, bmc_for, load_hosts

DEFAULT_PORT = 623
# Login and the first exchange of a child; the power-off wait comes on top.
CHILD_OVERHEAD = 15.0


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
    def request(bmc: BmcConfig, action: str, wait: int = 0) -> dict[str, Any]:
        """What the child receives on stdin."""
        return {"bmc": bmc.address, "userid": bmc.username or "",
                "password": bmc.password or "", "port": bmc.port or DEFAULT_PORT,
                "action": action, "wait": wait}

    def _call(self, bmc: BmcConfig, action: str, *, wait: int, deadline: float,
              cancel: threading.Event | None) -> dict[str, Any]:
        proc = subprocess.Popen([sys.executable, "-m", "vigil.ha.fence.ipmi"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(self.request(bmc, action, wait)).encode())
        proc.stdin.close()
        waited = 0.0
        while True:  # the answer is one short JSON line: it cannot fill the pipe
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                waited += 0.1
                if (cancel is not None and cancel.is_set()) or waited > deadline:
                    proc.kill()
                    proc.wait()
                    why = ("cancelled: leadership lost" if cancel is not None
                           and cancel.is_set() else f"no answer within {deadline:g} s")
                    raise FenceFailed(f"IPMI {action} at {bmc.address}: {why}") from None
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        try:
            answer: dict[str, Any] = json.loads(out.decode() or "{}")
        except ValueError:
            answer = {"error": f"unreadable answer {out[:200]!r}"}
        if proc.returncode != 0 or "error" in answer:
            raise FenceFailed(f"IPMI {action} at {bmc.address}: "
                              f"{answer.get('error', f'exit status {proc.returncode}')}")
        return answer

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        bmc = self._bmc(host)
        # wait=N: pyghmi polls the chassis state about once a second, N times.
        wait = max(1, int(timeout))
        answer = self._call(bmc, "off", wait=wait, deadline=wait + CHILD_OVERHEAD,
                            cancel=cancel)
        state = power_state_of(answer)
        if state is not PowerState.OFF:
            raise FenceFailed(f"IPMI power off of {host} at {bmc.address}: chassis still "
                              f"reports {answer.get('powerstate')!r}")
        return f"IPMI chassis power off at {bmc.address}"

    def status(self, host: str, *, timeout: float) -> PowerState:
        try:
            answer = self._call(self._bmc(host), "status", wait=0,
                                deadline=min(timeout, CHILD_OVERHEAD) + 5, cancel=None)
        except FenceFailed:
            return PowerState.UNKNOWN
        return power_state_of(answer)


def power_state_of(result: Any) -> PowerState:
    """pyghmi's ``{'powerstate': 'on'|'off'}`` as a PowerState (anything else: UNKNOWN)."""
    state = result.get("powerstate") if isinstance(result, dict) else None
    return {"off": PowerState.OFF, "on": PowerState.ON}.get(str(state), PowerState.UNKNOWN)


def main() -> int:
    """The child: one IPMI operation, request on stdin, JSON answer on stdout."""
    request = json.loads(sys.stdin.read())
    try:
        from pyghmi.ipmi import command as ipmi_command

        cmd = ipmi_command.Command(bmc=request["bmc"], userid=request["userid"],
                                   password=request["password"], port=request["port"])
        if request["action"] == "off":
            result = cmd.set_power("off", wait=request["wait"])
        else:
            result = cmd.get_power()
    except Exception as exc:  # everything pyghmi raises becomes one answer (module doc)
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    if isinstance(result, dict) and "error" in result:
        print(json.dumps({"error": str(result["error"])}))
        return 1
    print(json.dumps({"powerstate": result.get("powerstate") if isinstance(result, dict)
                      else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
