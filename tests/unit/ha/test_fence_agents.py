"""Fence agents against real things: process groups, scripts, pyghmi's IPMI BMC emulator and
sushy-tools' Redfish emulator on 127.0.0.1. No BMC hardware is reachable here: what a real BMC
would do differently (slow power-off, odd error codes) is only as tested as the emulators
behave."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools.wait import wait_for
from vigil.conf import ha as ha_conf
from vigil.errors import ConfigError, FenceFailed
from vigil.ha import fence, hostproc
from vigil.ha.fence import fenceapi
from vigil.ha.fence.base import FenceAgent, PowerState, fence_and_verify
from vigil.ha.fence.bmc import bmc_for, parse_hosts
from vigil.ha.fence.command import CommandFence, build_argv
from vigil.ha.fence.fenceapi import parse_host_map, plugs_for
from vigil.ha.fence.ipmi import IpmiFence, power_state_of
from vigil.ha.fence.process import ProcessFence
from vigil.ha.fence.redfish import RedfishFence
from vigil.ha.fence.simulated import SimulatedFence

NO_CANCEL = threading.Event()


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
# The command agent against tests/tools/fence_test_agent.py, a fence agent that follows
# ClusterLabs' FenceAgentAPI (stdin options, exit codes), run unmodified.
AGENT = str(Path(__file__).resolve().parents[2] / "tools" / "fence_test_agent.py")
SECRET = "s3cr3t-Pa55"


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


class Device:
    """The test agent's state directory: each plug's power, misbehaviour and calls."""

    def __init__(self, path: Path) -> None:
        path.mkdir(exist_ok=True)
        self.path = path

    def power(self, plug: str) -> str:
        p = self.path / f"{plug}.power"
        return p.read_text().strip() if p.exists() else "on"

    def set_power(self, plug: str, state: str) -> None:
        (self.path / f"{plug}.power").write_text(state + "\n")

    def misbehave(self, plug: str, mode: str | None) -> None:
        p = self.path / f"{plug}.mode"
        if mode is None:
            p.unlink(missing_ok=True)
        else:
            p.write_text(mode + "\n")

    def calls(self) -> list[dict]:  # type: ignore[type-arg]
        log = self.path / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def actions(self) -> list[tuple[str, str]]:
        return [(c["action"], c["plug"]) for c in self.calls()]


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "device")


def agent_for(device: Device, host_map: str = "", **kwargs: Any) -> CommandFence:
    hosts = {"*": {"state_dir": str(device.path), "username": "admin", "password": SECRET}}
    return CommandFence(AGENT, host_map=host_map, hosts=hosts, **kwargs)


def test_command_argv_is_a_template_and_nothing_is_appended() -> None:
    assert build_argv("/bin/fence --host {host} -x", "h1") == ["/bin/fence", "--host", "h1",
                                                                "-x"]
    assert build_argv("/bin/fence -v", "h1") == ["/bin/fence", "-v"]  # the host is on stdin
    assert build_argv("'/opt/my fence' {host}.bmc", "h2") == ["/opt/my fence", "h2.bmc"]
    assert build_argv("f -n {plug} -o {action}", "h1", "3", "status") == [
        "f", "-n", "3", "-o", "status"]
    assert build_argv("f {plug}", "h1") == ["f", "h1"]  # no plug: the host is its own plug
    for bad, message in [("", "is empty"), ("'unbalanced", "does not parse"),
                         ("f {hots}", "unknown placeholder {hots}"),
                         ("fence_ipmilan --password=x", "no password in the command line"),
                         ("fence_ipmilan --passwd x", "no password in the command line")]:
        with pytest.raises(ConfigError, match=message):
            build_argv(bad, "h1")
    with pytest.raises(ConfigError):
        CommandFence("'unbalanced")
    with pytest.raises(ConfigError, match="fence_status_command"):
        CommandFence("true", "s {nope}")


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("node1:1;node2:2,3", {"node1": ("1",), "node2": ("2", "3")}),
    ("node1=1 node2=2", {"node1": ("1",), "node2": ("2",)}),
    ("node1:1, node2:2,3 ;node3:vm-3\tnode4:p", {"node1": ("1",), "node2": ("2", "3"),
                                                 "node3": ("vm-3",), "node4": ("p",)}),
    ("h1:psu-a,psu-b;", {"h1": ("psu-a", "psu-b")}),
    ("h1.example.org:uuid-1", {"h1.example.org": ("uuid-1",)}),
])
def test_host_map_parses_pacemaker_syntax(text: str, expected: dict[str, tuple[str, ...]]
                                          ) -> None:
    assert parse_host_map(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    (":1", "has no host name"),
    ("h1:", "empty plug"),
    ("h1: 1", "empty plug"),
    ("1;h1:2", "plug '1' comes before any host"),
    ("h1:1;h1:2", "host 'h1' is listed twice"),
    ("h1:1,1", "lists plug '1' twice"),
    ("h1:a:b", "a plug cannot contain : or ="),
    ("h1:a=b", "a plug cannot contain : or ="),
    ("h1:a\\;b", "escape or control character"),
    ("h1:a\x01", "escape or control character"),
])
def test_host_map_refuses_bad_entries(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        parse_host_map(text)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("[ha] fence_host_map")


def test_plugs_for_a_host_not_in_the_map_is_the_host() -> None:
    host_map = parse_host_map("h1:1,2")
    assert plugs_for(host_map, "h1") == ("1", "2") and plugs_for(host_map, "h9") == ("h9",)


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a JSON object"),
    ({"h1": "10.0.0.1"}, "entry 'h1' is not an object"),
    ({"h1": {"ip addr": "x"}}, "'ip addr' is not an option name"),
    ({"h1": {"1ip": "x"}}, "'1ip' is not an option name"),
    ({"h1": {"ip=": "x"}}, "is not an option name"),
    ({"*": {"password": "a\nb"}}, "the value of password has a newline"),
    ({"h1": {"ip": ["a"]}}, "ip must be a string, number or boolean, not list"),
    ({"h1": {"ip": None}}, "not NoneType"),
    ({"h1": {"action": "on"}}, "action is set by Vigil"),
    ({"h1": {"nodename": "x"}}, "nodename is set by Vigil"),
    ({"h1": {"plug": "3"}}, "plug is set by Vigil"),
])
def test_command_hosts_file_refuses_bad_entries(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        CommandFence("true", hosts=data)
    assert "\n" not in str(exc.value)
    if isinstance(data, dict) and "*" in data:
        assert "a\nb" not in str(exc.value)


def test_command_agent_checks_its_options() -> None:
    with pytest.raises(ConfigError, match="fence_action 'cycle'"):
        CommandFence("true", action="cycle")
    with pytest.raises(ConfigError, match="fence_host_argument"):
        CommandFence("true", host_argument="my plug")
    with pytest.raises(ConfigError, match="cannot be 'nodename'"):
        CommandFence("true", host_argument="nodename")
    # The plug argument may be named port; then a "plug" device option is the agent's own.
    CommandFence("true", host_argument="port", hosts={"h1": {"plug": "x"}})
    with pytest.raises(ConfigError, match="fence_host_map needs a fence_host_argument"):
        CommandFence("true", host_argument="none", host_map="h1:1")


def test_command_stdin_is_exactly_the_convention(tmp_path: Path) -> None:
    dump = script(tmp_path, "dump", f'cat > {tmp_path}/"$1-$2.stdin"; exit 2\n')
    agent = CommandFence(f"{dump} {{action}} {{plug}}", host_map="h1:psu-a,psu-b",
                         hosts={"*": {"username": "admin", "password": SECRET, "lanplus": True,
                                      "ip": "{host}-ipmi", "ipport": 623},
                                "h1": {"ip": "10.0.0.5", "ssl_insecure": False},
                                "h2": {"password": "{host}-pw"}})
    assert agent.status("h1", timeout=5) is PowerState.OFF
    assert (tmp_path / "status-psu-a.stdin").read_text() == (
        "action=status\nnodename=h1\nplug=psu-a\nusername=admin\n"
        f"password={SECRET}\nlanplus=1\nip=10.0.0.5\nipport=623\nssl_insecure=0\n")
    assert (tmp_path / "status-psu-b.stdin").read_text().startswith(
        "action=status\nnodename=h1\nplug=psu-b\n")
    agent.status("h2", timeout=5)
    assert (tmp_path / "status-h2.stdin").read_text() == (
        "action=status\nnodename=h2\nplug=h2\nusername=admin\npassword={host}-pw\n"
        "lanplus=1\nip=h2-ipmi\nipport=623\n")
    # fence_host_argument = port, and a separate status command gets the same stdin.
    port_agent = CommandFence("false", f"{dump} st {{host}}", host_argument="port")
    assert port_agent.status("h3", timeout=5) is PowerState.OFF
    assert (tmp_path / "st-h3.stdin").read_text() == "action=status\nnodename=h3\nport=h3\n"
    assert port_agent.stdin("off", "h3", "h3") == "action=off\nnodename=h3\nport=h3\n"
    # fence_host_argument = none: no plug line (fence_ipmilan has one BMC per host, no plug).
    bmc_agent = CommandFence(f"{dump} off {{host}}", host_argument="none",
                             hosts={"h4": {"ip": "10.0.0.4"}})
    with pytest.raises(FenceFailed) as exc:
        bmc_agent.fence("h4", timeout=5, cancel=NO_CANCEL)  # exit 2: not a success for off
    assert "(action=off) exited 2" in str(exc.value)
    assert (tmp_path / "off-h4.stdin").read_text() == "action=off\nnodename=h4\nip=10.0.0.4\n"


@pytest.mark.parametrize(("code", "state"), [(0, PowerState.ON), (2, PowerState.OFF),
                                             (1, PowerState.UNKNOWN), (7, PowerState.UNKNOWN)])
def test_status_exit_codes(tmp_path: Path, code: int, state: PowerState) -> None:
    """0 = on, 2 = off, 1 = cannot tell: from fence_status_command, or fence_command run
    with action=status when there is none."""
    status = script(tmp_path, "status", f"exit {code}\n")
    assert CommandFence("false", status).status("h1", timeout=5) is state
    assert CommandFence(status).status("h1", timeout=5) is state
    assert fenceapi.status_from_exit(code) is state


def test_command_agent_runs_a_convention_agent_unmodified(device: Device) -> None:
    agent = agent_for(device)
    assert agent.status("h1", timeout=5) is PowerState.ON
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and "power off verified" in result.detail
    assert "action=off" in result.detail and SECRET not in result.detail
    assert device.power("h1") == "off" and agent.status("h1", timeout=5) is PowerState.OFF
    calls = device.calls()
    assert [(c["action"], c["plug"], c["nodename"]) for c in calls] == [
        ("status", "h1", "h1"), ("off", "h1", "h1"), ("status", "h1", "h1"),
        ("status", "h1", "h1")]
    assert calls[1]["options"] == ["action", "nodename", "password", "plug", "state_dir",
                                   "username"]
    assert calls[1]["argv"] == []  # nothing but stdin
    assert SECRET not in (device.path / "calls.log").read_text()
    assert fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL).verified  # idempotent
    # An agent that takes port, not plug: fence_host_argument = port.
    port_agent = agent_for(device, host_argument="port")
    assert fence_and_verify(port_agent, "h2", timeout=5, cancel=NO_CANCEL).verified
    assert device.calls()[-2]["options"].count("port") == 1
    assert device.power("h2") == "off"


def test_multi_plug_off_and_status(device: Device) -> None:
    agent = agent_for(device, "h1:psu-a,psu-b;h2:p3")
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and "plug=psu-a" in result.detail and "plug=psu-b" in result.detail
    assert device.actions() == [("off", "psu-a"), ("off", "psu-b"), ("status", "psu-a"),
                                ("status", "psu-b")]
    assert {c["nodename"] for c in device.calls()} == {"h1"}
    assert device.power("p3") == "on"  # the other host's plug is untouched
    # Status: OFF only if every plug reads off, ON if any reads on, else UNKNOWN.
    device.set_power("psu-b", "on")
    assert agent.status("h1", timeout=5) is PowerState.ON
    device.misbehave("psu-a", "status-unknown")
    assert agent.status("h1", timeout=5) is PowerState.ON
    device.set_power("psu-b", "off")
    assert agent.status("h1", timeout=5) is PowerState.UNKNOWN
    device.misbehave("psu-a", None)
    assert agent.status("h1", timeout=5) is PowerState.OFF


def test_multi_plug_off_stops_at_the_first_failure(device: Device) -> None:
    agent = agent_for(device, "h1:psu-a,psu-b,psu-c")
    device.misbehave("psu-b", "off-fails")
    with pytest.raises(FenceFailed, match=r"plug=psu-b.* exited 1: Failed: unable to power off"):
        fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert device.actions() == [("off", "psu-a"), ("off", "psu-b")]
    assert (device.power("psu-a"), device.power("psu-b"), device.power("psu-c")) == (
        "off", "on", "on")


def test_reboot_is_verified_by_its_exit_code(device: Device) -> None:
    """A reboot's exit 0 says the agent saw the off part done; the power reads on afterwards
    (the host boots again) and that is not a failure."""
    agent = agent_for(device, action="reboot")
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified and "reboot" in result.detail and "exit 0" in result.detail
    assert device.actions() == [("reboot", "h1")]  # no status read
    assert device.power("h1") == "on"
    device.misbehave("h1", "off-fails")
    with pytest.raises(FenceFailed, match=r"action=reboot.* exited 1"):
        fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)


def test_multi_plug_reboot_is_all_off_then_all_on(device: Device) -> None:
    agent = agent_for(device, "h1:psu-a,psu-b", action="reboot")
    result = fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert result.verified
    assert device.actions() == [("off", "psu-a"), ("off", "psu-b"), ("on", "psu-a"),
                                ("on", "psu-b")]
    assert device.power("psu-a") == device.power("psu-b") == "on"
    # No power-on at all unless every plug went off.
    device.misbehave("psu-b", "off-fails")
    before = len(device.calls())
    with pytest.raises(FenceFailed, match="psu-b"):
        fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert device.actions()[before:] == [("off", "psu-a"), ("off", "psu-b")]


def test_fence_verification_reads_the_power_back(device: Device) -> None:
    agent = agent_for(device)
    device.misbehave("h1", "stays-on")  # off exits 0, the plug stays on: a lying device
    with pytest.raises(FenceFailed, match="still reads as powered on"):
        fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    device.misbehave("h1", "status-unknown")  # off works, then the device cannot be reached
    with pytest.raises(FenceFailed, match="power state could not be read after the fence"):
        fence_and_verify(agent, "h1", timeout=5, cancel=NO_CANCEL)
    assert device.power("h1") == "off"
    assert agent.can_read_status


class WriteOnlyFence(FenceAgent):
    """An agent that can power off but has no way to read the power at all."""

    name = "write-only"
    can_read_status = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def fence(self, host: str, *, timeout: float, cancel: threading.Event) -> str:
        (self.path / f"{host}.off").touch()
        return f"{host} switched off"

    def status(self, host: str, *, timeout: float) -> PowerState:
        return PowerState.UNKNOWN


def test_an_agent_that_cannot_read_status_gives_an_unverified_fence(tmp_path: Path) -> None:
    result = fence_and_verify(WriteOnlyFence(tmp_path), "h1", timeout=1, cancel=NO_CANCEL)
    assert not result.verified and "not verified" in result.detail


def test_passwords_are_redacted_from_errors_and_details(tmp_path: Path) -> None:
    # A chatty agent that echoes its whole stdin (a debug mode that logs its options) and more.
    echo = script(tmp_path, "echo", 'cat; echo "ipmitool -P s3cr3t-Pa55 -U admin"; '
                  'echo "passwd: hunter2"; [ "$1" = ok ] && exit 0; exit 1\n')
    hosts = {"*": {"password": SECRET, "username": "admin", "snmp_secret": "topsecret"}}
    failing = CommandFence(echo, hosts=hosts)
    with pytest.raises(FenceFailed) as exc:
        failing.fence("h1", timeout=5, cancel=NO_CANCEL)
    text = str(exc.value)
    assert "exited 1" in text and "username=admin" in text
    for secret in (SECRET, "hunter2", "topsecret"):
        assert secret not in text
    assert "password=***" in text and "passwd: ***" in text
    ok = CommandFence(f"{echo} ok", script(tmp_path, "off", "exit 2\n"), hosts=hosts)
    detail = fence_and_verify(ok, "h1", timeout=5, cancel=NO_CANCEL).detail
    assert SECRET not in detail and "topsecret" not in detail and "verified" in detail
    for raw, shown in [(f"login password = {SECRET} ok", "login password = *** ok"),
                       ('{"password": "x1", "user": "u"}', '{"password": "***", "user": "u"}'),
                       ("passwd: x2", "passwd: ***"), ("ssl_secret=x3", "ssl_secret=***"),
                       ("-P x4 -U admin", "-P *** -U admin"), ("no secret here", None)]:
        assert fenceapi.redact(raw, ["x4"]) == (shown or raw)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def hung_pids(device: Device, plug: str) -> list[int]:
    path = device.path / f"{plug}.hung"
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), 10, "the hung agent")
    pids = [int(p) for p in path.read_text().split()]
    path.unlink()
    return pids


def test_a_hung_agent_is_killed_at_the_timeout_and_on_cancel(device: Device) -> None:
    agent = agent_for(device)
    device.misbehave("h1", "hang")
    started = time.monotonic()
    # (3 s: the agent must have started and written its pids before it is killed, which a
    # Python start on a loaded machine can take more than 1 s to do.)
    with pytest.raises(FenceFailed, match="did not finish before the fence_timeout"):
        agent.fence("h1", timeout=3, cancel=NO_CANCEL)
    assert time.monotonic() - started < 8
    pids = hung_pids(device, "h1")
    wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "the agent and its child to die")
    assert agent.status("h1", timeout=1) is PowerState.UNKNOWN  # no answer in time
    wait_for(lambda: not any(pid_alive(p) for p in hung_pids(device, "h1")), 5, "status")

    # Cancelled once the agent is really hung (its pids written): a fixed delay would, on a
    # loaded machine, cancel an agent that has not started yet, and test nothing.
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def cancel_when_hung() -> None:
        path = device.path / "h1.hung"
        wait_for(lambda: path.exists() and path.read_text().endswith("\n"), 30, "the hung agent")
        cancelled_at.append(time.monotonic())
        cancel.set()

    threading.Thread(target=cancel_when_hung, daemon=True).start()
    with pytest.raises(FenceFailed, match="leadership lost"):
        agent.fence("h1", timeout=60, cancel=cancel)
    assert cancelled_at and time.monotonic() - cancelled_at[0] < 5  # at once, not after 60 s
    pids = hung_pids(device, "h1")
    wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "the agent and its child to die")


def test_command_agent_failures(tmp_path: Path) -> None:
    failing = CommandFence(script(tmp_path, "f", "echo BMC says no; exit 3\n"))
    with pytest.raises(FenceFailed, match="exited 3: BMC says no"):
        failing.fence("h1", timeout=5, cancel=NO_CANCEL)
    with pytest.raises(FenceFailed, match="cannot run"):
        CommandFence(str(tmp_path / "missing")).fence("h1", timeout=5, cancel=NO_CANCEL)
    assert CommandFence(str(tmp_path / "missing")).status("h1", timeout=5) is PowerState.UNKNOWN
    # An agent that never reads its stdin (and a big stdin) does not wedge the call.
    deaf = CommandFence(script(tmp_path, "deaf", "sleep 0.2; exit 0\n"),
                        hosts={"*": {f"opt{i}": "x" * 1000 for i in range(200)}})
    assert "exited 0" in deaf.fence("h1", timeout=5, cancel=NO_CANCEL)


def test_command_options_are_checked_at_start_up(make_conf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hosts_file = tmp_path / "fence-hosts.json"
    hosts_file.write_text(json.dumps({"*": {"password": SECRET, "lanplus": 1},
                                      "h1": {"ip": "10.0.0.5"}}))
    good = {"fence_agent": "command", "fence_command": AGENT, "fence_action": "reboot",
            "fence_host_map": "h1:1,2;h2:3", "fence_host_argument": "port",
            "fence_hosts_file": str(hosts_file)}
    conf, _ = make_conf({"ha": good})
    ha_conf.validate(conf)
    agent = fence.load(conf)
    assert isinstance(agent, CommandFence)
    assert (agent.action, agent.plugs("h1"), agent.host_argument) == ("reboot", ("1", "2"),
                                                                      "port")
    assert agent.stdin("status", "h1", "2") == (
        f"action=status\nnodename=h1\nport=2\npassword={SECRET}\nlanplus=1\nip=10.0.0.5\n")
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps({"h1": {"user name": "x"}}))
    # (A value outside an option's choices is refused already when the file is read, by the
    # start-up check of every option; the others by the [ha] rules or by the agent as the
    # composition root builds it, both at start-up: vigil.launch.monitor.monitor_from.)
    for change, message in [({"fence_action": "cycle"}, r"\[ha\] fence_action.*Valid values"),
                            ({"fence_host_map": "h1:"}, "empty plug"),
                            ({"fence_host_argument": "my plug"}, "fence_host_argument"),
                            ({"fence_command": "f {hots}"}, "unknown placeholder"),
                            ({"fence_status_command": "'x"}, "fence_status_command")]:
        with pytest.raises(ConfigError, match=message) as exc:
            conf, _ = make_conf({"ha": {**good, **change}})
            ha_conf.validate(conf)
            fence.load(conf)
        assert "\n" not in str(exc.value)
    conf, _ = make_conf({"ha": {**good, "fence_hosts_file": str(bad_file)}})
    with pytest.raises(ConfigError, match="'user name' is not an option name"):
        fence.load(conf)
    # ipmi and redfish keep their own, closed list of keys.
    conf, _ = make_conf({"ha": {"fence_agent": "ipmi", "fence_hosts_file": str(hosts_file)}})
    with pytest.raises(ConfigError, match="unknown keys"):
        fence.load(conf)


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


FENCE_IPMILAN = shutil.which("fence_ipmilan", path="/usr/sbin:/usr/bin:/sbin:/bin")


def test_command_agent_runs_fence_ipmilan_unmodified(ipmi_bmc: int) -> None:
    """The real fence-agents' fence_ipmilan, configured as an operator would, against the same
    emulated BMC: options on stdin, status exit codes, a reboot. (tests/servers/ensure-system.sh
    installs Debian's fence-agents and ipmitool: nothing here skips.)"""
    assert FENCE_IPMILAN is not None and shutil.which("ipmitool") is not None, (
        "ClusterLabs' fence_ipmilan and ipmitool are missing: apt-get install fence-agents "
        "ipmitool (tests/servers/ensure-system.sh does)")
    assert FENCE_IPMILAN is not None
    # Cipher suite 3: the emulator's only one (see BMC_SCRIPT); ipmitool does not fall back.
    hosts = {"*": {"username": "admin", "password": "secret", "lanplus": True, "cipher": 3},
             "h1": {"ip": "127.0.0.1", "ipport": ipmi_bmc}}
    agent = CommandFence(FENCE_IPMILAN, host_argument="none", hosts=hosts)
    assert wait_for(lambda: agent.status("h1", timeout=20) is PowerState.ON, 20, "the BMC")
    result = fence_and_verify(agent, "h1", timeout=30, cancel=NO_CANCEL)
    assert result.verified and "power off verified" in result.detail
    assert agent.status("h1", timeout=20) is PowerState.OFF
    reboot = CommandFence(FENCE_IPMILAN, host_argument="none", action="reboot", hosts=hosts)
    assert fence_and_verify(reboot, "h1", timeout=60, cancel=NO_CANCEL).verified
    assert agent.status("h1", timeout=20) is PowerState.ON  # rebooted: on again
    wrong = CommandFence(FENCE_IPMILAN, host_argument="none",
                         hosts={"h1": {**hosts["*"], **hosts["h1"], "password": "wrong-pw"}})
    assert wrong.status("h1", timeout=20) is PowerState.UNKNOWN  # exit 1: cannot contact
    with pytest.raises(FenceFailed, match="exited 1") as exc:
        wrong.fence("h1", timeout=20, cancel=NO_CANCEL)
    assert "wrong-pw" not in str(exc.value)


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
