"""The built-in workload of a process-driver instance: ``python -m vigil.compute.workload DIR``.

Appends ``<unix time> <host> <pid>`` to ``DIR/heartbeat`` every second, one ``write`` of one
line on an O_APPEND descriptor, so copies on two hosts sharing DIR (the failure an evacuation
must never cause) show up as interleaved lines instead of corrupting each other.

At start it reads its own metadata as a cloud instance would (docs/metadata.md): with the URL
and signed identity the process driver put in its environment, it fetches
``/openstack/latest/meta_data.json`` and ``user_data``, logs who it is on its console and
keeps the user data, byte for byte, in ``DIR/user_data``. The metadata API may come up after
the instance, so it retries with a bounded backoff; a refusal (403, 404) is final and logged.

Its console is a line echo: every line read on standard input (the console's input, see the
``process`` driver) is written back as ``echo: <line>`` on standard output (the console's
output), so an operator typing into the console sees the instance answer.

SIGINT is ignored: Ctrl-C on a terminal running ``vigil compute`` stops the agent, not its
instances (as restarting nova-compute leaves guests running). SIGTERM (destroy) and SIGKILL to
the agent's process group end it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

META_DATA = "/openstack/latest/meta_data.json"
USER_DATA = "/openstack/latest/user_data"


def run(directory: str, host: str, interval: float, stop: threading.Event) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "heartbeat")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, f"{time.time():.3f} {host} {os.getpid()}\n".encode())
            if stop.wait(interval):
                return
    finally:
        os.close(fd)


def say(text: str) -> None:
    """One line on the console (standard output is a file: flushed at once)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fetch(url: str, headers: Mapping[str, str], timeout: float = 5.0) -> bytes | None:
    """The body at ``url``; None for a 404; raises HTTPError for other refusals and OSError
    when the API cannot be reached."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body: bytes = answer.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def read_metadata(directory: str, env: Mapping[str, str], stop: threading.Event,
                  patience: float = 60.0) -> bool:
    """Read and log this instance's metadata; keep its user data in ``DIR/user_data``. True
    once read; False if there is no identity, the API refused, or it stayed unreachable."""
    base = env.get("VIGIL_METADATA_URL")
    instance_id = env.get("VIGIL_INSTANCE_ID")
    signature = env.get("VIGIL_INSTANCE_ID_SIGNATURE")
    if not (base and instance_id and signature):
        say("metadata: no signed identity in the environment; not reading it")
        return False
    headers = {"X-Instance-ID": instance_id, "X-Instance-ID-Signature": signature}
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        try:
            raw = fetch(base + META_DATA, headers)
            user_data = fetch(base + USER_DATA, headers) if raw is not None else None
            break
        except urllib.error.HTTPError as exc:
            say(f"metadata: refused by {base}: HTTP {exc.code}")
            return False
        except OSError as exc:
            if time.monotonic() + delay > deadline:
                say(f"metadata: {base} unreachable: {exc}")
                return False
            if stop.wait(delay):
                return False
            delay = min(delay * 2, 5.0)
    if raw is None:
        say(f"metadata: {base} does not know instance {instance_id}")
        return False
    meta = json.loads(raw)
    say(f"metadata: name={meta.get('name')} uuid={meta.get('uuid')} "
        f"hostname={meta.get('hostname')} availability_zone={meta.get('availability_zone')} "
        f"project_id={meta.get('project_id')} meta={json.dumps(meta.get('meta', {}))}")
    if user_data is not None:
        tmp = os.path.join(directory, "user_data.tmp")
        with open(tmp, "wb") as f:
            f.write(user_data)
        os.replace(tmp, os.path.join(directory, "user_data"))
        say(f"metadata: user_data {len(user_data)} bytes")
    else:
        say("metadata: no user_data")
    return True


def echo_console(stop: threading.Event) -> None:
    """Answer every line of standard input with ``echo: <line>`` until it ends."""
    stdin = sys.stdin.buffer
    while not stop.is_set():
        line = stdin.readline()
        if not line:
            return
        say("echo: " + line.rstrip(b"\r\n").decode("utf-8", "replace"))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vigil.compute.workload")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--host", default=os.environ.get("VIGIL_HOST") or socket.gethostname())
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say(f"workload {os.getpid()} on {args.host} in {args.directory}")
    threading.Thread(target=read_metadata, args=(args.directory, dict(os.environ), stop),
                     name="metadata", daemon=True).start()
    threading.Thread(target=echo_console, args=(stop,), name="console", daemon=True).start()
    run(args.directory, args.host, args.interval, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
