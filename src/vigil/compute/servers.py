"""Server (instance) operations: what the CLI and the REST API both call.

Every operation validates all of its input before writing anything. Creating and evacuating
only record the request in the database (task_state ``scheduling`` / ``rebuilding``) and wake
the scheduler; the scheduler claims a host atomically and tells the chosen agent to spawn. So a
request made while no scheduler runs is not lost, and a caller in a process without shared
messaging (the CLI next to ``vigil up`` on ``fake://``) needs only the database.

Evacuation is the dangerous operation: it starts a second copy of an instance elsewhere, which
is only safe if the first copy is gone. It is refused (Conflict) unless the source host really
stopped: its heartbeat is stale while reports were getting through, or its agent acknowledged
a quarantine. A forced_down flag on a host that still reports, a clean leave (a stopped agent
leaves its instances running) and UNKNOWN are all refused: the rule and its reasons are in
:mod:`vigil.compute.evacuation`.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine

from vigil import formats, ids
from vigil.compute import evacuation
from vigil.compute.rpcapi import ComputeAgentAPI
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.ha import hosts as hosts_db
from vigil.errors import Conflict, InvalidInput, NotFound
from vigil.names import COMPUTE_TOPIC
from vigil.objects.compute import InstanceRecord, PowerState, TaskState, VmState
from vigil.objects.liveness import State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup.api import ServiceGroup

MAX_NAME = 255
# Nova's limits: user_data is at most 65535 characters of base64 (the API schema's maxLength),
# and the metadata quota's default is 128 items of 255-character keys and values.
MAX_USER_DATA = 65535
MAX_METADATA_ITEMS = 128
METADATA_KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")

STATUS_BY_VM_STATE = {VmState.BUILDING: "BUILD", VmState.ACTIVE: "ACTIVE", VmState.ERROR: "ERROR",
                      VmState.DELETED: "DELETED"}
POWER_STATES = {PowerState.NOSTATE: "NOSTATE", PowerState.RUNNING: "Running",
                PowerState.SHUTDOWN: "Shutdown"}


def check_user_data(user_data: str) -> None:
    """Nova's rule: base64 text (``base64.decodebytes`` accepts it) of at most 65535
    characters. Raises InvalidInput."""
    if len(user_data) > MAX_USER_DATA:
        raise InvalidInput(f"user_data is longer than {MAX_USER_DATA} characters")
    try:
        base64.decodebytes(user_data.encode("utf-8"))
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInput("user_data is not base64") from None


def check_metadata(meta: dict[str, str]) -> None:
    """Nova's rules for server metadata; raises InvalidInput (the API answers the quota as
    Nova does, 403, before this is reached)."""
    if len(meta) > MAX_METADATA_ITEMS:
        raise InvalidInput(f"Maximum number of metadata items exceeds {MAX_METADATA_ITEMS}")
    for key, value in meta.items():
        if not isinstance(key, str) or not METADATA_KEY_RE.match(key):
            raise InvalidInput(f"invalid metadata key {key!r}")
        if not isinstance(value, str) or len(value) > MAX_NAME:
            raise InvalidInput(f"metadata value of {key!r} must be a string of at most "
                               f"{MAX_NAME} characters")


_T = TypeVar("_T")


def pick_named(ident: str, named: Sequence[_T]) -> _T:
    """The one server named ``ident`` among ``named`` (the servers with that name)."""
    if len(named) == 1:
        return named[0]
    if not named:
        raise NotFound(f"no server with name or id {ident!r}")
    raise Conflict(f"{len(named)} servers are named {ident!r}: use an id")


class Server(Protocol):
    """What the CLI reads of a server: a :class:`ServerView` here, or
    :class:`vigil.api.compute_client.RemoteServer` when it goes through the API."""

    @property
    def uuid(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def task_state(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServerView:
    """An instance as operators and API clients see it."""

    record: InstanceRecord

    @property
    def uuid(self) -> str:
        return self.record.uuid

    @property
    def task_state(self) -> str | None:
        return self.record.task_state

    @property
    def status(self) -> str:
        r = self.record
        if r.deleted:
            return "DELETED"
        if r.task_state in (TaskState.REBUILDING, TaskState.REBUILD_SPAWNING):
            return "REBUILD"
        return STATUS_BY_VM_STATE.get(r.vm_state, r.vm_state.upper())

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        out: dict[str, Any] = {
            "id": r.uuid,
            "name": r.name,
            "status": self.status,
            "flavor": {"id": r.flavorid, "original_name": r.flavor_name, "vcpus": r.vcpus,
                       "ram": r.memory_mb, "disk": r.root_gb},
            "OS-EXT-SRV-ATTR:host": r.host,
            "OS-EXT-SRV-ATTR:hypervisor_hostname": r.node,
            "OS-EXT-STS:vm_state": r.vm_state,
            "OS-EXT-STS:task_state": r.task_state,
            "OS-EXT-STS:power_state": r.power_state,
            "OS-EXT-AZ:availability_zone": r.availability_zone or "",
            "OS-SRV-USG:launched_at": formats.usage_time(r.launched_at),
            "OS-SRV-USG:terminated_at": formats.usage_time(r.terminated_at),
            "created": formats.server_time(r.created_at),
            "updated": formats.server_time(r.updated_at),
            "evacuable": r.evacuable,
        }
        # As Nova: the fault is shown for ERROR and DELETED servers only.
        if r.fault and self.status in ("ERROR", "DELETED"):
            out["fault"] = {"code": 500, "message": r.fault,
                            "created": formats.server_time(r.fault_at)}
        return out


def compute_delete_guard(engine: Engine) -> Callable[[ServiceRecord], None]:
    """A Registry delete guard: a compute service that still hosts instances stays."""

    def guard(record: ServiceRecord) -> None:
        if record.topic != COMPUTE_TOPIC:
            return
        count = instances_db.instance_count_on_host(engine, record.host)
        if count:
            raise Conflict(f"compute service {record.host} still hosts {count} instance(s): "
                           "delete or evacuate them first")

    return guard


def compute_zones(engine: Engine) -> Callable[[], dict[str, str]]:
    """A Registry zone source: the zone each compute host's agent reports its nodes in."""
    return lambda: nodes_db.host_zones(engine)


class SchedulerWaker(Protocol):
    """What the servers' operations need of the schedulers: a wake-up after a request is
    recorded (:class:`vigil.scheduler.rpcapi.SchedulerAPI` in a deployment). A protocol, so that
    ``compute`` does not import ``scheduler``, which imports ``compute`` (its agents' RPC
    client, the evacuation rules): pyproject.toml forbids the arrow back."""

    def schedule_pending(self) -> object: ...  # (its answer is not read)


class ServersAPI:
    """Boot, list, show, delete and evacuate instances."""

    def __init__(
        self,
        engine: Engine,
        group: ServiceGroup,
        *,
        scheduler: SchedulerWaker | None = None,
        computes: ComputeAgentAPI | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.group = group
        self.scheduler = scheduler
        self.computes = computes
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()

    # -- helpers ------------------------------------------------------------------------------
    def _wake_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.schedule_pending()

    def _compute_service(self, host: str) -> tuple[ServiceRecord, State] | None:
        found = self.group.members(COMPUTE_TOPIC, host=host)
        return (found[0].record, found[0].state) if found else None

    def resolve(self, ident: str) -> InstanceRecord:
        """A live instance by UUID, or by name when exactly one instance has it."""
        ident = ident.strip()
        uuid = ids.parse_uuid(ident)
        if uuid is not None:
            return instances_db.instance_get(self.engine, uuid)
        return pick_named(ident, instances_db.instances(self.engine, name=ident))

    # -- operations ---------------------------------------------------------------------------
    def create(self, *, name: str, flavor: str, host: str | None = None,
               availability_zone: str | None = None, evacuable: bool = True,
               user_data: str | None = None, metadata: dict[str, str] | None = None,
               project_id: str | None = None, user_id: str | None = None) -> ServerView:
        """Record a new server; ``user_data`` (base64 text) and ``metadata`` are what the
        instance later reads from the metadata API."""
        name = name.strip()
        if user_data is not None:
            check_user_data(user_data)
        if metadata:
            check_metadata(metadata)
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"the server name must be 1 to {MAX_NAME} characters")
        try:
            fl = flavors_db.flavor_get(self.engine, flavor)
        except NotFound:
            raise InvalidInput(f"Flavor {flavor} could not be found.") from None
        if availability_zone is not None and not (0 < len(availability_zone) <= MAX_NAME):
            raise InvalidInput(f"the availability zone must be 1 to {MAX_NAME} characters")
        if host is not None and self._compute_service(host) is None:
            raise InvalidInput(f"Compute host {host} could not be found.")
        inst = instances_db.instance_create(self.engine, name=name, flavor=fl,
                                            availability_zone=availability_zone,
                                            requested_host=host, evacuable=evacuable,
                                            user_data=user_data, meta=metadata,
                                            project_id=project_id, user_id=user_id)
        self._wake_scheduler()
        return ServerView(inst)

    def list(self, *, host: str | None = None, name: str | None = None,
             uuid: str | None = None, deleted: bool = False) -> list[ServerView]:
        """Live servers matching exact filters, oldest first; with ``deleted``, Nova's admin
        filter, deleted servers instead. Vigil keeps no list of deleted servers to scan, so
        those are looked up one at a time: ``deleted`` needs ``uuid``."""
        if not deleted:
            uuids = None if uuid is None else [uuid]
            return [ServerView(i) for i in instances_db.instances(self.engine, host=host, name=name,
                                                                  uuids=uuids)]
        if uuid is None:
            raise InvalidInput("deleted servers are listed one at a time: give uuid=<server "
                               "id> with deleted=true")
        try:
            inst = instances_db.instance_get(self.engine, uuid, read_deleted=True)
        except NotFound:
            return []
        keep = (inst.deleted and (host is None or inst.host == host)
                and (name is None or inst.name == name))
        return [ServerView(inst)] if keep else []

    def get(self, ident: str) -> ServerView:
        return ServerView(self.resolve(ident))

    def delete(self, ident: str) -> ServerView:
        """Delete now in the database (claim given back) and tell the host to destroy it. A
        host that is down destroys its copy when it comes back (reconciliation)."""
        inst = self.resolve(ident)
        for _ in range(3):
            try:
                dead = instances_db.instance_destroy(self.engine, inst.uuid)
                break
            except Conflict:
                continue  # moved under us (claimed, evacuated): read the new placement
        else:
            raise Conflict(f"instance {inst.uuid} keeps changing; try again")
        if dead.host is not None and self.computes is not None:
            self.computes.terminate_instance(dead.host, dead.uuid)
        return ServerView(dead)

    def evacuate(self, ident: str, *, host: str | None = None) -> ServerView:
        """Re-create the instance of a DOWN host on another host (``host`` or the scheduler's
        choice), reusing its disk directory where instances_path is shared."""
        inst = self.resolve(ident)
        if inst.host is None:
            raise Conflict(f"instance {inst.uuid} was never placed on a host: nothing to "
                           "evacuate")
        why = evacuation.OPERATOR_REQUEST.refusal(inst)
        if why is not None:
            raise Conflict(why)
        if host is not None:
            if host == inst.host:
                raise InvalidInput("The target host can't be the same one.")
            if self._compute_service(host) is None:
                raise NotFound(f"Compute host {host} could not be found.")
        source = self.group.members(COMPUTE_TOPIC, host=inst.host)
        reporting = evacuation.reporting_of({m.host: m.reporting for m in source}, inst.host)
        left = bool(source) and source[0].record.left_at is not None
        why = evacuation.operator_refusal(inst.host, reporting, left=left,
                                          facts=hosts_db.host_get(self.engine, inst.host))
        if why is not None:
            raise Conflict(why)
        # A new ownership generation: the source host can never start this instance again.
        updated = instances_db.instance_update(self.engine, inst.uuid,
                                               {"task_state": TaskState.REBUILDING,
                                                "requested_host": host},
                                               host=inst.host,
                                               task_states=evacuation.OPERATOR_REQUEST.task_states,
                                               generation=inst.generation, new_owner=True)
        if updated is None:
            raise Conflict(f"instance {inst.uuid} changed meanwhile; try again")
        self._wake_scheduler()
        return ServerView(updated)

    def wait(self, ident: str, done: Callable[[ServerView], bool], *, timeout: float,
             interval: float = 0.2) -> ServerView:
        """Poll until ``done(view)`` (also true once the server is deleted), up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                view = self.get(ident)
            except NotFound:
                view = ServerView(instances_db.instance_get(self.engine, ident, read_deleted=True))
            if done(view) or view.status == "DELETED" or time.monotonic() >= deadline:
                return view
            time.sleep(interval)


def settled(view: Server) -> bool:
    """Neither waiting for a host nor spawning: ACTIVE or ERROR with no task."""
    return view.status in ("ACTIVE", "ERROR") and view.task_state is None
