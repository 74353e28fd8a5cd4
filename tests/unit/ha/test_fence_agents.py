"""Fence agents against real things: process groups, scripts, pyghmi's IPMI BMC emulator and
sushy-tools' Redfish emulator on 127.0.0.1. No BMC hardware is reachable here: what a real BMC
would do differently (slow power-off, odd error codes) is only as tested as the emulators
behave."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.errors import ConfigError
from vigil.ha import fence, hostproc
from vigil.ha.fence.base import FenceFailed, PowerState, fence_and_verify
from vigil.ha.fence.bmc import bmc_for, parse_hosts
from vigil.ha.fence.command import CommandFence, build_argv
from vigil.ha.fence.ipmi import IpmiFence, power_state_of
from vigil.ha.fence.process import ProcessFence
from vigil.ha.fence.redfish import RedfishFence
from vigil.ha.fence.simulated import SimulatedFence

NO_CANCEL = threading.Event()


def wait_for(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


# -- process -------------------------------------------------------------------------------
HOST_SCRIPT = """
import subprocess, sys, time
from vigil.ha.hostproc import write_record
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # an "instance"
write_record(sys.argv[1], sys.argv[2])
time.sleep(60)
"""


@pytest.fixture
def host_group(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, str(tmp_path), "h1"],
                            start_new_session=True)
    wait_for(lambda: hostproc.read_record(str(tmp_path), "h1") is not None
             and len(hostproc.group_members(proc.pid)) == 2, 10, "the host and its instance")
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    proc.wait(5)


def test_process_agent_kills_the_whole_group_and_verifies(
        tmp_path: Path, host_group: subprocess.Popen[bytes]) -> None:
    agent = ProcessFence(str(tmp_path))
    assert agent.status("h1", timeout=1) is PowerState.ON
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and "2 live process(es)" in result.detail
    host_group.wait(5)
    assert hostproc.group_members(host_group.pid) == []
    assert agent.status("h1", timeout=1) is PowerState.OFF
    assert fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL).verified  # idempotent


def test_process_agent_without_a_record_cannot_fence(tmp_path: Path) -> None:
    agent = ProcessFence(str(tmp_path))
    assert agent.status("ghost", timeout=1) is PowerState.UNKNOWN
    with pytest.raises(FenceFailed, match="no process record"):
        agent.fence("ghost", timeout=1, cancel=NO_CANCEL)


def test_process_agent_refuses_its_own_group(tmp_path: Path) -> None:
    hostproc.write_record(str(tmp_path), "me")
    with pytest.raises(FenceFailed, match="own process group"):
        ProcessFence(str(tmp_path)).fence("me", timeout=1, cancel=NO_CANCEL)


def test_a_recycled_group_id_is_not_killed(tmp_path: Path) -> None:
    """The record names a group whose leader now has another start time: not ours."""
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        path = hostproc.record_path(str(tmp_path), "old")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump({"host": "old", "pid": other.pid, "pgid": other.pid,
                       "leader_start_time": "1"}, f)
        agent = ProcessFence(str(tmp_path))
        assert agent.status("old", timeout=1) is PowerState.OFF
        assert "reused" in agent.fence("old", timeout=1, cancel=NO_CANCEL)
        assert other.poll() is None  # the unrelated process lives on
    finally:
        other.kill()
        other.wait(5)


# -- command -------------------------------------------------------------------------------
def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_command_argv() -> None:
    assert build_argv("/bin/fence --host {host} -x", "h1") == ["/bin/fence", "--host", "h1",
                                                                "-x"]
    assert build_argv("/bin/fence -v", "h1") == ["/bin/fence", "-v", "h1"]
    assert build_argv("'/opt/my fence' {host}.bmc", "h2") == ["/opt/my fence", "h2.bmc"]
    with pytest.raises(ConfigError):
        build_argv("", "h1")
    with pytest.raises(ConfigError):
        CommandFence("'unbalanced")


def test_command_agent_exit_codes_and_status(tmp_path: Path) -> None:
    log = tmp_path / "fence.log"
    fence_cmd = script(tmp_path, "fence", f'echo "$1" >> {log}; touch {tmp_path}/off-$1\n')
    status_cmd = script(tmp_path, "status", f'[ -e {tmp_path}/off-$1 ] && exit 0; exit 1\n')
    agent = CommandFence(fence_cmd, status_cmd)
    assert agent.status("h1", timeout=5) is PowerState.ON
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and log.read_text() == "h1\n"
    assert agent.status("h1", timeout=5) is PowerState.OFF
    unverifiable = CommandFence(fence_cmd)
    result = fence_and_verify(unverifiable, "h2", timeout=5, cancel=NO_CANCEL)
    assert not result.verified and "not verified" in result.detail


def test_command_agent_failures(tmp_path: Path) -> None:
    failing = CommandFence(script(tmp_path, "f", "echo BMC says no; exit 3\n"))
    with pytest.raises(FenceFailed, match="status 3: BMC says no"):
        failing.fence("h1", timeout=5, cancel=NO_CANCEL)
    slow = CommandFence(script(tmp_path, "s", "sleep 30\n"))
    started = time.monotonic()
    with pytest.raises(FenceFailed, match="did not finish"):
        slow.fence("h1", timeout=0.3, cancel=NO_CANCEL)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(FenceFailed, match="leadership lost"):
        slow.fence("h1", timeout=30, cancel=cancel)
    assert time.monotonic() - started < 5  # both killed at once, not after 30 s
    lying = CommandFence(script(tmp_path, "ok", "exit 0\n"), script(tmp_path, "on", "exit 1\n"))
    with pytest.raises(FenceFailed, match="still reads as powered on"):
        fence_and_verify(lying, "h1", timeout=5, cancel=NO_CANCEL)
    with pytest.raises(FenceFailed, match="cannot run"):
        CommandFence(str(tmp_path / "missing")).fence("h1", timeout=5, cancel=NO_CANCEL)
    assert CommandFence("true", script(tmp_path, "x", "exit 7\n")).status(
        "h1", timeout=5) is PowerState.UNKNOWN


# -- simulated ------------------------------------------------------------------------------
def test_simulated_agent(tmp_path: Path) -> None:
    agent = SimulatedFence(str(tmp_path / "power"))
    assert agent.status("c1", timeout=1) is PowerState.ON
    assert fence_and_verify(agent, "c1", timeout=1, cancel=NO_CANCEL).verified
    agent.release("c1")
    assert agent.status("c1", timeout=1) is PowerState.ON


# -- BMC settings ----------------------------------------------------------------------------
def test_bmc_hosts_file() -> None:
    hosts = parse_hosts({"*": {"username": "admin", "password": "pw", "address": "{host}-bmc"},
                         "h2": {"address": "10.0.0.2", "port": 6230}})
    h1 = bmc_for(hosts, "h1")
    assert h1 is not None and h1.address == "h1-bmc" and h1.username == "admin"
    h2 = bmc_for(hosts, "h2")
    assert h2 is not None and (h2.address, h2.port, h2.password) == ("10.0.0.2", 6230, "pw")
    assert "pw" not in repr(h2)
    assert bmc_for({}, "h3") is None
    for bad in ([], {"h": []}, {"h": {"adress": "x"}}, {"h": {"port": 0}},
                {"h": {"verify": "yes"}}):
        with pytest.raises(ConfigError):
            parse_hosts(bad)


def test_redfish_connect_args() -> None:
    hosts = parse_hosts({"a": {"address": "10.0.0.5", "username": "u", "password": "p"},
                         "b": {"address": "http://127.0.0.1", "port": 8000, "verify": False},
                         "c": {"address": "https://bmc/redfish/v1/"}})
    args = [RedfishFence.connect_args(b) for b in
            (bmc_for(hosts, h) for h in "abc") if b is not None]
    assert args[0] == {"base_url": "https://10.0.0.5/redfish/v1", "username": "u",
                       "password": "p", "verify": True}
    assert args[1]["base_url"] == "http://127.0.0.1:8000/redfish/v1" and not args[1]["verify"]
    assert args[2]["base_url"] == "https://bmc/redfish/v1/"


def test_agents_load_by_name(make_conf) -> None:  # type: ignore[no-untyped-def]
    conf, _ = make_conf({"ha": {"fence_agent": "command", "fence_command": "/bin/true"}})
    assert fence.load(conf).name == "command"
    assert fence.load(conf, "simulated").name == "simulated"
    with pytest.raises(ConfigError):
        fence.load(conf, "telepathy")


# -- IPMI against pyghmi's BMC emulator ------------------------------------------------------
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BMC_SCRIPT = """
import sys
from pyghmi.ipmi import bmc
from pyghmi.ipmi.private import serversession

# pyghmi's server speaks cipher suite 3 only (RAKP-HMAC-SHA1) but answers a SHA-256 request as
# if it had accepted it. A real SHA-1-only BMC refuses with RMCP+ status 0x11 (invalid
# authentication algorithm), upon which the client retries with SHA-1: emulate that one.
_open = serversession.ServerSession.create_open_session_response
def _strict(self, request):
    if request[12] != 1:
        self.clientsessionid = request[4:8]
        return bytearray([request[0], 0x11, 0, 0]) + self.clientsessionid
    return _open(self, request)
serversession.ServerSession.create_open_session_response = _strict

class Bmc(bmc.Bmc):
    state = "on"
    def get_power_state(self): return self.state
    def power_off(self): self.state = "off"
    def power_on(self): self.state = "on"
Bmc({"admin": "secret"}, port=int(sys.argv[1]), address="127.0.0.1").listen()
"""


@pytest.fixture
def ipmi_bmc() -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-c", BMC_SCRIPT, str(port)])
    time.sleep(0.5)
    yield port
    proc.kill()
    proc.wait(5)


def test_ipmi_agent_against_an_emulated_bmc(ipmi_bmc: int) -> None:
    agent = IpmiFence(parse_hosts({"h1": {"address": "127.0.0.1", "port": ipmi_bmc,
                                          "username": "admin", "password": "secret"}}))
    assert wait_for(lambda: agent.status("h1", timeout=5) is PowerState.ON, 10, "the BMC")
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and "127.0.0.1" in result.detail
    assert agent.status("h1", timeout=5) is PowerState.OFF


def test_ipmi_errors_map_to_fence_failed(ipmi_bmc: int) -> None:
    wrong = IpmiFence(parse_hosts({"h1": {"address": "127.0.0.1", "port": ipmi_bmc,
                                          "username": "admin", "password": "wrong"}}))
    with pytest.raises(FenceFailed):
        wrong.fence("h1", timeout=2, cancel=NO_CANCEL)
    assert wrong.status("h1", timeout=2) is PowerState.UNKNOWN
    with pytest.raises(FenceFailed, match="no BMC address"):
        wrong.fence("nobody", timeout=1, cancel=NO_CANCEL)
    assert power_state_of({"powerstate": "off"}) is PowerState.OFF
    assert power_state_of({"error": "x"}) is PowerState.UNKNOWN


# -- Redfish against sushy-tools' emulator ---------------------------------------------------
@pytest.fixture(scope="module")
def redfish_bmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp_path = tmp_path_factory.mktemp("redfish")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = tmp_path / "emulator.conf"
    config.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(tmp_path / 'state')!r}\n"
        "SUSHY_EMULATOR_FAKE_SYSTEMS = [{'uuid': '27946b59-9e44-4fa7-8e91-f3527a1ef094', "
        "'name': 'h1', 'power_state': 'On', 'external_notifier': False, 'nics': []}]\n")
    emulator = str(Path(sys.executable).with_name("sushy-emulator"))
    proc = subprocess.Popen([emulator, "--config", str(config), "--interface", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(up, 20, "the Redfish emulator")
    yield port
    proc.kill()
    proc.wait(5)


def test_redfish_agent_against_an_emulated_bmc(redfish_bmc: int) -> None:
    agent = RedfishFence(parse_hosts({"h1": {"address": "http://127.0.0.1",
                                             "port": redfish_bmc}}))
    assert agent.status("h1", timeout=5) is PowerState.ON
    # The emulator applies a power change 1 to 11 s later, like a real BMC: polled until Off.
    result = fence_and_verify(agent, "h1", timeout=20, cancel=NO_CANCEL)
    assert result.verified and "ForceOff" in result.detail
    assert agent.status("h1", timeout=5) is PowerState.OFF


def test_redfish_errors_map_to_fence_failed(redfish_bmc: int) -> None:
    closed = RedfishFence(parse_hosts({"h1": {"address": "http://127.0.0.1", "port": 9}}))
    with pytest.raises(FenceFailed, match="Redfish"):
        closed.fence("h1", timeout=2, cancel=NO_CANCEL)
    assert closed.status("h1", timeout=2) is PowerState.UNKNOWN
    missing = RedfishFence(parse_hosts({"h1": {"address": "http://127.0.0.1",
                                               "port": redfish_bmc,
                                               "system_id": "/redfish/v1/Systems/nope"}}))
    with pytest.raises(FenceFailed):
        missing.fence("h1", timeout=2, cancel=NO_CANCEL)
