#!/usr/bin/env python3
"""A fence agent for the tests that follows ClusterLabs' FenceAgentAPI to the letter.

It reads its options on stdin, one ``name=value`` per line (``#`` lines and blank lines
ignored, the last value of a name wins), and answers with the convention's exit codes:

- ``action=off`` / ``on``: 0 done, 1 failed;
- ``action=reboot``: off, then on; 0 if the off part succeeded, 1 otherwise;
- ``action=status``: 0 plug on, 2 plug off, 1 device cannot be contacted;
- ``action=monitor``: 0 device reachable, 1 not; ``action=list``: the known plugs.

Options: ``plug`` (``port`` is accepted as an alias), ``nodename`` (always passed by the
caller), ``state_dir`` (required: each plug's power is the file ``<state_dir>/<plug>.power``,
"on" or "off"; a plug without one is on), ``log`` (default ``<state_dir>/calls.log``), and any
others (``password``, ``username``...), accepted and never written anywhere.

Every call appends one JSON line to the log: action, plug, nodename, the names (not the values)
of the options it got, and its exit code. A plug misbehaves when ``<state_dir>/<plug>.mode``
holds one of:

- ``status-unknown``: status and monitor exit 1 (the device cannot be contacted);
- ``off-fails``: off (and the off part of a reboot) exits 1;
- ``stays-on``: off exits 0 but the plug stays on (a lying device);
- ``hang``: every action sleeps for an hour, with a child process doing the same; both pids
  are written to ``<state_dir>/<plug>.hung``.

No imports outside the standard library: a fence agent runs wherever the monitor runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ACTIONS = ("on", "off", "reboot", "status", "monitor", "list")


def read_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        options[name.strip()] = value
    if "port" in options and "plug" not in options:
        options["plug"] = options["port"]
    return options


class Device:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir

    def _path(self, plug: str, suffix: str) -> str:
        if not plug or "/" in plug or plug.startswith("."):
            raise ValueError(f"not a plug name: {plug!r}")
        return os.path.join(self.state_dir, f"{plug}.{suffix}")

    def mode(self, plug: str) -> str:
        try:
            with open(self._path(plug, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def power(self, plug: str) -> str:
        try:
            with open(self._path(plug, "power")) as f:
                return f.read().strip() or "on"
        except FileNotFoundError:
            return "on"

    def set_power(self, plug: str, state: str) -> None:
        tmp = self._path(plug, "power.tmp")
        with open(tmp, "w") as f:
            f.write(state + "\n")
        os.replace(tmp, self._path(plug, "power"))

    def plugs(self) -> list[str]:
        return sorted(n[:-len(".power")] for n in os.listdir(self.state_dir)
                      if n.endswith(".power"))


def off(device: Device, plug: str) -> int:
    mode = device.mode(plug)
    if mode == "off-fails":
        print(f"Failed: unable to power off plug {plug}")
        return 1
    if mode != "stays-on":
        device.set_power(plug, "off")
    print("Success: Powered OFF")
    return 0


def run(options: dict[str, str]) -> int:
    action = options.get("action", "")
    if action not in ACTIONS:
        print(f"Failed: unknown action {action!r}")
        return 1
    state_dir = options.get("state_dir", "")
    if not state_dir or not os.path.isdir(state_dir):
        print(f"Failed: state_dir {state_dir!r} is not a directory (device unreachable)")
        return 1
    device = Device(state_dir)
    plug = options.get("plug", "")
    if action == "list":
        for p in device.plugs():
            print(f"{p},{p}")
        return 0
    if action == "monitor":
        return 1 if plug and device.mode(plug) == "status-unknown" else 0
    if not plug:
        print("Failed: plug (or port) is required")
        return 1
    mode = device.mode(plug)
    if mode == "hang":
        # A child too, and both pids in <plug>.hung: the caller must kill the whole group.
        child = subprocess.Popen(["sleep", "3600"])
        with open(device._path(plug, "hung"), "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        time.sleep(3600)
    if action == "status":
        if mode == "status-unknown":
            print("Failed: unable to connect to the device")
            return 1
        state = device.power(plug)
        print(f"Status: {state.upper()}")
        return 2 if state == "off" else 0
    if action == "on":
        device.set_power(plug, "on")
        print("Success: Powered ON")
        return 0
    code = off(device, plug)
    if action == "reboot" and code == 0:
        device.set_power(plug, "on")  # the off part is what the exit code reports
    return code


def main() -> int:
    options = read_options(sys.stdin.read())
    try:
        code = run(options)
    except (OSError, ValueError) as exc:
        print(f"Failed: {exc}")
        code = 1
    state_dir = options.get("state_dir", "")
    log = options.get("log") or (os.path.join(state_dir, "calls.log") if state_dir else "")
    if log:
        entry = {"action": options.get("action"), "plug": options.get("plug"),
                 "nodename": options.get("nodename"), "options": sorted(options), "exit": code,
                 "argv": sys.argv[1:]}
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
