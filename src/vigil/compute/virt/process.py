"""The process driver: an instance is a real OS process the agent starts and supervises.

- Its disk is ``<instances_path>/<uuid>``; the path may be shared between hosts, and a rebuild
  (evacuation) on another host reuses the directory as it is.
- It is started in the agent's process group, so killing that group (a host "crashing")
  kills its instances too; a graceful stop of the agent leaves them running.
- What this host runs is recorded in ``<state_path>/compute/<host>/<uuid>.json`` (pid and the
  kernel's start time of the process), a directory of this host alone even when instances_path
  is shared: after a restart the agent finds the processes it left behind, adopts those that
  still belong here and kills the others, and the start time guards against a recycled pid.
- Its identity for the metadata API is in its environment: ``VIGIL_METADATA_URL``,
  ``VIGIL_INSTANCE_ID`` and ``VIGIL_INSTANCE_ID_SIGNATURE`` (the id signed under ``[neutron]
  metadata_proxy_shared_secret``; unset when the secret is), what Neutron's metadata proxy adds
  to a VM's requests in Nova.
- Its console (:func:`console_endpoint`) is its standard input, a FIFO
  ``<state_path>/compute/<host>/<uuid>.console`` of this host, and its standard output, the
  disk's ``console.log``. The instance holds the FIFO open for reading *and* writing, so it never
  sees an end of input when a console client goes away, and the agent holds nothing: stopping
  or restarting the agent leaves the console working (a pipe to the agent would kill the
  instance with SIGPIPE at its next line of output once the agent is gone).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from vigil.compute.virt.driver import NewTransport, VirtDriver, VirtSettings, base_inventory
from vigil.errors import InstanceExists
from vigil.metadata import identity
from vigil.objects.compute import InstanceRecord, Inventory, PowerState

LOG = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
# A process that dies this quickly never started properly: the spawn fails.
START_CHECK = 0.2


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone or a
    zombie. Together with the pid it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]


@dataclass(frozen=True)
class ConsoleEndpoint:
    """Where an instance's console is on its host: write its input into ``input_fifo``, read
    its output from the end of ``output_log``. Reachable from this machine only (a console
    proxy on another machine needs a network bridge; see docs/console.md)."""

    input_fifo: str
    output_log: str


def console_endpoint(state_path: str, instances_path: str, host: str,
                     instance_uuid: str) -> ConsoleEndpoint:
    """The console of ``instance_uuid`` as run by ``host``'s process driver."""
    runtime = os.path.join(os.path.abspath(state_path), "compute", host)
    return ConsoleEndpoint(os.path.join(runtime, f"{instance_uuid}.console"),
                           os.path.join(os.path.abspath(instances_path), instance_uuid,
                                        "console.log"))


def metadata_env(settings: VirtSettings, instance_uuid: str) -> dict[str, str]:
    """What an instance needs to read its metadata: the URL and its signed identity."""
    host = settings.metadata_host
    host = f"[{host}]" if ":" in host else host
    env = {"VIGIL_METADATA_URL": f"http://{host}:{settings.metadata_listen_port}",
           "VIGIL_INSTANCE_ID": instance_uuid}
    secret = settings.metadata_secret()
    if secret:
        env["VIGIL_INSTANCE_ID_SIGNATURE"] = identity.sign(secret, instance_uuid)
    return env


@dataclass
class _Local:
    pid: int
    start_time: str | None
    directory: str
    proc: subprocess.Popen[bytes] | None = None  # None for one adopted after a restart

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:  # also reaps it
            return False
        current = proc_start_time(self.pid)
        return current is not None and current == self.start_time


class ProcessDriver(VirtDriver):
    name = "process"

    def __init__(self, settings: VirtSettings, host: str) -> None:
        self._settings = settings
        self.host = host
        self.instances_path = os.path.abspath(settings.instances_path)
        self.runtime_path = os.path.join(os.path.abspath(settings.state_path), "compute", host)
        self._template = settings.process_command
        self._lock = threading.RLock()
        self._local: dict[str, _Local] = {}

    @classmethod
    def from_settings(cls, settings: VirtSettings, host: str, *,
                      new_transport: NewTransport | None = None) -> ProcessDriver:
        return cls(settings, host)

    # -- records ------------------------------------------------------------------------------
    def _record_path(self, instance_uuid: str) -> str:
        return os.path.join(self.runtime_path, f"{instance_uuid}.json")

    def _write_record(self, instance_uuid: str, local: _Local) -> None:
        path = self._record_path(instance_uuid)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": local.pid, "start_time": local.start_time,
                       "directory": local.directory}, f)
        os.replace(tmp, path)

    def init_host(self) -> None:
        """Adopt the records of processes this host started before the agent restarted."""
        os.makedirs(self.runtime_path, exist_ok=True)
        os.makedirs(self.instances_path, exist_ok=True)
        with self._lock:
            for name in os.listdir(self.runtime_path):
                if not name.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(self.runtime_path, name)) as f:
                        data = json.load(f)
                    local = _Local(int(data["pid"]), data.get("start_time"),
                                   str(data["directory"]))
                except (OSError, ValueError, KeyError) as exc:
                    LOG.warning("ignoring unreadable instance record %s: %s", name, exc)
                    continue
                self._local[name[:-len(".json")]] = local
                LOG.info("found instance %s from before the restart (pid %d, %s)",
                         name[:-5], local.pid, "running" if local.alive() else "not running")

    # -- the interface ------------------------------------------------------------------------
    def command(self, instance: InstanceRecord, directory: str) -> list[str]:
        if not self._template:
            return [sys.executable, "-m", "vigil.compute.workload", directory,
                    "--host", self.host]
        return shlex.split(self._template.format(dir=directory, host=self.host,
                                                 uuid=instance.uuid, name=instance.name))

    def spawn(self, instance: InstanceRecord, *, rebuild: bool = False) -> None:
        directory = os.path.join(self.instances_path, instance.uuid)
        with self._lock:
            old = self._local.get(instance.uuid)
            if old is not None and old.alive():
                raise InstanceExists(instance.uuid)
            os.makedirs(self.runtime_path, exist_ok=True)
            reused = os.path.isdir(directory)
            os.makedirs(directory, exist_ok=True)
            if not reused:
                with open(os.path.join(directory, "instance.json"), "w") as f:
                    json.dump({"uuid": instance.uuid, "name": instance.name,
                               "flavor": instance.flavor_name}, f)
            LOG.info("%s instance %s in %s (%s disk)", "rebuilding" if rebuild else "spawning",
                     instance.uuid, directory, "existing" if reused else "new")
            console = self._console_input(instance.uuid)
            try:
                with open(os.path.join(directory, "console.log"), "ab") as log:
                    # Same process group as the agent (no new session): see the module
                    # docstring.
                    proc = subprocess.Popen(
                        self.command(instance, directory), cwd=directory,
                        stdin=console, stdout=log, stderr=subprocess.STDOUT,
                        close_fds=True, env={**os.environ, "VIGIL_HOST": self.host,
                                             **metadata_env(self._settings, instance.uuid)})
            finally:
                os.close(console)
            local = _Local(proc.pid, proc_start_time(proc.pid), directory, proc)
            self._local[instance.uuid] = local
            self._write_record(instance.uuid, local)
        try:
            code = proc.wait(timeout=START_CHECK)
        except subprocess.TimeoutExpired:
            return
        raise RuntimeError(f"instance process exited at once with status {code} "
                           f"(see {directory}/console.log)")

    def _console_input(self, instance_uuid: str) -> int:
        """A fresh FIFO for the instance's standard input, opened for reading and writing
        (the instance keeps both ends: see the module docstring)."""
        path = console_endpoint(self._settings.state_path, self.instances_path, self.host,
                                instance_uuid).input_fifo
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.mkfifo(path, 0o600)
        return os.open(path, os.O_RDWR)

    def _stop(self, local: _Local) -> None:
        if not local.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(local.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while local.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if local.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(local.pid, signal.SIGKILL)
        if local.proc is not None:
            # Reap our child whichever way it ended (alive() can see it gone, a zombie,
            # before poll() has collected its status).
            local.proc.wait(timeout=STOP_TIMEOUT)

    def destroy(self, instance_uuid: str, *, keep_disk: bool) -> None:
        with self._lock:
            local = self._local.pop(instance_uuid, None)
            if local is not None:
                self._stop(local)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._record_path(instance_uuid))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(console_endpoint(self._settings.state_path, self.instances_path,
                                           self.host, instance_uuid).input_fifo)
        if not keep_disk:
            shutil.rmtree(os.path.join(self.instances_path, instance_uuid), ignore_errors=True)
        if local is not None:
            LOG.info("destroyed instance %s (pid %d, disk %s)", instance_uuid, local.pid,
                     "kept" if keep_disk else "removed")

    def list_instances(self) -> list[str]:
        with self._lock:
            return list(self._local)

    def power_state(self, instance_uuid: str) -> PowerState:
        with self._lock:
            local = self._local.get(instance_uuid)
            if local is None:
                return PowerState.NOSTATE
            return PowerState.RUNNING if local.alive() else PowerState.SHUTDOWN

    def pid(self, instance_uuid: str) -> int | None:
        with self._lock:
            local = self._local.get(instance_uuid)
            return local.pid if local is not None and local.alive() else None

    def inventory(self) -> Inventory:
        os.makedirs(self.instances_path, exist_ok=True)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        disk = shutil.disk_usage(self.instances_path).total // (1024 ** 3)
        return base_inventory(self._settings.inventory, self.host, hypervisor_type="process",
                              vcpus=os.cpu_count() or 1, memory_mb=int(memory),
                              local_gb=int(disk))
